//! Writing a review in the formats people and CI tools read.
