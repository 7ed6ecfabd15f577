//! Learning which agent wins: after every scored run, one record per candidate (agent, kind
//! of task, won, share of tests passed, votes, cost, time); counters per agent and kind kept
//! in git ([`store`], `refs/massgen/learning`, grow-only per machine so that copies merge
//! without counting twice); agents picked for a new task by Thompson sampling on those
//! counters; merged winners later confirmed or turned into losses by history.
//!
//! The kind of a task comes from a small deterministic featurizer ([`features`]). Copies
//! of the statistics travel between clones as refs or files ([`share`]); `stats` shows
//! them ([`stats`]); [`history`] turns reverted winners into losses; [`pick`] chooses the
//! agents of a run (Thompson sampling), and [`simulate`] shows that it learns.

pub mod counts;
pub mod features;
pub mod history;
pub mod pick;
pub mod share;
pub mod simulate;
pub mod stats;
pub mod store;

pub use counts::{Coordination, Counts, Fate, Learning, Machine, Merged};
pub use store::{LearnError, REF};
