//! The only orchestrator: one function per command. Reads nothing from the process environment
//! itself: `main` hands it a `RunRequest` and the sinks.

use crate::error::ActionError;
use crate::inputs::{GithubContext, Inputs};
use crate::plan::{self, Command, Plan, PlanRequest};
use crate::policy::{self, Policy};
use crate::runtime::{Console, OutputKey, Runtime};
use std::path::PathBuf;

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
    /// Human-readable text (stdout).
    fn print(&mut self, text: &str) -> Result<(), ActionError>;
    /// A step output (`GITHUB_OUTPUT`).
    fn output(&mut self, key: OutputKey, value: &str) -> Result<(), ActionError>;
    /// Markdown for the job summary (`GITHUB_STEP_SUMMARY`, or a local file).
    fn summary(&mut self, markdown: &str) -> Result<(), ActionError>;
}

impl<C: Console> Sink for Runtime<C> {
    fn print(&mut self, text: &str) -> Result<(), ActionError> {
        Ok(self.line(text.trim_end_matches('\n'))?)
    }

    fn output(&mut self, key: OutputKey, value: &str) -> Result<(), ActionError> {
        Ok(self.set_output(key, value)?)
    }

    fn summary(&mut self, markdown: &str) -> Result<(), ActionError> {
        self.append_summary(markdown)?;
        Ok(())
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

/// Runs one command to its end.
pub async fn run(req: &RunRequest, sink: &mut dyn Sink) -> Result<Outcome, ActionError> {
    let policy = load_policy(req)?;
    let plan = plan::plan(&req.plan, &policy)?;
    write_common_outputs(&plan, sink)?;
    match req.plan.command {
        Command::Plan => run_plan(req, &plan, sink),
        Command::Matrix => run_matrix(&plan, sink),
        Command::Gates => run_gates_command(req, &policy, &plan, sink).await,
        Command::Deploy => Err(ActionError::NotAvailable("deploy")),
        Command::Pipeline => run_pipeline(req, &policy, &plan, sink).await,
        Command::Rollback => Err(ActionError::NotAvailable("rollback")),
        Command::Promote => Err(ActionError::NotAvailable("promote")),
        Command::Cleanup => Err(ActionError::NotAvailable("cleanup")),
        Command::Setup => Err(ActionError::NotAvailable("setup")),
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
        sink.print(&json)?;
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
            sink.print(&m.json)?;
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
    ApprovalError, GateContext, GateHooks, GatesReport, LabelApprovals, NoLabels, PullRequestRef,
    run_gates_with_hooks,
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
    ctx.image = Some(image_ref(req, policy));
    if let (Trigger::PullRequest { number, .. }, crate::inputs::Event::PullRequest(pr)) =
        (&req.plan.trigger, &req.context.event)
    {
        ctx.pull_request = Some(PullRequestRef {
            number: *number,
            base: format!("origin/{}", pr.base_ref),
            head: pr.head_sha.clone(),
        });
        ctx.diff_scope = rule.map_or(crate::policy::model::DiffScope::All, |r| r.diff_scope);
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
    let report = run_gates_with_hooks(policy, tier, &ctx, &ProcessRunner, &labels, &hooks).await;
    let decision = report.verdict.decision;

    // Report: the summary and terminal text always; check runs when there is access.
    sink.print(&gates_summary::render_text(&report))?;
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
        for line in workflow_commands(&all) {
            sink.print(&line)?;
        }
    }
    Ok(Some(GatesPhase { report, decision }))
}

fn image_ref(req: &RunRequest, policy: &Policy) -> String {
    req.plan.image.clone().unwrap_or_else(|| {
        let tag = req
            .plan
            .image_tag
            .clone()
            .unwrap_or_else(|| req.plan.sha.clone());
        format!("{}:{}", policy.app.image, tag)
    })
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
    plan: &Plan,
    sink: &mut dyn Sink,
) -> Result<Outcome, ActionError> {
    let github = github_client(req)?;
    match run_gates_phase(req, policy, plan, github.as_ref(), sink).await? {
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
    plan: &Plan,
    sink: &mut dyn Sink,
) -> Result<Outcome, ActionError> {
    let github = github_client(req)?;
    if req.plan.dry_run {
        sink.print(&plan.render_text())?;
        sink.summary(&plan.render_markdown())?;
    }
    let gates = run_gates_phase(req, policy, plan, github.as_ref(), sink).await?;
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

async fn run_deploy(
    _req: &RunRequest,
    _policy: &Policy,
    _plan: &Plan,
    _github: Option<&GithubClient>,
    _sink: &mut dyn Sink,
) -> Result<Outcome, ActionError> {
    Err(ActionError::NotAvailable("deploy"))
}
