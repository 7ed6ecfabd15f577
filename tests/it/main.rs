//! Integration tests: the `git-massgen` binary against real git repositories.

mod support;

mod breach;
mod clis;
mod conflicts;
mod consensus;
mod cow;
mod crash;
mod docs;
mod errors;
mod escapes_process;
mod filters;
mod hooks;
mod imports;
mod lifecycle;
mod llm;
mod llm_server;
mod llm_wire;
mod merge;
mod pick;
mod plan;
mod plan_new;
mod plan_resolve;
mod plan_run;
mod ports;
mod presets;
mod progress;
mod real_projects;
mod report;
mod review;
mod review_safety;
mod run;
mod sandbox;
mod settings;
mod setup;
