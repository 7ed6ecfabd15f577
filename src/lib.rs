//! git-massgen: run several coding agents on one task, each in its own git worktree and
//! branch, turn their work into commits, score the candidates, explain the winner and merge
//! it with conflict detection that never touches the user's work tree until the merge is
//! proved clean.
//!
//! The binary is a thin shell over this library: [`cli`] parses arguments and dispatches to
//! [`commands`]; the domain modules ([`git`], [`agent`], [`score`], [`run`], [`config`]) never
//! print, all output goes through [`ui`].

pub mod agent;
pub mod ask;
pub mod cli;
pub mod commands;
pub mod config;
pub mod docs;
pub mod error;
pub mod git;
pub mod hooks;
pub mod judge;
pub mod learn;
pub mod llm;
pub mod model;
pub mod plan;
pub mod report;
pub mod review;
pub mod run;
pub mod sandbox;
pub mod score;
pub mod settings;
pub mod sys;
pub mod ui;
