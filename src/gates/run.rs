//! Runs a tier's gates with bounded parallelism and decides: the library entry point of the
//! `gates` command.
//!
//! Owns: turning `GateSpec`s into tool commands, report-file and coverage-file reading, the git
//! diff of a pull request, the exceptions file (from the workspace, or the base commit's copy on
//! pull requests), the [`LabelApprovals`] port (matching approvers is `gates::approvals`), and
//! assembling the [`GatesReport`]. Must not touch: the verdict's rules
//! (`verdict`), rendering (`report::gates_summary`), GitHub's API (the adapter implements the
//! trait).

use crate::gates::approvals;
use crate::gates::diff::{DiffIndex, git_diff_argv, parse_unified_diff};
use crate::gates::exceptions::{Exception, parse_exceptions};
use crate::gates::matrix_reports;
use crate::gates::outcome::{
    Captured as Cap, GateOutcome, TAIL_BYTES, classify, install_hint, relativize,
};
use crate::gates::parsers::{self, Metrics, pip_licenses};
use crate::gates::project_env::{self, EnvValues};
use crate::gates::runner::{Captured, ExecOutcome, ToolCommand, ToolRunner, tail_text};
use crate::gates::scratch::{self, Scratch};
use crate::policy::base::PolicyOrigin;
use crate::policy::model::{DiffScope, GatePhase, GateSpec, ParserKind, Policy, TierSpec};
use crate::verdict::{GateInput, Verdict, VerdictContext, decide};
use chrono::NaiveDate;
use serde::Serialize;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// A failure of the label-approval lookup (the GitHub adapter maps its errors here).
#[derive(Debug, thiserror::Error)]
#[error("look up label approvals: {0}")]
pub struct ApprovalError(pub String);

/// "Who added label X on PR N", and team membership: implemented over the issue events API by
/// the GitHub adapter; faked in tests.
pub trait LabelApprovals: Sync {
    /// Login of the user whose `labeled` event most recently added `label` to PR `pr`, if the
    /// label is on the PR now.
    fn label_added_by(
        &self,
        pr: u64,
        label: &str,
    ) -> impl Future<Output = Result<Option<String>, ApprovalError>> + Send;
    /// Whether `user` belongs to `team` (`org/team-slug`).
    fn is_team_member(
        &self,
        user: &str,
        team: &str,
    ) -> impl Future<Output = Result<bool, ApprovalError>> + Send;
}

/// No label approvals (push events, local runs).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoLabels;

impl LabelApprovals for NoLabels {
    async fn label_added_by(
        &self,
        _pr: u64,
        _label: &str,
    ) -> Result<Option<String>, ApprovalError> {
        Ok(None)
    }
    async fn is_team_member(&self, _user: &str, _team: &str) -> Result<bool, ApprovalError> {
        Ok(false)
    }
}

/// The pull request the gates run for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PullRequestRef {
    pub number: u64,
    /// Base and head revisions for `git diff base...head` (SHAs or refs present in the clone).
    pub base: String,
    pub head: String,
}

/// What the gates need from the run besides the policy.
#[derive(Debug, Clone)]
pub struct GateContext {
    /// `GITHUB_WORKSPACE`: tools run here (or in a gate's `working_dir` below it).
    pub workspace: PathBuf,
    /// Which gates of the tier run now.
    pub phase: GatePhase,
    /// The environment the branch deploys to, for its coverage minimum.
    pub environment: Option<String>,
    pub pull_request: Option<PullRequestRef>,
    /// From the branch rule; only applies on pull requests.
    pub diff_scope: DiffScope,
    /// Substituted for `{deploy_url}` in post-deploy gates' argv.
    pub deploy_url: Option<String>,
    /// Substituted for `{image}` (the image reference being gated, e.g. for a container scan).
    pub image: Option<String>,
    pub today: NaiveDate,
    /// Where the exceptions file is read from: the workspace, or (pull requests) the base commit.
    pub exceptions_from: ExceptionsSource,
    /// On pull requests: where the policy came from and what the PR changes in it.
    pub policy_origin: Option<PolicyOrigin>,
}

/// Where the exceptions file is read from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ExceptionsSource {
    /// The workspace (pushes, dispatches, local runs).
    #[default]
    Workspace,
    /// Already read from the pull request's base commit; `None`: the base has no such file. The
    /// PR's own copy never counts: an exception applies once it is on the base branch.
    Base(Option<String>),
}

impl GateContext {
    /// Pre-deploy gates of a push (no pull request, no environment), for today's UTC date.
    pub fn new(workspace: impl Into<PathBuf>) -> Self {
        GateContext {
            workspace: workspace.into(),
            phase: GatePhase::PreDeploy,
            environment: None,
            pull_request: None,
            diff_scope: DiffScope::All,
            deploy_url: None,
            image: None,
            today: chrono::Utc::now().date_naive(),
            exceptions_from: ExceptionsSource::Workspace,
            policy_origin: None,
        }
    }
}

/// One gate as it ran.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateRun {
    pub gate: String,
    pub parser: ParserKind,
    pub argv: Vec<String>,
    pub outcome: GateOutcome,
    pub metrics: Metrics,
    #[serde(with = "crate::policy::model::duration_text")]
    pub elapsed: Duration,
    /// Bytes cut from stdout / stderr by the output cap.
    pub stdout_dropped: u64,
    pub stderr_dropped: u64,
}

/// Everything the `gates` command reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GatesReport {
    pub tier: String,
    pub environment: Option<String>,
    pub pull_request: Option<u64>,
    pub diff_scope: Option<DiffScope>,
    pub parallelism: usize,
    /// In tier order.
    pub runs: Vec<GateRun>,
    pub verdict: Verdict,
    /// Problems around the gates that made the run stricter (diff not computed, exceptions file
    /// unreadable, label lookup failed).
    pub notes: Vec<String>,
    #[serde(with = "crate::policy::model::duration_text")]
    pub elapsed: Duration,
}

/// Gates of `tier` for `ctx.phase`, in tier order; names without a spec are returned apart.
pub fn select_gates<'a>(
    policy: &'a Policy,
    tier: &TierSpec,
    phase: GatePhase,
) -> (Vec<&'a GateSpec>, Vec<String>) {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for name in &tier.gates {
        match policy.gates.get(name) {
            Some(s) if s.phase == phase => found.push(s),
            Some(_) => {}
            None => missing.push(name.clone()),
        }
    }
    (found, missing)
}

/// Told when each gate actually starts (after waiting for a parallelism slot), so a reporter can
/// mark its check run in progress at that moment. Decides nothing; cannot fail the run.
pub trait GateHooks: Sync {
    fn gate_started(&self, gate: &str) -> impl Future<Output = ()> + Send;
}

/// No hooks (local runs, tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHooks;

impl GateHooks for NoHooks {
    async fn gate_started(&self, _gate: &str) {}
}

/// Runs the tier's gates (at most `policy.runner.parallelism` at once; 0 = CPU count) and
/// decides. Never fails: every problem becomes a failed gate or a note, and fails closed.
pub async fn run_gates<R: ToolRunner, L: LabelApprovals>(
    policy: &Policy,
    tier: &TierSpec,
    ctx: &GateContext,
    runner: &R,
    labels: &L,
) -> GatesReport {
    run_gates_with_hooks(policy, tier, ctx, runner, labels, &NoHooks).await
}

/// As [`run_gates`], calling `hooks` as each gate starts.
pub async fn run_gates_with_hooks<R: ToolRunner, L: LabelApprovals, H: GateHooks>(
    policy: &Policy,
    tier: &TierSpec,
    ctx: &GateContext,
    runner: &R,
    labels: &L,
    hooks: &H,
) -> GatesReport {
    let started = Instant::now();
    let (specs, missing) = select_gates(policy, tier, ctx.phase);
    let parallelism = match policy.runner.parallelism {
        0 => std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(1),
        n => n,
    };
    let sem = Arc::new(Semaphore::new(parallelism));
    // The cells whose uploaded reports report-only gates expect.
    let cells: Option<Vec<String>> = tier
        .matrix
        .as_ref()
        .and_then(|m| policy.matrices.get(m))
        .map(|m| {
            crate::matrix::cells(m)
                .iter()
                .map(crate::matrix::Cell::name)
                .collect()
        });
    // The policy's install step, once, before any gate that runs a tool.
    let project = if policy.install.is_empty() || specs.iter().all(|s| s.run.is_empty()) {
        Ok(None)
    } else {
        project_env::prepare(
            &policy.install,
            &ctx.workspace,
            policy.runner.default_timeout,
            policy.runner.output_cap,
            runner,
        )
        .await
        .map(Some)
    };
    let values = EnvValues::of(project.as_ref().ok().and_then(Option::as_ref));
    let runs_fut = specs.iter().map(|spec| {
        let sem = Arc::clone(&sem);
        let cells = cells.as_deref();
        let (project, values) = (&project, &values);
        async move {
            // The semaphore is never closed, so acquire cannot fail; if it did, run unbounded.
            let _permit = sem.acquire().await.ok();
            hooks.gate_started(&spec.name).await;
            match (spec.run.is_empty(), project) {
                (true, _) => {
                    matrix_reports::run(spec, &ctx.workspace, cells, policy.runner.output_cap).await
                }
                (false, Err(e)) => project_env::install_failed(spec, e),
                (false, Ok(_)) => {
                    run_one(spec, ctx, policy.runner.output_cap, runner, values).await
                }
            }
        }
    });
    let mut runs: Vec<GateRun> = futures::future::join_all(runs_fut).await;
    let mut placeholder_specs: Vec<GateSpec> = Vec::new();
    for name in missing {
        let message = format!(
            "gate `{name}` is named by tier `{}` but not defined under `gates`",
            tier.name
        );
        runs.push(GateRun {
            gate: name.clone(),
            parser: ParserKind::ExitCode,
            argv: vec![],
            outcome: GateOutcome::FailedToStart {
                program: String::new(),
                missing: false,
                message,
            },
            metrics: Metrics::default(),
            elapsed: Duration::ZERO,
            stdout_dropped: 0,
            stderr_dropped: 0,
        });
        placeholder_specs.push(placeholder(&name));
    }

    let mut notes = Vec::new();
    let diff = match &ctx.pull_request {
        Some(pr) => match compute_diff(pr, ctx, runner).await {
            Ok(d) => Some(d),
            Err(e) => {
                notes.push(format!(
                    "failed to compute the pull request's diff ({e}); every finding counts"
                ));
                None
            }
        },
        None => None,
    };
    let exceptions = load_exceptions(policy, ctx, &mut notes).await;
    let exceptions = approvals::approved_exceptions(policy, exceptions, labels, &mut notes).await;
    let approval = approvals::label_approval(policy, ctx, labels, &mut notes).await;

    let env_coverage_min = ctx
        .environment
        .as_ref()
        .and_then(|e| policy.environments.get(e))
        .and_then(|e| e.coverage_min);
    let vctx = VerdictContext {
        tier,
        env_coverage_min,
        diff: diff.as_ref(),
        diff_scope: if diff.is_some() {
            ctx.diff_scope
        } else {
            DiffScope::All
        },
        exceptions: &exceptions,
        label_approval: approval.as_ref(),
        today: ctx.today,
        policy_origin: ctx.policy_origin.as_ref(),
    };
    let inputs: Vec<GateInput<'_>> = runs
        .iter()
        .map(|r| {
            let spec = policy
                .gates
                .get(&r.gate)
                .or_else(|| placeholder_specs.iter().find(|s| s.name == r.gate));
            (r, spec)
        })
        .filter_map(|(r, s)| {
            s.map(|spec| GateInput {
                spec,
                outcome: &r.outcome,
                metrics: &r.metrics,
            })
        })
        .collect();
    let verdict = decide(&inputs, &vctx);
    GatesReport {
        tier: tier.name.clone(),
        environment: ctx.environment.clone(),
        pull_request: ctx.pull_request.as_ref().map(|p| p.number),
        diff_scope: diff.as_ref().map(|_| ctx.diff_scope),
        parallelism,
        runs,
        verdict,
        notes,
        elapsed: started.elapsed(),
    }
}

fn placeholder(name: &str) -> GateSpec {
    GateSpec {
        name: name.to_string(),
        run: vec![],
        parser: ParserKind::ExitCode,
        report: None,
        timeout: Duration::ZERO,
        phase: GatePhase::PreDeploy,
        severity: Default::default(),
        block_over: None,
        coverage: None,
        coverage_min: None,
        budgets: None,
        licenses: None,
        env: Default::default(),
        working_dir: None,
        annotation_budget: 0,
    }
}

/// The gate's argv with `{deploy_url}`, `{image}`, `{out}` (the gate's scratch output folder),
/// `{python}` and `{site_packages}` (the project environment, see `project_env`) replaced: the only substitutions, each inside one argument (no shell ever sees them). A
/// placeholder with no value stays as written, so the tool fails visibly rather than running on an
/// empty argument.
pub fn gate_argv(
    spec: &GateSpec,
    deploy_url: Option<&str>,
    image: Option<&str>,
    out: Option<&Path>,
    project: &EnvValues,
) -> Vec<String> {
    spec.run
        .iter()
        .map(|a| {
            let mut a = a.clone();
            if let Some(u) = deploy_url {
                a = a.replace("{deploy_url}", u);
            }
            if let Some(i) = image {
                a = a.replace("{image}", i);
            }
            if let Some(o) = out {
                a = scratch::substitute(&a, o);
            }
            project.substitute(&a)
        })
        .collect()
}

/// Runs one gate to a [`GateRun`]. Fail closed throughout.
pub async fn run_one<R: ToolRunner>(
    spec: &GateSpec,
    ctx: &GateContext,
    output_cap: u64,
    runner: &R,
    project: &EnvValues,
) -> GateRun {
    let cwd = match &spec.working_dir {
        Some(w) => ctx.workspace.join(w),
        None => ctx.workspace.clone(),
    };
    // Caches and `{out}` reports live here, never in the checkout; removed when the gate ends.
    let scratch = Scratch::new(&spec.name);
    let out = scratch.as_ref().map(Scratch::out).ok();
    let argv = gate_argv(
        spec,
        ctx.deploy_url.as_deref(),
        ctx.image.as_deref(),
        out.as_deref(),
        project,
    );
    let base = GateRun {
        gate: spec.name.clone(),
        parser: spec.parser,
        argv: argv.clone(),
        outcome: GateOutcome::Passed,
        metrics: Metrics::default(),
        elapsed: Duration::ZERO,
        stdout_dropped: 0,
        stderr_dropped: 0,
    };
    let (scratch, out) = match (scratch, out) {
        (Ok(s), Some(o)) => (s, o),
        (Err(e), _) => {
            return GateRun {
                outcome: GateOutcome::FailedToStart {
                    program: argv.first().cloned().unwrap_or_default(),
                    missing: false,
                    message: format!("create the gate's temporary directory: {e}"),
                },
                ..base
            };
        }
        (Ok(s), None) => {
            let o = s.out();
            (s, o)
        }
    };
    let at = |p: &Path| scratch::resolve(p, &ctx.workspace, &out);
    // A report left by an earlier run must never be read as this run's result (`{out}` is fresh).
    for p in [spec.report.as_ref(), spec.coverage.as_ref()]
        .into_iter()
        .flatten()
        .filter(|p| !scratch::in_out(p))
    {
        let path = ctx.workspace.join(p);
        if let Err(e) = tokio::fs::remove_file(&path).await
            && e.kind() != std::io::ErrorKind::NotFound
        {
            let message = format!("remove stale report {}: {e}", path.display());
            return GateRun {
                outcome: GateOutcome::FailedToStart {
                    program: argv.first().cloned().unwrap_or_default(),
                    missing: false,
                    message,
                },
                ..base
            };
        }
    }
    let mut env = scratch.env();
    env.extend(
        spec.env
            .iter()
            .map(|(k, v)| (k.clone(), project.substitute(&scratch::substitute(v, &out)))),
    );
    let cmd = ToolCommand {
        argv: argv.clone(),
        cwd: cwd.clone(),
        env,
        timeout: spec.timeout,
        output_cap,
    };
    let started = Instant::now();
    let exec = runner.run(&cmd).await;
    let elapsed = started.elapsed();
    let (status, stdout, stderr) = match exec {
        ExecOutcome::FailedToStart {
            program,
            missing,
            reason,
        } => {
            let message = if missing {
                format!("{reason}; {}", install_hint(&program))
            } else {
                reason
            };
            return GateRun {
                outcome: GateOutcome::FailedToStart {
                    program,
                    missing,
                    message,
                },
                elapsed,
                ..base
            };
        }
        ExecOutcome::TimedOut {
            after,
            stdout,
            stderr,
        } => {
            let stderr_tail = stderr.tail(TAIL_BYTES);
            return GateRun {
                outcome: GateOutcome::TimedOut { after, stderr_tail },
                elapsed,
                stdout_dropped: stdout.dropped,
                stderr_dropped: stderr.dropped,
                ..base
            };
        }
        ExecOutcome::Exited {
            status,
            stdout,
            stderr,
            ..
        } => (status, stdout, stderr),
    };
    let report = match &spec.report {
        Some(p) => match read_capped(&at(p), output_cap).await {
            Ok(c) => Some(c),
            Err(e) => {
                // Classify as if the output were empty, so an unexpected exit code still reads
                // as a crash; otherwise the missing report is the cause.
                let (o, _) = classify(
                    spec.parser,
                    Cap {
                        status,
                        output: b"",
                        output_truncated: false,
                        stderr: &stderr.bytes,
                    },
                );
                let outcome = match o {
                    GateOutcome::Crashed { .. } => o,
                    GateOutcome::Passed
                    | GateOutcome::Findings { .. }
                    | GateOutcome::FailedToStart { .. }
                    | GateOutcome::TimedOut { .. }
                    | GateOutcome::Unparseable { .. } => GateOutcome::Unparseable {
                        message: format!("read report file {}: {e}", p.display()),
                        stderr_tail: stderr.tail(TAIL_BYTES),
                    },
                };
                return GateRun {
                    outcome,
                    elapsed,
                    stdout_dropped: stdout.dropped,
                    stderr_dropped: stderr.dropped,
                    ..base
                };
            }
        },
        None => None,
    };
    let out = report.as_ref().unwrap_or(&stdout);
    let (mut outcome, mut metrics) = classify(
        spec.parser,
        Cap {
            status,
            output: &out.bytes,
            output_truncated: out.truncated(),
            stderr: &stderr.bytes,
        },
    );

    if outcome.parsed_cleanly()
        && let Some(cov) = &spec.coverage
    {
        match read_capped(&at(cov), output_cap).await {
            Ok(c) => match parsers::cobertura::parse(&c.bytes) {
                Ok(p) => metrics.coverage = p.metrics.coverage,
                Err(e) => {
                    outcome = GateOutcome::Unparseable {
                        message: format!("coverage file {}: {e}", cov.display()),
                        stderr_tail: tail_text(&stderr.bytes, TAIL_BYTES),
                    }
                }
            },
            Err(e) => {
                outcome = GateOutcome::Unparseable {
                    message: format!("read coverage file {}: {e}", cov.display()),
                    stderr_tail: tail_text(&stderr.bytes, TAIL_BYTES),
                }
            }
        }
    }
    if let (ParserKind::PipLicenses, Some(lp)) = (spec.parser, &spec.licenses) {
        let extra = pip_licenses::license_findings(&metrics.packages, lp);
        outcome = match outcome {
            GateOutcome::Passed if extra.is_empty() => GateOutcome::Passed,
            GateOutcome::Passed => GateOutcome::Findings { findings: extra },
            GateOutcome::Findings { mut findings } => {
                findings.extend(extra);
                GateOutcome::Findings { findings }
            }
            other @ (GateOutcome::FailedToStart { .. }
            | GateOutcome::Crashed { .. }
            | GateOutcome::TimedOut { .. }
            | GateOutcome::Unparseable { .. }) => other,
        };
    }
    if let GateOutcome::Findings { findings } = &mut outcome {
        tidy_findings(findings, spec, &cwd);
    }
    GateRun {
        outcome,
        metrics,
        elapsed,
        stdout_dropped: stdout.dropped,
        stderr_dropped: stderr.dropped,
        ..base
    }
}

/// Findings' paths relative to the workspace (the tool ran in `cwd`), and the gate's name on each.
pub(crate) fn tidy_findings(
    findings: &mut [crate::gates::finding::Finding],
    spec: &GateSpec,
    cwd: &Path,
) {
    let abs = std::fs::canonicalize(cwd).unwrap_or_else(|_| cwd.to_path_buf());
    relativize(findings, &abs, spec.working_dir.as_deref());
    if abs != cwd {
        relativize(findings, cwd, None);
    }
    for f in findings.iter_mut() {
        f.gate = spec.name.clone();
    }
}

/// Reads a report file, keeping at most `cap` bytes. A file already longer than the cap is not
/// read at all: its whole length past the cap counts as dropped, which fails the gate.
pub(crate) async fn read_capped(path: &Path, cap: u64) -> std::io::Result<Captured> {
    use tokio::io::AsyncReadExt;
    let f = tokio::fs::File::open(path).await?;
    let len = f.metadata().await?.len();
    if len > cap {
        return Ok(Captured {
            bytes: Vec::new(),
            dropped: len,
        });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    let n = f
        .take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .await?;
    let dropped = (n as u64).saturating_sub(cap);
    bytes.truncate(usize::try_from(cap).unwrap_or(usize::MAX));
    Ok(Captured { bytes, dropped })
}

async fn compute_diff<R: ToolRunner>(
    pr: &PullRequestRef,
    ctx: &GateContext,
    runner: &R,
) -> Result<DiffIndex, String> {
    let cmd = ToolCommand {
        argv: git_diff_argv(&pr.base, &pr.head),
        cwd: ctx.workspace.clone(),
        env: Default::default(),
        timeout: Duration::from_secs(120),
        output_cap: crate::budget::REPORT.max_bytes,
    };
    match runner.run(&cmd).await {
        ExecOutcome::Exited {
            status: crate::gates::runner::ExitStatus::Code(0),
            stdout,
            ..
        } if !stdout.truncated() => {
            let text = String::from_utf8_lossy(&stdout.bytes);
            parse_unified_diff(&text).map_err(|e| e.to_string())
        }
        ExecOutcome::Exited { status, stderr, .. } => Err(format!(
            "git diff ended with {status}: {}",
            stderr.tail(500)
        )),
        ExecOutcome::FailedToStart { reason, .. } => Err(reason),
        ExecOutcome::TimedOut { after, .. } => Err(format!(
            "git diff timed out after {}",
            humantime::format_duration(after)
        )),
    }
}

async fn load_exceptions(
    policy: &Policy,
    ctx: &GateContext,
    notes: &mut Vec<String>,
) -> Vec<Exception> {
    let Some(file) = policy
        .overrides
        .as_ref()
        .and_then(|o| o.exceptions_file.as_ref())
    else {
        return Vec::new();
    };
    let path = ctx.workspace.join(file);
    let budget = &crate::budget::EXCEPTIONS;
    let read = match &ctx.exceptions_from {
        ExceptionsSource::Workspace => crate::budget::read_to_string(&path, budget),
        // The base copy came through git or the contents API: the same size budget applies.
        ExceptionsSource::Base(Some(text)) => budget
            .check_size(text.len() as u64)
            .map(|()| text.clone())
            .map_err(std::io::Error::other),
        ExceptionsSource::Base(None) => Err(std::io::ErrorKind::NotFound.into()),
    };
    match read {
        Ok(text) => match parse_exceptions(&file.display().to_string(), &text) {
            Ok(e) => e,
            Err(e) => {
                notes.push(format!("failed to {e}; no exception applied"));
                Vec::new()
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            notes.push(format!(
                "failed to read exceptions file {}: {e}; no exception applied",
                file.display()
            ));
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Substitutions stay inside their argument: a hostile value is never split or interpreted.
    #[test]
    fn argv_substitution_is_per_argument() {
        let mut spec = placeholder("scan");
        spec.run = vec![
            "trivy".into(),
            "image".into(),
            "{image}".into(),
            "--url={deploy_url}".into(),
        ];
        let argv = gate_argv(
            &spec,
            Some("https://x; rm -rf /"),
            Some("ghcr.io/o/a:1 --exit-code 0"),
            None,
            &EnvValues::default(),
        );
        assert_eq!(
            argv,
            [
                "trivy",
                "image",
                "ghcr.io/o/a:1 --exit-code 0",
                "--url=https://x; rm -rf /"
            ]
        );
        assert_eq!(
            gate_argv(&spec, None, None, None, &EnvValues::default())[2],
            "{image}"
        );
    }
}
