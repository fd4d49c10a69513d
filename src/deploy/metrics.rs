//! Prometheus HTTP API: instant queries for rollback triggers.
//!
//! Owns: `{color}` substitution, the `/api/v1/query` call and the reduction of its answer to one
//! number or "no data" (empty result, `NaN`). Must not decide anything: whether a value breaches is
//! `triggers.rs`'s business.

use serde::Deserialize;
use std::future::Future;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("query prometheus at {url}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("query prometheus at {url}: HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("query prometheus at {url}: {error_type}: {error}")]
    Query {
        url: String,
        error_type: String,
        error: String,
    },
    #[error("read the answer of prometheus at {url}: {detail}")]
    Answer { url: String, detail: String },
}

/// Anything that answers an instant query with one number or no data.
pub trait MetricsSource: Send + Sync {
    /// `Ok(None)` is "no data" (no matching series, or `NaN`).
    fn instant(
        &self,
        query: &str,
    ) -> impl Future<Output = Result<Option<f64>, MetricsError>> + Send;
}

/// How long one trigger query may take: below the sample interval (four fifths of it, at most
/// 5 s, at least 50 ms), so a hung Prometheus yields a "no data" sample on time instead of
/// stretching the sampling.
pub fn query_timeout(sample_every: Duration) -> Duration {
    (sample_every * 4 / 5).clamp(Duration::from_millis(50), Duration::from_secs(5))
}

/// Replace every `{color}` in a trigger's query.
pub fn substitute_color(query: &str, color: &str) -> String {
    query.replace("{color}", color)
}

#[derive(Debug, Clone)]
pub struct PrometheusClient {
    base: String,
    http: reqwest::Client,
}

impl PrometheusClient {
    /// `base` like `http://127.0.0.1:9090` (a trailing `/` is fine); each query times out after
    /// `timeout`.
    pub fn new(base: &str, timeout: Duration) -> Result<Self, MetricsError> {
        let base = base.trim_end_matches('/').to_string();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .no_proxy()
            .build()
            .map_err(|source| MetricsError::Http {
                url: base.clone(),
                source,
            })?;
        Ok(Self { base, http })
    }

    pub fn query_url(&self) -> String {
        format!("{}/api/v1/query", self.base)
    }
}

#[derive(Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct VectorItem {
    value: (f64, String),
}

/// Reduce a Prometheus answer (the full JSON body) to one value. Several series: the highest value
/// counts (every trigger is "above", so the worst series decides — fail closed).
pub fn parse_answer(url: &str, body: &[u8]) -> Result<Option<f64>, MetricsError> {
    let answer = |detail: String| MetricsError::Answer {
        url: url.to_string(),
        detail,
    };
    let env: Envelope = serde_json::from_slice(body).map_err(|e| answer(e.to_string()))?;
    if env.status != "success" {
        return Err(MetricsError::Query {
            url: url.to_string(),
            error_type: env.error_type.unwrap_or_else(|| "error".into()),
            error: env.error.unwrap_or_default(),
        });
    }
    let data = env.data.ok_or_else(|| answer("no data field".into()))?;
    let values: Vec<String> = match data.result_type.as_str() {
        "vector" => {
            let items: Vec<VectorItem> =
                serde_json::from_value(data.result).map_err(|e| answer(e.to_string()))?;
            items.into_iter().map(|i| i.value.1).collect()
        }
        "scalar" => {
            let (_, v): (f64, String) =
                serde_json::from_value(data.result).map_err(|e| answer(e.to_string()))?;
            vec![v]
        }
        other => {
            return Err(answer(format!(
                "result type {other} is not an instant vector or scalar"
            )));
        }
    };
    let mut best: Option<f64> = None;
    for v in values {
        let x: f64 = v
            .parse()
            .map_err(|_| answer(format!("value {v:?} is not a number")))?;
        if x.is_nan() {
            continue;
        }
        best = Some(best.map_or(x, |b| b.max(x)));
    }
    Ok(best)
}

impl MetricsSource for PrometheusClient {
    async fn instant(&self, query: &str) -> Result<Option<f64>, MetricsError> {
        let url = self.query_url();
        let resp = self
            .http
            .post(&url)
            .form(&[("query", query)])
            .send()
            .await
            .map_err(|source| MetricsError::Http {
                url: url.clone(),
                source,
            })?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|source| MetricsError::Http {
            url: url.clone(),
            source,
        })?;
        // 400/422 carry a Prometheus error envelope worth showing; other failures do not.
        if !status.is_success() && status.as_u16() != 400 && status.as_u16() != 422 {
            let text = String::from_utf8_lossy(&body);
            let body: String = text.chars().take(200).collect();
            return Err(MetricsError::Status {
                url,
                status: status.as_u16(),
                body,
            });
        }
        parse_answer(&url, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: &str = "http://p/api/v1/query";

    /// Protects the reduction of real answer shapes: empty → no data, NaN → no data, max of series.
    #[test]
    fn answers() {
        let empty = br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert_eq!(parse_answer(U, empty).ok(), Some(None));
        let nan = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1.5,"NaN"]}]}}"#;
        assert_eq!(parse_answer(U, nan).ok(), Some(None));
        let two = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"1"},"value":[1.5,"0.2"]},{"metric":{"a":"2"},"value":[1.5,"0.7"]}]}}"#;
        assert_eq!(parse_answer(U, two).ok(), Some(Some(0.7)));
        let scalar = br#"{"status":"success","data":{"resultType":"scalar","result":[1.5,"3"]}}"#;
        assert_eq!(parse_answer(U, scalar).ok(), Some(Some(3.0)));
        let inf = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1.5,"+Inf"]}]}}"#;
        assert_eq!(parse_answer(U, inf).ok(), Some(Some(f64::INFINITY)));
    }

    /// Protects error messages: they name the URL and Prometheus's own error.
    #[test]
    fn errors_name_the_url() {
        let bad = br#"{"status":"error","errorType":"bad_data","error":"parse error at char 4"}"#;
        let e = parse_answer(U, bad)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(
            e,
            "query prometheus at http://p/api/v1/query: bad_data: parse error at char 4"
        );
        let garbage = parse_answer(U, b"<html>")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            garbage.starts_with("read the answer of prometheus at http://p/api/v1/query"),
            "{garbage}"
        );
        let matrix = br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert!(parse_answer(U, matrix).is_err());
    }

    /// Protects `{color}` substitution in every place it appears.
    #[test]
    fn color_substitution() {
        assert_eq!(
            substitute_color(r#"a{version="{color}"} / b{version="{color}"}"#, "green"),
            r#"a{version="green"} / b{version="green"}"#
        );
    }
}
