//! Flake8: the default text format (`path:line:col: CODE message`) and flake8-json's
//! `{path: [violation…]}`. E999 (syntax error) and E902 (I/O error) are high: the file was not
//! checked at all. Pyflakes' F codes are medium; style (E/W/C) is low.

use super::{ParseError, json, pos, text};
use crate::gates::finding::{Finding, Severity};
use serde::Deserialize;
use std::collections::BTreeMap;

fn severity(code: &str) -> Severity {
    if code == "E999" || code == "E902" || code.starts_with("E9") {
        Severity::High
    } else if code.starts_with('F') {
        Severity::Medium
    } else {
        Severity::Low
    }
}

fn finding(code: &str, path: &str, line: Option<u32>, col: Option<u32>, msg: &str) -> Finding {
    let help = match code.chars().next() {
        Some('F') => "https://flake8.pycqa.org/en/latest/user/error-codes.html",
        Some('C') => "https://github.com/PyCQA/mccabe",
        _ => "https://pycodestyle.pycqa.org/en/latest/intro.html#error-codes",
    };
    Finding::new("flake8", code, severity(code), msg)
        .at(path, line, col)
        .help(help)
}

pub fn parse_text(bytes: &[u8]) -> Result<Vec<Finding>, ParseError> {
    const FORMAT: &str = "flake8 text";
    let s = text(FORMAT, bytes)?;
    let mut out = Vec::new();
    for (i, line) in s.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = || {
            ParseError::shape(
                FORMAT,
                format!("line {} is not `path:line:col: CODE message`", i + 1),
            )
        };
        // Split from the right of `path:line:col:` so paths containing ':' survive.
        let (head, rest) = line.split_once(": ").ok_or_else(bad)?;
        let mut parts = head.rsplitn(3, ':');
        let col: u32 = parts.next().and_then(|c| c.parse().ok()).ok_or_else(bad)?;
        let ln: u32 = parts.next().and_then(|c| c.parse().ok()).ok_or_else(bad)?;
        let path = parts.next().filter(|p| !p.is_empty()).ok_or_else(bad)?;
        let (code, msg) = rest.split_once(' ').ok_or_else(bad)?;
        if code.is_empty() || !code.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(bad());
        }
        out.push(finding(code, path, Some(ln), Some(col), msg));
    }
    Ok(out)
}

#[derive(Deserialize)]
struct Violation {
    code: String,
    filename: String,
    line_number: Option<u64>,
    column_number: Option<u64>,
    text: String,
}

pub fn parse_json(bytes: &[u8]) -> Result<Vec<Finding>, ParseError> {
    let files: BTreeMap<String, Vec<Violation>> = json("flake8 json", bytes)?;
    Ok(files
        .into_values()
        .flatten()
        .map(|v| {
            let line = pos(v.line_number).filter(|l| *l > 0);
            finding(&v.code, &v.filename, line, pos(v.column_number), &v.text)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gates::parsers::testutil::fixture;

    fn counts(f: &[Finding]) -> BTreeMap<char, usize> {
        let mut m = BTreeMap::new();
        for x in f {
            *m.entry(x.rule.chars().next().unwrap()).or_default() += 1;
        }
        m
    }

    /// Real flake8 JSON of the planted project: 17 violations (C 1, E 12, F 3, W 1).
    #[test]
    fn real_json_findings() {
        let f = parse_json(&fixture("flake8/findings.json")).unwrap();
        assert_eq!(
            counts(&f),
            BTreeMap::from([('C', 1), ('E', 12), ('F', 3), ('W', 1)])
        );
        insta::assert_json_snapshot!(f);
    }

    /// The text and JSON formats of the same run give the same findings.
    #[test]
    fn real_text_matches_json() {
        let mut t = parse_text(&fixture("flake8/findings.txt")).unwrap();
        let mut j = parse_json(&fixture("flake8/findings.json")).unwrap();
        t.sort_by(|a, b| (&a.path, a.line, a.column).cmp(&(&b.path, b.line, b.column)));
        j.sort_by(|a, b| (&a.path, a.line, a.column).cmp(&(&b.path, b.line, b.column)));
        assert_eq!(t, j);
    }

    /// Clean runs: empty text, JSON with empty lists.
    #[test]
    fn real_clean() {
        assert!(parse_text(&fixture("flake8/clean.txt")).unwrap().is_empty());
        assert!(
            parse_json(&fixture("flake8/clean.json"))
                .unwrap()
                .is_empty()
        );
    }

    /// A syntax error is E999 and high; the crashed-config run (empty stdout) is unparseable JSON.
    #[test]
    fn real_broken_shapes() {
        let f = parse_json(&fixture("flake8/broken-syntax.json")).unwrap();
        assert_eq!(
            (f.len(), f[0].rule.as_str(), f[0].severity),
            (1, "E999", Severity::High)
        );
        assert!(parse_json(&fixture("flake8/broken-config.json")).is_err());
        let m = parse_json(&fixture("flake8/missing-path.json")).unwrap();
        assert_eq!((m[0].rule.as_str(), m[0].line), ("E902", None));
    }
}
