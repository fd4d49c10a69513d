//! Wiring only: read the environment or the command line once, build the adapters, run, map to an
//! exit code.

use clap::Parser;
use fm_deploy::app::{self, Outcome, RunRequest, Sink};
use fm_deploy::error::ActionError;
use fm_deploy::plan::{Command, PlanRequest, Trigger};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

/// Quality gates, check runs and Kubernetes deploys from one policy file.
///
/// Inside GitHub Actions (GITHUB_ACTIONS=true) every setting comes from the action's inputs; on a
/// terminal the same commands run from these flags, with reports on the terminal and in a Markdown
/// file.
#[derive(Debug, Parser)]
#[command(name = "fm-deploy", version, about, long_about = None)]
struct Cli {
    /// plan | gates | matrix | deploy | pipeline | rollback | promote | cleanup | setup
    #[arg(default_value = "plan")]
    command: String,
    /// Policy file, relative to the workspace.
    #[arg(long, default_value = ".github/fm-deploy.yml")]
    config: PathBuf,
    /// Repository checkout the gates run in.
    #[arg(long, default_value = ".")]
    workspace: PathBuf,
    /// Branch whose rule applies (default: the checkout's current branch).
    #[arg(long)]
    branch: Option<String>,
    /// Event to plan for: push, pull-request, workflow-dispatch, schedule.
    #[arg(long, default_value = "push")]
    event: String,
    /// Pull request number (with --event pull-request).
    #[arg(long, default_value_t = 1)]
    pr: u64,
    /// The pull request comes from a fork.
    #[arg(long)]
    fork: bool,
    /// Deploy to this environment instead of the branch's.
    #[arg(long)]
    environment: Option<String>,
    /// Full image reference (default: the policy's image, tagged with --image-tag).
    #[arg(long)]
    image: Option<String>,
    /// Image tag (default: the commit SHA).
    #[arg(long)]
    image_tag: Option<String>,
    /// Commit SHA (default: the checkout's HEAD).
    #[arg(long)]
    sha: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Change nothing: plan and report only.
    #[arg(long)]
    dry_run: bool,
    /// Markdown report file.
    #[arg(long, default_value = "fm-deploy-report.md")]
    summary: PathBuf,
    /// Write step outputs (key=value) to this file.
    #[arg(long)]
    output: Option<PathBuf>,
}

struct LocalSink {
    summary: PathBuf,
    summary_started: bool,
    output: Option<PathBuf>,
}

impl Sink for LocalSink {
    fn print(&mut self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        if !text.ends_with('\n') {
            let _ = out.write_all(b"\n");
        }
    }

    fn output(&mut self, key: &str, value: &str) -> Result<(), ActionError> {
        let Some(path) = &self.output else {
            return Ok(());
        };
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| ActionError::Write {
                what: "outputs",
                path: path.clone(),
                source,
            })?;
        let line = if value.contains('\n') {
            format!("{key}<<FM_DEPLOY_EOF\n{value}\nFM_DEPLOY_EOF\n")
        } else {
            format!("{key}={value}\n")
        };
        f.write_all(line.as_bytes())
            .map_err(|source| ActionError::Write {
                what: "outputs",
                path: path.clone(),
                source,
            })
    }

    fn summary(&mut self, markdown: &str) -> Result<(), ActionError> {
        let path = self.summary.clone();
        let mut opts = std::fs::OpenOptions::new();
        opts.create(true);
        if self.summary_started {
            opts.append(true);
        } else {
            opts.write(true).truncate(true);
        }
        let mut f = opts.open(&path).map_err(|source| ActionError::Write {
            what: "report",
            path: path.clone(),
            source,
        })?;
        self.summary_started = true;
        f.write_all(markdown.as_bytes())
            .map_err(|source| ActionError::Write {
                what: "report",
                path,
                source,
            })
    }
}

fn git(workspace: &std::path::Path, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(workspace)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

fn request_from_cli(cli: &Cli) -> Result<RunRequest, ActionError> {
    let command = Command::parse(&cli.command).ok_or_else(|| {
        let names: Vec<&str> = Command::ALL.iter().map(|(n, _)| *n).collect();
        ActionError::Inputs(format!(
            "unknown command `{}` (one of: {})",
            cli.command,
            names.join(", ")
        ))
    })?;
    let branch = match &cli.branch {
        Some(b) => b.clone(),
        None => git(&cli.workspace, &["rev-parse", "--abbrev-ref", "HEAD"])
            .ok_or_else(|| ActionError::Inputs("determine the branch: pass --branch".into()))?,
    };
    let sha = cli
        .sha
        .clone()
        .or_else(|| git(&cli.workspace, &["rev-parse", "HEAD"]))
        .unwrap_or_else(|| "0000000000000000000000000000000000000000".into());
    let trigger = match cli.event.as_str() {
        "push" => Trigger::Push,
        "pull-request" | "pull_request" => Trigger::PullRequest {
            number: cli.pr,
            fork: cli.fork,
            head_ref: "local".into(),
        },
        "workflow-dispatch" | "workflow_dispatch" => Trigger::WorkflowDispatch,
        "schedule" => Trigger::Schedule,
        "local" => Trigger::Local,
        other => {
            return Err(ActionError::Inputs(format!(
                "unknown event `{other}` (push, pull-request, workflow-dispatch, schedule, local)"
            )));
        }
    };
    Ok(RunRequest {
        plan: PlanRequest {
            command,
            trigger,
            branch,
            sha,
            environment_override: cli.environment.clone(),
            image: cli.image.clone(),
            image_tag: cli.image_tag.clone(),
            dry_run: cli.dry_run,
        },
        config: cli.config.clone(),
        workspace: cli.workspace.clone(),
        json: cli.json,
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = request_from_cli(&cli).and_then(|req| {
        let mut sink = LocalSink {
            summary: cli.summary.clone(),
            summary_started: false,
            output: cli.output.clone(),
        };
        runtime.block_on(app::run(&req, &mut sink))
    });
    match result {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(o @ Outcome::Refused) => ExitCode::from(o.exit_code() as u8),
        Err(e) => {
            eprintln!("error: failed to {e:#}");
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                eprintln!("  caused by: {s}");
                src = s.source();
            }
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
