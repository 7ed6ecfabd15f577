//! Grouping findings across reviewers and keeping those a quorum agrees on.
