//! Cobertura XML (coverage.py `xml`): the root's `line-rate` is the coverage metric. No findings:
//! the verdict compares the metric with the minimum.

use super::{Metrics, ParseError, Parsed};
use quick_xml::events::Event;

const FORMAT: &str = "cobertura xml";

pub fn parse(bytes: &[u8]) -> Result<Parsed, ParseError> {
    let mut r = quick_xml::Reader::from_reader(bytes);
    let mut buf = Vec::new();
    let mut rate: Option<f64> = None;
    let mut root_seen = false;
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
    Ok(Parsed {
        findings: Vec::new(),
        metrics: Metrics {
            coverage: Some(rate),
            ..Metrics::default()
        },
    })
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

    /// "No data to report" (coverage's own stdout) is not a report.
    #[test]
    fn real_no_data_is_error() {
        assert!(parse(&fixture("coverage/broken-no-data.stdout.txt")).is_err());
    }
}
