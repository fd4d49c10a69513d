//! MyPy: `--output json` (one object per line) and the plain text format. Errors are high;
//! notes belong to the error above them (they are its hint).

use super::{ParseError, pos, text};
use crate::gates::finding::{Finding, Severity};
use serde::Deserialize;

const HELP: &str = "https://mypy.readthedocs.io/en/stable/error_code_list.html";

fn severity(_code: &str) -> Severity {
    // A type error is a bug the checker proved: high (needs approval by default); the syntax
    // error that stops checking is high as well, and the gate's exit code fails it anyway.
    Severity::High
}

#[derive(Deserialize)]
struct Line {
    file: String,
    line: Option<i64>,
    column: Option<i64>,
    end_line: Option<i64>,
    end_column: Option<i64>,
    message: String,
    hint: Option<String>,
    code: Option<String>,
    severity: String,
}

fn p(n: Option<i64>) -> Option<u32> {
    pos(n.and_then(|v| u64::try_from(v).ok())).filter(|v| *v > 0)
}

pub fn parse_json(bytes: &[u8]) -> Result<Vec<Finding>, ParseError> {
    const FORMAT: &str = "mypy json";
    let s = text(FORMAT, bytes)?;
    let mut out: Vec<Finding> = Vec::new();
    for (i, line) in s.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let l: Line = serde_json::from_str(line)
            .map_err(|e| ParseError::syntax(FORMAT, format!("line {}: {e}", i + 1)))?;
        let code = l.code.unwrap_or_else(|| "misc".to_string());
        match l.severity.as_str() {
            "error" => {
                let mut msg = l.message;
                if let Some(h) = l.hint.filter(|h| !h.is_empty()) {
                    msg = format!("{msg} ({})", h.replace('\n', " "));
                }
                out.push(
                    Finding::new("mypy", code.clone(), severity(&code), msg)
                        .at(&l.file, p(l.line), p(l.column))
                        .ending(p(l.end_line), p(l.end_column))
                        .help(HELP),
                );
            }
            "note" => {}
            other => {
                return Err(ParseError::shape(
                    FORMAT,
                    format!("line {}: unknown severity `{other}`", i + 1),
                ));
            }
        }
    }
    Ok(out)
}

pub fn parse_text(bytes: &[u8]) -> Result<Vec<Finding>, ParseError> {
    const FORMAT: &str = "mypy text";
    let s = text(FORMAT, bytes)?;
    let mut out: Vec<Finding> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let flush = |out: &mut Vec<Finding>, notes: &mut Vec<String>| {
        if let Some(last) = out.last_mut().filter(|_| !notes.is_empty()) {
            last.message = format!("{} ({})", last.message, notes.join(" "));
            last.refresh_fingerprint();
        }
        notes.clear();
    };
    for (i, line) in s.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with("Found ") || t.starts_with("Success:") {
            continue;
        }
        let bad = || {
            ParseError::shape(
                FORMAT,
                format!("line {} is not `path:line: severity: message`", i + 1),
            )
        };
        let (loc, rest) = if let Some(ix) = line.find(": error: ") {
            (&line[..ix], ("error", &line[ix + 9..]))
        } else if let Some(ix) = line.find(": note: ") {
            (&line[..ix], ("note", &line[ix + 8..]))
        } else {
            return Err(bad());
        };
        let mut parts = loc.split(':');
        let path = parts.next().filter(|p| !p.is_empty()).ok_or_else(bad)?;
        let ln: Option<u32> = match parts.next() {
            Some(n) => Some(n.parse().map_err(|_| bad())?),
            None => None,
        };
        let col: Option<u32> = match parts.next() {
            Some(n) => Some(n.parse().map_err(|_| bad())?),
            None => None,
        };
        match rest {
            ("error", msg) => {
                flush(&mut out, &mut notes);
                let (msg, code) = match msg.rfind("  [") {
                    Some(ix) if msg.ends_with(']') => (&msg[..ix], &msg[ix + 3..msg.len() - 1]),
                    _ => (msg, "misc"),
                };
                out.push(
                    Finding::new("mypy", code, severity(code), msg)
                        .at(path, ln, col)
                        .help(HELP),
                );
            }
            (_, msg) => {
                if out.is_empty() {
                    continue;
                }
                notes.push(msg.to_string());
            }
        }
    }
    flush(&mut out, &mut notes);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gates::parsers::testutil::fixture;

    /// Real JSON lines of the planted project: 7 errors in 2 files.
    #[test]
    fn real_json_findings() {
        let f = parse_json(&fixture("mypy/findings.jsonl")).unwrap();
        assert_eq!(f.len(), 7);
        insta::assert_json_snapshot!(f);
    }

    /// Plain text of the same project: the same 7 errors at the same places (notes folded in).
    #[test]
    fn real_text_findings() {
        let t = parse_text(&fixture("mypy/findings.txt")).unwrap();
        let j = parse_json(&fixture("mypy/findings.jsonl")).unwrap();
        let key = |f: &Finding| (f.path.clone(), f.line, f.rule.clone());
        assert_eq!(
            t.iter().map(key).collect::<Vec<_>>(),
            j.iter().map(key).collect::<Vec<_>>()
        );
    }

    /// A clean JSON run is a single newline; a clean text run is the success line.
    #[test]
    fn real_clean() {
        assert!(parse_json(&fixture("mypy/clean.jsonl")).unwrap().is_empty());
        assert!(parse_text(&fixture("mypy/clean.txt")).unwrap().is_empty());
    }

    /// The blocking syntax error is one high finding in both formats.
    #[test]
    fn real_broken_syntax() {
        let j = parse_json(&fixture("mypy/broken-syntax.jsonl")).unwrap();
        let t = parse_text(&fixture("mypy/broken-syntax.txt")).unwrap();
        assert_eq!((j.len(), j[0].severity), (1, Severity::High));
        assert_eq!((t.len(), t[0].severity), (1, Severity::High));
    }
}
