//! Cobertura XML (coverage.py `xml`): the root's `line-rate` is the coverage metric. No findings:
//! the verdict compares the metric with the minimum.

use super::{Metrics, ParseError, Parsed};
use quick_xml::events::Event;

const FORMAT: &str = "cobertura xml";

pub fn parse(bytes: &[u8]) -> Result<Parsed, ParseError> {
    let mut r = quick_xml::Reader::from_reader(bytes);
    let mut buf = Vec::new();
    loop {
        match r
            .read_event_into(&mut buf)
            .map_err(|e| ParseError::syntax(FORMAT, e))?
        {
            Event::Start(e) | Event::Empty(e) => {
                if e.name().as_ref() != b"coverage" {
                    return Err(ParseError::shape(FORMAT, "root element is not coverage"));
                }
                for a in e.attributes() {
                    let a = a.map_err(|x| ParseError::syntax(FORMAT, x))?;
                    if a.key.as_ref() == b"line-rate" {
                        let v = a
                            .unescape_value()
                            .map_err(|x| ParseError::syntax(FORMAT, x))?;
                        let rate: f64 = v.trim().parse().map_err(|_| {
                            ParseError::shape(FORMAT, format!("line-rate `{v}` is not a number"))
                        })?;
                        if !(0.0..=1.0).contains(&rate) {
                            return Err(ParseError::shape(
                                FORMAT,
                                format!("line-rate {rate} is outside 0..1"),
                            ));
                        }
                        return Ok(Parsed {
                            findings: Vec::new(),
                            metrics: Metrics {
                                coverage: Some(rate),
                                ..Metrics::default()
                            },
                        });
                    }
                }
                return Err(ParseError::shape(
                    FORMAT,
                    "coverage element has no line-rate",
                ));
            }
            Event::Eof => return Err(ParseError::shape(FORMAT, "no coverage element")),
            Event::Text(t) if !t.iter().all(u8::is_ascii_whitespace) => {
                return Err(ParseError::shape(FORMAT, "text before the root element"));
            }
            _ => {}
        }
        buf.clear();
    }
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
