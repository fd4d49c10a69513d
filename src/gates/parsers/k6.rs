//! k6 `--summary-export` JSON (the legacy summary format: `{"metrics": {name: {...}}}`).
//! Mapped to the budgets: `api` = `http_req_duration` p(95) in ms; `error_rate` =
//! `http_req_failed` rate (`value`); `page_load` = `browser_web_vital_lcp` p(95), or a custom
//! trend named `page_load`; `certificate_generation` = a custom trend of that name, p(95).
//! A summary with none of these metrics is an error (nothing measured).

use super::{Metrics, ParseError, Parsed, PerfMetrics, json};
use serde::Deserialize;
use std::collections::BTreeMap;

const FORMAT: &str = "k6 summary json";

#[derive(Deserialize)]
struct Summary {
    metrics: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
}

fn p95(m: &BTreeMap<String, BTreeMap<String, serde_json::Value>>, names: &[&str]) -> Option<f64> {
    names
        .iter()
        .find_map(|n| m.get(*n))
        .and_then(|v| v.get("p(95)").and_then(serde_json::Value::as_f64))
}

pub fn parse(bytes: &[u8]) -> Result<Parsed, ParseError> {
    let s: Summary = json(FORMAT, bytes)?;
    let m = &s.metrics;
    let error_rate = m
        .get("http_req_failed")
        .and_then(|v| v.get("value").or_else(|| v.get("rate")))
        .and_then(serde_json::Value::as_f64);
    let perf = PerfMetrics {
        page_load_ms: p95(m, &["page_load", "browser_web_vital_lcp"]),
        api_ms: p95(m, &["http_req_duration"]),
        certificate_generation_ms: p95(m, &["certificate_generation"]),
        error_rate,
    };
    if perf == PerfMetrics::default() {
        return Err(ParseError::incomplete(
            FORMAT,
            "the summary has none of http_req_duration, http_req_failed, page_load, certificate_generation",
        ));
    }
    if [
        perf.page_load_ms,
        perf.api_ms,
        perf.certificate_generation_ms,
        perf.error_rate,
    ]
    .iter()
    .flatten()
    .any(|v| !v.is_finite() || *v < 0.0)
    {
        return Err(ParseError::shape(
            FORMAT,
            "a metric is negative or not finite",
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

    // No real k6 capture exists on this machine (k6 is not installable from the reachable
    // registries), so this checks only the metric mapping on a minimal document in the shape of
    // k6's `--summary-export` (trend metrics carry `p(95)`, rate metrics `value`).
    /// The budget metrics are read from the documented summary-export keys.
    #[test]
    fn maps_summary_export_metrics() {
        let doc = br#"{"root_group": {}, "metrics": {
            "http_req_duration": {"avg": 120.5, "min": 80, "med": 110, "max": 900, "p(90)": 300, "p(95)": 412.25},
            "http_req_failed": {"passes": 0, "fails": 1000, "value": 0.002},
            "certificate_generation": {"avg": 1500, "p(95)": 2500.0}}}"#;
        let p = parse(doc).unwrap().metrics.perf.unwrap();
        assert_eq!(p.api_ms, Some(412.25));
        assert_eq!(p.error_rate, Some(0.002));
        assert_eq!(p.certificate_generation_ms, Some(2500.0));
        assert_eq!(p.page_load_ms, None);
        assert!(parse(br#"{"metrics": {"vus": {"value": 1}}}"#).is_err());
    }
}
