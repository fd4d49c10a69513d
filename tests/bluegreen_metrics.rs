//! The Prometheus client against a real Prometheus (the Debian package) scraping an exporter the
//! test serves.

mod support_bluegreen;
mod support_k8s;

use axum::Router;
use axum::routing::get;
use fm_deploy::deploy::metrics::{MetricsError, MetricsSource, PrometheusClient, substitute_color};
use std::time::Duration;
use support_bluegreen::prometheus::OwnPrometheus;

const EXPOSITION: &str = "# TYPE fm_test_errors gauge\n\
fm_test_errors{version=\"green\"} 0.25\n\
fm_test_errors{version=\"green\",pod=\"b\"} 0.5\n\
# TYPE fm_test_idle gauge\n\
fm_test_idle NaN\n";

/// Protects the client's reading of a real Prometheus: a value, "no data" for an empty result and
/// for NaN, the worst series of several, `{color}` substitution, and errors that name the URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instant_queries_against_real_prometheus() -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let exporter = listener.local_addr()?;
    let app = Router::new().route("/metrics", get(|| async { EXPOSITION }));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let prom = OwnPrometheus::start(&[exporter]).await?;
    prom.wait_scraped(1, Duration::from_secs(30)).await?;

    let client = PrometheusClient::new(&prom.url, Duration::from_secs(5))?;
    let q = r#"max(fm_test_errors{version="{color}"}) by (version)"#;
    // The first scrape is in; every series of it is queryable.
    let green = support_k8s::wait_until(
        Duration::from_secs(20),
        "the first scrape to be queryable",
        || {
            let (client, q) = (&client, substitute_color(q, "green"));
            async move { client.instant(&q).await.ok().flatten() }
        },
    )
    .await?;
    assert_eq!(green, 0.5);
    assert_eq!(
        client.instant(r#"fm_test_errors{version="green"}"#).await?,
        Some(0.5)
    );
    assert_eq!(
        client.instant(&substitute_color(q, "blue")).await?,
        None,
        "no series is no data"
    );
    assert_eq!(
        client.instant("fm_test_idle").await?,
        None,
        "NaN is no data"
    );
    assert_eq!(client.instant("scalar(vector(2))").await?, Some(2.0));

    let bad = client.instant("rate(fm_test_errors[").await.err();
    match &bad {
        Some(MetricsError::Query {
            url, error_type, ..
        }) => {
            assert_eq!(url, &format!("{}/api/v1/query", prom.url));
            assert_eq!(error_type, "bad_data");
        }
        other => anyhow::bail!("expected a query error, got {other:?}"),
    }
    prom.stop().await;
    server.abort();

    let gone = PrometheusClient::new(&format!("http://{exporter}"), Duration::from_secs(2))?;
    let err = gone
        .instant("up")
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains(&exporter.to_string()), "{err}");
    Ok(())
}
