//! Integration tests: the `git-massgen` binary against real git repositories.

mod support;

mod errors;
mod lifecycle;
mod merge;
mod run;
