//! Blue-green benchmark on the real testbed (needs `testbed/up.sh`; the Prometheus is private):
//!
//! ```sh
//! CARGO_TARGET_DIR=/work/target cargo run --release --example bench_bluegreen -- 10
//! ```
//!
//! Over N runs each: (a) a release whose green fails its error-rate trigger under 100 req/s →
//! decision latency (window satisfied → selector reverted), switch → reverted, requests lost outside
//! the faulty version; (b) a release that passes (monitor 0 s) → green Ready → selector switched,
//! release wall time, Kubernetes API requests of the deploy ServiceAccount (`examples/deploy/rbac.yaml`) from the audit log,
//! requests lost during the switch.

#[path = "../tests/support_bluegreen/mod.rs"]
mod support_bluegreen;
#[path = "../tests/support_k8s/mod.rs"]
mod support_k8s;

use fm_deploy::deploy::bluegreen::Outcome;
use fm_deploy::deploy::bluegreen_run::{NoProgress, RunEnd, deploy_blue_green};
use fm_deploy::deploy::metrics::{MetricsSource, substitute_color};
use fm_deploy::policy::model::{NoDataPolicy, TriggerSource, TriggerSpec};

fn query_of(t: &TriggerSpec) -> String {
    match &t.source {
        TriggerSource::Prometheus { query, .. } => query.clone(),
        TriggerSource::Probe { path } => path.clone(),
    }
}
use std::time::Duration;
use support_bluegreen::flow::*;
use support_bluegreen::scenario::*;

fn stats(name: &str, mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return format!("{name}: no runs");
    }
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    format!(
        "{name}: n={n} median={median:.1} max={:.1} min={:.1}",
        v[n - 1],
        v[0]
    )
}

/// Requests of `user` in `namespace` received between `from` and `to` (RFC 3339), final stage only.
fn audit_count(
    log: &str,
    user: &str,
    namespace: &str,
    from: &str,
    to: &str,
) -> anyhow::Result<usize> {
    let text = std::fs::read_to_string(log)?;
    let mut n = 0;
    for line in text.lines() {
        let Ok(ev) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if ev["stage"] != "ResponseComplete"
            || ev["user"]["username"] != user
            || ev["objectRef"]["namespace"] != namespace
        {
            continue;
        }
        let t = ev["requestReceivedTimestamp"].as_str().unwrap_or("");
        if t >= from && t <= to {
            n += 1;
        }
    }
    Ok(n)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10);
    let s = Scenario::start("bg-bench", &[V1, V2], false).await?;
    first_release(&s).await?;
    let audit = s.tb.var("FM_TESTBED_AUDIT_LOG")?.to_string();

    // (a) rollbacks
    s.app(V2).set_knobs(&[("error_rate", "0.5")]).await?;
    let (mut total, mut detection, mut reaction, mut onset) = (vec![], vec![], vec![], vec![]);
    let (mut lost_rb, mut sent_rb) = (0, 0);
    let green_errors = substitute_color(&query_of(&error_rate(0.01, 3, 2)), "green");
    for i in 0..runs {
        // Independent runs: the previous run's errors must have left the query window.
        support_k8s::wait_until(
            Duration::from_secs(60),
            "green's error rate to drain",
            || async { matches!(s.metrics.instant(&green_errors).await, Ok(None)).then_some(()) },
        )
        .await?;
        let load = Load::start(format!("{}/api/solve", s.live.url()), 100)?;
        let r = release_v2(&s, 60, NoDataPolicy::Hold, vec![error_rate(0.01, 3, 2)]).await?;
        s.wait_live_on(V1).await?;
        let hits = load.finish().await;
        anyhow::ensure!(
            r.end
                == RunEnd::Finished(Outcome::RolledBack {
                    trigger: "error-rate".into()
                }),
            "run {i}: {:?}",
            r.end
        );
        let at = |prefix: &str| {
            r.timeline
                .iter()
                .find(|e| e.what.starts_with(prefix))
                .map(|e| e.at)
        };
        if let (Some(on), Some(back)) = (at("selector on green"), at("selector back on blue")) {
            onset.push((back - on).num_milliseconds() as f64 - 3000.0);
        }
        let l = r
            .fired
            .and_then(|f| f.latency)
            .ok_or_else(|| anyhow::anyhow!("no latency"))?;
        total.push(l.total().as_secs_f64() * 1000.0);
        detection.push(l.detection().as_secs_f64() * 1000.0);
        reaction.push(l.reaction().as_secs_f64() * 1000.0);
        lost_rb += unexplained_failures(&hits, Some(s.app(V2).addr)).len();
        sent_rb += hits.len();
        eprintln!(
            "rollback run {i}: decision latency {} ms",
            l.total().as_millis()
        );
    }
    s.app(V2).set_knobs(&[("error_rate", "0")]).await?;

    // (b) passing releases, alternating colours (v2 → green, v1 → blue)
    let (mut r2s, mut c2s, mut wall, mut requests, mut lost_sw, mut sent_sw) =
        (vec![], vec![], vec![], vec![], 0, 0);
    for i in 0..runs {
        // A fresh tag every run, so every release is a real rollout of the idle colour; it is served
        // by the process labelled with that colour.
        let (process, color) = if i % 2 == 0 {
            (V2, "green")
        } else {
            (V1, "blue")
        };
        let tag = format!("example/web:r{i}-{color}");
        let image = tag.as_str();
        let addr = s.app(process).addr;
        s.book.serve_image(image, addr);
        let cfg = s.config(Duration::ZERO, NoDataPolicy::Hold, vec![]);
        let load = Load::start(format!("{}/api/solve", s.live.url()), 100)?;
        let from = chrono::Utc::now()
            .format("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string();
        let r = deploy_blue_green(
            &s.cluster,
            &s.metrics,
            &NoProgress,
            &cfg,
            image,
            never_cancel(),
        )
        .await?;
        let to = chrono::Utc::now()
            .format("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string();
        support_k8s::wait_until(
            Duration::from_secs(30),
            "live router on the new colour",
            || {
                let b = s.live.backends();
                async move { (!b.is_empty() && b.iter().all(|x| *x == addr)).then_some(()) }
            },
        )
        .await?;
        let hits = load.finish().await;
        anyhow::ensure!(
            r.end == RunEnd::Finished(Outcome::Succeeded),
            "run {i}: {:?}",
            r.end
        );
        r2s.push(
            r.ready_to_switch
                .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0),
        );
        c2s.push(
            r.checked_to_switch
                .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0),
        );
        wall.push(
            r.release_time
                .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0),
        );
        tokio::time::sleep(Duration::from_millis(500)).await; // let the audit log flush the run's watch
        requests.push(audit_count(&audit, &s.deploy.user, &s.ns.name, &from, &to)? as f64);
        lost_sw += unexplained_failures(&hits, None).len();
        sent_sw += hits.len();
        eprintln!(
            "release run {i}: ready→switched {:?}, wall {:?}",
            r.ready_to_switch, r.release_time
        );
    }

    println!(
        "{}",
        stats(
            "decision latency ms (window satisfied -> selector reverted)",
            total
        )
    );
    println!(
        "{}",
        stats(
            "  detection ms (window satisfied -> sample saw it)",
            detection
        )
    );
    println!(
        "{}",
        stats("  reaction ms (sample -> selector reverted)", reaction)
    );
    println!(
        "{}",
        stats(
            "fault onset (switch) -> selector reverted, minus for: 3 s, ms",
            onset
        )
    );
    println!(
        "{}",
        stats(
            "green Ready -> selector switched ms (health checks included)",
            r2s
        )
    );
    println!(
        "{}",
        stats("health checks passed -> selector switched ms", c2s)
    );
    println!("{}", stats("release wall ms (run start -> switched)", wall));
    println!(
        "{}",
        stats(
            "API requests per release (deploy ServiceAccount, audit log)",
            requests
        )
    );
    println!(
        "requests lost during rollback: {lost_rb} of {sent_rb} (faulty version's own 5xx excluded)"
    );
    println!("requests lost during switch: {lost_sw} of {sent_sw}");
    s.cleanup().await
}
