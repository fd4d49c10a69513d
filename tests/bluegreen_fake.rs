//! The blue-green driver against a scripted cluster and metrics source: the exact cluster calls of
//! a release, a rollback and a failure, in order. (The same flows run against the real testbed in
//! `bluegreen_e2e.rs`; this pins the call sequence — e.g. the switch is one request carrying the
//! state record.)

use axum::Router;
use axum::routing::get;
use fm_deploy::deploy::bluegreen::{BgConfig, BgState, Color, Outcome, ShiftKind};
use fm_deploy::deploy::bluegreen_run::{
    BgRunConfig, ColorUrls, NoProgress, RunEnd, deploy_blue_green,
};
use fm_deploy::deploy::colors::{BgCluster, ClusterError, Selector};
use fm_deploy::deploy::metrics::{MetricsError, MetricsSource};
use fm_deploy::policy::model::{NoDataPolicy, RollbackSpec, TriggerSource, TriggerSpec};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::watch;

#[derive(Default)]
struct FakeCluster {
    state: Mutex<BgState>,
    calls: Mutex<Vec<String>>,
    never_ready: bool,
}

impl FakeCluster {
    fn log(&self, s: String) {
        if let Ok(mut c) = self.calls.lock() {
            c.push(s);
        }
    }
    fn calls(&self) -> Vec<String> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

impl BgCluster for FakeCluster {
    async fn read_state(&self) -> Result<BgState, ClusterError> {
        self.log("read_state".into());
        Ok(self.state.lock().map(|s| s.clone()).unwrap_or_default())
    }
    async fn write_state(&self, state: &BgState) -> Result<(), ClusterError> {
        self.log(format!("write_state {:?}", state.phase));
        if let Ok(mut s) = self.state.lock() {
            *s = state.clone();
        }
        Ok(())
    }
    async fn apply_color(
        &self,
        color: Color,
        image: &str,
        replicas: u32,
    ) -> Result<(), ClusterError> {
        self.log(format!("apply {color} {image} x{replicas}"));
        Ok(())
    }
    async fn wait_ready(&self, color: Color, deadline: Duration) -> Result<(), ClusterError> {
        self.log(format!("wait_ready {color}"));
        if self.never_ready {
            return Err(ClusterError::NotReady {
                namespace: "ns".into(),
                name: format!("web-{color}"),
                deadline,
                detail: "updated 0/available 0/ready 0".into(),
            });
        }
        Ok(())
    }
    async fn scale(&self, color: Color, replicas: u32) -> Result<(), ClusterError> {
        self.log(format!("scale {color} {replicas}"));
        Ok(())
    }
    async fn switch(&self, selector: Selector, state: &BgState) -> Result<(), ClusterError> {
        self.log(format!("switch {selector:?} with state {:?}", state.phase));
        if let Ok(mut s) = self.state.lock() {
            *s = state.clone();
        }
        Ok(())
    }
    async fn preview(&self, color: Color) -> Result<(), ClusterError> {
        self.log(format!("preview {color}"));
        Ok(())
    }
    async fn canary_weight(&self, weight: u8) -> Result<(), ClusterError> {
        self.log(format!("canary {weight}"));
        Ok(())
    }
    async fn proxy_get(
        &self,
        service: &str,
        path: &str,
        _timeout: std::time::Duration,
    ) -> Result<u16, String> {
        self.log(format!("proxy {service}{path}"));
        Err("the fake cluster has no service proxy".into())
    }
    async fn acquire_lease(
        &self,
        holder: &str,
        _: Duration,
        _: Duration,
    ) -> Result<(), ClusterError> {
        self.log(format!("lease {holder}"));
        Ok(())
    }
    async fn renew_lease(&self, _: &str) -> Result<(), ClusterError> {
        Ok(())
    }
    async fn release_lease(&self, holder: &str) -> Result<(), ClusterError> {
        self.log(format!("release {holder}"));
        Ok(())
    }
}

/// Answers every query with the same value.
struct FixedMetrics(Option<f64>);

impl MetricsSource for FixedMetrics {
    async fn instant(&self, _: &str) -> Result<Option<f64>, MetricsError> {
        Ok(self.0)
    }
}

fn never_cancel() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    std::mem::forget(tx);
    rx
}

async fn health_server() -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = Router::new().route("/health", get(|| async { "ok" }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://{addr}"))
}

fn config(url: String) -> BgRunConfig {
    BgRunConfig {
        bg: BgConfig {
            replicas: 3,
            shift: ShiftKind::None,
            steps: vec![100],
            manual_promote: false,
            keep_failed: false,
            monitor: Duration::from_secs(2),
            keep_previous: Duration::from_secs(86_400),
        },
        rollback: RollbackSpec {
            sample_every: Duration::from_millis(200),
            on_no_data: NoDataPolicy::Hold,
            min_data: fm_deploy::policy::model::DEFAULT_MIN_DATA,
            on_inconclusive: fm_deploy::policy::model::InconclusivePolicy::Rollback,
            triggers: vec![TriggerSpec {
                name: "error-rate".into(),
                source: TriggerSource::Prometheus {
                    query: "x{color=\"{color}\"}".into(),
                    query_window: None,
                },
                above: 0.01,
                for_: Duration::from_millis(400),
            }],
        },
        shift_pause: Duration::from_secs(1),
        health_path: "/health".into(),
        endpoints: vec![],
        health_deadline: Duration::from_secs(2),
        ready_deadline: Duration::from_secs(5),
        urls: ColorUrls::Template(url),
        holder: "run-7".into(),
        lease_ttl: Duration::from_secs(30),
        lease_wait: Duration::from_secs(1),
        run_deadline: Duration::from_secs(60),
        probes_per_sample: 1,
        progress_every: Duration::from_secs(10),
        check_run_id: Some(41),
        deployment_id: Some(42),
    }
}

fn blue_live() -> BgState {
    BgState {
        active: Some(Color::Blue),
        phase: fm_deploy::deploy::bluegreen::Phase::Succeeded,
        image: Some("web:v1".into()),
        active_image: Some("web:v1".into()),
        ..BgState::default()
    }
}

/// Protects the call sequence of a passing release: Lease, apply + preview + watch, one switch
/// request carrying the record, success recorded, Lease released.
#[tokio::test]
async fn passing_release_calls() -> anyhow::Result<()> {
    let cluster = FakeCluster {
        state: Mutex::new(blue_live()),
        ..FakeCluster::default()
    };
    let cfg = config(health_server().await?);
    let r = deploy_blue_green(
        &cluster,
        &FixedMetrics(Some(0.0)),
        &NoProgress,
        &cfg,
        "web:v2",
        never_cancel(),
    )
    .await?;
    assert_eq!(r.end, RunEnd::Finished(Outcome::Succeeded));
    assert_eq!(
        (r.state.check_run_id, r.state.deployment_id),
        (Some(41), Some(42))
    );
    assert_eq!(
        cluster.calls(),
        vec![
            "lease run-7",
            "read_state",
            "write_state Deploying",
            "apply green web:v2 x3",
            "preview green",
            "wait_ready green",
            "write_state Checking",
            "switch Only(Green) with state Monitoring",
            "write_state Succeeded",
            "release run-7",
        ]
    );
    Ok(())
}

/// Protects the rollback sequence: the selector goes back (with the record) before green is scaled down.
#[tokio::test]
async fn rollback_calls() -> anyhow::Result<()> {
    let cluster = FakeCluster {
        state: Mutex::new(blue_live()),
        ..FakeCluster::default()
    };
    let cfg = config(health_server().await?);
    let r = deploy_blue_green(
        &cluster,
        &FixedMetrics(Some(0.5)),
        &NoProgress,
        &cfg,
        "web:v2",
        never_cancel(),
    )
    .await?;
    assert_eq!(
        r.end,
        RunEnd::Finished(Outcome::RolledBack {
            trigger: "error-rate".into()
        })
    );
    let calls = cluster.calls();
    let tail: Vec<&str> = calls
        .iter()
        .rev()
        .take(4)
        .rev()
        .map(String::as_str)
        .collect();
    assert_eq!(
        tail,
        vec![
            "switch Only(Green) with state Monitoring",
            "switch Only(Blue) with state RolledBack",
            "scale green 0",
            "release run-7",
        ]
    );
    Ok(())
}

/// Protects the failure path: never Ready → green scaled to 0, the selector never touched.
#[tokio::test]
async fn never_ready_calls() -> anyhow::Result<()> {
    let cluster = FakeCluster {
        state: Mutex::new(blue_live()),
        never_ready: true,
        ..FakeCluster::default()
    };
    let cfg = config(health_server().await?);
    let r = deploy_blue_green(
        &cluster,
        &FixedMetrics(Some(0.0)),
        &NoProgress,
        &cfg,
        "web:v2",
        never_cancel(),
    )
    .await?;
    assert!(
        matches!(r.end, RunEnd::Finished(Outcome::Failed { .. })),
        "{:?}",
        r.end
    );
    let calls = cluster.calls();
    assert!(!calls.iter().any(|c| c.starts_with("switch")), "{calls:?}");
    assert!(calls.iter().any(|c| c == "scale green 0"), "{calls:?}");
    Ok(())
}
