//! Sample app processes (`examples/sample-app/app.py`), one per version on its own loopback address.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// One running sample app; killed on drop (and it exits by itself when the test process is gone).
pub struct AppProcess {
    pub addr: SocketAddr,
    pub version: String,
    child: Child,
}

impl AppProcess {
    /// Starts the app for `version` on `ip` (e.g. `127.0.0.2`) on a free port; waits (10 s) for
    /// `/health`.
    pub async fn start(version: &str, ip: &str) -> anyhow::Result<AppProcess> {
        let port = free_port(ip)?;
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/sample-app/app.py");
        let child = Command::new("python3")
            .arg(script)
            .args([
                "--host",
                ip,
                "--port",
                &port.to_string(),
                "--version",
                version,
            ])
            .args(["--parent-pid", &std::process::id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let addr: SocketAddr = format!("{ip}:{port}").parse()?;
        let app = AppProcess {
            addr,
            version: version.to_string(),
            child,
        };
        let url = format!("{}/health", app.url());
        let http = reqwest::Client::new();
        super::wait_until(
            Duration::from_secs(10),
            &format!("sample app at {url}"),
            || {
                let http = http.clone();
                let url = url.clone();
                async move {
                    http.get(&url)
                        .send()
                        .await
                        .ok()
                        .filter(|r| r.status().is_success())
                        .map(|_| ())
                }
            },
        )
        .await?;
        Ok(app)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sets knobs, e.g. `&[("error_rate", "0.5"), ("healthy", "0")]`.
    pub async fn set_knobs(&self, knobs: &[(&str, &str)]) -> anyhow::Result<()> {
        let resp = reqwest::Client::new()
            .post(format!("{}/admin/knobs", self.url()))
            .form(knobs)
            .send()
            .await?;
        anyhow::ensure!(
            resp.status().is_success(),
            "setting knobs: {}",
            resp.status()
        );
        Ok(())
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

fn free_port(ip: &str) -> anyhow::Result<u16> {
    let l = TcpListener::bind((ip, 0))?;
    Ok(l.local_addr()?.port())
}
