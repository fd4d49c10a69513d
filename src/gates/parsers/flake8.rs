//! Flake8: the default text format (`path:line:col: CODE message`) and flake8-json's
//! `{path: [violation…]}`. E999 (syntax error) and E902 (I/O error) are high: the file was not
//! checked at all. Pyflakes' F codes are medium; style (E/W/C) is low.

use super::{ParseError, pos, text};
use crate::gates::finding::{Finding, Severity};
use serde::Deserialize;

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

const JSON: &str = "flake8 json";

/// Parses flake8-json output held in memory.
pub fn parse_json(bytes: &[u8]) -> Result<Vec<Finding>, ParseError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let out = parse_json_with(&mut de)?;
    de.end().map_err(|e| ParseError::syntax(JSON, e))?;
    Ok(out)
}

/// Parses flake8-json output from a reader, turning each violation into a finding as it is read.
pub fn parse_json_reader<R: std::io::Read>(r: R) -> Result<Vec<Finding>, ParseError> {
    let mut de = serde_json::Deserializer::from_reader(r);
    let out = parse_json_with(&mut de)?;
    de.end().map_err(|e| ParseError::syntax(JSON, e))?;
    Ok(out)
}

fn parse_json_with<'de, D>(de: D) -> Result<Vec<Finding>, ParseError>
where
    D: serde::Deserializer<'de, Error = serde_json::Error>,
{
    let mut out = Vec::new();
    serde::de::DeserializeSeed::deserialize(Files(&mut out), de)
        .map_err(|e| ParseError::syntax(JSON, e))?;
    Ok(out)
}

struct Files<'a>(&'a mut Vec<Finding>);

impl<'de> serde::de::DeserializeSeed<'de> for Files<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Files<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object of file paths to violation lists")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<(), A::Error> {
        while m.next_key::<serde::de::IgnoredAny>()?.is_some() {
            m.next_value_seed(Violations(&mut *self.0))?;
        }
        Ok(())
    }
}

struct Violations<'a>(&'a mut Vec<Finding>);

impl<'de> serde::de::DeserializeSeed<'de> for Violations<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Violations<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a list of violations")
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut s: A) -> Result<(), A::Error> {
        while let Some(v) = s.next_element::<Violation>()? {
            let line = pos(v.line_number).filter(|l| *l > 0);
            self.0.push(finding(
                &v.code,
                &v.filename,
                line,
                pos(v.column_number),
                &v.text,
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gates::parsers::testutil::fixture;
    use std::collections::BTreeMap;

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

    /// The streaming reader gives the same findings as the in-memory parser.
    #[test]
    fn reader_matches_slice() {
        let b = fixture("flake8/findings.json");
        assert_eq!(parse_json_reader(&b[..]).unwrap(), parse_json(&b).unwrap());
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
