//! The testbed itself: stand-in kubelet, sample app processes, router following EndpointSlices.
//! These protect the harness every other `k8s_*` test (and the blue-green tests) stand on.

mod support_k8s;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use std::time::Duration;
use support_k8s::app::AppProcess;
use support_k8s::kubelet::{AddressBook, Kubelet};
use support_k8s::router::TestRouter;
use support_k8s::{TestNamespace, Testbed, wait_until};

fn deployment(name: &str, color: &str, image: &str) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web", "version": color}},
            "template": {
                "metadata": {"labels": {"app": "web", "version": color}},
                "spec": {"containers": [{"name": "app", "image": image, "ports": [{"containerPort": 8080, "protocol": "TCP"}]}]},
            },
        },
    })
}

/// Protects the harness: pods become Ready through the stand-in kubelet, the router follows the
/// Service's EndpointSlices, and a selector patch moves traffic to the other version's process.
#[tokio::test]
async fn selector_switch_moves_router_traffic() -> anyhow::Result<()> {
    let tb = Testbed::get()?;
    let client = tb.client().await?;
    let ns = TestNamespace::create(&tb, &client, "fm-testbed").await?;
    let book = AddressBook::default();
    let blue = AppProcess::start("v1", "127.0.0.2").await?;
    let green = AppProcess::start("v2", "127.0.0.3").await?;
    book.serve_image("example/web:v1", blue.addr);
    book.serve_image("example/web:v2", green.addr);
    let kubelet = Kubelet::start(&client, &ns.name, book.clone()).await?;

    let pp = PatchParams::apply("fm-deploy-test").force();
    let deps: Api<Deployment> = Api::namespaced(client.clone(), &ns.name);
    deps.patch(
        "web-blue",
        &pp,
        &Patch::Apply(deployment("web-blue", "blue", "example/web:v1")),
    )
    .await?;
    deps.patch(
        "web-green",
        &pp,
        &Patch::Apply(deployment("web-green", "green", "example/web:v2")),
    )
    .await?;
    let svcs: Api<Service> = Api::namespaced(client.clone(), &ns.name);
    let svc = json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web", "version": "blue"},
                 "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]},
    });
    svcs.patch("web", &pp, &Patch::Apply(svc)).await?;

    let router = TestRouter::start(&client, &ns.name, "web", book.clone()).await?;
    let http = reqwest::Client::new();
    let served_by = |want: std::net::SocketAddr| {
        let http = http.clone();
        let url = router.url();
        async move {
            let r = http.get(&url).send().await.ok()?;
            let b = r.headers().get("x-fm-backend")?.to_str().ok()?.to_string();
            (r.status().is_success() && b == want.to_string()).then_some(())
        }
    };
    wait_until(Duration::from_secs(30), "traffic on blue", || {
        served_by(blue.addr)
    })
    .await?;
    svcs.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"selector": {"version": "green"}}})),
    )
    .await?;
    wait_until(Duration::from_secs(30), "traffic on green", || {
        served_by(green.addr)
    })
    .await?;
    assert_eq!(
        router.backends(),
        vec![green.addr, green.addr],
        "both green pods, nothing else"
    );

    drop(router);
    kubelet.stop().await;
    ns.cleanup().await?;
    blue.stop().await;
    green.stop().await;
    Ok(())
}

/// Protects the Prometheus side of the testbed: a sample app registered through file service
/// discovery is scraped, its labels attached, and an error-rate knob shows up in a query.
#[tokio::test]
async fn prometheus_scrapes_registered_sample_app() -> anyhow::Result<()> {
    let tb = Testbed::get()?;
    anyhow::ensure!(tb.is_local(), "needs the local testbed's Prometheus");
    let prom = tb.var("FM_TESTBED_PROMETHEUS_URL")?.to_string();
    let app = AppProcess::start("v9", "127.0.0.4").await?;
    let color = support_k8s::unique("green");
    let labels = std::collections::BTreeMap::from([
        ("color".to_string(), color.clone()),
        ("version".to_string(), "v9".to_string()),
    ]);
    let _target = support_k8s::prom::ScrapeTarget::register(
        tb.var("FM_TESTBED_PROM_SD_DIR")?,
        app.addr,
        &labels,
    )?;
    app.set_knobs(&[("error_rate", "1.0")]).await?;
    let http = reqwest::Client::new();
    for _ in 0..5 {
        http.get(format!("{}/api/solve", app.url())).send().await?;
    }
    let query = format!(r#"sum(http_requests_total{{color="{color}",code="500"}})"#);
    let value = wait_until(
        Duration::from_secs(30),
        "the app's 500s in Prometheus",
        || {
            let (http, prom, query) = (http.clone(), prom.clone(), query.clone());
            async move {
                let v: serde_json::Value = http
                    .get(format!("{prom}/api/v1/query"))
                    .query(&[("query", query)])
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                let s = v
                    .pointer("/data/result/0/value/1")?
                    .as_str()?
                    .parse::<f64>()
                    .ok()?;
                (s >= 5.0).then_some(s)
            }
        },
    )
    .await?;
    assert!(value >= 5.0);
    app.stop().await;
    Ok(())
}
