//! Test harness for everything fm-deploy says to GitHub: the stateful fake GitHub behind Prism in
//! proxy mode, validating every request and response against GitHub's official OpenAPI
//! description (trimmed by `scripts/trim-openapi.js`).
//!
//! Needs `scripts/install-prism.sh` to have run (it installs into `FM_DEPLOY_PRISM_DIR`, default
//! `~/.cache/fm-deploy-testbed/node`). Missing pieces fail the test with that instruction.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the harness"
)]

pub mod fake;

use fake::Fake;
use fm_deploy::github::{GithubClient, GithubConfig, RetryPolicy};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const TOKEN: &str = "ghs_test_token_with_checks_write";
pub const READ_ONLY_TOKEN: &str = "ghs_fork_pull_request_read_only";

/// Where `scripts/install-prism.sh` put Prism, the spec and the webhook examples.
pub fn prism_dir() -> PathBuf {
    match std::env::var_os("FM_DEPLOY_PRISM_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
            .join(".cache/fm-deploy-testbed/node"),
    }
}

fn require(path: PathBuf) -> PathBuf {
    assert!(
        path.exists(),
        "{} is missing: run scripts/install-prism.sh first",
        path.display()
    );
    path
}

pub fn trimmed_spec() -> Value {
    let p = require(prism_dir().join("github-trimmed.json"));
    serde_json::from_slice(&std::fs::read(p).unwrap_or_default()).unwrap_or(Value::Null)
}

/// Real webhook examples from `@octokit/webhooks-examples`: the `action` example of `event`.
pub fn webhook_example(event: &str, action: &str) -> Value {
    let p = require(
        prism_dir().join("node_modules/@octokit/webhooks-examples/api.github.com/index.json"),
    );
    let all: Value =
        serde_json::from_slice(&std::fs::read(p).unwrap_or_default()).unwrap_or(Value::Null);
    all.as_array()
        .and_then(|a| a.iter().find(|e| e["name"] == event))
        .and_then(|e| e["examples"].as_array())
        .and_then(|xs| {
            xs.iter()
                .find(|x| x.get("action").and_then(Value::as_str).unwrap_or("") == action)
        })
        .cloned()
        .unwrap_or_else(|| panic!("no {event}/{action} example in @octokit/webhooks-examples"))
}

/// A `pull_request` `opened` payload. The examples package holds no fork pull request, so the fork
/// variant takes the real `opened` payload and puts in its head the real fork repository from the
/// package's `fork` event (`forkee`, `Octocoders/Hello-World`) — exactly how GitHub shapes a fork PR.
pub fn pull_request_payload(from_fork: bool) -> Value {
    let mut pr = webhook_example("pull_request", "opened");
    if from_fork {
        let fork = webhook_example("fork", "");
        let forkee = fork["forkee"].clone();
        assert_eq!(forkee["fork"], true, "the fork example's forkee is a fork");
        let owner = forkee["owner"]["login"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let branch = pr["pull_request"]["head"]["ref"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        pr["pull_request"]["head"]["repo"] = forkee;
        pr["pull_request"]["head"]["label"] = Value::String(format!("{owner}:{branch}"));
    }
    pr
}

/// The fake on a loopback port and Prism (proxy mode, `--errors`) in front of it.
pub struct Testbed {
    pub fake: Fake,
    pub url: String,
    prism: Child,
    prism_log: Arc<Mutex<Vec<String>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Testbed {
    pub async fn start() -> Testbed {
        let dir = prism_dir();
        let spec_path = require(dir.join("github-trimmed.json"));
        let prism_bin = require(dir.join("node_modules/.bin/prism"));
        let fake = Fake::new(&trimmed_spec());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind fake: {e}"));
        let fake_addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("fake addr: {e}"));
        let router = fake.router();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });

        let port = free_port();
        let mut prism = Command::new(prism_bin)
            .arg("proxy")
            .arg(&spec_path)
            .arg(format!("http://{fake_addr}"))
            .args([
                "--errors",
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start prism: {e} (run scripts/install-prism.sh)"));
        let prism_log = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            prism
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            prism
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let log = prism_log.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Ok(mut l) = log.lock() {
                        l.push(line);
                    }
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            if let Ok(Some(status)) = prism.try_wait() {
                panic!(
                    "prism exited before listening ({status}): {:?}",
                    prism_log.lock().map(|l| l.clone())
                );
            }
            assert!(
                Instant::now() < deadline,
                "prism not listening on {port} within 60 s: {:?}",
                prism_log.lock().map(|l| l.clone())
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Testbed {
            fake,
            url: format!("http://127.0.0.1:{port}"),
            prism,
            prism_log,
            server,
        }
    }

    /// A client through Prism with the production retry policy, waits capped for speed.
    pub fn client(&self, token: &str) -> GithubClient {
        self.client_with(
            token,
            RetryPolicy {
                cap: Some(Duration::from_millis(20)),
                ..RetryPolicy::default()
            },
        )
    }

    pub fn client_with(&self, token: &str, retry: RetryPolicy) -> GithubClient {
        let mut cfg = self.config(token);
        cfg.retry = retry;
        GithubClient::new(&cfg).unwrap_or_else(|e| panic!("client: {e}"))
    }

    /// The configuration `client` uses: through Prism, waits capped at 20 ms, 5 s read timeout.
    pub fn config(&self, token: &str) -> GithubConfig {
        let mut cfg = GithubConfig::new(&self.url, token, "octo/app");
        cfg.retry = RetryPolicy {
            cap: Some(Duration::from_millis(20)),
            ..RetryPolicy::default()
        };
        cfg.read_timeout = Duration::from_secs(5);
        cfg
    }

    /// Prism's log lines that report a request or response violating GitHub's description. An
    /// undocumented error status (GitHub answers 500/502/429/403 on operations whose description does
    /// not list them) is not a violation when the upstream really answered with an error.
    pub fn violations(&self) -> Vec<String> {
        let log = self.prism_log();
        let mut last_upstream: u16 = 0;
        let mut out = Vec::new();
        for line in &log {
            if let Some(rest) = line.split("has returned ").nth(1) {
                last_upstream = rest.trim().parse().unwrap_or(0);
            }
            let flagged = line.contains('✖') || line.to_lowercase().contains("violation");
            let undocumented_error =
                line.contains("Unable to match the returned status code") && last_upstream >= 400;
            if flagged && !undocumented_error {
                out.push(line.clone());
            }
        }
        out
    }

    pub fn prism_log(&self) -> Vec<String> {
        self.prism_log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Waits until Prism's log holds everything it printed for the requests sent so far: a sentinel
    /// request goes through Prism, and its log line arrives after every earlier one.
    pub async fn sync_log(&self) {
        let nonce = format!("sync{}", rand::random::<u64>());
        let url = format!(
            "{}/orgs/fm-deploy-sync/teams/sync/memberships/{nonce}",
            self.url
        );
        let _ = reqwest::Client::new()
            .get(&url)
            .header("accept", "application/vnd.github+json, application/json")
            .send()
            .await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self
            .prism_log()
            .iter()
            .any(|l| l.contains(&nonce) && l.contains("has returned"))
        {
            assert!(
                Instant::now() < deadline,
                "prism never logged the sentinel request"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Fails the test on any violation Prism saw or any request the fake refused as GitHub would.
    pub async fn assert_clean(&self) {
        self.sync_log().await;
        let v = self.violations();
        assert!(
            v.is_empty(),
            "prism reported violations:\n{}\n\nfull log:\n{}",
            v.join("\n"),
            self.prism_log().join("\n")
        );
        let r = self.fake.state().rejections.clone();
        assert!(
            r.is_empty(),
            "the fake refused requests GitHub would refuse:\n{}",
            r.join("\n")
        );
        let bad: Vec<String> = self
            .fake
            .requests()
            .iter()
            .filter(|l| !l.injected && l.status >= 400 && l.status != 403 && l.status != 404)
            .map(|l| format!("{} {} → {}", l.method, l.path, l.status))
            .collect();
        assert!(
            bad.is_empty(),
            "requests failed at the fake:\n{}",
            bad.join("\n")
        );
    }

    /// Stops Prism and the fake, waiting for Prism to exit.
    pub async fn stop(mut self) {
        let _ = self.prism.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.prism.wait()).await;
        self.server.abort();
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("free port: {e}"));
    l.local_addr()
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("free port: {e}"))
}

/// A finding of `severity` at `path:line`, as parsers produce them.
pub fn finding(
    i: usize,
    severity: fm_deploy::gates::finding::Severity,
) -> fm_deploy::gates::finding::Finding {
    let line = u32::try_from(i + 1).unwrap_or(u32::MAX);
    let mut f = fm_deploy::gates::finding::Finding::new(
        "flake8",
        format!("E{}", 100 + i % 900),
        severity,
        format!("problem number {i}"),
    )
    .at(
        format!("src/mod_{}.py", i % 37),
        Some(line),
        Some(1 + u32::try_from(i % 80).unwrap_or(0)),
    );
    f.gate = "lint".into();
    f
}
