//! Bandit JSON (`-f json`). Severity is Bandit's own (HIGH/MEDIUM/LOW). A non-empty `errors[]`
//! means files were skipped although Bandit exits 0: that is an incomplete scan, not a pass.

use super::{ParseError, json, pos};
use crate::gates::finding::{Finding, Severity};
use serde::Deserialize;

const FORMAT: &str = "bandit json";

#[derive(Deserialize)]
struct Report {
    errors: Vec<ScanError>,
    results: Vec<Issue>,
}

#[derive(Deserialize)]
struct ScanError {
    filename: String,
    reason: String,
}

#[derive(Deserialize)]
struct Issue {
    filename: String,
    issue_severity: String,
    issue_text: String,
    line_number: Option<u64>,
    col_offset: Option<u64>,
    line_range: Option<Vec<u64>>,
    end_col_offset: Option<u64>,
    more_info: Option<String>,
    test_id: String,
    test_name: Option<String>,
}

/// Bandit quotes the literal in its hard-coded password findings (B105–B107); the literal is a
/// secret and must never reach a report, so it is masked.
pub fn redact(message: &str) -> String {
    const MARK: &str = "Possible hardcoded password: ";
    match message.find(MARK) {
        Some(i) => {
            let head = &message[..i + MARK.len()];
            let rest = &message[i + MARK.len()..];
            // Keep anything Bandit appended after the quoted literal (e.g. our ` [test_name]`).
            let tail = rest
                .strip_prefix('\'')
                .and_then(|r| r.rfind('\'').map(|j| &r[j + 1..]))
                .unwrap_or("");
            format!("{head}'***'{tail}")
        }
        None => message.to_string(),
    }
}

pub fn parse(bytes: &[u8]) -> Result<Vec<Finding>, ParseError> {
    let r: Report = json(FORMAT, bytes)?;
    if !r.errors.is_empty() {
        let list: Vec<String> = r
            .errors
            .iter()
            .map(|e| format!("{} ({})", e.filename, e.reason))
            .collect();
        return Err(ParseError::incomplete(
            FORMAT,
            format!("bandit could not scan {}", list.join(", ")),
        ));
    }
    r.results
        .into_iter()
        .map(|i| {
            let sev = Severity::parse(&i.issue_severity).ok_or_else(|| {
                ParseError::shape(
                    FORMAT,
                    format!("unknown issue_severity `{}`", i.issue_severity),
                )
            })?;
            let name = i.test_name.map(|n| format!(" [{n}]")).unwrap_or_default();
            let end_line = i.line_range.as_ref().and_then(|r| r.iter().max().copied());
            let mut f = Finding::new(
                "bandit",
                i.test_id,
                sev,
                format!("{}{name}", redact(&i.issue_text)),
            )
            .at(
                &i.filename,
                pos(i.line_number),
                pos(i.col_offset.map(|c| c + 1)),
            )
            .ending(pos(end_line), pos(i.end_col_offset.map(|c| c + 1)));
            if let Some(u) = i.more_info {
                f = f.help(u);
            }
            Ok(f)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gates::parsers::testutil::fixture;

    /// Real Bandit JSON of the planted project: 20 issues, HIGH 3, MEDIUM 6, LOW 11.
    #[test]
    fn real_findings() {
        let f = parse(&fixture("bandit/findings.json")).unwrap();
        let n = |s| f.iter().filter(|x| x.severity == s).count();
        assert_eq!(
            (n(Severity::High), n(Severity::Medium), n(Severity::Low)),
            (3, 6, 11)
        );
        insta::assert_json_snapshot!(f);
    }

    /// Hard-coded password literals never reach a finding.
    #[test]
    fn passwords_are_masked() {
        let f = parse(&fixture("bandit/findings.json")).unwrap();
        let b105: Vec<_> = f.iter().filter(|x| x.rule == "B105").collect();
        assert_eq!(b105.len(), 2);
        for x in b105 {
            assert_eq!(
                x.message,
                "Possible hardcoded password: '***' [hardcoded_password_string]"
            );
        }
        assert!(!f.iter().any(|x| x.message.contains("Sup3r")));
    }

    /// A clean run has no findings.
    #[test]
    fn real_clean() {
        assert!(parse(&fixture("bandit/clean.json")).unwrap().is_empty());
    }

    /// Exit 0 with a skipped file in `errors[]` is an incomplete scan (fail closed).
    #[test]
    fn real_broken_syntax_is_incomplete() {
        let e = parse(&fixture("bandit/broken-syntax.json")).unwrap_err();
        assert!(matches!(e, ParseError::Incomplete { .. }), "{e}");
        assert!(e.to_string().contains("legacy.py"));
    }
}
