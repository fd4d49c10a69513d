//! Shared helpers for the gates integration tests: a policy built in code (the YAML loader is
//! tested elsewhere), temp copies of the sample projects as git repositories, and fakes.

#![allow(
    dead_code,
    reason = "each test binary uses a different subset of these helpers"
)]
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers fail loudly"
)]

use fm_deploy::gates::run::{ApprovalError, LabelApprovals};
use fm_deploy::policy::model::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The pinned Python tools' bin dir: `FM_PYTOOLS_BIN` when the test command already installed
/// them (scripts/test.sh does), else installs them now (idempotent, fast when present).
pub fn python_tools() -> PathBuf {
    if let Some(bin) = std::env::var_os("FM_PYTOOLS_BIN").map(PathBuf::from)
        && bin.join("flake8").is_file()
    {
        return bin;
    }
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/install-python-tools.sh"))
        .output()
        .expect("run scripts/install-python-tools.sh");
    assert!(
        out.status.success(),
        "install-python-tools.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    PathBuf::from(
        stdout
            .lines()
            .last()
            .expect("the script prints the bin dir")
            .trim(),
    )
}

/// PATH with the tools venv first.
pub fn path_with(bin: &Path) -> String {
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// `git` in `dir` with a fixed identity (no signing, `main` as the default branch), asserting
/// success; returns stdout, trimmed. The one git helper of the tests.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let st = Command::new("git")
        .args([
            "-c",
            "user.name=fm-deploy-test",
            "-c",
            "user.email=test@example.invalid",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run git");
    assert!(
        st.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&st.stderr)
    );
    String::from_utf8_lossy(&st.stdout).trim().to_string()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if name == "__pycache__"
            || name == ".pytest_cache"
            || name == ".mypy_cache"
            || name == "reports"
        {
            continue;
        }
        let dst = to.join(&name);
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), &dst).unwrap();
        }
    }
}

/// A temp copy of `examples/<name>` committed into a fresh git repository (detect-secrets scans
/// tracked files only).
pub fn project(name: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&repo_root().join("examples").join(name), tmp.path());
    git(tmp.path(), &["init", "-q"]);
    git(tmp.path(), &["add", "-A"]);
    git(tmp.path(), &["commit", "-q", "-m", "initial"]);
    tmp
}

/// Appends a line to a file and commits it (a pull request's change).
pub fn commit_change(dir: &Path, file: &str, line: &str) {
    let p = dir.join(file);
    let mut s = std::fs::read_to_string(&p).unwrap();
    s.push_str(line);
    s.push('\n');
    std::fs::write(&p, s).unwrap();
    git(dir, &["commit", "-q", "-am", "change"]);
}

pub fn gate(name: &str, run: &[&str], parser: ParserKind) -> GateSpec {
    GateSpec {
        name: name.into(),
        run: run.iter().map(|s| s.to_string()).collect(),
        parser,
        report: None,
        timeout: Duration::from_secs(300),
        phase: GatePhase::PreDeploy,
        severity: BTreeMap::new(),
        block_over: None,
        coverage: None,
        coverage_min: None,
        budgets: None,
        licenses: None,
        env: BTreeMap::new(),
        working_dir: None,
        annotation_budget: 50,
    }
}

pub fn tier(name: &str, gates: &[&str], coverage_min: Option<f64>) -> TierSpec {
    TierSpec {
        name: name.into(),
        gates: gates.iter().map(|s| s.to_string()).collect(),
        matrix: None,
        coverage_min: coverage_min.map(Ratio),
    }
}

pub fn environment(name: &str, coverage_min: Option<f64>) -> EnvironmentSpec {
    EnvironmentSpec {
        name: name.into(),
        namespace: format!("fm-{name}"),
        url: format!("https://{name}.example.invalid"),
        strategy: StrategyKind::Direct,
        replicas: 1,
        resources: Resources::same("1", "1Gi"),
        workload: WorkloadSpec::default(),
        autoscaling: None,
        progress_deadline: Duration::from_secs(600),
        pre_deploy: PreDeploy {
            checks_green: false,
            healthy: vec![],
            incident_label: None,
        },
        protection: Protection {
            reviewers: vec![],
            wait_timer: Duration::ZERO,
            protected_branches_only: false,
            prevent_self_review: false,
        },
        smoke: SmokeSpec {
            endpoints: vec![],
            deadline: Duration::from_secs(60),
        },
        post_deploy: vec![],
        coverage_min: coverage_min.map(Ratio),
        secrets: BTreeMap::new(),
        tls_secret: None,
        blue_green: None,
        rollback: RollbackSpec {
            sample_every: Duration::from_secs(10),
            on_no_data: NoDataPolicy::Hold,
            min_data: fm_deploy::policy::model::DEFAULT_MIN_DATA,
            on_inconclusive: fm_deploy::policy::model::InconclusivePolicy::Rollback,
            triggers: vec![],
        },
    }
}

pub fn policy(
    gates: Vec<GateSpec>,
    tiers: Vec<TierSpec>,
    environments: Vec<EnvironmentSpec>,
    parallelism: usize,
) -> Policy {
    Policy {
        source: PathBuf::from(".github/fm-deploy.yml"),
        app: AppSpec {
            name: "certsolver".into(),
            image: "ghcr.io/example/certsolver".into(),
            port: 8080,
            health_path: "/health".into(),
            endpoints: vec![],
        },
        branches: vec![],
        tiers: tiers.into_iter().map(|t| (t.name.clone(), t)).collect(),
        gates: gates.into_iter().map(|g| (g.name.clone(), g)).collect(),
        matrices: BTreeMap::new(),
        environments: environments
            .into_iter()
            .map(|e| (e.name.clone(), e))
            .collect(),
        overrides: None,
        notify: NotifySpec::default(),
        runner: RunnerSpec {
            parallelism,
            default_timeout: Duration::from_secs(900),
            output_cap: 64 * 1024 * 1024,
        },
        install: vec![],
    }
}

/// The real process runner with the tools venv first on PATH unless the command sets its own
/// (the container image has the tools on its PATH; the test process does not).
pub struct WithPath(pub String);

impl fm_deploy::gates::runner::ToolRunner for WithPath {
    fn run(
        &self,
        cmd: &fm_deploy::gates::runner::ToolCommand,
    ) -> impl std::future::Future<Output = fm_deploy::gates::runner::ExecOutcome> + Send {
        use fm_deploy::gates::runner::ProcessRunner;
        let mut cmd = cmd.clone();
        cmd.env
            .entry("PATH".into())
            .or_insert_with(|| self.0.clone());
        async move { ProcessRunner.run(&cmd).await }
    }
}

/// A label-approval fake: who added which label, and team memberships.
#[derive(Default)]
pub struct FakeLabels {
    pub added_by: BTreeMap<(u64, String), String>,
    pub teams: BTreeMap<String, Vec<String>>,
}

impl LabelApprovals for FakeLabels {
    async fn label_added_by(&self, pr: u64, label: &str) -> Result<Option<String>, ApprovalError> {
        Ok(self.added_by.get(&(pr, label.to_string())).cloned())
    }
    async fn is_team_member(&self, user: &str, team: &str) -> Result<bool, ApprovalError> {
        Ok(self
            .teams
            .get(team)
            .is_some_and(|m| m.iter().any(|u| u == user)))
    }
}
