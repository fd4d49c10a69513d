//! The direct (development) and rolling (staging) deploys: drives [`DeployMachine`] over the ports
//! ([`Cluster`], [`Prober`], [`PostDeployTests`]) under the environment's Lease, and records the
//! result on the cluster.
//!
//! Owns: the order of I/O for one deploy and turning adapter results into machine events. Must not
//! decide anything itself: every branch is the machine's or `next_step`'s.

use crate::deploy::cluster::{
    Applied, Cluster, ClusterError, DeployRecord, LeaseOptions, RolloutResult, StateRecord,
};
use crate::deploy::health::Prober;
use crate::deploy::manifests::{DeployInputs, environment_objects};
use crate::deploy::strategy::{Act, DeployKind, DeployMachine, DeployOutcome, Event, RolloutPlan};
use crate::policy::model::{AppSpec, EnvironmentSpec, StrategyKind};
use std::future::Future;
use std::time::Duration;

/// Result of one post-deploy test gate run against the deployed URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostDeployResult {
    Passed,
    Failed { reason: String },
}

/// Runs staging's post-deploy test gates (smoke, integration, performance, E2E). The gate runner
/// implements this: run gate `gate` of the policy with `DEPLOY_URL=deploy_url` in its environment and
/// `{deploy_url}` substituted in its argv; anything but a pass (findings, crash, timeout) is `Failed`.
pub trait PostDeployTests: Send + Sync {
    fn run_gate(
        &self,
        gate: &str,
        deploy_url: &str,
    ) -> impl Future<Output = PostDeployResult> + Send;
}

/// No post-deploy tests (direct deploys).
pub struct NoPostDeployTests;

impl PostDeployTests for NoPostDeployTests {
    async fn run_gate(&self, gate: &str, _deploy_url: &str) -> PostDeployResult {
        PostDeployResult::Failed {
            reason: format!("gate {gate} has no runner configured"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Build(#[from] crate::deploy::manifests::BuildError),
    #[error("deploy environment {environment}: strategy {strategy} is not direct or rolling")]
    WrongStrategy {
        environment: String,
        strategy: String,
    },
}

impl DeployError {
    /// Infrastructure or configuration: the run could not do its job.
    pub fn exit_code(&self) -> u8 {
        2
    }
}

/// Knobs with production defaults; tests shorten them.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    pub lease: LeaseOptions,
    /// Restarts of a new pod that count as a crash loop.
    pub crashloop_restarts: i32,
    /// Added to the environment's progress deadline for our own watch deadline, so the controller's
    /// `ProgressDeadlineExceeded` (with its message) normally arrives first.
    pub deadline_grace: Duration,
    /// Probe and test this URL instead of the environment's `url` (a port-forward, a test router).
    pub url_override: Option<String>,
}

impl Default for DeployOptions {
    fn default() -> Self {
        DeployOptions {
            lease: LeaseOptions::default(),
            crashloop_restarts: 3,
            deadline_grace: Duration::from_secs(15),
            url_override: None,
        }
    }
}

/// What the deploy did, for the check run, the job summary and the exit code.
#[derive(Debug, Clone)]
pub struct DeployReport {
    pub outcome: DeployOutcome,
    /// Human-readable steps in order (`applied ghcr.io/…:v2 (generation 4)`, …).
    pub steps: Vec<String>,
    /// When the watch saw the last rollout complete (benchmarks).
    pub ready_noticed: Option<std::time::Instant>,
    /// The state record after this deploy.
    pub record: StateRecord,
}

impl DeployReport {
    pub fn exit_code(&self) -> u8 {
        self.outcome.exit_code()
    }
}

/// The Lease name of an environment.
pub fn lease_name(env: &EnvironmentSpec) -> String {
    format!("fm-deploy-{}", env.name)
}

/// Development: apply, wait Ready, smoke test. No rollback.
pub async fn deploy_direct<C: Cluster, P: Prober>(
    cluster: &C,
    prober: &P,
    app: &AppSpec,
    env: &EnvironmentSpec,
    inputs: &DeployInputs,
    opts: &DeployOptions,
) -> Result<DeployReport, DeployError> {
    deploy(
        cluster,
        prober,
        &NoPostDeployTests,
        DeployKind::Direct,
        app,
        env,
        inputs,
        opts,
    )
    .await
}

/// Staging: apply, wait Ready, smoke test, post-deploy test gates; any failure rolls back to the
/// last successful image and waits for it to be Ready again.
pub async fn deploy_rolling<C: Cluster, P: Prober, T: PostDeployTests>(
    cluster: &C,
    prober: &P,
    tests: &T,
    app: &AppSpec,
    env: &EnvironmentSpec,
    inputs: &DeployInputs,
    opts: &DeployOptions,
) -> Result<DeployReport, DeployError> {
    deploy(
        cluster,
        prober,
        tests,
        DeployKind::Rolling,
        app,
        env,
        inputs,
        opts,
    )
    .await
}

/// Either strategy, chosen by the environment (blue-green is not handled here).
pub async fn deploy_environment<C: Cluster, P: Prober, T: PostDeployTests>(
    cluster: &C,
    prober: &P,
    tests: &T,
    app: &AppSpec,
    env: &EnvironmentSpec,
    inputs: &DeployInputs,
    opts: &DeployOptions,
) -> Result<DeployReport, DeployError> {
    let kind = match env.strategy {
        StrategyKind::Direct => DeployKind::Direct,
        StrategyKind::Rolling => DeployKind::Rolling,
        StrategyKind::BlueGreen => {
            return Err(DeployError::WrongStrategy {
                environment: env.name.clone(),
                strategy: "blue-green".into(),
            });
        }
    };
    deploy(cluster, prober, tests, kind, app, env, inputs, opts).await
}

#[expect(
    clippy::too_many_arguments,
    reason = "the three ports plus the deploy's inputs"
)]
async fn deploy<C: Cluster, P: Prober, T: PostDeployTests>(
    cluster: &C,
    prober: &P,
    tests: &T,
    kind: DeployKind,
    app: &AppSpec,
    env: &EnvironmentSpec,
    inputs: &DeployInputs,
    opts: &DeployOptions,
) -> Result<DeployReport, DeployError> {
    let holder = if inputs.run_id.is_empty() {
        format!("fm-deploy pid {}", std::process::id())
    } else {
        inputs.run_id.clone()
    };
    let lease = cluster
        .acquire_lease(&env.namespace, &lease_name(env), &holder, opts.lease)
        .await?;
    let result = deploy_locked(cluster, prober, tests, kind, app, env, inputs, opts).await;
    // Exclusivity was not kept: say so instead of reporting the outcome as ours alone.
    if let Some(loss) = lease.lost() {
        return Err(ClusterError::LeaseLost {
            namespace: lease.namespace.clone(),
            name: lease.name.clone(),
            loss,
        }
        .into());
    }
    // Release even after a failure; a release error only matters when the deploy itself succeeded.
    let released = cluster.release_lease(lease).await;
    let report = result?;
    released?;
    Ok(report)
}

#[expect(
    clippy::too_many_arguments,
    reason = "the three ports plus the deploy's inputs"
)]
async fn deploy_locked<C: Cluster, P: Prober, T: PostDeployTests>(
    cluster: &C,
    prober: &P,
    tests: &T,
    kind: DeployKind,
    app: &AppSpec,
    env: &EnvironmentSpec,
    inputs: &DeployInputs,
    opts: &DeployOptions,
) -> Result<DeployReport, DeployError> {
    let record = cluster.read_record(&env.namespace, &app.name).await?;
    let previous = match record.current.as_ref().map(|c| c.image.clone()) {
        Some(p) => Some(p),
        None => cluster.current_image(&env.namespace, &app.name).await?,
    };
    let mut machine = DeployMachine::new(
        kind,
        &inputs.image,
        previous.as_deref(),
        !env.post_deploy.is_empty(),
    );
    let plan = RolloutPlan {
        progress_deadline: env.progress_deadline,
        deadline: env.progress_deadline + opts.deadline_grace,
        crashloop_restarts: opts.crashloop_restarts,
    };
    let url = opts.url_override.clone().unwrap_or_else(|| env.url.clone());
    let mut steps = Vec::new();
    let mut ready_noticed = None;
    let mut applied: Option<Applied> = None;
    let mut rolling_back = false;
    let mut act = machine.start();
    let outcome = loop {
        let event = match act {
            Act::Apply { image } | Act::RollBack { image } => {
                let objs = environment_objects(
                    app,
                    env,
                    &DeployInputs {
                        image: image.clone(),
                        ..inputs.clone()
                    },
                )?;
                match cluster.apply_environment(&objs).await {
                    Ok(a) => {
                        steps.push(format!(
                            "applied {image} to {}/{} (generation {})",
                            a.namespace, a.name, a.generation
                        ));
                        applied = Some(a);
                        Event::Applied
                    }
                    Err(e) if rolling_back => Event::RollbackFailed(format!("{e}")),
                    Err(e) => return Err(e.into()),
                }
            }
            Act::WaitReady => {
                let Some(a) = applied.as_ref() else {
                    break DeployOutcome::Failed {
                        image: inputs.image.clone(),
                        stage: crate::deploy::strategy::Stage::Rollout,
                        reason: "wait for readiness: nothing was applied".into(),
                    };
                };
                match cluster.wait_rollout(a, &plan).await {
                    Ok(RolloutResult::Complete { summary, noticed }) => {
                        ready_noticed = Some(noticed);
                        steps.push(format!("{} ready: {}", a.image, summary.counts()));
                        Event::Ready
                    }
                    Ok(RolloutResult::Failed(f)) => {
                        steps.push(format!("{} failed: {f}", a.image));
                        Event::RolloutFailed(f.to_string())
                    }
                    Err(e) if rolling_back => Event::RollbackFailed(format!("{e}")),
                    Err(e) => return Err(e.into()),
                }
            }
            Act::Smoke => {
                let mut paths = vec![app.health_path.clone()];
                for p in env.smoke.endpoints.iter().chain(app.endpoints.iter()) {
                    if !paths.contains(p) {
                        paths.push(p.clone());
                    }
                }
                match prober.smoke(&url, &paths, env.smoke.deadline).await {
                    Ok(()) => {
                        steps.push(format!("smoke test passed at {url} ({})", paths.join(", ")));
                        Event::SmokePassed
                    }
                    Err(e) => {
                        steps.push(format!("smoke test failed: {e}"));
                        Event::SmokeFailed(format!("{e}"))
                    }
                }
            }
            Act::RunPostDeploy => {
                let mut failed = None;
                for gate in &env.post_deploy {
                    match tests.run_gate(gate, &url).await {
                        PostDeployResult::Passed => {
                            steps.push(format!("post-deploy gate {gate} passed"))
                        }
                        PostDeployResult::Failed { reason } => {
                            steps.push(format!("post-deploy gate {gate} failed: {reason}"));
                            failed = Some(format!("pass post-deploy gate {gate}: {reason}"));
                            break;
                        }
                    }
                }
                match failed {
                    None => Event::PostDeployPassed,
                    Some(r) => Event::PostDeployFailed(r),
                }
            }
            Act::Finish(outcome) => break outcome,
        };
        act = machine.on(event);
        rolling_back = matches!(act, Act::RollBack { .. }) || rolling_back;
    };
    steps.push(outcome.summary());
    let (outcome_word, strategy) = (
        match &outcome {
            DeployOutcome::Deployed { .. } => "deployed",
            DeployOutcome::Failed { .. } => "failed",
            DeployOutcome::RolledBack { .. } => "rolled-back",
            DeployOutcome::RollbackFailed { .. } => "rollback-failed",
        },
        match kind {
            DeployKind::Direct => "direct",
            DeployKind::Rolling => "rolling",
        },
    );
    let record = cluster
        .write_record(
            &env.namespace,
            &app.name,
            DeployRecord {
                image: inputs.image.clone(),
                run_id: inputs.run_id.clone(),
                sha: inputs.sha.clone(),
                strategy: strategy.into(),
                outcome: outcome_word.into(),
                at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            },
        )
        .await?;
    Ok(DeployReport {
        outcome,
        steps,
        ready_noticed,
        record,
    })
}
