//! "Did you mean …?": the closest known name to a misspelt one.

/// The candidate closest to `word` by edit distance, if it is close enough to be a likely typo
/// (at most a third of the word's length, and at least one edit allowed).
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn suggests_transpositions_and_small_typos() {
        let keys = ["count", "instance_type", "heap", "volume", "nodes"];
        assert_eq!(closest("instnace_type", keys), Some("instance_type"));
        assert_eq!(closest("cont", keys), Some("count"));
        assert_eq!(closest("zookeeper", keys), None);
    }
}
