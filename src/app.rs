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
        Command::Gates => Err(ActionError::NotAvailable("gates")),
        Command::Deploy => Err(ActionError::NotAvailable("deploy")),
        Command::Pipeline => Err(ActionError::NotAvailable("pipeline")),
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
