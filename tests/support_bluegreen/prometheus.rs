//! A private Prometheus for one test: the Debian package's binary on a free loopback port, a temp
//! storage dir, 1 s scrapes of the given targets. Killed (and its dir removed) on drop.

use std::net::{SocketAddr, TcpListener};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

pub struct OwnPrometheus {
    pub url: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl OwnPrometheus {
    /// Starts Prometheus scraping `targets` every second; waits (deadline 30 s) for `/-/ready`.
    pub async fn start(targets: &[SocketAddr]) -> anyhow::Result<OwnPrometheus> {
        let labelled: Vec<(SocketAddr, Vec<(String, String)>)> =
            targets.iter().map(|t| (*t, Vec::new())).collect();
        Self::start_labelled(&labelled).await
    }

    /// Like `start`, each target with its own labels (e.g. `color`).
    pub async fn start_labelled(
        targets: &[(SocketAddr, Vec<(String, String)>)],
    ) -> anyhow::Result<OwnPrometheus> {
        let dir = tempfile::tempdir()?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut config = String::from(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\nscrape_configs:\n  - job_name: test\n    static_configs:\n",
        );
        for (addr, labels) in targets {
            let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}: '{v}'")).collect();
            config.push_str(&format!(
                "      - targets: ['{addr}']\n        labels: {{{}}}\n",
                l.join(", ")
            ));
        }
        let cfg_path = dir.path().join("prometheus.yml");
        std::fs::write(&cfg_path, config)?;
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", cfg_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder().no_proxy().build()?;
        crate::support_k8s::wait_until(
            Duration::from_secs(30),
            &format!("prometheus at {url} to be ready"),
            || {
                let (http, url) = (http.clone(), url.clone());
                async move {
                    let r = http.get(format!("{url}/-/ready")).send().await.ok()?;
                    r.status().is_success().then_some(())
                }
            },
        )
        .await?;
        Ok(OwnPrometheus {
            url,
            child,
            _dir: dir,
        })
    }

    /// Waits (deadline `limit`) until every target has been scraped at least once (`up == 1`).
    pub async fn wait_scraped(&self, n: usize, limit: Duration) -> anyhow::Result<()> {
        let http = reqwest::Client::builder().no_proxy().build()?;
        crate::support_k8s::wait_until(limit, &format!("prometheus to scrape {n} targets"), || {
            let (http, url) = (http.clone(), self.url.clone());
            async move {
                let body: serde_json::Value = http
                    .post(format!("{url}/api/v1/query"))
                    .form(&[("query", "count(up == 1)")])
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                let count = body["data"]["result"][0]["value"][1]
                    .as_str()?
                    .parse::<usize>()
                    .ok()?;
                (count >= n).then_some(())
            }
        })
        .await
    }

    /// SIGSTOP: it keeps its port open but answers nothing (a hung Prometheus).
    pub fn freeze(&self) -> anyhow::Result<()> {
        self.signal(nix::sys::signal::Signal::SIGSTOP)
    }

    /// SIGCONT after `freeze`.
    pub fn thaw(&self) -> anyhow::Result<()> {
        self.signal(nix::sys::signal::Signal::SIGCONT)
    }

    /// SIGKILL: gone, connections refused (reaped by `stop`).
    pub fn kill(&self) -> anyhow::Result<()> {
        self.signal(nix::sys::signal::Signal::SIGKILL)
    }

    fn signal(&self, sig: nix::sys::signal::Signal) -> anyhow::Result<()> {
        let pid = self
            .child
            .id()
            .ok_or_else(|| anyhow::anyhow!("prometheus already exited"))?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(i32::try_from(pid)?), sig)?;
        Ok(())
    }

    pub async fn stop(mut self) {
        let _ = self.signal(nix::sys::signal::Signal::SIGCONT);
        let _ = self.child.kill().await;
    }
}
