//! The project's own environment for the gates that need it: the policy's `install:` step, run once
//! before the gates into a virtualenv outside the checkout.
//!
//! The gate tools live in the action's own virtualenvs, pinned to the versions the parsers read;
//! the project's dependencies must not replace them, and the tools must not be what a licence scan
//! lists. So the project gets a separate venv (`<tmp>/fm-project-env-*/venv`), the install argv
//! runs with that venv's `bin` first on `PATH` (`pip` is the venv's), and gates reach it only
//! where they say so, through two substitutions (in `run:` arguments and `env:` values):
//!
//! - `{python}`: the venv's interpreter — `mypy --python-executable {python}` type-checks against
//!   the installed packages, `pip-licenses --python {python}` lists the project's packages only;
//! - `{site_packages}`: its `site-packages` — `env: {PYTHONPATH: "{site_packages}"}` lets the
//!   action's pytest import the project's dependencies.
//!
//! Without `install:`, `{python}` is `python3` and `{site_packages}` is empty.
//!
//! Owns: creating the venv, running the install, the two values. Must not touch: the gates
//! themselves, parsing. An install that fails fails every gate that runs a tool, with the tool's
//! output kept as data.

use crate::gates::outcome::GateOutcome;
use crate::gates::parsers::Metrics;
use crate::gates::run::GateRun;
use crate::gates::runner::{ExecOutcome, ExitStatus, ToolCommand, ToolRunner};
use crate::gates::scratch::scratch_env;
use crate::policy::model::GateSpec;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `{python}` in a gate's argv or env values.
pub const PYTHON: &str = "{python}";
/// `{site_packages}` in a gate's argv or env values.
pub const SITE_PACKAGES: &str = "{site_packages}";

/// Most bytes of the install's output kept in the failure message.
const OUTPUT_TAIL: usize = 4000;

/// A prepared project environment; removed when dropped.
#[derive(Debug)]
pub struct ProjectEnv {
    _dir: tempfile::TempDir,
    pub python: PathBuf,
    pub site_packages: PathBuf,
}

/// What `{python}` and `{site_packages}` stand for in this run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvValues {
    pub python: Option<String>,
    pub site_packages: Option<String>,
}

impl EnvValues {
    pub fn of(env: Option<&ProjectEnv>) -> Self {
        match env {
            Some(e) => EnvValues {
                python: Some(e.python.display().to_string()),
                site_packages: Some(e.site_packages.display().to_string()),
            },
            None => EnvValues::default(),
        }
    }

    /// `{python}` and `{site_packages}` replaced inside one argument or value.
    pub fn substitute(&self, s: &str) -> String {
        s.replace(PYTHON, self.python.as_deref().unwrap_or("python3"))
            .replace(SITE_PACKAGES, self.site_packages.as_deref().unwrap_or(""))
    }
}

/// Why the project environment could not be prepared. The message is the tool's own words.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("prepare the project environment: {0}")]
pub struct InstallError(pub String);

/// Creates the venv and runs `install` in `workspace` with it first on `PATH`.
pub async fn prepare<R: ToolRunner>(
    install: &[String],
    workspace: &Path,
    timeout: Duration,
    output_cap: u64,
    runner: &R,
) -> Result<ProjectEnv, InstallError> {
    let dir = tempfile::Builder::new()
        .prefix("fm-project-env-")
        .tempdir()
        .map_err(|e| InstallError(format!("create a temporary directory: {e}")))?;
    let venv = dir.path().join("venv");
    let cmd = |argv: Vec<String>, env: BTreeMap<String, String>| ToolCommand {
        argv,
        cwd: workspace.to_path_buf(),
        env,
        timeout,
        output_cap,
    };
    let mut env = scratch_env(dir.path());
    std::fs::create_dir_all(dir.path().join("tmp"))
        .map_err(|e| InstallError(format!("create {}: {e}", dir.path().display())))?;
    let venv_arg = venv.display().to_string();
    run(
        runner,
        &cmd(
            vec!["python3".into(), "-m".into(), "venv".into(), venv_arg],
            env.clone(),
        ),
        "python3 -m venv",
    )
    .await?;
    let python = venv.join("bin/python");
    let site = run(
        runner,
        &cmd(
            vec![
                python.display().to_string(),
                "-c".into(),
                "import sysconfig; print(sysconfig.get_paths()['purelib'])".into(),
            ],
            env.clone(),
        ),
        "the venv's python",
    )
    .await?;
    let site_packages = PathBuf::from(String::from_utf8_lossy(&site).trim());
    let path = std::env::var("PATH").unwrap_or_default();
    env.insert(
        "PATH".into(),
        format!("{}:{path}", venv.join("bin").display()),
    );
    env.insert("VIRTUAL_ENV".into(), venv.display().to_string());
    env.insert("PIP_DISABLE_PIP_VERSION_CHECK".into(), "1".into());
    env.insert("PIP_NO_INPUT".into(), "1".into());
    run(runner, &cmd(install.to_vec(), env), "the install step").await?;
    Ok(ProjectEnv {
        _dir: dir,
        python,
        site_packages,
    })
}

/// Runs one step; its stdout on success, else its exit and the tail of its output.
async fn run<R: ToolRunner>(
    runner: &R,
    cmd: &ToolCommand,
    what: &str,
) -> Result<Vec<u8>, InstallError> {
    let shown = cmd.argv.join(" ");
    match runner.run(cmd).await {
        ExecOutcome::Exited {
            status: ExitStatus::Code(0),
            stdout,
            ..
        } => Ok(stdout.bytes),
        ExecOutcome::Exited {
            status,
            stdout,
            stderr,
            ..
        } => {
            let mut out = stdout.tail(OUTPUT_TAIL);
            let err = stderr.tail(OUTPUT_TAIL);
            if !err.is_empty() {
                if !out.is_empty() {
                    out.push('\n');
                }
                out.push_str(&err);
            }
            Err(InstallError(format!(
                "{what} (`{shown}`) ended with {status}:\n{out}"
            )))
        }
        ExecOutcome::FailedToStart { reason, .. } => {
            Err(InstallError(format!("{what} (`{shown}`): {reason}")))
        }
        ExecOutcome::TimedOut { after, .. } => Err(InstallError(format!(
            "{what} (`{shown}`) timed out after {}",
            humantime::format_duration(after)
        ))),
    }
}

/// A gate that could not run because the project's install step failed.
pub fn install_failed(spec: &GateSpec, e: &InstallError) -> GateRun {
    GateRun {
        gate: spec.name.clone(),
        parser: spec.parser,
        argv: spec.run.clone(),
        outcome: GateOutcome::FailedToStart {
            program: spec.run.first().cloned().unwrap_or_default(),
            missing: false,
            message: e.to_string(),
        },
        metrics: Metrics::default(),
        elapsed: Duration::ZERO,
        stdout_dropped: 0,
        stderr_dropped: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without an install step `{python}` is `python3` and `{site_packages}` empty; with one, the
    /// venv's paths, each inside its argument.
    #[test]
    fn substitutions() {
        let none = EnvValues::default();
        assert_eq!(none.substitute("--python={python}"), "--python=python3");
        assert_eq!(none.substitute("{site_packages}"), "");
        let v = EnvValues {
            python: Some("/t/venv/bin/python".into()),
            site_packages: Some("/t/venv/lib/site".into()),
        };
        assert_eq!(
            v.substitute("{python} {site_packages}"),
            "/t/venv/bin/python /t/venv/lib/site"
        );
    }
}
