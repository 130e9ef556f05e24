//! "Did you mean" suggestions: the closest known name by edit distance.

/// The candidate closest to `name`, if it is close enough to be a likely typo.
/// Some of `name` must survive the edit: any one-letter name is one edit
/// from `y`, so `y` gets no suggestion (it got `M`, a model's name).
pub fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let len = name.chars().count();
    let limit = (len / 3).max(1);
    candidates
        .filter(|c| *c != name)
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, _)| *d <= limit && *d < len)
        .min()
        .map(|(_, c)| c)
}

/// The help for an unknown name: where the stdlib declares it (the usual
/// cause: a missing `use`), else the closest candidate.
pub fn unknown_name_help<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<String> {
    if let Some(module) = stdlib_home(name) {
        return Some(format!("`{name}` is in the stdlib module `{module}`: add `use {module}.{name}`"));
    }
    closest(name, candidates).map(|s| format!("did you mean `{s}`?"))
}

/// The stdlib module whose top level declares `name` (a `fn`, `model` or
/// `const` line at column 0).
fn stdlib_home(name: &str) -> Option<&'static str> {
    super::program::STDLIB.iter().find_map(|(module, text)| {
        text.lines()
            .filter_map(|l| ["fn ", "model ", "const "].iter().find_map(|k| l.strip_prefix(k)))
            .any(|rest| {
                rest.strip_prefix(name)
                    .is_some_and(|after| !after.starts_with(|c: char| c.is_alphanumeric() || c == '_'))
            })
            .then_some(*module)
    })
}

/// Edit distance over chars where swapping two adjacent chars is one edit
/// (optimal string alignment): `valeu` is one edit from `value`, as typos are.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // Rows i-2, i-1 and i of the table, over b's prefixes.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 0..a.len() {
        let mut cur = vec![i + 1; b.len() + 1];
        for j in 0..b.len() {
            let sub = prev[j] + usize::from(a[i] != b[j]);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
            if i > 0 && j > 0 && a[i] == b[j - 1] && a[i - 1] == b[j] {
                cur[j + 1] = cur[j + 1].min(before[j - 1] + 1);
            }
        }
        before = std::mem::replace(&mut prev, cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::{closest, edit_distance};

    #[test]
    fn a_swap_of_neighbours_is_one_edit() {
        assert_eq!(edit_distance("valeu", "value"), 1);
        assert_eq!(edit_distance("rleu", "relu"), 1);
        assert_eq!(edit_distance("ab", "ba"), 1);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("abc", "abc"), 0);
        assert_eq!(closest("scael", ["scale", "shape"].into_iter()), Some("scale"));
        assert_eq!(closest("y", ["M", "x"].into_iter()), None);
    }

    #[test]
    fn a_stdlib_name_without_its_use_names_the_module() {
        let help = super::unknown_name_help("cross_entropy", std::iter::empty()).unwrap();
        assert_eq!(help, "`cross_entropy` is in the stdlib module `losses`: add `use losses.cross_entropy`");
        assert!(super::unknown_name_help("Linear", std::iter::empty()).unwrap().contains("`nn`"));
        // A prefix of a stdlib name is not that name.
        assert_eq!(super::unknown_name_help("cross", std::iter::empty()), None);
    }
}
