//! One blue-green scenario on the real testbed: a namespace, the stand-in kubelet, sample app
//! processes per image, a private Prometheus scraping them (labelled by colour), routers following
//! the live Service and each colour's Service, and a load generator through the live router.

use crate::support_bluegreen::prometheus::OwnPrometheus;
use crate::support_k8s::app::AppProcess;
use crate::support_k8s::deployer::DeployIdentity;
use crate::support_k8s::kubelet::{AddressBook, Kubelet};
use crate::support_k8s::router::TestRouter;
use crate::support_k8s::{TestNamespace, Testbed, sample_app_spec, wait_until};
use fm_deploy::deploy::bluegreen::{BgConfig, Color, ShiftKind};
use fm_deploy::deploy::bluegreen_run::{BgRunConfig, ColorUrls};
use fm_deploy::deploy::colors::{ColorsSpec, KubeColors};
use fm_deploy::deploy::manifests::{DeployInputs, environment_objects, example_environment};
use fm_deploy::deploy::metrics::PrometheusClient;
use fm_deploy::policy::model::{EnvironmentSpec, StrategyKind};
use fm_deploy::policy::model::{NoDataPolicy, RollbackSpec, TriggerSource, TriggerSpec};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::{Api, Client};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

pub const APP: &str = "web";
pub const SERVICE: &str = "web";
pub const V1: &str = "example/web:v1";
pub const V2: &str = "example/web:v2";

/// Which colour each image lands on in these scenarios (first release blue, the next green).
pub fn color_of(image: &str) -> &'static str {
    if image == V1 { "blue" } else { "green" }
}

pub struct Scenario {
    pub tb: Testbed,
    pub client: Client,
    pub ns: TestNamespace,
    pub book: AddressBook,
    pub kubelet: Kubelet,
    pub apps: BTreeMap<String, AppProcess>,
    pub prom: OwnPrometheus,
    pub live: TestRouter,
    pub blue: TestRouter,
    pub green: TestRouter,
    pub cluster: KubeColors,
    /// The release's identity: the ServiceAccount of `examples/deploy/rbac.yaml`.
    pub deploy: DeployIdentity,
    pub metrics: PrometheusClient,
}

impl Scenario {
    /// Everything up; `images` get an app process each (plus the ones the kubelet never serves).
    pub async fn start(prefix: &str, images: &[&str], canary: bool) -> anyhow::Result<Scenario> {
        Self::start_env(
            prefix,
            images,
            canary,
            |_| {},
            &DeployInputs::default(),
            None,
        )
        .await
    }

    /// [`Scenario::start`] with the environment's objects built from `example_environment`
    /// changed by `tweak` (namespace already set) and `inputs`; `server`, when given, is the
    /// apiserver the release talks to (a private one a fault test kills) while the harness
    /// (kubelet, routers, assertions) keeps the shared one.
    pub async fn start_env(
        prefix: &str,
        images: &[&str],
        canary: bool,
        tweak: impl FnOnce(&mut EnvironmentSpec),
        inputs: &DeployInputs,
        server: Option<&str>,
    ) -> anyhow::Result<Scenario> {
        let tb = Testbed::get()?;
        let client = tb.client().await?;
        let ns = TestNamespace::create(&tb, &client, prefix).await?;
        let book = AddressBook::default();
        let mut apps = BTreeMap::new();
        let mut targets = Vec::new();
        for image in images {
            let app = AppProcess::start(image, "127.0.0.2").await?;
            book.serve_image(image, app.addr);
            targets.push((
                app.addr,
                vec![("color".to_string(), color_of(image).to_string())],
            ));
            apps.insert(image.to_string(), app);
        }
        let kubelet = Kubelet::start(&client, &ns.name, book.clone()).await?;
        let prom = OwnPrometheus::start_labelled(&targets).await?;
        prom.wait_scraped(targets.len(), Duration::from_secs(30))
            .await?;
        let live = TestRouter::start(&client, &ns.name, SERVICE, book.clone()).await?;
        let blue =
            TestRouter::start(&client, &ns.name, &format!("{SERVICE}-blue"), book.clone()).await?;
        let green =
            TestRouter::start(&client, &ns.name, &format!("{SERVICE}-green"), book.clone()).await?;
        let spec = ColorsSpec {
            namespace: ns.name.clone(),
            app: APP.into(),
            port: 8080,
            service: SERVICE.into(),
            preview_service: format!("{SERVICE}-preview"),
            canary_ingress: canary.then(|| format!("{SERVICE}-canary")),
            ingress_host: canary.then(|| "web.example.test".to_string()),
        };
        // The release runs as the ServiceAccount of `examples/deploy/rbac.yaml`: exactly the
        // documented permissions, and the audit log separates its requests from the harness's.
        let deploy = DeployIdentity::create(&client, &tb.kubeconfig, &ns.name).await?;
        let deployer = deploy.client(server).await?;
        let mut env = example_environment("production", &ns.name, StrategyKind::BlueGreen);
        tweak(&mut env);
        let objects = environment_objects(&sample_app_spec(), &env, inputs)?;
        let cluster = KubeColors::new(deployer, spec, objects, "production");
        let metrics = PrometheusClient::new(&prom.url, Duration::from_secs(5))?;
        Ok(Scenario {
            tb,
            client,
            ns,
            book,
            kubelet,
            apps,
            prom,
            live,
            blue,
            green,
            cluster,
            deploy,
            metrics,
        })
    }

    pub fn app(&self, image: &str) -> &AppProcess {
        &self.apps[image]
    }

    /// A run configuration with short windows: monitor `monitor`, 1 s sampling, the given triggers.
    pub fn config(
        &self,
        monitor: Duration,
        on_no_data: NoDataPolicy,
        triggers: Vec<TriggerSpec>,
    ) -> BgRunConfig {
        let urls = ColorUrls::Fixed(
            [
                (Color::Blue, self.blue.url()),
                (Color::Green, self.green.url()),
            ]
            .into_iter()
            .collect(),
        );
        BgRunConfig {
            bg: BgConfig {
                replicas: 2,
                shift: ShiftKind::None,
                steps: vec![100],
                manual_promote: false,
                keep_failed: false,
                monitor,
                keep_previous: Duration::from_secs(86_400),
            },
            rollback: RollbackSpec {
                sample_every: Duration::from_secs(1),
                on_no_data,
                min_data: fm_deploy::policy::model::DEFAULT_MIN_DATA,
                on_inconclusive: fm_deploy::policy::model::InconclusivePolicy::Rollback,
                triggers,
            },
            shift_pause: Duration::from_secs(3),
            health_path: "/health".into(),
            endpoints: vec!["/api/solve".into()],
            health_deadline: Duration::from_secs(10),
            ready_deadline: Duration::from_secs(30),
            urls,
            holder: "run-1".into(),
            lease_ttl: Duration::from_secs(30),
            lease_wait: Duration::from_secs(10),
            run_deadline: Duration::from_secs(120),
            probes_per_sample: 4,
            progress_every: Duration::from_secs(1),
            check_run_id: None,
            deployment_id: None,
        }
    }

    /// The live Service's `version` selector (`None`: no Service, or no version key).
    pub async fn selector(&self) -> Option<String> {
        let svc = Api::<Service>::namespaced(self.client.clone(), &self.ns.name)
            .get_opt(SERVICE)
            .await
            .ok()??;
        svc.spec?.selector?.get("version").cloned()
    }

    /// (spec replicas, ready replicas) of `<app>-<color>`; (0, 0) when absent.
    pub async fn replicas(&self, color: &str) -> (i32, i32) {
        let d = Api::<Deployment>::namespaced(self.client.clone(), &self.ns.name)
            .get_opt(&format!("{APP}-{color}"))
            .await
            .ok()
            .flatten();
        let spec = d
            .as_ref()
            .and_then(|d| d.spec.as_ref())
            .and_then(|s| s.replicas)
            .unwrap_or(0);
        let ready = d
            .as_ref()
            .and_then(|d| d.status.as_ref())
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0);
        (spec, ready)
    }

    /// Waits (deadline 30 s) until the live router answers from `image`'s process only.
    pub async fn wait_live_on(&self, image: &str) -> anyhow::Result<()> {
        let want = self.app(image).addr;
        wait_until(
            Duration::from_secs(30),
            &format!("live router on {image}"),
            || {
                let b = self.live.backends();
                async move { (!b.is_empty() && b.iter().all(|a| *a == want)).then_some(()) }
            },
        )
        .await
    }

    /// Which app process answers `n` requests through the live router.
    pub async fn answered_by(&self, n: usize) -> anyhow::Result<Vec<(u16, Option<String>)>> {
        let http = reqwest::Client::builder().no_proxy().build()?;
        let mut out = Vec::new();
        for _ in 0..n {
            let r = http
                .get(format!("{}/api/solve", self.live.url()))
                .send()
                .await?;
            let backend = r
                .headers()
                .get("x-fm-backend")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            out.push((r.status().as_u16(), backend));
        }
        Ok(out)
    }

    pub async fn cleanup(self) -> anyhow::Result<()> {
        let Scenario {
            ns,
            kubelet,
            prom,
            apps,
            ..
        } = self;
        kubelet.stop().await;
        prom.stop().await;
        for (_, a) in apps {
            a.stop().await;
        }
        ns.cleanup().await
    }
}

/// Error-rate trigger over the colour's requests (window `w` seconds).
pub fn error_rate(above: f64, for_: u64, w: u64) -> TriggerSpec {
    prom_trigger(
        "error-rate",
        &format!(
            "(sum(rate(http_requests_total{{color=\"{{color}}\",path=\"/api/solve\",code=~\"5..\"}}[{w}s])) or vector(0)) / sum(rate(http_requests_total{{color=\"{{color}}\",path=\"/api/solve\"}}[{w}s]))"
        ),
        above,
        for_,
    )
}

pub fn latency_p95(above: f64, for_: u64, w: u64) -> TriggerSpec {
    prom_trigger(
        "latency-p95",
        &format!(
            "histogram_quantile(0.95, sum(rate(http_request_duration_seconds_bucket{{color=\"{{color}}\",path=\"/api/solve\"}}[{w}s])) by (le))"
        ),
        above,
        for_,
    )
}

/// Resident memory against a 100 MiB budget.
pub fn memory(above: f64, for_: u64) -> TriggerSpec {
    prom_trigger(
        "memory",
        "max(app_memory_used_bytes{color=\"{color}\"}) / 104857600",
        above,
        for_,
    )
}

pub fn health(above: f64, for_: u64) -> TriggerSpec {
    TriggerSpec {
        name: "health".into(),
        source: TriggerSource::Probe {
            path: "/health".into(),
        },
        above,
        for_: Duration::from_secs(for_),
    }
}

pub fn prom_trigger(name: &str, query: &str, above: f64, for_: u64) -> TriggerSpec {
    TriggerSpec {
        name: name.into(),
        source: TriggerSource::Prometheus {
            query: query.into(),
            query_window: None,
        },
        above,
        for_: Duration::from_secs(for_),
    }
}

/// One request of the load.
#[derive(Debug, Clone)]
pub struct Hit {
    pub sent: Instant,
    /// 0: the request itself failed (connection refused, timeout).
    pub status: u16,
    pub backend: Option<String>,
}

/// Steady load through a URL: `rps` requests per second, each on its own task.
pub struct Load {
    stop: watch::Sender<bool>,
    hits: Arc<Mutex<Vec<Hit>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    pub fn start(url: String, rps: u32) -> anyhow::Result<Load> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()?;
        let hits = Arc::new(Mutex::new(Vec::new()));
        let (stop, mut stopped) = watch::channel(false);
        let every = Duration::from_secs(1) / rps.max(1);
        let task = {
            let hits = hits.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                let mut inflight = Vec::new();
                loop {
                    tokio::select! {
                        _ = stopped.changed() => break,
                        _ = tick.tick() => {}
                    }
                    let (http, url, hits) = (http.clone(), url.clone(), hits.clone());
                    inflight.push(tokio::spawn(async move {
                        let sent = Instant::now();
                        let hit = match http.get(&url).send().await {
                            Ok(r) => Hit {
                                sent,
                                status: r.status().as_u16(),
                                backend: r
                                    .headers()
                                    .get("x-fm-backend")
                                    .and_then(|v| v.to_str().ok())
                                    .map(str::to_string),
                            },
                            Err(_) => Hit {
                                sent,
                                status: 0,
                                backend: None,
                            },
                        };
                        if let Ok(mut h) = hits.lock() {
                            h.push(hit);
                        }
                    }));
                    inflight.retain(|t| !t.is_finished());
                }
                for t in inflight {
                    let _ = t.await;
                }
            })
        };
        Ok(Load { stop, hits, task })
    }

    /// Stops sending, waits for requests in flight, returns every hit in send order.
    pub async fn finish(self) -> Vec<Hit> {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        let mut h = self.hits.lock().map(|h| h.clone()).unwrap_or_default();
        h.sort_by_key(|x| x.sent);
        h
    }
}

/// Requests that failed but were not answered by `faulty` (the version the scenario breaks on purpose).
pub fn unexplained_failures(hits: &[Hit], faulty: Option<SocketAddr>) -> Vec<Hit> {
    let faulty = faulty.map(|a| a.to_string());
    hits.iter()
        .filter(|h| !(200..300).contains(&h.status))
        .filter(|h| faulty.is_none() || h.backend != faulty)
        .cloned()
        .collect()
}
