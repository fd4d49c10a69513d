//! The exceptions file: accepted findings, each with a reason, an approver and an expiry.
//!
//! ```yaml
//! exceptions:
//!   - fingerprint: 3f2a9c0d11e4b7a2
//!     reason: accepted until the vendor ships a fix
//!     approver: alice
//!     expires: 2026-12-31
//! ```
//!
//! Owns: parsing that file (pure, from text). Must not touch: the verdict's use of it.

use crate::budget::EXCEPTIONS;
use chrono::NaiveDate;
use saphyr_parser::{Event, Parser};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Exception {
    pub fingerprint: String,
    pub reason: String,
    pub approver: String,
    /// Last day the exception applies (inclusive, UTC).
    pub expires: NaiveDate,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExceptionsError {
    #[error("parse exceptions file {file} at line {line}: {message}")]
    Yaml {
        file: String,
        line: usize,
        message: String,
    },
    #[error("read exceptions file {file}: entry {index} (line {line}): {message}")]
    Entry {
        file: String,
        index: usize,
        line: usize,
        message: String,
    },
}

/// Parses the exceptions file within the [`EXCEPTIONS`] budget (its size first; its nesting is
/// fixed by the format and aliases are refused, so only scalars are counted). `file` is only used
/// in messages.
pub fn parse_exceptions(file: &str, text: &str) -> Result<Vec<Exception>, ExceptionsError> {
    let yaml = |line: usize, message: String| ExceptionsError::Yaml {
        file: file.to_string(),
        line,
        message,
    };
    EXCEPTIONS
        .check_size(text.len() as u64)
        .map_err(|e| yaml(1, e.to_string()))?;
    let mut scalars = 0usize;
    // Flatten the event stream into: entries = Vec<(line, map of key -> scalar)>.
    let mut entries: Vec<(usize, BTreeMap<String, String>)> = Vec::new();
    let mut stack: Vec<char> = Vec::new(); // 'm' mapping, 's' sequence
    let mut key: Option<String> = None;
    let mut in_entries = false;
    for ev in Parser::new_from_str(text) {
        let (ev, span) = ev.map_err(|e| yaml(e.marker().line(), e.info().to_string()))?;
        let line = span.start.line();
        match ev {
            Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart(_)
            | Event::DocumentEnd
            | Event::Nothing => {}
            Event::Alias(_) => return Err(yaml(line, "aliases are not supported".into())),
            Event::SequenceStart(..) => {
                let top_level =
                    stack.is_empty() || (stack == ['m'] && key.as_deref() == Some("exceptions"));
                if !top_level {
                    return Err(yaml(line, "unexpected list".into()));
                }
                in_entries = true;
                key = None;
                stack.push('s');
            }
            Event::SequenceEnd => {
                stack.pop();
                in_entries = false;
            }
            Event::MappingStart(..) => {
                if in_entries && stack.last() == Some(&'s') {
                    entries.push((line, BTreeMap::new()));
                } else if !stack.is_empty() {
                    return Err(yaml(line, "unexpected mapping".into()));
                }
                stack.push('m');
                key = None;
            }
            Event::MappingEnd => {
                stack.pop();
                key = None;
            }
            Event::Scalar(v, ..) => {
                scalars += 1;
                EXCEPTIONS
                    .check_nodes(scalars)
                    .map_err(|e| yaml(line, e.to_string()))?;
                let v = v.to_string();
                if stack.last() != Some(&'m') {
                    return Err(yaml(line, format!("unexpected value `{v}`")));
                }
                match key.take() {
                    None => key = Some(v),
                    Some(k) => {
                        let Some((_, m)) = entries
                            .last_mut()
                            .filter(|_| in_entries && stack.len() >= 2)
                        else {
                            return Err(yaml(
                                line,
                                format!("unknown key `{k}` (expected `exceptions`)"),
                            ));
                        };
                        m.insert(k, v);
                    }
                }
            }
        }
    }
    entries
        .into_iter()
        .enumerate()
        .map(|(i, (line, mut m))| {
            let entry = |message: String| ExceptionsError::Entry {
                file: file.to_string(),
                index: i + 1,
                line: line + 1,
                message,
            };
            let mut take = |k: &str| {
                m.remove(k)
                    .filter(|v| !v.trim().is_empty())
                    .ok_or_else(|| entry(format!("`{k}` is missing")))
            };
            let fingerprint = take("fingerprint")?;
            let reason = take("reason")?;
            let approver = take("approver")?;
            let exp = take("expires")?;
            let expires = NaiveDate::parse_from_str(exp.trim(), "%Y-%m-%d")
                .map_err(|_| entry(format!("`expires: {exp}` is not a YYYY-MM-DD date")))?;
            if let Some(k) = m.keys().next() {
                return Err(entry(format!("unknown key `{k}`")));
            }
            Ok(Exception {
                fingerprint,
                reason,
                approver,
                expires,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A well-formed file parses into entries; a missing key names the entry and key.
    #[test]
    fn parses_and_reports_problems() {
        let ok = "exceptions:\n  - fingerprint: abc\n    reason: vendor fix pending\n    approver: alice\n    expires: 2026-12-31\n";
        let e = parse_exceptions("x.yml", ok).unwrap();
        assert_eq!(e[0].approver, "alice");
        assert_eq!(e[0].expires, NaiveDate::from_ymd_opt(2026, 12, 31).unwrap());
        let bad = "exceptions:\n  - fingerprint: abc\n    reason: r\n    expires: 2026-12-31\n";
        let err = parse_exceptions("x.yml", bad).unwrap_err().to_string();
        assert!(
            err.contains("`approver` is missing") && err.contains("x.yml"),
            "{err}"
        );
        let typo = "exceptions:\n  - fingerprint: abc\n    reason: r\n    approver: a\n    expires: 2026-12-31\n    expire: x\n";
        assert!(
            parse_exceptions("x.yml", typo)
                .unwrap_err()
                .to_string()
                .contains("unknown key `expire`")
        );
    }

    /// A file over the exceptions budget is refused before it is scanned, naming the budget; so
    /// are more scalars than the node budget, and aliases.
    #[test]
    fn budgets_are_enforced() {
        let big = format!(
            "exceptions: []\n#{}\n",
            "x".repeat(EXCEPTIONS.max_bytes as usize)
        );
        let err = parse_exceptions("x.yml", &big).unwrap_err().to_string();
        assert!(err.contains("the size budget is 1048576 bytes"), "{err}");
        let many = format!("exceptions:\n  - {{{}}}\n", "k: v, ".repeat(60_000));
        let err = parse_exceptions("x.yml", &many).unwrap_err().to_string();
        assert!(err.contains("(the node budget)"), "{err}");
        let alias = "exceptions:\n  - &a {fingerprint: f}\n  - *a\n";
        assert!(parse_exceptions("x.yml", alias).is_err());
    }

    proptest::proptest! {
        /// Arbitrary text never panics the exceptions parser.
        #[test]
        fn never_panics(s in "\\PC{0,200}") {
            let _ = parse_exceptions("x", &s);
        }
    }
}
