//! Benchmark: one gate with N findings posted as a check run to the fake GitHub with injected
//! latency. Reports requests sent vs the `2 + ⌈N/50⌉` minimum, wall time vs the latency floor
//! (minimum requests × latency), and the client's peak RSS. The fake runs in a child process so the
//! RSS is the client's alone.
//!
//! `cargo run --release --example github_bench -- --findings 10000 --latency-ms 20 [--budget 10000]`

#![allow(clippy::print_stdout, reason = "a benchmark prints its figures")]

#[path = "../tests/support_github/fake.rs"]
#[allow(dead_code, reason = "the benchmark uses part of the fake")]
mod fake;

use fm_deploy::gates::finding::{Finding, Severity};
use fm_deploy::github::{ChecksSession, GithubClient, GithubConfig, RetryPolicy, Started};
use fm_deploy::report::checks::{CheckConclusion, GateCheck};
use std::io::BufRead;
use std::time::{Duration, Instant};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn spec() -> serde_json::Value {
    let dir = std::env::var_os("FM_DEPLOY_PRISM_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/fm-deploy-testbed/node")
        });
    let bytes = std::fs::read(dir.join("github-trimmed.json"))
        .unwrap_or_else(|e| panic!("run scripts/install-prism.sh first: {e}"));
    serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null)
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

async fn serve(latency: Duration) {
    let fake = fake::Fake::new(&spec());
    fake.state().latency = latency;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    println!("{}", listener.local_addr().map(|a| a.port()).unwrap_or(0));
    let _ = axum::serve(listener, fake.router()).await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let latency = Duration::from_millis(arg("--latency-ms", 20));
    if std::env::args().any(|a| a == "--serve") {
        serve(latency).await;
        return;
    }
    let n = usize::try_from(arg("--findings", 10_000)).unwrap_or(10_000);
    let budget = u32::try_from(arg("--budget", 10_000)).unwrap_or(10_000);

    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    let mut child = std::process::Command::new(exe)
        .args(["--serve", "--latency-ms", &latency.as_millis().to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn fake: {e}"));
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = std::io::BufReader::new(out).read_line(&mut line);
    }
    let port: u16 = line
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("fake port {line:?}: {e}"));

    let sev = [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
        Severity::Info,
    ];
    let findings: Vec<Finding> = (0..n)
        .map(|i| {
            Finding::new(
                "flake8",
                format!("E{}", 100 + i % 900),
                sev[i % 5],
                format!(
                    "problem number {i}: line too long ({} > 79 characters)",
                    80 + i % 40
                ),
            )
            .at(
                format!("src/pkg/mod_{}.py", i % 211),
                Some(u32::try_from(i % 5000 + 1).unwrap_or(1)),
                Some(1),
            )
        })
        .collect();
    let gate = GateCheck {
        name: "lint".into(),
        conclusion: CheckConclusion::Failure,
        title: format!("{n} findings"),
        summary_markdown: format!("{n} findings"),
        text_markdown: None,
        findings,
        annotation_budget: budget,
    };
    let rss_before = peak_rss_kib();
    let mut cfg = GithubConfig::new(&format!("http://127.0.0.1:{port}"), "ghs_bench", "octo/app");
    cfg.retry = RetryPolicy::default();
    let client = GithubClient::new(&cfg).unwrap_or_else(|e| panic!("{e}"));

    let t0 = Instant::now();
    let session = ChecksSession::open(&client, &"a".repeat(40), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let Ok(Started::Posted(h)) = session
        .start("lint", "fm-deploy:1:bench:lint", "2026-01-01T00:00:00Z")
        .await
    else {
        panic!("start")
    };
    let report = session
        .finish(&h, &gate, "2026-01-01T00:00:01Z")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let wall = t0.elapsed();
    let run: serde_json::Value = client
        .send(
            http::Method::GET,
            &format!("/repos/octo/app/check-runs/{}", h.id),
            None::<&()>,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let _ = child.kill();
    let _ = child.wait();

    let posted = report.annotations.len();
    let sent = client.requests_sent() - 1; // minus the verification GET
    let minimum = 2 + posted.div_ceil(50);
    let floor = latency * u32::try_from(minimum).unwrap_or(u32::MAX);
    println!(
        "findings={n} budget={budget} annotated={posted} over_budget={} stored_annotations={}",
        report.over_budget, run["output"]["annotations_count"]
    );
    println!(
        "requests={sent} minimum={minimum} ratio={:.3}",
        sent as f64 / minimum as f64
    );
    println!(
        "wall_ms={} floor_ms={} ratio={:.3}",
        wall.as_millis(),
        floor.as_millis(),
        wall.as_secs_f64() / floor.as_secs_f64()
    );
    println!(
        "peak_rss_kib={} (before client: {rss_before})",
        peak_rss_kib()
    );
}
