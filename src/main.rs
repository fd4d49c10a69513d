//! Wiring only: read the environment or the command line once, build the adapters, run, map to an
//! exit code.

use clap::Parser;
use fm_deploy::app::{self, Outcome, RunRequest};
use fm_deploy::error::ActionError;
use fm_deploy::inputs::{
    AppSecrets, Command, Event, GithubContext, Inputs, Kubeconfig, RawInputs, Secret,
};
use fm_deploy::plan::{PlanRequest, Trigger};
use fm_deploy::runtime::{self, Annotation, Level, Runtime, StdoutConsole};
use std::path::PathBuf;
use std::process::ExitCode;

/// Quality gates, check runs and Kubernetes deploys from one policy file.
///
/// Inside GitHub Actions (GITHUB_ACTIONS=true, no arguments) every setting comes from the action's
/// inputs; on a terminal the same commands run from these flags, with reports on the terminal and in
/// a Markdown file.
#[derive(Debug, Parser)]
#[command(name = "fm-deploy", version, about, long_about = None)]
struct Cli {
    /// What to do.
    #[arg(value_enum, default_value = "plan")]
    command: Command,
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
    /// Image repository (default: the policy's `app.image`), or a complete reference.
    #[arg(long)]
    image: Option<String>,
    /// Image tag (default: the commit SHA).
    #[arg(long)]
    image_tag: Option<String>,
    /// Image digest (`sha256:…`): gate and deploy exactly that content.
    #[arg(long, value_parser = parse_digest)]
    image_digest: Option<String>,
    /// Commit SHA (default: the checkout's HEAD).
    #[arg(long)]
    sha: Option<String>,
    /// Kubeconfig file for deploy commands (default: $KUBECONFIG).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Prometheus base URL for rollback triggers.
    #[arg(long)]
    prometheus_url: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Change nothing: plan and report only.
    #[arg(long)]
    dry_run: bool,
    /// Markdown report file.
    #[arg(long, default_value = "fm-deploy-report.md")]
    summary: PathBuf,
    /// Write step outputs (GitHub's `GITHUB_OUTPUT` format) to this file.
    #[arg(long)]
    output: Option<PathBuf>,
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

fn trigger_of(event: &Event) -> Trigger {
    match event {
        Event::Push(_) => Trigger::Push,
        Event::PullRequest(pr) => Trigger::PullRequest {
            number: pr.number,
            fork: pr.is_fork,
            head_ref: pr.head_ref.clone(),
        },
        Event::WorkflowDispatch(_) => Trigger::WorkflowDispatch,
        Event::Schedule(_) => Trigger::Schedule,
        Event::Other { name } => Trigger::Other { name: name.clone() },
        Event::Local => Trigger::Local,
    }
}

/// Inside Actions: inputs and context from the environment, masks first.
fn request_from_actions(
    vars: Vec<(String, String)>,
    ctx: GithubContext,
    rt: &mut Runtime<StdoutConsole>,
) -> Result<RunRequest, ActionError> {
    let raw = RawInputs::from_vars(vars)?;
    rt.mask_secrets(&raw)?;
    let inputs = raw.validate(&ctx)?;
    let branch = ctx
        .branch()
        .or_else(|| ctx.ref_name.clone())
        .unwrap_or_default();
    let sha = ctx.commit_sha().unwrap_or_default().to_string();
    let workspace = ctx.workspace.clone().unwrap_or_else(|| PathBuf::from("."));
    Ok(RunRequest {
        plan: PlanRequest {
            command: inputs.command,
            trigger: trigger_of(&ctx.event),
            branch,
            sha,
            environment_override: inputs.environment.clone(),
            image: fm_deploy::image_ref::ImageInputs {
                image: inputs.image.clone(),
                tag: inputs.image_tag.clone(),
                digest: inputs.image_digest.clone(),
            },
            dry_run: inputs.dry_run,
        },
        config: inputs.config.clone(),
        workspace,
        json: false,
        context: ctx,
        inputs,
    })
}

/// On a terminal: the flags, with the checkout's branch and HEAD as defaults.
/// A non-empty environment variable as a secret (secrets never on the command line).
fn env_secret(name: &str) -> Option<Secret> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .map(Secret::new)
}

/// Datadog's site and Sentry's release API for local runs: `FM_DEPLOY_DATADOG_SITE`,
/// `FM_DEPLOY_SENTRY_{URL,AUTH_TOKEN,ORG,PROJECT}`, read as the action reads its inputs.
fn notify_from_env() -> Result<fm_deploy::inputs::NotifyTargets, ActionError> {
    let var = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
    Ok(fm_deploy::inputs::notify_targets(
        var("FM_DEPLOY_DATADOG_SITE").as_deref(),
        var("FM_DEPLOY_SENTRY_URL").as_deref(),
        var("FM_DEPLOY_SENTRY_AUTH_TOKEN").as_deref(),
        var("FM_DEPLOY_SENTRY_ORG").as_deref(),
        var("FM_DEPLOY_SENTRY_PROJECT").as_deref(),
    )?)
}

fn request_from_cli(cli: &Cli, ctx: GithubContext) -> Result<RunRequest, ActionError> {
    let branch = match &cli.branch {
        Some(b) => b.clone(),
        None => git(&cli.workspace, &["rev-parse", "--abbrev-ref", "HEAD"])
            .ok_or_else(|| ActionError::Usage("determine the branch: pass --branch".into()))?,
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
            return Err(ActionError::Usage(format!(
                "read --event: unknown event `{other}` (push, pull-request, workflow-dispatch, schedule, local)"
            )));
        }
    };
    let kubeconfig_path = cli
        .kubeconfig
        .clone()
        .or_else(|| std::env::var_os("KUBECONFIG").map(PathBuf::from));
    let kubeconfig = match kubeconfig_path {
        Some(p) if cli.command != Command::Plan => {
            let text = fm_deploy::budget::read_to_string(&p, &fm_deploy::budget::KUBECONFIG)
                .map_err(|e| ActionError::Usage(format!("read kubeconfig {}: {e}", p.display())))?;
            Some(
                Kubeconfig::parse(&text).map_err(|e| {
                    ActionError::Usage(format!("read kubeconfig {}: {e}", p.display()))
                })?,
            )
        }
        Some(_) | None => None,
    };
    let prometheus_url = match &cli.prometheus_url {
        Some(u) => Some(
            reqwest::Url::parse(u)
                .map_err(|e| ActionError::Usage(format!("read --prometheus-url `{u}`: {e}")))?,
        ),
        None => None,
    };
    let inputs = Inputs {
        command: cli.command,
        config: cli.config.clone(),
        github_token: std::env::var("GITHUB_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
            .map(Secret::new),
        kubeconfig,
        environment: cli.environment.clone(),
        image: cli.image.clone(),
        image_tag: cli.image_tag.clone(),
        image_digest: cli.image_digest.clone(),
        dry_run: cli.dry_run,
        prometheus_url,
        // Secrets never on the command line (process lists show it): from the environment.
        slack_webhook: env_secret("FM_DEPLOY_SLACK_WEBHOOK"),
        secrets: AppSecrets::from_vars(&std::env::vars().collect::<Vec<_>>())?,
        notify: notify_from_env()?,
    };
    Ok(RunRequest {
        plan: PlanRequest {
            command: cli.command,
            trigger,
            branch,
            sha,
            environment_override: cli.environment.clone(),
            image: fm_deploy::image_ref::ImageInputs {
                image: cli.image.clone(),
                tag: cli.image_tag.clone(),
                digest: cli.image_digest.clone(),
            },
            dry_run: cli.dry_run,
        },
        config: cli.config.clone(),
        workspace: cli.workspace.clone(),
        json: cli.json,
        context: ctx,
        inputs,
    })
}

fn main() -> ExitCode {
    let vars: Vec<(String, String)> = std::env::vars().collect();
    let get = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let filter = runtime::log_filter(
        get("FM_DEPLOY_LOG").or(get("RUST_LOG")),
        get("RUNNER_DEBUG") == Some("1"),
    );
    let actions_mode = get("GITHUB_ACTIONS") == Some("true") && std::env::args_os().len() == 1;
    runtime::init_tracing(&filter, !actions_mode);

    let cli = if actions_mode {
        None
    } else {
        match Cli::try_parse() {
            Ok(c) => Some(c),
            // A usage error quotes the arguments (a branch name, say): printed defused.
            Err(e) if e.use_stderr() => {
                runtime::eprint_untrusted(e.render().to_string().trim_end());
                return ExitCode::from(2);
            }
            Err(e) => e.exit(),
        }
    };
    let ctx = match GithubContext::from_vars(vars.clone()) {
        Ok(c) => c,
        Err(e) => return fail(None, &ActionError::from(e)),
    };
    let mut rt = match &cli {
        None => Runtime::from_context(StdoutConsole, &ctx),
        Some(c) => {
            // A fresh report per run.
            let _ = std::fs::write(&c.summary, b"");
            Runtime::new(
                StdoutConsole,
                false,
                c.output.clone(),
                Some(c.summary.clone()),
            )
        }
    };
    let req = match &cli {
        None => request_from_actions(vars, ctx, &mut rt),
        Some(c) => request_from_cli(c, ctx),
    };
    // Inside Actions the error also becomes an `::error::` annotation on the run.
    let annotate = actions_mode;
    let req = match req {
        Ok(r) => r,
        Err(e) => return fail(Some(&mut rt).filter(|_| annotate), &e),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            let e = ActionError::Usage(format!("start the async runtime: {e}"));
            return fail(Some(&mut rt).filter(|_| annotate), &e);
        }
    };
    match runtime.block_on(app::run(&req, &mut rt)) {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(o @ Outcome::Refused) => ExitCode::from(o.exit_code() as u8),
        Err(e) => fail(Some(&mut rt).filter(|_| annotate), &e),
    }
}

/// Prints the error chain (and an `::error::` annotation inside Actions) and returns exit code 2.
fn fail(rt: Option<&mut Runtime<StdoutConsole>>, e: &ActionError) -> ExitCode {
    let mut text = format!("failed to {e}");
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        text.push_str(&format!("\n  caused by: {s}"));
        src = s.source();
    }
    // The chain can quote a tool's stderr or a file name: untrusted.
    runtime::eprint_untrusted(&format!("error: {text}"));
    if let Some(rt) = rt {
        // Policy problems each become an annotation on their own line of the policy file.
        let problems = match e {
            ActionError::Policy(p) => p.problems(),
            _ => &[],
        };
        let file = match e {
            ActionError::Policy(fm_deploy::policy::Error::Invalid { path, .. }) => {
                Some(path.display().to_string())
            }
            _ => None,
        };
        for p in problems {
            let mut a = Annotation::new(Level::Error, p.to_string());
            a.file = file.clone();
            a.line = u32::try_from(p.pos.line).ok();
            a.col = u32::try_from(p.pos.col).ok();
            a.title = Some(format!("fm-deploy policy: {}", p.path));
            let _ = rt.annotate(&a);
        }
        let _ = rt.annotate(&Annotation::new(Level::Error, text));
    }
    ExitCode::from(e.exit_code() as u8)
}

fn parse_digest(v: &str) -> Result<String, String> {
    if fm_deploy::image_ref::is_digest(v) {
        Ok(v.to_string())
    } else {
        Err(format!(
            "`{v}` is not an image digest (`sha256:` and 64 lowercase hex digits)"
        ))
    }
}
