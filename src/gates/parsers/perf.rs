//! fm-deploy's own performance result format, for suites that are not k6. One JSON object:
//!
//! ```json
//! {"format": "fm-deploy-perf/1",
//!  "page_load_ms": 840.5, "api_ms": 120.0, "certificate_generation_ms": 15300, "error_rate": 0.0004}
//! ```
//!
//! Every metric is optional but at least one must be present; times are milliseconds (the value
//! the suite compares, e.g. its p95), `error_rate` is a fraction (0.001 = 0.1 %). Unknown keys are
//! errors, so a typo cannot silently drop a measurement.

use super::{Metrics, ParseError, Parsed, PerfMetrics, json};
use serde::Deserialize;

const FORMAT: &str = "fm-deploy perf json";
pub const FORMAT_TAG: &str = "fm-deploy-perf/1";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    format: String,
    page_load_ms: Option<f64>,
    api_ms: Option<f64>,
    certificate_generation_ms: Option<f64>,
    error_rate: Option<f64>,
}

pub fn parse(bytes: &[u8]) -> Result<Parsed, ParseError> {
    let r: Raw = json(FORMAT, bytes)?;
    if r.format != FORMAT_TAG {
        return Err(ParseError::shape(
            FORMAT,
            format!("format is `{}`, expected `{FORMAT_TAG}`", r.format),
        ));
    }
    let perf = PerfMetrics {
        page_load_ms: r.page_load_ms,
        api_ms: r.api_ms,
        certificate_generation_ms: r.certificate_generation_ms,
        error_rate: r.error_rate,
    };
    let vals: Vec<f64> = [
        perf.page_load_ms,
        perf.api_ms,
        perf.certificate_generation_ms,
        perf.error_rate,
    ]
    .into_iter()
    .flatten()
    .collect();
    if vals.is_empty() {
        return Err(ParseError::incomplete(FORMAT, "no metric was reported"));
    }
    if vals.iter().any(|v| !v.is_finite() || *v < 0.0) || perf.error_rate.is_some_and(|e| e > 1.0) {
        return Err(ParseError::shape(
            FORMAT,
            "a metric is negative, not finite, or an error rate above 1",
        ));
    }
    Ok(Parsed {
        findings: Vec::new(),
        metrics: Metrics {
            perf: Some(perf),
            ..Metrics::default()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gates::parsers::testutil::fixture;

    /// Real output of examples/perf/perf_probe.py against the sample service.
    #[test]
    fn real_probe_output() {
        let p = parse(&fixture("perf/certsolver.json"))
            .unwrap()
            .metrics
            .perf
            .unwrap();
        assert!(p.api_ms.is_some() && p.certificate_generation_ms.is_some());
        assert_eq!((p.page_load_ms, p.error_rate), (None, Some(0.0)));
    }

    /// A typo'd key or a wrong format tag is an error, never a silently missing metric.
    #[test]
    fn unknown_keys_and_tags_fail() {
        assert!(parse(br#"{"format": "fm-deploy-perf/1", "api_msec": 3}"#).is_err());
        assert!(parse(br#"{"format": "other", "api_ms": 3}"#).is_err());
        assert!(parse(br#"{"format": "fm-deploy-perf/1"}"#).is_err());
    }
}
