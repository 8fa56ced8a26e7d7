//! "did you mean …?": the served tool closest to a name nobody serves.

/// The name of `candidates` closest to `wanted` by edit distance, if it is
/// close enough to be a typo: at most 1 edit for names under 6 chars, 2
/// for longer ones. Ties go to the first in alphabetical order.
pub(crate) fn closest<'a>(
    wanted: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let len = wanted.chars().count();
    let threshold = (len / 3).clamp(1, 2);
    candidates
        .into_iter()
        .filter(|c| *c != wanted)
        .map(|c| (levenshtein(wanted, c), c))
        .filter(|(distance, _)| *distance <= threshold)
        .min()
        .map(|(_, c)| c)
}

/// Edits (insertions, deletions, substitutions of one char) from `a` to `b`.
fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if ca == *cb {
                diagonal
            } else {
                1 + diagonal.min(above).min(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(levenshtein("", ""), 0);
        assert_eq!(levenshtein("serch", "search"), 1);
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("sleep", ""), 5);
        assert_eq!(levenshtein("héllo", "hello"), 1, "chars, not bytes");
    }

    #[test]
    fn suggests_a_near_name_only() {
        let served = ["search", "sleep", "echo", "fetch_url"];
        assert_eq!(closest("serch", served), Some("search"));
        assert_eq!(closest("slep", served), Some("sleep"));
        assert_eq!(closest("fetch-url", served), Some("fetch_url"));
        assert_eq!(closest("fech_ur", served), Some("fetch_url"));
        assert_eq!(closest("weather", served), None);
        assert_eq!(closest("x", served), None);
        assert_eq!(closest("search", served), None, "the same name is no typo");
        assert_eq!(closest("serch", []), None);
        // A tie goes to the first alphabetically.
        assert_eq!(closest("ab", ["ac", "aa"]), Some("aa"));
    }
}
