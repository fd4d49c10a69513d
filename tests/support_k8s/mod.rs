//! Test harness for the real Kubernetes testbed (`testbed/up.sh`): the cluster client, one namespace
//! per test, the stand-in kubelet, the sample app processes, the router that follows a Service's
//! EndpointSlices, and Prometheus scrape targets.
//!
//! Which cluster: `FM_TEST_KUBECONFIG` when set (kind or a real cluster), otherwise the testbed whose
//! env file is at `FM_TESTBED_ENV` (default `~/.cache/fm-deploy-testbed/run/testbed.env`); when that
//! file is missing the harness runs `testbed/up.sh` once (under its lock) to start the testbed.
#![allow(
    dead_code,
    reason = "shared by several test crates; each uses a different part"
)]

pub mod apiserver;
pub mod app;
pub mod deployer;
pub mod kubelet;
pub mod prom;
pub mod router;

use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What the testbed env file says (or only the kubeconfig, for a user-provided cluster).
#[derive(Debug, Clone)]
pub struct Testbed {
    pub kubeconfig: PathBuf,
    /// Values from `testbed.env`; empty for a user-provided cluster.
    pub env: BTreeMap<String, String>,
}

impl Testbed {
    /// The cluster the tests use, starting the local testbed when needed.
    pub fn get() -> anyhow::Result<Testbed> {
        if let Some(kc) = std::env::var_os("FM_TEST_KUBECONFIG").filter(|v| !v.is_empty()) {
            return Ok(Testbed {
                kubeconfig: PathBuf::from(kc),
                env: BTreeMap::new(),
            });
        }
        let env_file = env_file_path();
        if !env_file.exists() {
            let up = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testbed/up.sh");
            let status = std::process::Command::new(&up).status()?;
            anyhow::ensure!(status.success(), "{} failed: {status}", up.display());
        }
        let text = std::fs::read_to_string(&env_file)
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", env_file.display()))?;
        let env: BTreeMap<String, String> = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let kubeconfig = PathBuf::from(env.get("FM_TESTBED_KUBECONFIG").ok_or_else(|| {
            anyhow::anyhow!("FM_TESTBED_KUBECONFIG missing in {}", env_file.display())
        })?);
        Ok(Testbed { kubeconfig, env })
    }

    /// True when the tests run on the local testbed (they may then start extra apiservers, read the
    /// audit log, register Prometheus targets).
    pub fn is_local(&self) -> bool {
        !self.env.is_empty()
    }

    pub fn var(&self, key: &str) -> anyhow::Result<&str> {
        self.env
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| anyhow::anyhow!("{key} not set by the testbed env file"))
    }

    /// A client for the testbed's apiserver.
    pub async fn client(&self) -> anyhow::Result<Client> {
        Ok(Client::try_from(self.config().await?)?)
    }

    /// The client configuration; `server` replaces the cluster URL (a second apiserver).
    pub async fn config_for(&self, server: Option<&str>) -> anyhow::Result<Config> {
        let kc = Kubeconfig::read_from(&self.kubeconfig)?;
        let mut cfg = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
        if let Some(s) = server {
            cfg.cluster_url = s.parse()?;
        }
        Ok(cfg)
    }

    pub async fn config(&self) -> anyhow::Result<Config> {
        self.config_for(None).await
    }
}

pub fn env_file_path() -> PathBuf {
    if let Some(p) = std::env::var_os("FM_TESTBED_ENV").filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".cache/fm-deploy-testbed/run/testbed.env")
}

/// A short unique suffix for names (namespace, node, lease holder).
pub fn unique(prefix: &str) -> String {
    let n: u32 = rand::random();
    format!("{prefix}-{:06x}", n & 0xff_ffff)
}

/// A namespace of its own for one test; `cleanup` deletes it (forcing pods out, since a stand-in
/// kubelet may already be gone) and waits until it is gone.
pub struct TestNamespace {
    pub name: String,
    client: Client,
    testbed: Testbed,
    cleaned: bool,
}

impl TestNamespace {
    pub async fn create(
        tb: &Testbed,
        client: &Client,
        prefix: &str,
    ) -> anyhow::Result<TestNamespace> {
        let name = unique(prefix);
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {"fm-deploy-test": "true"}}
        }))?;
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await?;
        Ok(TestNamespace {
            name,
            client: client.clone(),
            testbed: tb.clone(),
            cleaned: false,
        })
    }

    /// Deletes the namespace and waits (deadline 60 s) until the apiserver no longer has it.
    pub async fn cleanup(mut self) -> anyhow::Result<()> {
        self.cleaned = true;
        delete_namespace(&self.client, &self.name).await
    }
}

impl Drop for TestNamespace {
    /// A test that failed before `cleanup` still removes its namespace: on a thread of its own with
    /// a fresh runtime and client (the test's runtime is blocked in this drop).
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        let tb = self.testbed.clone();
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(c) = tb.client().await {
                    let _ = delete_namespace(&c, &name).await;
                }
            });
        })
        .join();
    }
}

pub async fn delete_namespace(client: &Client, name: &str) -> anyhow::Result<()> {
    let nss = Api::<Namespace>::all(client.clone());
    let pods = Api::<Pod>::namespaced(client.clone(), name);
    let _ = nss.delete(name, &DeleteParams::default()).await;
    delete_node(client, &kubelet::node_name(name)).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // Terminating pods would wait for a kubelet forever: finish them.
        if let Ok(list) = pods.list(&ListParams::default()).await {
            for p in list {
                if let Some(n) = p.metadata.name.as_deref() {
                    let _ = pods
                        .delete(
                            n,
                            &DeleteParams {
                                grace_period_seconds: Some(0),
                                ..DeleteParams::default()
                            },
                        )
                        .await;
                }
            }
        }
        if let Ok(None) = nss.get_opt(name).await {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "namespace {name} still present after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Deletes a Node the stand-in kubelet registered.
pub async fn delete_node(client: &Client, name: &str) {
    let _ = Api::<Node>::all(client.clone())
        .delete(name, &DeleteParams::default())
        .await;
}

/// Polls `check` every 50 ms until it returns `Some`, or fails after `limit` naming `what`.
pub async fn wait_until<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Everything a deploy test needs: its namespace, a stand-in kubelet, sample app processes behind
/// images, and clients for the harness (`admin`) and for the deploy under test (`deployer`: the
/// ServiceAccount bound to the Role of `examples/deploy/rbac.yaml`, so the deploy runs with exactly
/// the documented permissions and the audit log separates its requests).
pub struct Fixture {
    pub tb: Testbed,
    pub admin: Client,
    pub ns: String,
    pub deploy: deployer::DeployIdentity,
    pub book: kubelet::AddressBook,
    kubelet: Option<kubelet::Kubelet>,
    namespace: Option<TestNamespace>,
    apps: Vec<app::AppProcess>,
}

impl Fixture {
    pub async fn new(prefix: &str) -> anyhow::Result<Fixture> {
        let tb = Testbed::get()?;
        let admin = tb.client().await?;
        let namespace = TestNamespace::create(&tb, &admin, prefix).await?;
        let book = kubelet::AddressBook::default();
        let kubelet = kubelet::Kubelet::start(&admin, &namespace.name, book.clone()).await?;
        let deploy =
            deployer::DeployIdentity::create(&admin, &tb.kubeconfig, &namespace.name).await?;
        Ok(Fixture {
            deploy,
            ns: namespace.name.clone(),
            tb,
            admin,
            book,
            kubelet: Some(kubelet),
            namespace: Some(namespace),
            apps: Vec::new(),
        })
    }

    /// The deploy's client: the ServiceAccount of `examples/deploy/rbac.yaml` in the test's
    /// namespace; `server` points it at another apiserver of the same cluster.
    pub async fn deployer(&self, server: Option<&str>) -> anyhow::Result<Client> {
        self.deploy.client(server).await
    }

    /// A kubeconfig for the deploy's ServiceAccount (the binary's `--kubeconfig`).
    pub fn deployer_kubeconfig(&self) -> PathBuf {
        self.deploy.kubeconfig.clone()
    }

    /// Starts a sample app process for `image` (reporting `version`) on loopback address `ip`; pods
    /// running `image` are then served by it.
    pub async fn serve_image(
        &mut self,
        image: &str,
        version: &str,
        ip: &str,
    ) -> anyhow::Result<&app::AppProcess> {
        let a = app::AppProcess::start(version, ip).await?;
        self.book.serve_image(image, a.addr);
        self.apps.push(a);
        let idx = self.apps.len() - 1;
        Ok(&self.apps[idx])
    }

    pub async fn router(&self, service: &str) -> anyhow::Result<router::TestRouter> {
        router::TestRouter::start(&self.admin, &self.ns, service, self.book.clone()).await
    }

    /// Stops the kubelet, deletes the namespace and waits until it is gone, stops the apps.
    pub async fn finish(mut self) -> anyhow::Result<()> {
        if let Some(k) = self.kubelet.take() {
            k.stop().await;
        }
        if let Some(ns) = self.namespace.take() {
            ns.cleanup().await?;
        }
        for a in self.apps.drain(..) {
            a.stop().await;
        }
        Ok(())
    }
}

/// The sample app as the policy's `app:` (image repository `example/web`, port 8080).
pub fn sample_app_spec() -> fm_deploy::policy::model::AppSpec {
    fm_deploy::policy::model::AppSpec {
        name: "web".into(),
        image: "example/web".into(),
        port: 8080,
        health_path: "/health".into(),
        endpoints: vec!["/api/solve".into()],
    }
}
