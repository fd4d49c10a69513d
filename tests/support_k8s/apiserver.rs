//! A kube-apiserver of a test's own over the testbed's etcd (`apiserver.sh <port>`), so a test can
//! SIGKILL and restart it without touching the shared apiserver other tests use.

use super::{Testbed, wait_until};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::ListParams;
use kube::{Api, Client};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

pub struct PrivateApiserver {
    pub port: u16,
    child: Child,
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl PrivateApiserver {
    /// Starts it on `port` and waits (deadline 60 s) until it serves a list.
    pub async fn start(tb: &Testbed, port: u16) -> anyhow::Result<PrivateApiserver> {
        let script = tb.var("FM_TESTBED_APISERVER_SCRIPT")?;
        let log = std::fs::File::create(format!(
            "{}/apiserver-{port}.log",
            tb.var("FM_TESTBED_RUN")?
        ))?;
        let child = Command::new(script)
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()?;
        let s = PrivateApiserver { port, child };
        let client = Client::try_from(tb.config_for(Some(&s.url())).await?)?;
        wait_until(
            Duration::from_secs(60),
            "the private apiserver to serve",
            || {
                let api: Api<Namespace> = Api::all(client.clone());
                async move {
                    api.list(&ListParams::default().limit(1))
                        .await
                        .ok()
                        .map(|_| ())
                }
            },
        )
        .await?;
        Ok(s)
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// SIGKILL (the script execs the apiserver: its pid is the apiserver's) and reap it.
    pub async fn kill(mut self) -> anyhow::Result<()> {
        self.child.kill().await?;
        Ok(())
    }
}
