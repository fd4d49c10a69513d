//! The only orchestrator: one function per command. Reads nothing from the process environment
//! itself: `main` hands it a `RunRequest` and the sinks.

use crate::error::ActionError;
use crate::inputs::{GithubContext, Inputs};
use crate::plan::{self, Command, Plan, PlanRequest};
use crate::policy::base::{self, Copies, GitFiles, PolicyOrigin};
use crate::policy::{self, Policy};
use crate::runtime::{Annotation, Console, OutputKey, Runtime};
use std::path::{Path, PathBuf};

/// Everything one run needs, already validated.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub plan: PlanRequest,
    pub config: PathBuf,
    pub workspace: PathBuf,
    /// Print JSON instead of text on stdout.
    pub json: bool,
    pub context: GithubContext,
    pub inputs: Inputs,
}

/// Where results go: the runtime (outputs, summary, annotations, console), or a test double.
pub trait Sink {
    /// Human-readable text (stdout). Treated as untrusted: never read as a workflow command.
    fn print(&mut self, text: &str) -> Result<(), ActionError>;
    /// One of the action's own annotations (`::error …::` in Actions), escaped.
    fn annotate(&mut self, annotation: &Annotation) -> Result<(), ActionError>;
    /// A step output (`GITHUB_OUTPUT`).
    fn output(&mut self, key: OutputKey, value: &str) -> Result<(), ActionError>;
    /// Markdown for the job summary (`GITHUB_STEP_SUMMARY`, or a local file).
    fn summary(&mut self, markdown: &str) -> Result<(), ActionError>;
    /// Starts a foldable log group (`::group::`); a heading outside Actions.
    fn group(&mut self, title: &str) -> Result<(), ActionError>;
    fn end_group(&mut self) -> Result<(), ActionError>;
}

impl<C: Console> Sink for Runtime<C> {
    fn print(&mut self, text: &str) -> Result<(), ActionError> {
        Ok(self.line(text.trim_end_matches('\n'))?)
    }

    fn annotate(&mut self, annotation: &Annotation) -> Result<(), ActionError> {
        Ok(Runtime::annotate(self, annotation)?)
    }

    fn output(&mut self, key: OutputKey, value: &str) -> Result<(), ActionError> {
        Ok(self.set_output(key, value)?)
    }

    fn summary(&mut self, markdown: &str) -> Result<(), ActionError> {
        self.append_summary(markdown)?;
        Ok(())
    }

    fn group(&mut self, title: &str) -> Result<(), ActionError> {
        Ok(self.group_start(title)?)
    }

    fn end_group(&mut self) -> Result<(), ActionError> {
        Ok(self.group_end()?)
    }
}

/// How a run that did its job ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Allowed / succeeded: exit 0.
    Success,
    /// A verdict said no (gate blocked, needs approval, deploy rolled back): exit 1.
    Refused,
}

impl Outcome {
    pub fn exit_code(self) -> i32 {
        match self {
            Outcome::Success => 0,
            Outcome::Refused => 1,
        }
    }
}

pub fn load_policy(req: &RunRequest) -> Result<Policy, ActionError> {
    let path = if req.config.is_absolute() {
        req.config.clone()
    } else {
        req.workspace.join(&req.config)
    };
    Ok(policy::load_file(&path)?)
}

/// The policy and exceptions file of a pull request's base commit, and what the PR changes in them.
#[derive(Debug, Clone)]
pub struct BaseCopies {
    pub origin: PolicyOrigin,
    /// The base commit's exceptions file (`None`: it has none), when the policy names one.
    pub exceptions: Option<Option<String>>,
}

fn read_optional(path: &Path) -> Result<Option<String>, ActionError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ActionError::Policy(policy::Error::Read {
            path: path.to_path_buf(),
            source,
        })),
    }
}

/// On a pull request: the policy of the base commit (from the checkout's history, else GitHub's
/// contents API, else exit 2), its exceptions file, and the PR's changes to both. A base without a
/// policy file puts the PR's policy in effect; [`policy::base::requirement`] then asks for approval.
pub async fn load_base_policy(
    req: &RunRequest,
    base_sha: &str,
    github: Option<&GithubClient>,
) -> Result<(Policy, BaseCopies), ActionError> {
    let head_path = if req.config.is_absolute() {
        req.config.clone()
    } else {
        req.workspace.join(&req.config)
    };
    let rel = base::repo_path(&req.workspace, &req.config)?;
    let git = GitFiles {
        workspace: &req.workspace,
        runner: &ProcessRunner,
    };
    let chosen = base::choose(&git, github, base_sha).await?;
    let base_text = chosen.read(base_sha, &rel).await?;
    let head_text = read_optional(&head_path)?;
    let policy = match (&base_text, &head_text) {
        (Some(t), _) => policy::load_str(t, Path::new(&rel))?,
        (None, Some(t)) => policy::load_str(t, &head_path)?,
        (None, None) => policy::load_file(&head_path)?,
    };
    let mut copies = vec![Copies {
        path: rel.clone(),
        base: base_text.clone(),
        head: head_text,
    }];
    let mut exceptions = None;
    if let Some(file) = policy
        .overrides
        .as_ref()
        .and_then(|o| o.exceptions_file.as_ref())
    {
        let erel = base::repo_path(&req.workspace, file)?;
        let at_base = chosen.read(base_sha, &erel).await?;
        copies.push(Copies {
            path: erel,
            base: at_base.clone(),
            head: read_optional(&req.workspace.join(file))?,
        });
        exceptions = Some(at_base);
    }
    let origin = PolicyOrigin {
        base_sha: base_sha.to_string(),
        via: chosen.via(),
        policy_path: rel,
        base_has_policy: base_text.is_some(),
        changes: base::changes(&copies),
    };
    Ok((policy, BaseCopies { origin, exceptions }))
}

/// Runs one command to its end.
pub async fn run(req: &RunRequest, sink: &mut dyn Sink) -> Result<Outcome, ActionError> {
    let (policy, base_copies) = match (&req.plan.command, &req.context.pull_request_base) {
        (Command::Gates | Command::Pipeline, Some(pr)) => {
            let github = github_client(req)?;
            let (p, b) = load_base_policy(req, &pr.sha, github.as_ref()).await?;
            sink.print(&format!(
                "policy: `{}` of the base commit {}, read through {}{}",
                b.origin.policy_path,
                b.origin.base_sha,
                b.origin.via,
                if b.origin.base_has_policy {
                    ""
                } else {
                    " (it has none: this pull request's policy is in effect and needs approval)"
                }
            ))?;
            (p, Some(b))
        }
        _ => (load_policy(req)?, None),
    };
    let base_copies = base_copies.as_ref();
    let plan = plan::plan(&req.plan, &policy)?;
    write_common_outputs(&plan, sink)?;
    match req.plan.command {
        Command::Plan => run_plan(req, &plan, sink),
        Command::Matrix => run_matrix(&plan, sink),
        Command::Gates => run_gates_command(req, &policy, base_copies, &plan, sink).await,
        Command::Deploy => match &plan.deploy {
            plan::DeployPlan::Skipped { reason } => {
                sink.print(&format!("deploy: skipped — {reason}"))?;
                Ok(Outcome::Success)
            }
            plan::DeployPlan::Planned(_) if req.plan.dry_run => {
                sink.print(&plan.render_text())?;
                sink.summary(&plan.render_markdown())?;
                Ok(Outcome::Success)
            }
            plan::DeployPlan::Planned(_) => {
                let github = github_client(req)?;
                run_deploy(req, &policy, &plan, github.as_ref(), sink).await
            }
        },
        Command::Pipeline => run_pipeline(req, &policy, base_copies, &plan, sink).await,
        Command::Rollback => run_manual(req, &policy, &plan, BgCommand::Rollback, sink).await,
        Command::Promote => run_manual(req, &policy, &plan, BgCommand::Promote, sink).await,
        Command::Cleanup => run_manual(req, &policy, &plan, BgCommand::Cleanup, sink).await,
        Command::Setup => run_setup(req, &policy, sink).await,
    }
}

fn write_common_outputs(plan: &Plan, sink: &mut dyn Sink) -> Result<(), ActionError> {
    sink.output(
        OutputKey::Environment,
        plan.environment.as_deref().unwrap_or(""),
    )?;
    sink.output(OutputKey::Tier, plan.tier.as_deref().unwrap_or(""))?;
    let strategy = match plan.strategy() {
        Some(crate::policy::model::StrategyKind::Direct) => "direct",
        Some(crate::policy::model::StrategyKind::Rolling) => "rolling",
        Some(crate::policy::model::StrategyKind::BlueGreen) => "blue-green",
        None => "",
    };
    sink.output(OutputKey::Strategy, strategy)?;
    if let Some(m) = &plan.matrix {
        sink.output(OutputKey::Matrix, &m.json)?;
    }
    Ok(())
}

fn run_plan(req: &RunRequest, plan: &Plan, sink: &mut dyn Sink) -> Result<Outcome, ActionError> {
    let json = serde_json::to_string_pretty(plan)
        .map_err(|e| ActionError::Other(format!("serialize plan: {e}")))?;
    if req.json {
        sink.print(&crate::runtime::json_for_log(&json))?;
    } else {
        sink.print(&plan.render_text())?;
    }
    sink.summary(&plan.render_markdown())?;
    sink.output(OutputKey::Report, &json)?;
    sink.output(OutputKey::Decision, "skipped")?;
    Ok(Outcome::Success)
}

fn run_matrix(plan: &Plan, sink: &mut dyn Sink) -> Result<Outcome, ActionError> {
    match &plan.matrix {
        Some(m) => {
            sink.print(&crate::runtime::json_for_log(&m.json))?;
            Ok(Outcome::Success)
        }
        None => Err(ActionError::Usage(match &plan.tier {
            Some(t) => format!("write matrix: tier `{t}` has no matrix in the policy"),
            None => format!("write matrix: no branch rule matches `{}`", plan.branch),
        })),
    }
}

// ---------------------------------------------------------------------------------------------
// Gates

use crate::gates::run::{
    ApprovalError, ExceptionsSource, GateContext, GateHooks, GatesReport, LabelApprovals, NoLabels,
    PullRequestRef, run_gates_with_hooks,
};
use crate::gates::runner::ProcessRunner;
use crate::github::{ChecksSession, GithubClient, GithubConfig, Started};
use crate::plan::Trigger;
use crate::policy::model::GatePhase;
use crate::report::checks::{CheckConclusion, GateCheck, external_id, workflow_commands};
use crate::report::gates_summary;
use crate::verdict::Decision;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// The GitHub client when this run may talk to GitHub: inside Actions, with a token and a
/// repository. Local runs never do.
pub fn github_client(req: &RunRequest) -> Result<Option<GithubClient>, ActionError> {
    if !req.context.in_actions || matches!(req.plan.trigger, Trigger::Local) {
        return Ok(None);
    }
    let (Some(token), Some(repo)) = (&req.inputs.github_token, &req.context.repository) else {
        return Ok(None);
    };
    let config = GithubConfig::new(&req.context.api_url, token.expose(), repo);
    Ok(Some(GithubClient::new(&config)?))
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Label approvals through GitHub when there is a client, else none.
enum Labels<'a> {
    None,
    Github(&'a GithubClient),
}

impl LabelApprovals for Labels<'_> {
    async fn label_added_by(&self, pr: u64, label: &str) -> Result<Option<String>, ApprovalError> {
        match self {
            Labels::None => NoLabels.label_added_by(pr, label).await,
            Labels::Github(c) => c.label_added_by(pr, label).await,
        }
    }

    async fn is_team_member(&self, user: &str, team: &str) -> Result<bool, ApprovalError> {
        match self {
            Labels::None => NoLabels.is_team_member(user, team).await,
            Labels::Github(c) => c.is_team_member(user, team).await,
        }
    }
}

/// Creates each gate's check run as the gate starts; remembers handles and the first error.
struct CheckHooks<'a> {
    session: Option<&'a ChecksSession<'a, GithubClient>>,
    run_id: String,
    job: String,
    started: Mutex<BTreeMap<String, Started>>,
    error: Mutex<Option<crate::github::Error>>,
}

impl CheckHooks<'_> {
    async fn start(&self, gate: &str) {
        let Some(session) = self.session else { return };
        let id = external_id(&self.run_id, &self.job, gate);
        match session.start(gate, &id, &now_rfc3339()).await {
            Ok(s) => {
                if let Ok(mut m) = self.started.lock() {
                    m.insert(gate.to_string(), s);
                }
            }
            Err(e) => {
                if let Ok(mut slot) = self.error.lock() {
                    slot.get_or_insert(e);
                }
            }
        }
    }

    fn take(&self, gate: &str) -> Option<Started> {
        self.started.lock().ok().and_then(|mut m| m.remove(gate))
    }

    fn take_error(&self) -> Option<crate::github::Error> {
        self.error.lock().ok().and_then(|mut e| e.take())
    }
}

impl GateHooks for CheckHooks<'_> {
    async fn gate_started(&self, gate: &str) {
        self.start(gate).await;
    }
}

/// What the gates phase produced.
pub struct GatesPhase {
    pub report: GatesReport,
    pub decision: Decision,
}

/// Runs the branch's pre-deploy gates, reports them (check runs or, without access, workflow
/// commands), writes the summary and outputs. `None` when no rule matches the branch.
pub async fn run_gates_phase(
    req: &RunRequest,
    policy: &Policy,
    base_copies: Option<&BaseCopies>,
    plan: &Plan,
    github: Option<&GithubClient>,
    sink: &mut dyn Sink,
) -> Result<Option<GatesPhase>, ActionError> {
    let Some(tier) = plan.tier.as_ref().and_then(|t| policy.tiers.get(t)) else {
        sink.print(&format!(
            "gates: skipped — no branch rule matches `{}`",
            plan.branch
        ))?;
        sink.output(OutputKey::Decision, "skipped")?;
        return Ok(None);
    };
    let rule = policy.branch_rule(&plan.branch);
    let mut ctx = GateContext::new(&req.workspace);
    ctx.phase = GatePhase::PreDeploy;
    ctx.environment = plan.environment.clone();
    ctx.image = Some(image_ref(req, policy)?);
    if let (Trigger::PullRequest { number, .. }, crate::inputs::Event::PullRequest(pr)) =
        (&req.plan.trigger, &req.context.event)
    {
        ctx.pull_request = Some(PullRequestRef {
            number: *number,
            base: format!("origin/{}", pr.base_ref),
            head: pr.head_sha.clone(),
        });
        ctx.diff_scope = policy.pull_request_scope(&pr.base_ref, &pr.head_ref);
    }
    if let Some(b) = base_copies {
        ctx.policy_origin = Some(b.origin.clone());
        ctx.exceptions_from = ExceptionsSource::Base(b.exceptions.clone().flatten());
    }

    let session = match github {
        Some(c) => {
            Some(ChecksSession::open(c, &req.plan.sha, req.context.run_url().as_deref()).await?)
        }
        None => None,
    };
    let hooks = CheckHooks {
        session: session.as_ref(),
        run_id: req
            .context
            .run_id
            .map(|r| r.to_string())
            .unwrap_or_default(),
        job: req
            .context
            .job
            .clone()
            .unwrap_or_else(|| "fm-deploy".into()),
        started: Mutex::new(BTreeMap::new()),
        error: Mutex::new(None),
    };
    let labels = match github {
        Some(c) => Labels::Github(c),
        None => Labels::None,
    };
    // SIGTERM / SIGINT (a cancelled job) while tools run: dropping the gates' future kills every
    // tool's process group; each check run already started is concluded `cancelled`.
    let (mut cancel, _signals) = crate::deploy::bluegreen_run::cancel_on_signals()
        .map_err(|e| ActionError::Other(format!("install signal handlers: {e}")))?;
    let running = run_gates_with_hooks(policy, tier, &ctx, &ProcessRunner, &labels, &hooks);
    let report = tokio::select! {
        r = running => r,
        _ = cancel.wait_for(|c| *c) => {
            conclude_cancelled(session.as_ref(), &hooks, sink).await?;
            return Err(ActionError::Cancelled("the gates".into()));
        }
    };
    let decision = report.verdict.decision;

    // Report: the summary and terminal text always; check runs when there is access.
    sink.group(&format!(
        "fm-deploy gates: {} ({} gates)",
        decision,
        report.runs.len()
    ))?;
    sink.print(&gates_summary::render_text(&report))?;
    sink.end_group()?;
    sink.summary(&gates_summary::render_markdown(&report))?;
    sink.output(OutputKey::Decision, decision.as_str())?;
    sink.output(OutputKey::Report, &report_json(plan, Some(&report)))?;

    let mut no_access = false;
    if let Some(session) = &session {
        for g in &report.verdict.gates {
            let budget = policy
                .gates
                .get(&g.gate)
                .map_or(1000, |s| s.annotation_budget);
            match hooks.take(&g.gate) {
                Some(Started::Posted(handle)) => {
                    session
                        .finish(
                            &handle,
                            &gates_summary::gate_check(&report, g, budget),
                            &now_rfc3339(),
                        )
                        .await?;
                }
                Some(Started::NoAccess { .. }) => no_access = true,
                None => {}
            }
        }
        if let Some(e) = hooks.take_error() {
            return Err(e.into());
        }
        hooks.start("decision").await;
        if let Some(e) = hooks.take_error() {
            return Err(e.into());
        }
        match hooks.take("decision") {
            Some(Started::Posted(handle)) => {
                session
                    .finish(
                        &handle,
                        &gates_summary::decision_check(&report),
                        &now_rfc3339(),
                    )
                    .await?;
            }
            Some(Started::NoAccess { .. }) => no_access = true,
            None => {}
        }
        // The reviews gate on pull requests: its own check, not part of the decision (branch
        // protection enforces it at merge time).
        if let (Some(c), Trigger::PullRequest { number, .. }, Some(r)) =
            (github, &req.plan.trigger, rule)
            && r.reviews > 0
            && !no_access
        {
            {
                let approvals =
                    crate::github::reviews::approvals(c, *number, &req.plan.sha, r.reviews).await?;
                let check = GateCheck {
                    name: "reviews".into(),
                    conclusion: if approvals.is_met() {
                        CheckConclusion::Success
                    } else {
                        CheckConclusion::ActionRequired
                    },
                    title: format!(
                        "{} of {} required approvals on this commit",
                        approvals.count(),
                        r.reviews
                    ),
                    summary_markdown: format!(
                        "Approved by: {}",
                        if approvals.approvers.is_empty() {
                            "nobody yet".to_string()
                        } else {
                            approvals.approvers.join(", ")
                        }
                    ),
                    text_markdown: None,
                    findings: Vec::new(),
                    annotation_budget: 0,
                };
                hooks.start("reviews").await;
                if let Some(Started::Posted(handle)) = hooks.take("reviews") {
                    session.finish(&handle, &check, &now_rfc3339()).await?;
                }
            }
        }
    }
    if no_access || (req.context.in_actions && github.is_none()) {
        // No checks: write access (fork PRs) or no token: the most severe findings as annotations.
        let all: Vec<crate::gates::finding::Finding> = report
            .verdict
            .gates
            .iter()
            .flat_map(|g| {
                g.findings
                    .iter()
                    .filter(|f| f.counted)
                    .map(|f| f.finding.clone())
            })
            .collect();
        for annotation in workflow_commands(&all) {
            sink.annotate(&annotation)?;
        }
    }
    Ok(Some(GatesPhase { report, decision }))
}

/// After a cancellation: every gate whose check run was started is concluded `cancelled`, and the
/// summary says so. A gate whose start was still in flight has no handle and stays as GitHub has it.
async fn conclude_cancelled(
    session: Option<&ChecksSession<'_, GithubClient>>,
    hooks: &CheckHooks<'_>,
    sink: &mut dyn Sink,
) -> Result<(), ActionError> {
    let started: Vec<(String, Started)> = hooks
        .started
        .lock()
        .map(|mut m| std::mem::take(&mut *m).into_iter().collect())
        .unwrap_or_default();
    let names: Vec<&str> = started.iter().map(|(g, _)| g.as_str()).collect();
    let line = format!(
        "gates: cancelled (SIGTERM) while running; tools stopped{}",
        if names.is_empty() {
            String::new()
        } else {
            format!(", check runs concluded `cancelled`: {}", names.join(", "))
        }
    );
    sink.print(&line)?;
    sink.summary(&format!("## fm-deploy gates: cancelled\n\n{line}\n"))?;
    let Some(session) = session else {
        return Ok(());
    };
    for (gate, s) in &started {
        if let Started::Posted(handle) = s {
            let check = GateCheck {
                name: gate.clone(),
                conclusion: CheckConclusion::Cancelled,
                title: "cancelled: the job was stopped while this gate ran".into(),
                summary_markdown:
                    "The job received SIGTERM; the tool was stopped before it finished.".into(),
                text_markdown: None,
                findings: Vec::new(),
                annotation_budget: 0,
            };
            session.finish(handle, &check, &now_rfc3339()).await?;
        }
    }
    Ok(())
}

fn image_ref(req: &RunRequest, policy: &Policy) -> Result<String, ActionError> {
    Ok(crate::plan::image_reference(&req.plan, policy)?)
}

/// The `report` output: the plan and, when gates ran, a compact verdict (no findings, which can be
/// large; they are in the summary and the check runs).
fn report_json(plan: &Plan, gates: Option<&GatesReport>) -> String {
    let gates = gates.map(|r| {
        serde_json::json!({
            "decision": r.verdict.decision,
            "tier": r.tier,
            "gates": r.verdict.gates.iter().map(|g| serde_json::json!({
                "gate": g.gate,
                "decision": g.decision,
                "reasons": g.reasons,
                "counts": g.counts,
                "failed": g.failed,
                "coverage": g.coverage,
            })).collect::<Vec<_>>(),
            "overrides": r.verdict.overrides,
            "notes": r.notes,
        })
    });
    serde_json::json!({ "plan": plan, "gates": gates }).to_string()
}

async fn run_gates_command(
    req: &RunRequest,
    policy: &Policy,
    base_copies: Option<&BaseCopies>,
    plan: &Plan,
    sink: &mut dyn Sink,
) -> Result<Outcome, ActionError> {
    let github = github_client(req)?;
    match run_gates_phase(req, policy, base_copies, plan, github.as_ref(), sink).await? {
        None => Ok(Outcome::Success),
        Some(g) => Ok(match g.decision {
            Decision::Allow => Outcome::Success,
            Decision::NeedsApproval | Decision::Block => Outcome::Refused,
        }),
    }
}

/// `gates`, then — when they allow it and the branch maps to an environment — `deploy`. With
/// `dry-run` the deploy is the plan: printed and summarised, nothing applied.
async fn run_pipeline(
    req: &RunRequest,
    policy: &Policy,
    base_copies: Option<&BaseCopies>,
    plan: &Plan,
    sink: &mut dyn Sink,
) -> Result<Outcome, ActionError> {
    let github = github_client(req)?;
    if req.plan.dry_run {
        sink.print(&plan.render_text())?;
        sink.summary(&plan.render_markdown())?;
    }
    let gates = run_gates_phase(req, policy, base_copies, plan, github.as_ref(), sink).await?;
    let decision = gates.as_ref().map(|g| g.decision);
    match decision {
        Some(Decision::NeedsApproval | Decision::Block) => {
            let d = decision.map_or("skipped", Decision::as_str);
            sink.print(&format!("deploy: not started — the gates decided `{d}`"))?;
            return Ok(Outcome::Refused);
        }
        Some(Decision::Allow) | None => {}
    }
    match &plan.deploy {
        plan::DeployPlan::Skipped { reason } => {
            sink.print(&format!("deploy: skipped — {reason}"))?;
            Ok(Outcome::Success)
        }
        plan::DeployPlan::Planned(_) if req.plan.dry_run => {
            sink.print("deploy: dry run — the plan above is what would be applied")?;
            Ok(Outcome::Success)
        }
        plan::DeployPlan::Planned(_) => run_deploy(req, policy, plan, github.as_ref(), sink).await,
    }
}

/// Branch and environment protection from the policy: a diff first, then only what differs
/// (nothing under `dry-run`). Needs a token with `administration: write`.
async fn run_setup(
    req: &RunRequest,
    policy: &Policy,
    sink: &mut dyn Sink,
) -> Result<Outcome, ActionError> {
    let desired = crate::setup::desired(policy);
    let (Some(token), Some(repo)) = (&req.inputs.github_token, &req.context.repository) else {
        // Without GitHub, show what would be asked for.
        let md = desired.render_markdown(
            &desired
                .branches
                .iter()
                .map(|b| {
                    (
                        format!("branch `{}`", b.branch),
                        crate::setup::diff_branch(&Default::default(), b),
                    )
                })
                .chain(desired.environments.iter().map(|e| {
                    (
                        format!("environment `{}`", e.environment),
                        crate::setup::diff_environment(&Default::default(), e),
                    )
                }))
                .collect::<Vec<_>>(),
        );
        sink.print(&format!("{md}\n(no github-token and repository: nothing read or written; the list shows every setting against an unprotected repository)"))?;
        sink.summary(&md)?;
        return Ok(Outcome::Success);
    };
    let client = GithubClient::new(&GithubConfig::new(
        &req.context.api_url,
        token.expose(),
        repo,
    ))?;
    let report = crate::github::setup::run_setup(&client, &desired, req.inputs.dry_run).await?;
    let md = report.render_markdown();
    sink.print(&md)?;
    sink.summary(&md)?;
    let json = serde_json::to_string(&report)
        .map_err(|e| ActionError::Other(format!("serialize the setup report: {e}")))?;
    sink.output(OutputKey::Report, &json)?;
    Ok(Outcome::Success)
}

// ---------------------------------------------------------------------------------------------
// Deploy

use crate::deploy::cluster::KubeCluster;
use crate::deploy::health::HttpProber;
use crate::deploy::manifests::DeployInputs;
use crate::deploy::predeploy::{PreDeployFacts, PreDeployVerdict, evaluate, probe_environments};
use crate::deploy::run::{DeployOptions, PostDeployResult, PostDeployTests, deploy_environment};
use crate::github::deployments::{DeploymentOutcome, finish_deployment, start_deployment};
use crate::notify::DeployPhase;

/// The cluster from the `kubeconfig` input (raw or base64, already decoded), else the ambient
/// configuration (in-cluster service account or `KUBECONFIG`).
pub async fn cluster_from(req: &RunRequest) -> Result<KubeCluster, ActionError> {
    match &req.inputs.kubeconfig {
        Some(k) => {
            let kc = kube::config::Kubeconfig::from_yaml(k.yaml.expose())
                .map_err(|e| ActionError::Usage(format!("read the kubeconfig input: {e}")))?;
            let config = kube::Config::from_custom_kubeconfig(
                kc,
                &kube::config::KubeConfigOptions::default(),
            )
            .await
            .map_err(|e| ActionError::Usage(format!("use the kubeconfig input: {e}")))?;
            let client = kube::Client::try_from(config)
                .map_err(|e| ActionError::Usage(format!("build the Kubernetes client: {e}")))?;
            Ok(KubeCluster::new(client))
        }
        None => KubeCluster::infer()
            .await
            .map_err(|e| ActionError::Usage(format!("{e} (pass the `kubeconfig` input)"))),
    }
}

/// Staging's post-deploy gates through the gate runner: one gate at a time, `{deploy_url}` in its
/// argv and `DEPLOY_URL` in its environment; anything but `allow` fails it.
struct GatePostDeploy<'a> {
    policy: &'a Policy,
    workspace: PathBuf,
}

impl PostDeployTests for GatePostDeploy<'_> {
    async fn run_gate(&self, gate: &str, deploy_url: &str) -> PostDeployResult {
        let mut policy = self.policy.clone();
        let Some(spec) = policy.gates.get_mut(gate) else {
            return PostDeployResult::Failed {
                reason: format!("gate `{gate}` is not defined"),
            };
        };
        spec.env.insert("DEPLOY_URL".into(), deploy_url.to_string());
        let tier = crate::policy::model::TierSpec {
            name: format!("post-deploy {gate}"),
            gates: vec![gate.to_string()],
            matrix: None,
            coverage_min: None,
        };
        let mut ctx = GateContext::new(&self.workspace);
        ctx.phase = GatePhase::PostDeploy;
        ctx.deploy_url = Some(deploy_url.to_string());
        let report =
            crate::gates::run::run_gates(&policy, &tier, &ctx, &ProcessRunner, &NoLabels).await;
        match report.verdict.decision {
            Decision::Allow => PostDeployResult::Passed,
            Decision::NeedsApproval | Decision::Block => PostDeployResult::Failed {
                reason: report
                    .verdict
                    .gates
                    .iter()
                    .flat_map(|g| g.reasons.iter().map(move |r| format!("{}: {r}", g.gate)))
                    .collect::<Vec<_>>()
                    .join("; "),
            },
        }
    }
}

/// Whether a command writes the environment's Secrets from this run's inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SecretUse {
    /// A deploy: the app and TLS Secrets are applied with the inputs (TLS ones required).
    Apply,
    /// `rollback`, `promote`, `cleanup`: the Secrets stay as the last deploy wrote them, and
    /// no secret input is needed.
    Keep,
}

fn deploy_inputs(
    req: &RunRequest,
    policy: &Policy,
    env: &crate::policy::model::EnvironmentSpec,
    use_: SecretUse,
) -> Result<DeployInputs, ActionError> {
    let (secrets, tls) = match use_ {
        SecretUse::Apply => secret_values(req, env)?,
        SecretUse::Keep => (BTreeMap::new(), None),
    };
    Ok(DeployInputs {
        image: image_ref(req, policy)?,
        run_id: req
            .context
            .run_id
            .map(|r| r.to_string())
            .unwrap_or_default(),
        sha: req.plan.sha.clone(),
        secrets,
        tls,
        keep_secrets: use_ == SecretUse::Keep,
    })
}

/// The app Secret's keys → values, and the TLS Secret's certificate and key.
type SecretValues = (BTreeMap<String, String>, Option<(String, String)>);

/// The values of the app Secret's keys (a missing input leaves its key out) and of the TLS
/// Secret, which a policy naming one requires.
fn secret_values(
    req: &RunRequest,
    env: &crate::policy::model::EnvironmentSpec,
) -> Result<SecretValues, ActionError> {
    let s = &req.inputs.secrets;
    let mut secrets = BTreeMap::new();
    for (key, input) in &env.secrets {
        let value = match input.as_str() {
            "database-url" => s.database_url.as_ref(),
            "redis-url" => s.redis_url.as_ref(),
            "datadog-api-key" => s.datadog_api_key.as_ref(),
            "sentry-dsn" => s.sentry_dsn.as_ref(),
            other => {
                return Err(ActionError::Usage(format!(
                    "read secret `{key}` of environment `{}`: `{other}` is not a secret input (database-url, redis-url, datadog-api-key, sentry-dsn)",
                    env.name
                )));
            }
        };
        match value {
            Some(v) => {
                secrets.insert(key.clone(), v.expose().to_string());
            }
            None => {
                tracing::warn!(key = %key, input = %input, "secret input not given; the key is left out of the app's Secret")
            }
        }
    }
    let tls = match (&env.tls_secret, &s.tls_cert, &s.tls_key) {
        (Some(_), Some(c), Some(k)) => Some((c.expose().to_string(), k.expose().to_string())),
        (Some(name), _, _) => {
            return Err(ActionError::Usage(format!(
                "deploy `{}`: the policy names TLS secret `{name}` but the tls-cert and tls-key inputs are not both set",
                env.name
            )));
        }
        (None, _, _) => None,
    };
    Ok((secrets, tls))
}

/// The notification channels the inputs configure: Slack (`slack-webhook`), Datadog
/// (`datadog-api-key`, `datadog-site`), Sentry (`sentry-auth-token`, `sentry-org`,
/// `sentry-project`, `sentry-url`).
fn channels(req: &RunRequest) -> Vec<crate::notify::Channel> {
    use crate::notify::{Channel, DatadogEvents, SentryReleases, SlackWebhook};
    let i = &req.inputs;
    let mut out = Vec::new();
    let mut add = |c: Result<Channel, crate::notify::Error>| match c {
        Ok(c) => out.push(c),
        Err(e) => tracing::warn!(error = %e, "notification channel not set up"),
    };
    if let Some(url) = &i.slack_webhook {
        add(SlackWebhook::new(url.expose()).map(Channel::Slack));
    }
    if let Some(key) = &i.secrets.datadog_api_key {
        let api = i
            .notify
            .datadog_api
            .clone()
            .or_else(|| reqwest::Url::parse(crate::inputs::DATADOG_API).ok());
        if let Some(api) = api {
            add(DatadogEvents::new(api, key.clone()).map(Channel::Datadog));
        }
    }
    if let Some(s) = &i.notify.sentry {
        add(
            SentryReleases::new(s.api.clone(), s.token.clone(), &s.org, &s.project)
                .map(Channel::Sentry),
        );
    }
    out
}

/// Tells every configured channel where a deploy is. Best effort: a notification that cannot be
/// delivered is a warning, never the run's outcome.
#[allow(
    clippy::too_many_arguments,
    reason = "one notice's fields, named at each call"
)]
async fn notify_deploy(
    req: &RunRequest,
    policy: &Policy,
    env: &crate::policy::model::EnvironmentSpec,
    image: &str,
    phase: crate::notify::DeployPhase,
    outcome: &str,
    detail: &str,
    started_at: Option<&str>,
) {
    use crate::notify::{DeployNotice, DeployPhase, notify_all};
    let channels = channels(req);
    if channels.is_empty() {
        return;
    }
    let notice = DeployNotice {
        environment: env.name.clone(),
        app: policy.app.name.clone(),
        image: image.to_string(),
        outcome: outcome.to_string(),
        detail: detail.to_string(),
        run_url: req.context.run_url(),
        alarm: matches!(phase, DeployPhase::Failed | DeployPhase::RolledBack),
        phase,
        started_at: started_at.map(str::to_string),
        at: now_rfc3339(),
    };
    for e in notify_all(&channels, &notice).await {
        tracing::warn!(error = %e, "notification not delivered");
    }
}

/// Ends this run's GitHub Deployment (when there is one): success, or failure with the reason.
async fn end_deployment(
    req: &RunRequest,
    github: Option<&GithubClient>,
    deployment_id: Option<u64>,
    env: &crate::policy::model::EnvironmentSpec,
    succeeded: bool,
    description: &str,
) -> Result<(), ActionError> {
    let (Some(c), Some(id)) = (github, deployment_id) else {
        return Ok(());
    };
    let outcome = if succeeded {
        DeploymentOutcome::Success
    } else {
        DeploymentOutcome::Failure
    };
    finish_deployment(
        c,
        id,
        &env.name,
        outcome,
        Some(&env.url),
        req.context.run_url().as_deref(),
        description,
    )
    .await?;
    Ok(())
}

async fn pre_deploy(
    req: &RunRequest,
    policy: &Policy,
    env: &crate::policy::model::EnvironmentSpec,
    emergency: bool,
    github: Option<&GithubClient>,
    prober: &HttpProber,
) -> Result<PreDeployVerdict, ActionError> {
    let spec = &env.pre_deploy;
    let github_facts = match github {
        Some(c) if spec.checks_green || spec.incident_label.is_some() => {
            let run_id = req
                .context
                .run_id
                .map(|r| r.to_string())
                .unwrap_or_default();
            Some(
                crate::github::predeploy::validate(
                    c,
                    &req.plan.sha,
                    &run_id,
                    spec.incident_label.as_deref(),
                )
                .await?,
            )
        }
        Some(_) => Some(Vec::new()),
        None => None,
    };
    let targets: Vec<(String, String)> = if emergency {
        Vec::new()
    } else {
        spec.healthy
            .iter()
            .filter_map(|h| {
                policy
                    .environments
                    .get(h)
                    .map(|e| (h.clone(), e.url.clone()))
            })
            .collect()
    };
    let health = probe_environments(
        prober,
        &targets,
        &policy.app.health_path,
        std::time::Duration::from_secs(30),
    )
    .await;
    Ok(evaluate(
        spec,
        &PreDeployFacts {
            github: github_facts,
            health,
        },
        emergency,
    ))
}

async fn run_deploy(
    req: &RunRequest,
    policy: &Policy,
    plan: &Plan,
    github: Option<&GithubClient>,
    sink: &mut dyn Sink,
) -> Result<Outcome, ActionError> {
    let plan::DeployPlan::Planned(steps) = &plan.deploy else {
        return Ok(Outcome::Success);
    };
    let Some(env) = policy.environments.get(&steps.environment) else {
        return Err(ActionError::Usage(format!(
            "deploy: no environment `{}`",
            steps.environment
        )));
    };
    let prober = HttpProber::new()?;
    sink.output(OutputKey::RolledBack, "false")?;
    match pre_deploy(req, policy, env, steps.emergency, github, &prober).await? {
        PreDeployVerdict::Proceed => {}
        PreDeployVerdict::Blocked { reasons } => {
            let md = format!(
                "## Deploy to `{}` not started\n\nPre-deploy validation failed:\n\n{}\n",
                env.name,
                reasons
                    .iter()
                    .map(|r| format!("- {r}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            sink.print(&md)?;
            sink.summary(&md)?;
            return Ok(Outcome::Refused);
        }
    }
    let inputs = deploy_inputs(req, policy, env, SecretUse::Apply)?;
    let cluster = cluster_from(req).await?;
    let log_url = req.context.run_url();
    let deployment_id = match github {
        Some(c) => {
            let id = start_deployment(
                c,
                &req.plan.sha,
                &env.name,
                Some(&env.url),
                log_url.as_deref(),
            )
            .await?;
            sink.output(OutputKey::DeploymentId, &id.to_string())?;
            Some(id)
        }
        None => None,
    };
    let tests = GatePostDeploy {
        policy,
        workspace: req.workspace.clone(),
    };
    let started_at = now_rfc3339();
    if env.strategy != crate::policy::model::StrategyKind::BlueGreen {
        notify_deploy(
            req,
            policy,
            env,
            &inputs.image,
            DeployPhase::Started,
            "deploy started",
            "",
            None,
        )
        .await;
    }
    let rolled_back;
    let (ok, summary_line, md) = match env.strategy {
        crate::policy::model::StrategyKind::Direct
        | crate::policy::model::StrategyKind::Rolling => {
            // SIGTERM / SIGINT (a cancelled workflow): stop, and say so on the GitHub Deployment.
            // The deploy's Lease stops being renewed with it and expires for the next run.
            let (mut cancel, _signals) = bluegreen_run::cancel_on_signals()
                .map_err(|e| ActionError::Other(format!("install signal handlers: {e}")))?;
            let opts = DeployOptions::default();
            let deploying =
                deploy_environment(&cluster, &prober, &tests, &policy.app, env, &inputs, &opts);
            let result = tokio::select! {
                r = deploying => r,
                _ = cancel.wait_for(|c| *c) => {
                    let line = format!("deploy to `{}` cancelled before it finished", env.name);
                    end_deployment(req, github, deployment_id, env, false, &line).await?;
                    sink.print(&line)?;
                    sink.summary(&format!("## {line}\n"))?;
                    return Ok(Outcome::Refused);
                }
            };
            match result {
                Ok(report) => {
                    let line = report.outcome.summary();
                    rolled_back = matches!(
                        report.outcome,
                        crate::deploy::strategy::DeployOutcome::RolledBack { .. }
                    );
                    if rolled_back {
                        sink.output(OutputKey::RolledBack, "true")?;
                    }
                    let md = format!(
                        "## Deploy to `{}`: {}\n\n{}\n",
                        env.name,
                        line,
                        report
                            .steps
                            .iter()
                            .map(|s| format!("1. {s}"))
                            .collect::<Vec<_>>()
                            .join("\n")
                    );
                    (report.exit_code(), line, md)
                }
                Err(e) => {
                    end_deployment(req, github, deployment_id, env, false, &format!("{e}")).await?;
                    return Err(e.into());
                }
            }
        }
        crate::policy::model::StrategyKind::BlueGreen => {
            return run_blue_green(req, policy, env, &inputs, github, deployment_id, sink).await;
        }
    };
    end_deployment(req, github, deployment_id, env, ok == 0, &summary_line).await?;
    let (phase, word) = match (ok, rolled_back) {
        (0, _) => (DeployPhase::Succeeded, "deployed"),
        (_, true) => (DeployPhase::RolledBack, "rolled back"),
        (_, false) => (DeployPhase::Failed, "failed"),
    };
    notify_deploy(
        req,
        policy,
        env,
        &inputs.image,
        phase,
        word,
        &summary_line,
        Some(&started_at),
    )
    .await;
    sink.print(&md)?;
    sink.summary(&md)?;
    match ok {
        0 => Ok(Outcome::Success),
        1 => Ok(Outcome::Refused),
        _ => Err(ActionError::Other(format!(
            "deploy `{}`: {summary_line}",
            env.name
        ))),
    }
}

// ---------------------------------------------------------------------------------------------
// Blue-green and the manual commands

use crate::deploy::bluegreen::{Action as BgAction, BgState, Outcome as BgOutcome};
use crate::deploy::bluegreen_run::{
    self, BgReport, BgRunConfig, MonitorSnapshot, Progress, RunEnd, cancel_on_signals,
};
use crate::deploy::colors::KubeColors;
use crate::deploy::metrics::PrometheusClient;
use crate::github::CheckRunHandle;
use crate::report::checks::{CheckOutput, CheckStatus, UpdateCheckRun, truncate_chars};

/// The deploy check run (`fm-deploy / deploy <env>`) updated live: every phase change, and while
/// monitoring each trigger's value against its threshold, at most every 10 s.
struct CheckProgress<'a> {
    github: Option<(&'a GithubClient, CheckRunHandle)>,
    title: String,
    last: Mutex<Option<std::time::Instant>>,
}

impl CheckProgress<'_> {
    async fn update(&self, summary: String, force: bool) {
        let Some((client, handle)) = &self.github else {
            return;
        };
        {
            let Ok(mut last) = self.last.lock() else {
                return;
            };
            if !force && last.is_some_and(|t| t.elapsed() < std::time::Duration::from_secs(10)) {
                return;
            }
            *last = Some(std::time::Instant::now());
        }
        let body = UpdateCheckRun {
            status: Some(CheckStatus::InProgress),
            conclusion: None,
            completed_at: None,
            details_url: None,
            output: Some(CheckOutput {
                title: truncate_chars(&self.title, 255),
                summary: truncate_chars(&summary, 65_000),
                text: None,
                annotations: Vec::new(),
            }),
        };
        // Progress is best effort: a failed update must not disturb the deploy or its rollback.
        if let Err(e) = crate::github::Checks::update_check_run(*client, handle.id, &body).await {
            tracing::warn!(error = %e, "deploy check run progress update failed");
        }
    }
}

impl Progress for CheckProgress<'_> {
    async fn transition(&self, state: &BgState, action: &BgAction) {
        tracing::info!(phase = ?state.phase, action = ?action, "blue-green step");
        let summary = format!(
            "Phase `{:?}`; next: `{}`",
            state.phase,
            serde_json::to_string(action).unwrap_or_default()
        );
        self.update(summary, false).await;
    }

    async fn monitoring(&self, snapshot: &MonitorSnapshot) {
        self.update(crate::deploy::bg_summary::render_progress(snapshot), true)
            .await;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BgCommand {
    Deploy,
    Rollback,
    Promote,
    Cleanup,
}

impl BgCommand {
    fn name(self) -> &'static str {
        match self {
            BgCommand::Deploy => "deploy",
            BgCommand::Rollback => "rollback",
            BgCommand::Promote => "promote",
            BgCommand::Cleanup => "cleanup",
        }
    }
}

/// Prometheus for the triggers: required when any trigger queries it.
/// `monitors`: whether the command can reach a monitoring window (deploy, promote); `rollback`
/// and `cleanup` never query Prometheus and do not need its input.
fn metrics_for(
    req: &RunRequest,
    env: &crate::policy::model::EnvironmentSpec,
    monitors: bool,
) -> Result<PrometheusClient, ActionError> {
    let needs = monitors
        && env.rollback.triggers.iter().any(|t| {
            matches!(
                t.source,
                crate::policy::model::TriggerSource::Prometheus { .. }
            )
        });
    let base = match (&req.inputs.prometheus_url, needs) {
        (Some(u), _) => u.to_string(),
        (None, true) => {
            return Err(ActionError::Usage(format!(
                "monitor `{}`: its rollback triggers query Prometheus; set the `prometheus-url` input",
                env.name
            )));
        }
        // No Prometheus trigger, or no monitoring: the client is never asked. Loopback port 9
        // (discard) makes any mistake fail fast rather than reach the network.
        (None, false) => "http://127.0.0.1:9".to_string(),
    };
    PrometheusClient::new(
        &base,
        crate::deploy::metrics::query_timeout(env.rollback.sample_every),
    )
    .map_err(|e| ActionError::Usage(format!("{e}")))
}

/// One blue-green operation: which, with which image (deploy only), under which GitHub Deployment.
struct BgRequest<'a> {
    command: BgCommand,
    image: Option<&'a str>,
    deployment_id: Option<u64>,
}

async fn blue_green(
    req: &RunRequest,
    policy: &Policy,
    env: &crate::policy::model::EnvironmentSpec,
    op: BgRequest<'_>,
    github: Option<&GithubClient>,
    sink: &mut dyn Sink,
) -> Result<Outcome, ActionError> {
    let BgRequest {
        command,
        image,
        deployment_id,
    } = op;
    let holder = req.context.run_id.map_or_else(
        || format!("fm-deploy pid {}", std::process::id()),
        |r| format!("run {r}"),
    );
    let (mut cfg, spec): (BgRunConfig, _) = bluegreen_run::from_policy(&policy.app, env, &holder)
        .map_err(|e| ActionError::Usage(format!("{e}")))?;
    cfg.deployment_id = deployment_id;
    let cluster = cluster_from(req).await?;
    let secret_use = match command {
        BgCommand::Deploy => SecretUse::Apply,
        BgCommand::Rollback | BgCommand::Promote | BgCommand::Cleanup => SecretUse::Keep,
    };
    let inputs = deploy_inputs(req, policy, env, secret_use)?;
    let objects = crate::deploy::manifests::environment_objects(&policy.app, env, &inputs)?;
    let colors = KubeColors::new(cluster.client().clone(), spec, objects, &env.name);
    let monitors = matches!(command, BgCommand::Deploy | BgCommand::Promote);
    let metrics = metrics_for(req, env, monitors)?;
    let (cancel, _signals) = cancel_on_signals()
        .map_err(|e| ActionError::Other(format!("install signal handlers: {e}")))?;

    let check_title = format!("{} {}", command.name(), env.name);
    let session = match github {
        Some(c) => {
            Some(ChecksSession::open(c, &req.plan.sha, req.context.run_url().as_deref()).await?)
        }
        None => None,
    };
    let gate_name = format!("{} {}", command.name(), env.name);
    let handle = match &session {
        Some(s) => {
            let id = external_id(
                &req.context
                    .run_id
                    .map(|r| r.to_string())
                    .unwrap_or_default(),
                req.context.job.as_deref().unwrap_or("fm-deploy"),
                &gate_name,
            );
            match s.start(&gate_name, &id, &now_rfc3339()).await? {
                Started::Posted(h) => Some(h),
                Started::NoAccess { .. } => None,
            }
        }
        None => None,
    };
    let progress = CheckProgress {
        github: github.zip(handle.clone()),
        title: check_title.clone(),
        last: Mutex::new(None),
    };
    let started_at = now_rfc3339();
    if let (BgCommand::Deploy, Some(i)) = (command, image) {
        let image = i.to_string();
        notify_deploy(
            req,
            policy,
            env,
            &image,
            DeployPhase::Started,
            "deploy started",
            "",
            None,
        )
        .await;
    }
    let result = match command {
        BgCommand::Deploy => {
            let image = image.unwrap_or_default();
            bluegreen_run::deploy_blue_green(&colors, &metrics, &progress, &cfg, image, cancel)
                .await
        }
        BgCommand::Rollback => {
            bluegreen_run::rollback_blue_green(&colors, &metrics, &progress, &cfg, cancel).await
        }
        BgCommand::Promote => {
            bluegreen_run::promote_blue_green(&colors, &metrics, &progress, &cfg, cancel).await
        }
        BgCommand::Cleanup => {
            bluegreen_run::cleanup_blue_green(
                &colors,
                &metrics,
                &progress,
                &cfg,
                chrono::Utc::now(),
                cancel,
            )
            .await
        }
    };
    let report: BgReport = match result {
        Ok(r) => r,
        Err(e) => {
            // The infrastructure error is what the run reports; a failure to record it on the
            // Deployment must not hide it.
            if let Err(g) =
                end_deployment(req, github, deployment_id, env, false, &format!("{e}")).await
            {
                tracing::warn!(error = %g, "failed to mark the GitHub Deployment failed");
            }
            return Err(e.into());
        }
    };
    for (key, value) in report.outputs() {
        if let Some(k) = OutputKey::from_name(key) {
            sink.output(k, &value)?;
        }
    }
    let md = crate::deploy::bg_summary::render_summary(
        &format!("{} `{}`", command.name(), env.name),
        &report,
    );
    sink.print(&md)?;
    sink.summary(&md)?;
    let code = report.exit_code();
    let (conclusion, line) = match &report.end {
        RunEnd::Paused => (
            CheckConclusion::Neutral,
            crate::deploy::bg_summary::paused_text(&report.state),
        ),
        RunEnd::Finished(o) => match o {
            BgOutcome::Succeeded => (CheckConclusion::Success, "succeeded".to_string()),
            BgOutcome::Nothing { reason } => {
                (CheckConclusion::Neutral, format!("nothing to do: {reason}"))
            }
            BgOutcome::RolledBack { trigger } => (
                CheckConclusion::Failure,
                format!("rolled back: trigger `{trigger}` fired"),
            ),
            BgOutcome::Failed { reason } => (CheckConclusion::Failure, format!("failed: {reason}")),
            BgOutcome::Cancelled => (
                CheckConclusion::Cancelled,
                "cancelled: traffic on a checked colour".to_string(),
            ),
            BgOutcome::Refused { reason } => {
                (CheckConclusion::Failure, format!("refused: {reason}"))
            }
            BgOutcome::RevertPending { reason } => (
                CheckConclusion::Failure,
                format!("revert pending, traffic may be on the failed colour: {reason}"),
            ),
        },
    };
    if let (Some(s), Some(h)) = (&session, &handle) {
        let check = GateCheck {
            name: gate_name.clone(),
            conclusion,
            title: format!("{check_title}: {line}"),
            summary_markdown: md.clone(),
            text_markdown: None,
            findings: Vec::new(),
            annotation_budget: 0,
        };
        s.finish(h, &check, &now_rfc3339()).await?;
    }
    end_deployment(req, github, deployment_id, env, code == 0, &line).await?;
    let image = report.state.image.clone().unwrap_or_default();
    let phase = match (&report.end, code, command) {
        (RunEnd::Finished(BgOutcome::RolledBack { .. }), _, _) | (_, 0, BgCommand::Rollback) => {
            DeployPhase::RolledBack
        }
        (_, 0, _) => DeployPhase::Succeeded,
        _ => DeployPhase::Failed,
    };
    notify_deploy(
        req,
        policy,
        env,
        &image,
        phase,
        &format!(
            "{} {}",
            command.name(),
            if code == 0 {
                "succeeded"
            } else {
                "did not succeed"
            }
        ),
        &line,
        Some(&started_at),
    )
    .await;
    match code {
        0 => Ok(Outcome::Success),
        1 => Ok(Outcome::Refused),
        _ => Err(ActionError::Other(format!(
            "{} `{}`: {line}",
            command.name(),
            env.name
        ))),
    }
}

async fn run_blue_green(
    req: &RunRequest,
    policy: &Policy,
    env: &crate::policy::model::EnvironmentSpec,
    inputs: &DeployInputs,
    github: Option<&GithubClient>,
    deployment_id: Option<u64>,
    sink: &mut dyn Sink,
) -> Result<Outcome, ActionError> {
    let op = BgRequest {
        command: BgCommand::Deploy,
        image: Some(&inputs.image),
        deployment_id,
    };
    blue_green(req, policy, env, op, github, sink).await
}

/// `rollback`, `promote`, `cleanup` (workflow_dispatch / schedule). Blue-green environments switch
/// colours; a direct or rolling environment's rollback re-deploys its last successful image
/// before the current one, from the state record on the cluster.
async fn run_manual(
    req: &RunRequest,
    policy: &Policy,
    plan: &Plan,
    command: BgCommand,
    sink: &mut dyn Sink,
) -> Result<Outcome, ActionError> {
    let Some(env) = plan
        .environment
        .as_ref()
        .and_then(|e| policy.environments.get(e))
    else {
        return Err(ActionError::Usage(format!(
            "{}: branch `{}` maps to no environment; pass the `environment` input",
            command.name(),
            plan.branch
        )));
    };
    if req.plan.dry_run {
        sink.print(&format!(
            "{} `{}`: dry run — nothing changed",
            command.name(),
            env.name
        ))?;
        return Ok(Outcome::Success);
    }
    let github = github_client(req)?;
    match env.strategy {
        crate::policy::model::StrategyKind::BlueGreen => {
            let op = BgRequest {
                command,
                image: None,
                deployment_id: None,
            };
            blue_green(req, policy, env, op, github.as_ref(), sink).await
        }
        crate::policy::model::StrategyKind::Direct
        | crate::policy::model::StrategyKind::Rolling => match command {
            BgCommand::Rollback => rollback_revision(req, policy, env, sink).await,
            BgCommand::Promote | BgCommand::Cleanup | BgCommand::Deploy => {
                sink.print(&format!(
                    "{}: environment `{}` is {:?}; only blue-green environments have colours to promote or clean up",
                    command.name(),
                    env.name,
                    env.strategy
                ))?;
                Ok(Outcome::Success)
            }
        },
    }
}

/// Direct / rolling rollback: the last image that deployed successfully before the current one.
async fn rollback_revision(
    req: &RunRequest,
    policy: &Policy,
    env: &crate::policy::model::EnvironmentSpec,
    sink: &mut dyn Sink,
) -> Result<Outcome, ActionError> {
    use crate::deploy::cluster::Cluster;
    let cluster = cluster_from(req).await?;
    let record = cluster
        .read_record(&env.namespace, &policy.app.name)
        .await?;
    let current = record.current.as_ref().map(|c| c.image.clone());
    let previous = record
        .history
        .iter()
        .find(|r| r.outcome == "deployed" && Some(&r.image) != current.as_ref())
        .map(|r| r.image.clone());
    let Some(previous) = previous else {
        return Err(ActionError::Usage(format!(
            "rollback `{}`: the state record has no earlier successful image than {}",
            env.name,
            current.unwrap_or_else(|| "(none)".into())
        )));
    };
    let mut inputs = deploy_inputs(req, policy, env, SecretUse::Keep)?;
    inputs.image = previous.clone();
    let prober = HttpProber::new()?;
    let tests = GatePostDeploy {
        policy,
        workspace: req.workspace.clone(),
    };
    let report = deploy_environment(
        &cluster,
        &prober,
        &tests,
        &policy.app,
        env,
        &inputs,
        &DeployOptions::default(),
    )
    .await?;
    let md = format!(
        "## Rollback of `{}` to {previous}: {}\n",
        env.name,
        report.outcome.summary()
    );
    sink.print(&md)?;
    sink.summary(&md)?;
    sink.output(
        OutputKey::RolledBack,
        if report.exit_code() == 0 {
            "true"
        } else {
            "false"
        },
    )?;
    match report.exit_code() {
        0 => Ok(Outcome::Success),
        1 => Ok(Outcome::Refused),
        _ => Err(ActionError::Other(format!(
            "rollback `{}`: {}",
            env.name,
            report.outcome.summary()
        ))),
    }
}
