//! The validated policy: what every later stage reads. Built only by `policy::load`.
//!
//! Owns: the domain types of the policy file (branches, tiers, gates, matrices, environments,
//! rollback triggers). Must not touch: YAML, files, the environment. Durations and ratios are
//! already parsed here; names are already cross-checked (every gate a tier names exists, …).

use crate::gates::finding::Severity;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// A fraction in `[0, ∞)`: `0.1%` in the file is `Ratio(0.001)` here.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize)]
pub struct Ratio(pub f64);

impl std::fmt::Display for Ratio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pct = self.0 * 100.0;
        if (pct - pct.round()).abs() < 1e-9 {
            write!(f, "{}%", pct.round())
        } else {
            write!(f, "{}%", (pct * 1000.0).round() / 1000.0)
        }
    }
}

/// `90s` → `1m 30s`, `86400s` → `24h`: humantime's format, but never in days (the policy file
/// and the guide speak in hours).
pub fn fmt_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if d.subsec_nanos() == 0 && secs >= 86_400 && secs.is_multiple_of(3600) {
        return format!("{}h", secs / 3600);
    }
    humantime::format_duration(d).to_string()
}

/// Serializes a `Duration` as humantime text (`"5m"`), the way the policy file writes it.
pub mod duration_text {
    use serde::Serializer;
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::fmt_duration(*d))
    }

    pub mod option {
        use serde::Serializer;
        use std::time::Duration;

        pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => s.serialize_str(&super::super::fmt_duration(*d)),
                None => s.serialize_none(),
            }
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Policy {
    /// The file this came from, for messages.
    pub source: PathBuf,
    pub app: AppSpec,
    /// In file order: the first rule whose pattern matches the branch wins.
    pub branches: Vec<BranchRule>,
    pub tiers: BTreeMap<String, TierSpec>,
    pub gates: BTreeMap<String, GateSpec>,
    pub matrices: BTreeMap<String, MatrixSpec>,
    pub environments: BTreeMap<String, EnvironmentSpec>,
    pub overrides: Option<OverrideSpec>,
    pub notify: NotifySpec,
    pub runner: RunnerSpec,
    /// argv run once before the gates into the project's own virtualenv (`pip install -r
    /// requirements.txt`); empty: none. See `gates::project_env`.
    pub install: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AppSpec {
    pub name: String,
    /// Image repository without tag, e.g. `ghcr.io/org/fm-llm-solver`.
    pub image: String,
    pub port: u16,
    pub health_path: String,
    /// Endpoints validated after every deploy (smoke test), relative to the environment URL.
    pub endpoints: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BranchRule {
    /// The glob as written (`main`, `hotfix/*`).
    pub pattern: String,
    /// Deploy target; `None` means gates only.
    pub environment: Option<String>,
    pub tier: String,
    /// Required approving reviews on pull requests into this branch.
    pub reviews: u32,
    pub signed_commits: bool,
    /// Emergency path (hotfix): may deploy to production without passing through staging.
    pub emergency: bool,
    pub allow_force_pushes: bool,
    /// Check names branch protection requires in addition to the tier's gates.
    pub required_checks: Vec<String>,
    /// Teams or users allowed to push (empty: no restriction).
    pub restrict_pushes: Vec<String>,
    /// Which findings count on pull requests into or from this branch (`diff`; `None`: not set).
    /// See [`Policy::pull_request_scope`].
    pub diff_scope: Option<DiffScope>,
}

impl BranchRule {
    /// The pattern names one branch (no glob): classic branch protection, which `setup` writes,
    /// applies to it.
    pub fn is_literal(&self) -> bool {
        !self.pattern.contains(['*', '?', '[', '{'])
    }
}

/// On pull requests: which findings count against the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiffScope {
    /// Every finding, pre-existing ones included.
    All,
    /// Findings in files the PR changed.
    ChangedFiles,
    /// Findings on lines the PR added or changed.
    NewInDiff,
}

#[derive(Debug, Clone, Serialize)]
pub struct TierSpec {
    pub name: String,
    /// Resolved through `extends`, in order, without duplicates.
    pub gates: Vec<String>,
    pub matrix: Option<String>,
    /// Coverage minimum applied to every coverage-reporting gate of this tier.
    pub coverage_min: Option<Ratio>,
}

/// What the verdict does with findings of a given severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Ignore,
    Warn,
    NeedsApproval,
    Block,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ParserKind {
    Black,
    Flake8,
    Flake8Json,
    Mypy,
    MypyJson,
    Bandit,
    DetectSecrets,
    PipLicenses,
    PipAudit,
    Safety,
    Trivy,
    Gitleaks,
    Sarif,
    Junit,
    Cobertura,
    K6,
    Perf,
    /// No output to parse: exit 0 passes, anything else fails (smoke scripts).
    ExitCode,
}

/// When a gate runs: before any deploy, or against the deployed URL (staging's post-deploy tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GatePhase {
    PreDeploy,
    PostDeploy,
}

#[derive(Debug, Clone, Serialize)]
pub struct GateSpec {
    pub name: String,
    /// argv; never through a shell. `{deploy_url}`, `{image}` and `{out}` (the gate's own
    /// temporary folder) are the only substitutions, each inside one argument. Empty: a
    /// report-only gate, reading the files the matrix jobs uploaded (see `policy::gate_io`).
    pub run: Vec<String>,
    pub parser: ParserKind,
    /// Read this file instead of stdout: relative to the workspace, or `{out}/…`. In a
    /// report-only gate it may hold one `*`, matching each matrix cell's folder.
    pub report: Option<PathBuf>,
    #[serde(with = "duration_text")]
    pub timeout: Duration,
    pub phase: GatePhase,
    /// Action per severity; severities absent here use the built-in default table.
    pub severity: BTreeMap<Severity, Action>,
    /// Block when more than this many findings count (e.g. `0` for "zero lint errors").
    pub block_over: Option<u32>,
    /// Cobertura XML written by this gate's run (or, with one `*`, uploaded by each matrix cell and
    /// merged), checked against the tier / environment minimum.
    pub coverage: Option<PathBuf>,
    /// Minimum coverage for this gate; a tier's or environment's minimum overrides when higher.
    pub coverage_min: Option<Ratio>,
    pub budgets: Option<PerfBudgets>,
    pub licenses: Option<LicensePolicy>,
    /// Extra environment variables for the tool (values are literal, never secrets).
    pub env: BTreeMap<String, String>,
    /// Working directory relative to the workspace.
    pub working_dir: Option<PathBuf>,
    /// Most annotations this gate posts; the rest are counted in the summary.
    pub annotation_budget: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct PerfBudgets {
    #[serde(with = "duration_text::option")]
    pub page_load: Option<Duration>,
    #[serde(with = "duration_text::option")]
    pub api: Option<Duration>,
    #[serde(with = "duration_text::option")]
    pub certificate_generation: Option<Duration>,
    pub error_rate: Option<Ratio>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LicensePolicy {
    /// SPDX ids or names that block (case-insensitive).
    pub deny: Vec<String>,
    /// When non-empty, anything not listed needs approval.
    pub allow: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MatrixSpec {
    pub name: String,
    pub os: Vec<String>,
    pub python: Vec<String>,
    pub services: Vec<String>,
    /// GitHub's `include` / `exclude` entries, passed through as objects of strings.
    pub include: Vec<BTreeMap<String, String>>,
    pub exclude: Vec<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StrategyKind {
    Direct,
    Rolling,
    BlueGreen,
}

#[derive(Debug, Clone, Serialize)]
pub struct EnvironmentSpec {
    pub name: String,
    pub namespace: String,
    pub url: String,
    pub strategy: StrategyKind,
    pub replicas: u32,
    pub resources: Resources,
    /// Everything else the pod template carries (probes, security, pull secrets, drain, patches).
    pub workload: WorkloadSpec,
    pub autoscaling: Option<Autoscaling>,
    #[serde(with = "duration_text")]
    pub progress_deadline: Duration,
    pub pre_deploy: PreDeploy,
    pub protection: Protection,
    pub smoke: SmokeSpec,
    /// Gates run against the deployed URL after a deploy (staging); failure rolls back.
    pub post_deploy: Vec<String>,
    pub coverage_min: Option<Ratio>,
    /// Key of the app's Secret `<app>-secrets` (`DATABASE_URL`, …) → name of the secret input
    /// that fills it (`database-url`). Keys are environment variable names (pods read the Secret
    /// with `envFrom`); the loader turns `database-url` into `DATABASE_URL`.
    pub secrets: BTreeMap<String, String>,
    pub tls_secret: Option<String>,
    pub blue_green: Option<BlueGreenSpec>,
    pub rollback: RollbackSpec,
}

/// Requests and limits of the app container. The shorthand `resources: {cpu, memory}` means
/// requests = limits (Guaranteed QoS).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resources {
    pub requests: Quantities,
    pub limits: Quantities,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Quantities {
    /// Kubernetes quantities as written (`"8"`, `16Gi`), validated for shape.
    pub cpu: String,
    pub memory: String,
}

impl Resources {
    /// requests = limits.
    pub fn same(cpu: &str, memory: &str) -> Resources {
        let q = Quantities {
            cpu: cpu.into(),
            memory: memory.into(),
        };
        Resources {
            requests: q.clone(),
            limits: q,
        }
    }
}

/// An HTTP probe on the app port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeSpec {
    pub path: String,
    #[serde(with = "duration_text")]
    pub period: Duration,
    pub failure_threshold: u32,
    #[serde(with = "duration_text")]
    pub initial_delay: Duration,
}

/// The pod's and container's `securityContext`; the defaults are Pod Security `restricted`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecuritySpec {
    pub run_as_non_root: bool,
    pub run_as_user: Option<i64>,
    pub allow_privilege_escalation: bool,
    pub read_only_root_filesystem: bool,
    /// Drop every Linux capability.
    pub drop_all_capabilities: bool,
    /// `seccompProfile: RuntimeDefault` (else none is set).
    pub seccomp_runtime_default: bool,
}

impl Default for SecuritySpec {
    fn default() -> Self {
        SecuritySpec {
            run_as_non_root: true,
            run_as_user: None,
            allow_privilege_escalation: false,
            read_only_root_filesystem: false,
            drop_all_capabilities: true,
            seccomp_runtime_default: true,
        }
    }
}

/// How a user patch changes a generated object.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "type", content = "patch")]
pub enum PatchKind {
    /// RFC 6902 operations.
    Json(serde_json::Value),
    /// RFC 7386 merge patch: maps merge, lists replace, `null` deletes.
    Merge(serde_json::Value),
    /// Merge patch, except that the lists `containers`, `initContainers`, `env`, `volumes`,
    /// `volumeMounts`, `ports` and `imagePullSecrets` merge item by item on `name`.
    Strategic(serde_json::Value),
}

/// A patch on the generated objects of `kind` (and `name`, when given), applied after the
/// generator and before anything is sent, for every strategy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PatchSpec {
    pub kind: String,
    pub name: Option<String>,
    pub patch: PatchKind,
    /// Where it was written (`file:line:col`), for messages.
    pub at: String,
}

/// What the pod template carries besides image, port and resources.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkloadSpec {
    pub liveness: Option<ProbeSpec>,
    pub startup: Option<ProbeSpec>,
    pub security: SecuritySpec,
    pub image_pull_secrets: Vec<String>,
    pub service_account: Option<String>,
    /// Where the `tls_secret` is mounted (read-only).
    pub tls_mount: String,
    /// `preStop` sleep so endpoints are removed before the process stops; zero: no hook.
    #[serde(with = "duration_text")]
    pub pre_stop: Duration,
    #[serde(with = "duration_text")]
    pub termination_grace: Duration,
    /// Apply the Namespace (with Pod Security labels); otherwise it must exist.
    pub create_namespace: bool,
    pub patches: Vec<PatchSpec>,
}

impl Default for WorkloadSpec {
    fn default() -> Self {
        WorkloadSpec {
            liveness: None,
            startup: None,
            security: SecuritySpec::default(),
            image_pull_secrets: Vec::new(),
            service_account: None,
            tls_mount: "/etc/tls".into(),
            pre_stop: Duration::from_secs(5),
            termination_grace: Duration::from_secs(30),
            create_namespace: false,
            patches: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Autoscaling {
    pub min: u32,
    pub max: u32,
    pub cpu_target_percent: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct PreDeploy {
    /// Every check run and status on the SHA succeeded (except this run's own).
    pub checks_green: bool,
    /// Environments whose `/health` must answer before deploying here.
    pub healthy: Vec<String>,
    /// An open issue with this label blocks the deploy.
    pub incident_label: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Protection {
    pub reviewers: Vec<String>,
    #[serde(with = "duration_text")]
    pub wait_timer: Duration,
    pub protected_branches_only: bool,
    pub prevent_self_review: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct SmokeSpec {
    /// Paths probed at the environment URL; `app.health_path` is always first.
    pub endpoints: Vec<String>,
    #[serde(with = "duration_text")]
    pub deadline: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct BlueGreenSpec {
    /// The Service whose `version` selector picks the live colour.
    pub service: String,
    /// Service that always selects the idle colour, for checks before the switch.
    pub preview_service: Option<String>,
    /// URL that reaches the idle colour (`{color}` substituted). Without it the idle colour is
    /// reached through the apiserver's service proxy to its own Service.
    pub preview_url: Option<String>,
    pub shift: ShiftSpec,
    #[serde(with = "duration_text")]
    pub monitor: Duration,
    #[serde(with = "duration_text")]
    pub keep_previous: Duration,
    /// Pause before the switch until a `promote` run continues.
    pub manual_promote: bool,
    /// Keep a rolled-back colour running (scaled) for debugging instead of scaling it to 0.
    pub keep_failed: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ShiftSpec {
    pub mode: ShiftMode,
    /// Percent of traffic on the new colour at each step; the last is always 100.
    pub steps: Vec<u8>,
    /// How long each step is held while triggers are evaluated.
    #[serde(with = "duration_text")]
    pub pause: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum ShiftMode {
    /// No router: only the final selector switch.
    None,
    /// NGINX ingress canary: a second Ingress with `canary-weight` per step.
    NginxCanary { ingress: String },
    /// Both colours behind a shared selector, replicas in proportion to the step.
    ReplicaRatio,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NoDataPolicy {
    /// A gap neither starts nor breaks a window: the last known state holds.
    Hold,
    /// A gap counts as the condition holding (fail closed).
    Fail,
    /// A gap counts as healthy and breaks the window.
    Pass,
}

/// What a window without enough data to judge leads to (never a pass).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InconclusivePolicy {
    /// Traffic back on the previous colour, as if a trigger fired.
    Rollback,
    /// Traffic stays; the release waits for `promote` (accept) or `rollback`.
    Pause,
}

/// Share of samples that must carry data when none is configured.
pub const DEFAULT_MIN_DATA: Ratio = Ratio(0.8);

#[derive(Debug, Clone, Serialize)]
pub struct RollbackSpec {
    #[serde(with = "duration_text")]
    pub sample_every: Duration,
    pub on_no_data: NoDataPolicy,
    /// Each trigger needs data in at least this share of a window's samples, or the window is
    /// inconclusive.
    pub min_data: Ratio,
    pub on_inconclusive: InconclusivePolicy,
    pub triggers: Vec<TriggerSpec>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TriggerSpec {
    pub name: String,
    pub source: TriggerSource,
    /// Fires when the value is strictly above this threshold for the whole window.
    pub above: f64,
    #[serde(rename = "for", with = "duration_text")]
    pub for_: Duration,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum TriggerSource {
    /// An instant PromQL query; `{color}` is replaced by the colour under watch.
    Prometheus {
        query: String,
        /// The range the query looks back over (e.g. `[1m]` in `rate(...[1m])`), for the
        /// worst-case detection time; read from the query when not given.
        #[serde(with = "duration_text::option")]
        query_window: Option<Duration>,
    },
    /// HTTP probes of `path` on every pod of the colour; the value is the failing fraction.
    Probe { path: String },
}

#[derive(Debug, Clone, Serialize)]
pub struct OverrideSpec {
    /// A PR label that approves needs-approval findings when added by one of `approvers`.
    pub label: Option<String>,
    /// Users or `org/team` slugs.
    pub approvers: Vec<String>,
    /// YAML file of exceptions (fingerprint, reason, approver, expires), relative to the workspace.
    pub exceptions_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct NotifySpec {
    /// Names of the inputs / environment variables holding the secrets (never the secrets).
    pub slack_webhook: Option<String>,
    pub datadog_api_key: Option<String>,
    pub sentry_dsn: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunnerSpec {
    /// Gates run at once; `0` in the file means the machine's CPU count.
    pub parallelism: usize,
    #[serde(with = "duration_text")]
    pub default_timeout: Duration,
    /// Most bytes read from a tool's stdout or stderr; the cut is recorded.
    pub output_cap: u64,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Ignore => "ignore",
            Action::Warn => "warn",
            Action::NeedsApproval => "needs-approval",
            Action::Block => "block",
        }
    }
}

impl GateSpec {
    /// What a finding of `severity` does in this gate: the gate's own table, else the house
    /// default (critical blocks, high needs approval, medium warns, low and info are ignored).
    pub fn action_for(&self, severity: Severity) -> Action {
        if let Some(a) = self.severity.get(&severity) {
            return *a;
        }
        match severity {
            Severity::Critical => Action::Block,
            Severity::High => Action::NeedsApproval,
            Severity::Medium => Action::Warn,
            Severity::Low | Severity::Info => Action::Ignore,
        }
    }
}

impl Policy {
    /// The first branch rule whose glob matches `branch`.
    pub fn branch_rule(&self, branch: &str) -> Option<&BranchRule> {
        self.branches
            .iter()
            .find(|r| glob_matches(&r.pattern, branch))
    }

    /// Which findings count on a pull request from `head` into `base`: the base rule's `diff` when
    /// it sets one (the branch being protected decides), else the head rule's (`diff` on
    /// `feature/*` is written for the pull requests feature branches open), else every finding.
    pub fn pull_request_scope(&self, base: &str, head: &str) -> DiffScope {
        [base, head]
            .iter()
            .find_map(|b| self.branch_rule(b).and_then(|r| r.diff_scope))
            .unwrap_or(DiffScope::All)
    }
}

/// Branch globs as GitHub writes them: `*` does not cross `/`, `**` does.
pub fn glob_matches(pattern: &str, branch: &str) -> bool {
    match globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
    {
        Ok(g) => g.compile_matcher().is_match(branch),
        Err(_) => false,
    }
}
