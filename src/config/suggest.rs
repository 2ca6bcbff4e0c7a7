//! "Did you mean" hints: the nearest known word by edit distance, if it is near enough that
//! the word was plausibly a typo of it rather than something else entirely.

/// The candidate nearest to `word`, if any is within a third of its length (at least one
/// edit). Case is ignored, so `CMD` suggests `cmd`.
pub(super) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let word = word.to_lowercase();
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (distance(&word, &c.to_lowercase()), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// ` (did you mean `x`?)`, or nothing: ready to append to a message.
pub(super) fn hint<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    did_you_mean(word, candidates)
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default()
}

/// Optimal string alignment distance: Levenshtein plus adjacent transpositions, which are
/// the most common typo (`cmd` → `cdm`).
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for j in 0..=b.len() {
        rows[0][j] = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (rows[i - 1][j] + 1).min(rows[i][j - 1] + 1).min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = d;
        }
    }
    rows[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_misses_are_suggested() {
        let fields = ["cmd", "shell", "cwd", "env", "env_file", "depends_on", "restart"];
        assert_eq!(did_you_mean("cmnd", fields), Some("cmd"));
        assert_eq!(did_you_mean("cdm", fields), Some("cmd"));
        assert_eq!(did_you_mean("CMD", fields), Some("cmd"));
        assert_eq!(did_you_mean("envfile", fields), Some("env_file"));
        assert_eq!(did_you_mean("dependson", fields), Some("depends_on"));
        assert_eq!(did_you_mean("on-failur", ["always", "on-failure", "never"]), Some("on-failure"));
    }

    #[test]
    fn far_words_are_not() {
        let fields = ["cmd", "shell", "cwd"];
        assert_eq!(did_you_mean("command", fields), None);
        assert_eq!(did_you_mean("xyz", fields), None);
        assert_eq!(hint("xyz", fields), "");
    }
}
