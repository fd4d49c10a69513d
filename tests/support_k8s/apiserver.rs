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

/// A TCP relay in front of an apiserver (TLS passes through untouched: the certificate names
/// 127.0.0.1 whatever the port) whose open connections a test can cut at once — a network blip
/// that drops a watch without restarting anything.
pub struct Relay {
    pub port: u16,
    cut: tokio::sync::watch::Sender<u64>,
    opened: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// Relays 127.0.0.1:<free port> to `upstream` (`host:port`).
    pub async fn start(upstream: String) -> anyhow::Result<Relay> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let (cut, _) = tokio::sync::watch::channel(0u64);
        let opened = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (tx, count) = (cut.clone(), opened.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut down, _)) = listener.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let (mut cut, upstream) = (tx.subscribe(), upstream.clone());
                tokio::spawn(async move {
                    let Ok(mut up) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut down, &mut up) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Ok(Relay {
            port,
            cut,
            opened,
            task,
        })
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Drops every connection open right now (new ones are relayed as before).
    pub fn cut(&self) {
        self.cut.send_modify(|n| *n += 1);
    }

    /// Connections accepted so far.
    pub fn opened(&self) -> usize {
        self.opened.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}
