//! Integration tests: the `git-massgen` binary against real git repositories.

mod support;

mod errors;
mod clis;
mod lifecycle;
mod llm_server;
mod merge;
mod run;
