//! Learning which agent wins: after every scored run, one record per candidate (agent, kind
//! of task, won, share of tests passed, votes, cost, time); counters per agent and kind kept
//! in git ([`store`], `refs/massgen/learning`, grow-only per machine so that copies merge
//! without counting twice); agents picked for a new task by Thompson sampling on those
//! counters; merged winners later confirmed or turned into losses by history.
//!
//! The kind of a task comes from a small deterministic featurizer ([`features`]).

pub mod counts;
pub mod features;
pub mod pick;
pub mod simulate;
pub mod store;

pub use counts::{Coordination, Counts, Fate, Learning, Machine, Merged};
pub use store::{LearnError, REF};
