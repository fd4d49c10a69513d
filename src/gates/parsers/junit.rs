//! JUnit XML (pytest `--junitxml`). A failed or errored test is a critical finding (a red test
//! blocks); a skipped test is info. The counts go to metrics. A report with no test at all is an
//! error: nothing was proven.

use super::{Metrics, ParseError, Parsed, TestCounts};
use crate::gates::finding::{Finding, Severity};
use quick_xml::events::{BytesStart, Event};

const FORMAT: &str = "junit xml";

fn attr(e: &BytesStart<'_>, name: &[u8]) -> Result<Option<String>, ParseError> {
    for a in e.attributes() {
        let a = a.map_err(|x| ParseError::syntax(FORMAT, x))?;
        if a.key.as_ref() == name {
            let v = a
                .unescape_value()
                .map_err(|x| ParseError::syntax(FORMAT, x))?;
            return Ok(Some(v.into_owned()));
        }
    }
    Ok(None)
}

pub fn parse(bytes: &[u8]) -> Result<Parsed, ParseError> {
    let mut r = quick_xml::Reader::from_reader(bytes);
    let mut buf = Vec::new();
    let mut counts = TestCounts::default();
    let mut findings = Vec::new();
    let mut root_seen = false;
    // Open elements: a report cut short (the tool killed mid-write) ends with some still open.
    let mut depth = 0usize;
    let mut current: Option<String> = None;
    loop {
        let ev = r
            .read_event_into(&mut buf)
            .map_err(|e| ParseError::syntax(FORMAT, e))?;
        let start = match &ev {
            Event::Start(e) => {
                super::xml_open(&mut depth)?;
                Some(e.clone())
            }
            Event::Empty(e) => Some(e.clone()),
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                None
            }
            Event::Eof => break,
            Event::Text(t) if !root_seen && !t.iter().all(u8::is_ascii_whitespace) => {
                return Err(ParseError::shape(FORMAT, "text before the root element"));
            }
            _ => None,
        };
        let Some(e) = start else {
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
                current = Some(if class.is_empty() {
                    name
                } else {
                    format!("{class}.{name}")
                });
            }
            tag @ (b"failure" | b"error" | b"skipped") => {
                let test = current
                    .clone()
                    .ok_or_else(|| ParseError::shape(FORMAT, "result outside a testcase"))?;
                let msg = attr(&e, b"message")?.unwrap_or_default();
                let first: String = msg.lines().next().unwrap_or("").chars().take(300).collect();
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
                findings.push(Finding::new(
                    "pytest",
                    rule,
                    sev,
                    format!("{test}: {first}"),
                ));
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
