//! Asking a program for a structured answer: what judges and reviewers have in common.
//!
//! A judge is asked for a vote and a reviewer for findings, but both are asked the same way:
//! the material is cut to a budget ([`cut()`]), the answer is found in what the program printed
//! or in a CLI's final message ([`json`]), and an answer of the wrong shape is asked for again
//! with what was wrong, up to the attempts allowed, before giving up ([`retry`]). A
//! configured agent of any kind (command, CLI preset, built-in LLM) is asked through
//! [`respondent`], by reviewers and by the planner.
//!
//! This module sits below `judge` and `review` and must never import them (nor `run` or
//! `commands`): it knows nothing of votes, findings or runs, only of asking and answers.

mod cut;
pub mod json;
pub mod respondent;
pub mod retry;

pub use cut::cut;
pub use retry::{Asked, Asker, Attempt, GaveUp, until_answered};

/// An API key, kept out of debug output.
#[derive(Clone)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let shown = format!("{:?}", Some(Secret("sk-123".into())));
        assert_eq!(shown, "Some(Secret(..))");
    }
}
