//! HTTP health and smoke probes: `GET <base><path>` retried until a 2xx or a deadline.
//!
//! Owns: the probe loop and its error. Must not touch: Kubernetes, deploy decisions (the caller
//! turns a [`HealthError`] into a failed stage).

use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("get a 2xx from {url} within {}: {attempts} attempts, last: {last}", humantime::format_duration(*deadline))]
    Unhealthy {
        url: String,
        deadline: Duration,
        attempts: u32,
        last: String,
    },
    #[error("build an HTTP client for probes")]
    Client(#[source] reqwest::Error),
}

/// Probes a deployed environment.
pub trait Prober: Send + Sync {
    /// Every path (in order) must answer 2xx at `base_url`; all share one deadline.
    fn smoke(
        &self,
        base_url: &str,
        paths: &[String],
        deadline: Duration,
    ) -> impl Future<Output = Result<(), HealthError>> + Send;
}

/// The real prober (reqwest, rustls).
#[derive(Debug, Clone)]
pub struct HttpProber {
    client: reqwest::Client,
    /// Pause between attempts on one path.
    pub interval: Duration,
}

impl HttpProber {
    pub fn new() -> Result<HttpProber, HealthError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(HealthError::Client)?;
        Ok(HttpProber {
            client,
            interval: Duration::from_millis(500),
        })
    }

    /// One path until 2xx or `until`.
    pub async fn probe(
        &self,
        url: &str,
        until: Instant,
        deadline: Duration,
    ) -> Result<(), HealthError> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let remaining = until.saturating_duration_since(Instant::now());
            let last = match self
                .client
                .get(url)
                .timeout(remaining.max(Duration::from_millis(100)))
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => format!("HTTP {}", r.status()),
                Err(e) => format!("{e}"),
            };
            if Instant::now() + self.interval >= until {
                return Err(HealthError::Unhealthy {
                    url: url.to_string(),
                    deadline,
                    attempts,
                    last,
                });
            }
            tokio::time::sleep(self.interval).await;
        }
    }
}

impl Prober for HttpProber {
    async fn smoke(
        &self,
        base_url: &str,
        paths: &[String],
        deadline: Duration,
    ) -> Result<(), HealthError> {
        let until = Instant::now() + deadline;
        for p in paths {
            let url = join_url(base_url, p);
            self.probe(&url, until, deadline).await?;
        }
        Ok(())
    }
}

/// `https://x/` + `/health` → `https://x/health`.
pub fn join_url(base: &str, path: &str) -> String {
    let b = base.trim_end_matches('/');
    if path.is_empty() {
        b.to_string()
    } else if path.starts_with('/') {
        format!("{b}{path}")
    } else {
        format!("{b}/{path}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Protects URL joining: no doubled or missing slash between the environment URL and a path.
    #[test]
    fn joins_urls() {
        assert_eq!(join_url("http://a/", "/health"), "http://a/health");
        assert_eq!(join_url("http://a", "health"), "http://a/health");
        assert_eq!(join_url("http://a/b/", ""), "http://a/b");
    }

    /// Protects the probe against a real server: a path answering 503 fails at the deadline with the
    /// status in the message; a 2xx path passes.
    #[tokio::test]
    async fn probes_real_http_server() -> anyhow::Result<()> {
        let app = axum::Router::new()
            .route("/ok", axum::routing::get(|| async { "ok" }))
            .route(
                "/down",
                axum::routing::get(|| async {
                    (axum::http::StatusCode::SERVICE_UNAVAILABLE, "no")
                }),
            );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", l.local_addr()?);
        let srv = tokio::spawn(async move { axum::serve(l, app).await });
        let mut p = HttpProber::new()?;
        p.interval = Duration::from_millis(50);
        p.smoke(&base, &["/ok".into()], Duration::from_secs(2))
            .await?;
        let err = p
            .smoke(
                &base,
                &["/ok".into(), "/down".into()],
                Duration::from_millis(300),
            )
            .await;
        match err {
            Err(HealthError::Unhealthy { url, last, .. }) => {
                assert!(url.ends_with("/down"));
                assert!(last.contains("503"), "{last}");
            }
            other => panic!("expected unhealthy, got {other:?}"),
        }
        srv.abort();
        Ok(())
    }
}
