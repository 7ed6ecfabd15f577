//! The one retry-with-feedback loop: ask, check the answer's shape, and ask again telling
//! what was wrong, up to the attempts allowed; then give up.
//!
//! What is asked is behind [`Asker`]: a command run again with the feedback in its
//! environment, a CLI session resumed with the feedback as its prompt, a conversation with a
//! model continued with it. The loop decides only when to ask again and when to stop.

use std::future::Future;

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt<T> {
    /// An answer of the right shape.
    Answer(T),
    /// An answer of the wrong shape: what was wrong, told on the next attempt.
    Malformed(String),
    /// Asking failed in a way that asking again would not mend (it crashed, timed out, was
    /// interrupted, could not be started): the loop stops here.
    Failed(String),
}

impl<T> Attempt<T> {
    /// An answer whose shape was checked: `Err` says what was wrong with it.
    pub fn checked(answer: Result<T, String>) -> Attempt<T> {
        match answer {
            Ok(answer) => Attempt::Answer(answer),
            Err(why) => Attempt::Malformed(why),
        }
    }
}

/// Something that can be asked for an answer, again and again.
pub trait Asker {
    /// The answer once its shape is checked (a vote, findings).
    type Answer;

    /// Asks once. `attempt` counts from 1; `feedback` is what was wrong with the previous
    /// answer (empty on the first attempt).
    fn ask(
        &mut self,
        attempt: u32,
        feedback: &str,
    ) -> impl Future<Output = Attempt<Self::Answer>> + Send;

    /// Whether it can be asked again after a malformed answer (a CLI whose session cannot be
    /// resumed cannot); asked after each one.
    fn can_ask_again(&self) -> bool {
        true
    }
}

/// Why no answer came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GaveUp {
    /// An attempt failed (see [`Attempt::Failed`]).
    Failed(String),
    /// Every answer was malformed, or no more could be asked for; what was wrong with the
    /// last one.
    Malformed(String),
}

/// What came of asking until answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asked<T> {
    /// The attempts made (the failed one included).
    pub attempts: u32,
    pub result: Result<T, GaveUp>,
}

/// Asks `asker` up to `max_attempts` times, each time after the first with what was wrong
/// with the previous answer, until an answer has the right shape or an attempt fails.
pub async fn until_answered<A: Asker>(asker: &mut A, max_attempts: u32) -> Asked<A::Answer> {
    let mut feedback = String::new();
    let mut attempts = 0;
    while attempts < max_attempts {
        attempts += 1;
        match asker.ask(attempts, &feedback).await {
            Attempt::Answer(answer) => {
                return Asked {
                    attempts,
                    result: Ok(answer),
                };
            }
            Attempt::Failed(why) => {
                return Asked {
                    attempts,
                    result: Err(GaveUp::Failed(why)),
                };
            }
            Attempt::Malformed(why) => feedback = why,
        }
        if !asker.can_ask_again() {
            break;
        }
    }
    Asked {
        attempts,
        result: Err(GaveUp::Malformed(feedback)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plays back attempts in order and records what it was told.
    struct Script {
        plays: Vec<Attempt<&'static str>>,
        told: Vec<(u32, String)>,
        resumable: bool,
    }

    impl Script {
        fn new(plays: Vec<Attempt<&'static str>>) -> Script {
            Script {
                plays,
                told: Vec::new(),
                resumable: true,
            }
        }
    }

    impl Asker for Script {
        type Answer = &'static str;

        async fn ask(&mut self, attempt: u32, feedback: &str) -> Attempt<&'static str> {
            self.told.push((attempt, feedback.to_owned()));
            self.plays.remove(0)
        }

        fn can_ask_again(&self) -> bool {
            self.resumable
        }
    }

    fn bad(why: &str) -> Attempt<&'static str> {
        Attempt::Malformed(why.into())
    }

    #[test]
    fn checked_answers_are_answers_or_malformed() {
        assert_eq!(Attempt::checked(Ok(1)), Attempt::Answer(1));
        assert_eq!(
            Attempt::<u8>::checked(Err("no label".into())),
            Attempt::Malformed("no label".into())
        );
    }

    #[tokio::test]
    async fn a_good_first_answer_is_taken() {
        let mut s = Script::new(vec![Attempt::Answer("A")]);
        let asked = until_answered(&mut s, 3).await;
        assert_eq!(
            asked,
            Asked {
                attempts: 1,
                result: Ok("A")
            }
        );
        assert_eq!(s.told, vec![(1, String::new())]);
    }

    #[tokio::test]
    async fn each_retry_is_told_what_was_wrong_before() {
        let mut s = Script::new(vec![bad("not JSON"), bad("no label"), Attempt::Answer("B")]);
        let asked = until_answered(&mut s, 3).await;
        assert_eq!(
            asked,
            Asked {
                attempts: 3,
                result: Ok("B")
            }
        );
        assert_eq!(
            s.told,
            vec![
                (1, String::new()),
                (2, "not JSON".into()),
                (3, "no label".into())
            ]
        );
    }

    #[tokio::test]
    async fn the_last_problem_is_kept_when_attempts_run_out() {
        let mut s = Script::new(vec![bad("one"), bad("two"), Attempt::Answer("late")]);
        let asked = until_answered(&mut s, 2).await;
        assert_eq!(
            asked,
            Asked {
                attempts: 2,
                result: Err(GaveUp::Malformed("two".into()))
            }
        );
    }

    #[tokio::test]
    async fn a_failure_is_not_asked_again() {
        let mut s = Script::new(vec![
            bad("one"),
            Attempt::Failed("crashed".into()),
            bad("x"),
        ]);
        let asked = until_answered(&mut s, 3).await;
        assert_eq!(
            asked,
            Asked {
                attempts: 2,
                result: Err(GaveUp::Failed("crashed".into()))
            }
        );
    }

    #[tokio::test]
    async fn one_that_cannot_be_asked_again_stops_after_a_bad_answer() {
        let mut s = Script::new(vec![bad("prose"), Attempt::Answer("never")]);
        s.resumable = false;
        let asked = until_answered(&mut s, 3).await;
        assert_eq!(
            asked,
            Asked {
                attempts: 1,
                result: Err(GaveUp::Malformed("prose".into()))
            }
        );
    }

    #[tokio::test]
    async fn no_attempt_allowed_asks_nothing() {
        let mut s = Script::new(vec![]);
        let asked = until_answered(&mut s, 0).await;
        assert_eq!(
            asked,
            Asked {
                attempts: 0,
                result: Err(GaveUp::Malformed(String::new()))
            }
        );
    }
}
