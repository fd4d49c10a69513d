//! Black `--check --diff`: a unified diff on stdout; one medium finding per hunk (the file would
//! be reformatted there). Paths are as Black printed them (absolute); the gate makes them relative.

use super::{ParseError, text};
use crate::gates::finding::{Finding, Severity};

const FORMAT: &str = "black diff";

pub fn parse(bytes: &[u8]) -> Result<Vec<Finding>, ParseError> {
    let s = text(FORMAT, bytes)?;
    let mut out = Vec::new();
    let mut file: Option<String> = None;
    let mut saw_plus = false;
    for (i, line) in s.lines().enumerate() {
        if let Some(rest) = line.strip_prefix("--- ") {
            file = Some(header_path(rest));
            saw_plus = false;
        } else if line.starts_with("+++ ") && file.is_some() && !saw_plus {
            saw_plus = true;
        } else if let Some(rest) = line.strip_prefix("@@ ") {
            let Some(path) = file.as_deref().filter(|_| saw_plus) else {
                return Err(ParseError::shape(
                    FORMAT,
                    format!("hunk before a file header on line {}", i + 1),
                ));
            };
            let (start, len) = old_range(rest).ok_or_else(|| {
                ParseError::shape(FORMAT, format!("bad hunk header on line {}", i + 1))
            })?;
            let end = start.saturating_add(len.saturating_sub(1));
            out.push(
                Finding::new("black", "would-reformat", Severity::Medium, format!("black would reformat lines {start}-{end}"))
                    .at(path, Some(start), None)
                    .ending(Some(end), None)
                    .help("https://black.readthedocs.io/en/stable/the_black_code_style/current_style.html"),
            );
        } else if line.starts_with([' ', '+', '-', '\\']) || line.is_empty() {
            if file.is_none() {
                return Err(ParseError::shape(
                    FORMAT,
                    format!("diff text before any file header on line {}", i + 1),
                ));
            }
        } else {
            return Err(ParseError::shape(
                FORMAT,
                format!("unexpected line {} in a unified diff", i + 1),
            ));
        }
    }
    Ok(out)
}

/// `path<TAB>timestamp` → `path`.
fn header_path(rest: &str) -> String {
    rest.split('\t')
        .next()
        .unwrap_or(rest)
        .trim_end()
        .to_string()
}

/// `-a,b +c,d @@` → `(a, b)`; `-a` alone means one line.
fn old_range(rest: &str) -> Option<(u32, u32)> {
    let old = rest.split_whitespace().next()?.strip_prefix('-')?;
    let mut it = old.splitn(2, ',');
    let start: u32 = it.next()?.parse().ok()?;
    let len: u32 = match it.next() {
        Some(l) => l.parse().ok()?,
        None => 1,
    };
    Some((start, len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gates::parsers::testutil::fixture;

    /// The real Black diff of the planted project: 9 hunks in 5 files.
    #[test]
    fn real_findings_diff() {
        let f = parse(&fixture("black/findings.stdout.diff")).unwrap();
        assert_eq!(f.len(), 9);
        let mut files: Vec<_> = f.iter().filter_map(|f| f.path.clone()).collect();
        files.dedup();
        assert_eq!(files.len(), 5);
        insta::assert_json_snapshot!(f);
    }

    /// A clean run prints nothing on stdout: no findings.
    #[test]
    fn real_clean_is_empty() {
        assert!(
            parse(&fixture("black/clean.stdout.txt"))
                .unwrap()
                .is_empty()
        );
    }
}
