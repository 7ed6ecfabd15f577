//! Cutting what a judge or reviewer reads (a diff, mostly) to a budget of characters.

/// `text` cut at a line boundary to at most `budget` characters, and whether it was cut.
///
/// Characters, not bytes, so that a cut never splits one; the last line kept is a whole
/// line unless a single line is longer than the budget.
pub fn cut(text: &str, budget: usize) -> (String, bool) {
    if text.chars().count() <= budget {
        return (text.to_owned(), false);
    }
    let end = text
        .char_indices()
        .nth(budget)
        .map_or(text.len(), |(i, _)| i);
    let end = text[..end].rfind('\n').map_or(end, |i| i + 1);
    (text[..end].to_owned(), true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_diffs_are_cut_at_a_line() {
        let (text, was) = cut("aaaa\nbbbb\ncccc\n", 12);
        assert_eq!((text.as_str(), was), ("aaaa\nbbbb\n", true));
        let (text, was) = cut("ab\n", 12);
        assert_eq!((text.as_str(), was), ("ab\n", false));
    }

    #[test]
    fn a_line_longer_than_the_budget_is_cut_inside() {
        let (text, was) = cut("abcdef", 4);
        assert_eq!((text.as_str(), was), ("abcd", true));
    }

    #[test]
    fn budgets_count_characters_not_bytes() {
        let (text, was) = cut("ééé\nééé\n", 4);
        assert_eq!((text.as_str(), was), ("ééé\n", true));
        let (text, was) = cut("éé", 2);
        assert_eq!((text.as_str(), was), ("éé", false));
    }
}
