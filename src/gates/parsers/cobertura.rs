//! Cobertura XML (coverage.py `xml`): the root's `line-rate` is the coverage metric. No findings:
//! the verdict compares the metric with the minimum.
//!
//! Reports of several matrix jobs merge by their lines, not their rates: a line counts as covered
//! when any job covered it ([`Lines`], [`merged_rate`]).

use super::{Metrics, ParseError, Parsed};
use quick_xml::events::{BytesStart, Event};
use std::collections::BTreeMap;

const FORMAT: &str = "cobertura xml";

/// Per file (`class filename`, `/`-separated), per line number: whether it was hit.
pub type Lines = BTreeMap<String, BTreeMap<u32, bool>>;

pub fn parse(bytes: &[u8]) -> Result<Parsed, ParseError> {
    let (rate, _) = read(bytes)?;
    Ok(Parsed {
        findings: Vec::new(),
        metrics: Metrics {
            coverage: Some(rate),
            ..Metrics::default()
        },
    })
}

/// The report's lines, for merging with other jobs' reports.
pub fn lines(bytes: &[u8]) -> Result<Lines, ParseError> {
    read(bytes).map(|(_, l)| l)
}

/// Line coverage of the union: lines covered in any report over lines known to any report.
/// `None` when no report lists a line.
pub fn merged_rate<'a>(reports: impl IntoIterator<Item = &'a Lines>) -> Option<f64> {
    let mut all: BTreeMap<(&str, u32), bool> = BTreeMap::new();
    for r in reports {
        for (file, lines) in r {
            for (n, hit) in lines {
                *all.entry((file.as_str(), *n)).or_default() |= *hit;
            }
        }
    }
    let covered = all.values().filter(|h| **h).count();
    (!all.is_empty()).then(|| covered as f64 / all.len() as f64)
}

fn attr(e: &BytesStart<'_>, name: &[u8]) -> Result<Option<String>, ParseError> {
    super::xml_attr(FORMAT, e, name)
}

fn read(bytes: &[u8]) -> Result<(f64, Lines), ParseError> {
    let mut r = quick_xml::Reader::from_reader(bytes);
    let mut buf = Vec::new();
    let mut rate: Option<f64> = None;
    let mut root_seen = false;
    let mut lines = Lines::new();
    let mut file: Option<String> = None;
    // Read to the end: a report cut short (open elements at the end) is not trusted.
    let mut depth = 0usize;
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
        if let Some(e) = start.as_ref().filter(|_| root_seen) {
            match e.name().as_ref() {
                b"class" => {
                    file = attr(e, b"filename")?.map(|f| f.replace('\\', "/"));
                }
                b"line" => {
                    let number = attr(e, b"number")?.and_then(|n| n.trim().parse::<u32>().ok());
                    let hits = attr(e, b"hits")?.and_then(|n| n.trim().parse::<u64>().ok());
                    match (&file, number, hits) {
                        (Some(f), Some(n), Some(h)) => {
                            *lines.entry(f.clone()).or_default().entry(n).or_default() |= h > 0;
                        }
                        (Some(_), _, _) => {
                            return Err(ParseError::shape(
                                FORMAT,
                                "a line without a numeric number and hits",
                            ));
                        }
                        (None, _, _) => {}
                    }
                }
                _ => {}
            }
        }
        if let Some(e) = start.filter(|_| !root_seen) {
            if e.name().as_ref() != b"coverage" {
                return Err(ParseError::shape(FORMAT, "root element is not coverage"));
            }
            root_seen = true;
            for a in e.attributes() {
                let a = a.map_err(|x| ParseError::syntax(FORMAT, x))?;
                if a.key.as_ref() == b"line-rate" {
                    let v = a
                        .unescape_value()
                        .map_err(|x| ParseError::syntax(FORMAT, x))?;
                    let value: f64 = v.trim().parse().map_err(|_| {
                        ParseError::shape(FORMAT, format!("line-rate `{v}` is not a number"))
                    })?;
                    if !(0.0..=1.0).contains(&value) {
                        return Err(ParseError::shape(
                            FORMAT,
                            format!("line-rate {value} is outside 0..1"),
                        ));
                    }
                    rate = Some(value);
                }
            }
        }
        buf.clear();
    }
    if !root_seen {
        return Err(ParseError::shape(FORMAT, "no coverage element"));
    }
    if depth != 0 {
        return Err(ParseError::syntax(
            FORMAT,
            "the document ends inside an element (truncated)",
        ));
    }
    let rate =
        rate.ok_or_else(|| ParseError::shape(FORMAT, "coverage element has no line-rate"))?;
    Ok((rate, lines))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gates::parsers::testutil::fixture;

    /// Real coverage XML: 27.64 % for the planted project, 81.91 % for the clean one.
    #[test]
    fn real_line_rate() {
        assert_eq!(
            parse(&fixture("coverage/findings.cobertura.xml"))
                .unwrap()
                .metrics
                .coverage,
            Some(0.2764)
        );
        assert_eq!(
            parse(&fixture("coverage/clean.cobertura.xml"))
                .unwrap()
                .metrics
                .coverage,
            Some(0.8191)
        );
    }

    /// Two jobs' reports merge by the union of covered lines: a file half covered on one OS and
    /// the other half on the other is fully covered, not 50 %.
    #[test]
    fn merge_is_the_union_of_covered_lines() {
        let doc = |hits: [u32; 4]| {
            let lines: String = hits
                .iter()
                .enumerate()
                .map(|(i, h)| format!(r#"<line number="{}" hits="{h}"/>"#, i + 1))
                .collect();
            format!(
                r#"<coverage line-rate="0.5"><packages><package><classes><class filename="app\x.py"><lines>{lines}</lines></class></classes></package></packages></coverage>"#
            )
        };
        let a = lines(doc([1, 1, 0, 0]).as_bytes()).unwrap();
        let b = lines(doc([0, 0, 3, 0]).as_bytes()).unwrap();
        assert_eq!(a["app/x.py"].len(), 4);
        assert_eq!(merged_rate([&a, &b]), Some(0.75));
        assert_eq!(merged_rate([&a]), Some(0.5));
        let real = lines(&fixture("coverage/findings.cobertura.xml")).unwrap();
        let rate = merged_rate([&real, &real]).unwrap();
        assert!((rate - 0.2764).abs() < 0.0001, "{rate}");
    }

    /// "No data to report" (coverage's own stdout) is not a report.
    #[test]
    fn real_no_data_is_error() {
        assert!(parse(&fixture("coverage/broken-no-data.stdout.txt")).is_err());
    }
}
