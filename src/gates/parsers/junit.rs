//! JUnit XML (pytest `--junitxml`). A failed or errored test is a critical finding (a red test
//! blocks); a skipped test is info. The counts go to metrics. A report with no test at all is an
//! error: nothing was proven.
//!
//! The finding's message is the test and the first line of the failure message; its details are
//! the whole message and the traceback (the element's text), shown as the annotation's raw
//! details. It points at the testcase's `file` / `line` (xunit1) or else the last `path.py:N:`
//! line of the traceback, pytest's own location of the failure.
//!
//! (The `quick-junit` crate's deserializer was considered: it is marked experimental, reads only
//! `testsuites`-rooted reports and rejects missing attributes other tools omit, so this small
//! reader stays; it also fails closed on truncated documents, which the proptests check.)

use super::{Metrics, ParseError, Parsed, TestCounts};
use crate::gates::finding::{Finding, Severity};
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesRef, BytesStart, Event};

const FORMAT: &str = "junit xml";

fn attr(e: &BytesStart<'_>, name: &[u8]) -> Result<Option<String>, ParseError> {
    super::xml_attr(FORMAT, e, name)
}

pub fn parse(bytes: &[u8]) -> Result<Parsed, ParseError> {
    let mut r = quick_xml::Reader::from_reader(bytes);
    let mut buf = Vec::new();
    let mut counts = TestCounts::default();
    let mut findings: Vec<Finding> = Vec::new();
    let mut root_seen = false;
    // Open elements: a report cut short (the tool killed mid-write) ends with some still open.
    let mut depth = 0usize;
    let mut current: Option<Current> = None;
    // The failure / error / skipped element being read: its finding's index and text so far.
    let mut body: Option<(usize, String, String)> = None;
    loop {
        let ev = r
            .read_event_into(&mut buf)
            .map_err(|e| ParseError::syntax(FORMAT, e))?;
        if let Some((_, _, text)) = body.as_mut() {
            match &ev {
                Event::Text(t) => {
                    text.push_str(&t.decode().map_err(|e| ParseError::syntax(FORMAT, e))?)
                }
                Event::CData(t) => {
                    text.push_str(&t.decode().map_err(|e| ParseError::syntax(FORMAT, e))?)
                }
                Event::GeneralRef(e) => text.push_str(&entity(e)?),
                _ => {}
            }
        }
        let start = match &ev {
            Event::Start(e) => {
                super::xml_open(&mut depth)?;
                Some((e.clone(), true))
            }
            Event::Empty(e) => Some((e.clone(), false)),
            Event::End(e) => {
                depth = depth.saturating_sub(1);
                if matches!(e.name().as_ref(), b"failure" | b"error" | b"skipped")
                    && let Some((i, msg, text)) = body.take()
                    && let Some(f) = findings.get_mut(i)
                {
                    *f = finish(f.clone(), &msg, &text, current.as_ref());
                }
                None
            }
            Event::Eof => break,
            Event::Text(t) if !root_seen && !t.iter().all(u8::is_ascii_whitespace) => {
                return Err(ParseError::shape(FORMAT, "text before the root element"));
            }
            _ => None,
        };
        let Some((e, has_body)) = start else {
            buf.clear();
            continue;
        };
        match e.name().as_ref() {
            b"testsuites" | b"testsuite" => root_seen = true,
            b"testcase" => {
                if !root_seen {
                    return Err(ParseError::shape(FORMAT, "testcase outside a testsuite"));
                }
                counts.tests += 1;
                let class = attr(&e, b"classname")?.unwrap_or_default();
                let name = attr(&e, b"name")?.unwrap_or_default();
                let file = attr(&e, b"file")?.filter(|f| !f.is_empty());
                let line = attr(&e, b"line")?.and_then(|l| l.trim().parse::<u32>().ok());
                current = Some(Current {
                    test: if class.is_empty() {
                        name
                    } else {
                        format!("{class}.{name}")
                    },
                    // xunit1 counts lines from 0.
                    at: file.map(|f| (f, line.map(|l| l.saturating_add(1)))),
                });
            }
            tag @ (b"failure" | b"error" | b"skipped") => {
                let test = current
                    .as_ref()
                    .map(|c| c.test.clone())
                    .ok_or_else(|| ParseError::shape(FORMAT, "result outside a testcase"))?;
                let msg = attr(&e, b"message")?.unwrap_or_default();
                let first = msg.lines().next().unwrap_or("").trim_end();
                let (rule, sev) = match tag {
                    b"failure" => {
                        counts.failures += 1;
                        ("test-failed", Severity::Critical)
                    }
                    b"error" => {
                        counts.errors += 1;
                        ("test-error", Severity::Critical)
                    }
                    _ => {
                        counts.skipped += 1;
                        ("test-skipped", Severity::Info)
                    }
                };
                let f = Finding::new("pytest", rule, sev, format!("{test}: {first}"));
                if has_body {
                    body = Some((findings.len(), msg.clone(), String::new()));
                    findings.push(f);
                } else {
                    findings.push(finish(f, &msg, "", current.as_ref()));
                }
            }
            _ if !root_seen => {
                return Err(ParseError::shape(
                    FORMAT,
                    "root element is not testsuites or testsuite",
                ));
            }
            _ => {}
        }
        buf.clear();
    }
    if !root_seen {
        return Err(ParseError::shape(FORMAT, "no testsuite element"));
    }
    if depth != 0 {
        return Err(ParseError::syntax(
            FORMAT,
            "the document ends inside an element (truncated)",
        ));
    }
    if counts.tests == 0 {
        return Err(ParseError::incomplete(
            FORMAT,
            "the report holds no test: nothing ran",
        ));
    }
    Ok(Parsed {
        findings,
        metrics: Metrics {
            tests: Some(counts),
            ..Metrics::default()
        },
    })
}

/// The testcase being read.
struct Current {
    test: String,
    /// `file` / `line` attributes (xunit1), lines from 1.
    at: Option<(String, Option<u32>)>,
}

/// `&lt;`, `&#10;`, … inside an element's text.
fn entity(e: &BytesRef<'_>) -> Result<String, ParseError> {
    if let Some(c) = e
        .resolve_char_ref()
        .map_err(|x| ParseError::syntax(FORMAT, x))?
    {
        return Ok(c.to_string());
    }
    let name = e.decode().map_err(|x| ParseError::syntax(FORMAT, x))?;
    resolve_predefined_entity(&name)
        .map(str::to_string)
        .ok_or_else(|| ParseError::syntax(FORMAT, format!("unknown entity `&{name};`")))
}

/// Adds the full message and traceback as details and the location of the failure.
fn finish(f: Finding, message: &str, traceback: &str, test: Option<&Current>) -> Finding {
    let traceback = traceback.trim_matches('\n');
    let details = match (message.trim().is_empty(), traceback.trim().is_empty()) {
        (false, false) => format!("{message}\n\n{traceback}"),
        (false, true) => message.to_string(),
        (true, _) => traceback.to_string(),
    };
    let at = test
        .and_then(|c| c.at.clone())
        .or_else(|| traceback_location(traceback).map(|(p, l)| (p, Some(l))));
    let f = f.detailed(details);
    match at {
        Some((path, line)) => f.at(path, line, None),
        None => f,
    }
}

/// The last `path.py:N: …` line of a pytest traceback: where the test failed.
pub fn traceback_location(text: &str) -> Option<(String, u32)> {
    text.lines().rev().find_map(|l| {
        let (path, rest) = l.trim().split_once(".py:")?;
        let (line, _) = rest.split_once(':')?;
        let line: u32 = line.trim().parse().ok()?;
        (!path.is_empty() && !path.contains(' ')).then(|| (format!("{path}.py"), line))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gates::parsers::testutil::fixture;

    /// Real pytest JUnit of the planted project: 6 tests, 1 failure, 1 error, 1 skipped.
    #[test]
    fn real_findings() {
        let p = parse(&fixture("pytest/findings.junit.xml")).unwrap();
        assert_eq!(
            p.metrics.tests,
            Some(TestCounts {
                tests: 6,
                failures: 1,
                errors: 1,
                skipped: 1
            })
        );
        insta::assert_json_snapshot!(p.findings);
    }

    /// A clean run: 9 tests, no finding.
    #[test]
    fn real_clean() {
        let p = parse(&fixture("pytest/clean.junit.xml")).unwrap();
        assert!(p.findings.is_empty());
        assert_eq!(p.metrics.tests.map(|t| t.tests), Some(9));
    }

    /// No test selected (exit 5, valid empty suite) fails closed; a collection error is a finding.
    #[test]
    fn real_empty_and_collection_error() {
        assert!(matches!(
            parse(&fixture("pytest/no-tests-selected.junit.xml")),
            Err(ParseError::Incomplete { .. })
        ));
        let p = parse(&fixture("pytest/broken-collection.junit.xml")).unwrap();
        assert_eq!(p.findings.len(), 1);
        assert_eq!(p.findings[0].severity, Severity::Critical);
    }
}
