//! The gate runner: tokio::process with argv only, timeouts, process groups, output caps.
//!
//! Owns: starting one tool, reading its output, killing it on timeout. Must not touch: parsing,
//! the verdict, the policy file. Nothing here goes through a shell: the argv is passed as is.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::ErrorKind;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

/// How long a tool gets between SIGTERM and SIGKILL when its timeout fires.
pub const KILL_GRACE: Duration = Duration::from_secs(2);

/// One tool invocation, fully resolved (argv, working directory, limits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCommand {
    /// Program and arguments; `argv[0]` is looked up on `PATH` when it has no `/`.
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    /// Added to the inherited environment.
    pub env: BTreeMap<String, String>,
    pub timeout: Duration,
    /// Most bytes kept from each of stdout and stderr; the rest is read and dropped.
    pub output_cap: u64,
}

/// How a process that ran to its end ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "value")]
pub enum ExitStatus {
    Code(i32),
    Signal(i32),
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exit code {c}"),
            ExitStatus::Signal(s) => write!(f, "signal {s}"),
        }
    }
}

/// One captured stream, with the cut recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captured {
    pub bytes: Vec<u8>,
    /// Bytes the tool wrote beyond the cap (read and dropped).
    pub dropped: u64,
}

impl Captured {
    pub fn truncated(&self) -> bool {
        self.dropped > 0
    }

    /// The last `max` bytes as lossy UTF-8, for messages.
    pub fn tail(&self, max: usize) -> String {
        tail_text(&self.bytes, max)
    }
}

/// The last `max` bytes of `bytes` as lossy UTF-8, trimmed.
pub fn tail_text(bytes: &[u8], max: usize) -> String {
    let start = bytes.len().saturating_sub(max);
    String::from_utf8_lossy(&bytes[start..]).trim().to_string()
}

/// Everything that can happen to one tool invocation. Matched exhaustively by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecOutcome {
    /// The process ran and ended by itself.
    Exited {
        status: ExitStatus,
        stdout: Captured,
        stderr: Captured,
        elapsed: Duration,
    },
    /// The process could not be started.
    FailedToStart {
        program: String,
        missing: bool,
        reason: String,
    },
    /// The timeout fired; the whole process group was killed.
    TimedOut {
        after: Duration,
        stdout: Captured,
        stderr: Captured,
    },
}

/// Starts tools. The real one is [`ProcessRunner`]; tests swap in fakes.
pub trait ToolRunner: Sync {
    fn run(&self, cmd: &ToolCommand) -> impl Future<Output = ExecOutcome> + Send;
}

/// Names of inherited environment variables a tool must not see: the action's inputs (the GitHub
/// token arrives as `INPUT_GITHUB-TOKEN`, webhooks and kubeconfigs as other inputs) and the
/// runner's own credentials. Gates run the pull request's code (tests, build scripts), so these
/// stay with the action. A gate's `env` can still set any of them explicitly.
pub fn withheld_vars<I: IntoIterator<Item = String>>(names: I) -> Vec<String> {
    const EXACT: [&str; 6] = [
        "GITHUB_TOKEN",
        "ACTIONS_RUNTIME_TOKEN",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        "ACTIONS_CACHE_URL",
        "KUBECONFIG",
    ];
    names
        .into_iter()
        .filter(|n| n.starts_with("INPUT_") || EXACT.contains(&n.as_str()))
        .collect()
}

/// Runs tools as child processes in their own process group.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessRunner;

impl ToolRunner for ProcessRunner {
    fn run(&self, cmd: &ToolCommand) -> impl Future<Output = ExecOutcome> + Send {
        run_process(cmd.clone())
    }
}

async fn run_process(cmd: ToolCommand) -> ExecOutcome {
    let Some((program, args)) = cmd.argv.split_first() else {
        return ExecOutcome::FailedToStart {
            program: String::new(),
            missing: false,
            reason: "the gate's `run` is empty".to_string(),
        };
    };
    let mut command = Command::new(program);
    for name in withheld_vars(std::env::vars_os().filter_map(|(k, _)| k.into_string().ok())) {
        command.env_remove(name);
    }
    command
        .args(args)
        .current_dir(&cmd.cwd)
        .envs(&cmd.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let started = Instant::now();
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            let missing = e.kind() == ErrorKind::NotFound && cmd.cwd.is_dir();
            let reason = if missing {
                format!("`{program}` was not found on PATH")
            } else {
                format!("could not start `{program}` in {}: {e}", cmd.cwd.display())
            };
            return ExecOutcome::FailedToStart {
                program: program.clone(),
                missing,
                reason,
            };
        }
    };
    let pgid = child.id().and_then(|id| i32::try_from(id).ok());
    // A run that is dropped before it ends (the job was cancelled) takes the tool's whole group
    // down with it; `kill_on_drop` alone would reach only the leader.
    let mut group = GroupGuard(pgid);
    let cap = cmd.output_cap;
    let out = child
        .stdout
        .take()
        .map(|s| tokio::spawn(read_capped(s, cap)));
    let err = child
        .stderr
        .take()
        .map(|s| tokio::spawn(read_capped(s, cap)));

    let waited = tokio::time::timeout(cmd.timeout, child.wait()).await;
    let status = match waited {
        Ok(Ok(st)) => Some(st),
        Ok(Err(e)) => {
            kill_group(pgid, nix::sys::signal::Signal::SIGKILL);
            return ExecOutcome::FailedToStart {
                program: program.clone(),
                missing: false,
                reason: format!("could not wait for `{program}`: {e}"),
            };
        }
        Err(_) => {
            terminate_group(pgid, &mut child).await;
            None
        }
    };
    // Grandchildren may keep the pipes open after the leader exits; the group kill above (timeout)
    // closes them, and for a clean exit we bound the wait so a stray daemon cannot hang the gate.
    let stdout = join_reader(out, pgid).await;
    let stderr = join_reader(err, pgid).await;
    group.disarm();
    let elapsed = started.elapsed();
    match status {
        Some(st) => ExecOutcome::Exited {
            status: exit_status(st),
            stdout,
            stderr,
            elapsed,
        },
        None => ExecOutcome::TimedOut {
            after: cmd.timeout,
            stdout,
            stderr,
        },
    }
}

async fn join_reader(
    h: Option<tokio::task::JoinHandle<std::io::Result<Captured>>>,
    pgid: Option<i32>,
) -> Captured {
    let Some(mut h) = h else {
        return Captured::default();
    };
    match tokio::time::timeout(KILL_GRACE, &mut h).await {
        Ok(Ok(Ok(c))) => c,
        Ok(Ok(Err(_)) | Err(_)) => Captured::default(),
        Err(_) => {
            kill_group(pgid, nix::sys::signal::Signal::SIGKILL);
            match h.await {
                Ok(Ok(c)) => c,
                Ok(Err(_)) | Err(_) => Captured::default(),
            }
        }
    }
}

fn exit_status(st: std::process::ExitStatus) -> ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    match (st.code(), st.signal()) {
        (Some(c), _) => ExitStatus::Code(c),
        (None, Some(s)) => ExitStatus::Signal(s),
        (None, None) => ExitStatus::Code(-1),
    }
}

/// Kills a tool's process group when dropped while armed: the run's future was dropped before the
/// tool ended (cancellation). Disarmed once the run has reaped the leader and drained its output.
struct GroupGuard(Option<i32>);

impl GroupGuard {
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        kill_group(self.0, nix::sys::signal::Signal::SIGKILL);
    }
}

fn kill_group(pgid: Option<i32>, sig: nix::sys::signal::Signal) {
    if let Some(p) = pgid {
        // ESRCH (already gone) is the expected race; nothing else can be done about other errors.
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(p), sig);
    }
}

/// SIGTERM to the whole group, a grace period, then SIGKILL; reaps the leader.
async fn terminate_group(pgid: Option<i32>, child: &mut tokio::process::Child) {
    kill_group(pgid, nix::sys::signal::Signal::SIGTERM);
    if tokio::time::timeout(KILL_GRACE, child.wait())
        .await
        .is_err()
    {
        kill_group(pgid, nix::sys::signal::Signal::SIGKILL);
        let _ = child.start_kill();
        let _ = child.wait().await;
    } else {
        // The leader left; make sure nothing else of its group survives.
        kill_group(pgid, nix::sys::signal::Signal::SIGKILL);
    }
}

/// Reads a stream to its end, keeping at most `cap` bytes and counting the rest.
async fn read_capped<R: AsyncRead + Unpin>(mut r: R, cap: u64) -> std::io::Result<Captured> {
    let mut out = Captured::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return Ok(out);
        }
        let room =
            usize::try_from(cap.saturating_sub(out.bytes.len() as u64)).unwrap_or(usize::MAX);
        let keep = n.min(room);
        out.bytes.extend_from_slice(&buf[..keep]);
        out.dropped += (n - keep) as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The action's inputs and the runner's credentials never reach a tool's environment.
    #[test]
    fn credentials_are_withheld() {
        let names = [
            "INPUT_GITHUB-TOKEN",
            "INPUT_SLACK_WEBHOOK",
            "GITHUB_TOKEN",
            "ACTIONS_RUNTIME_TOKEN",
            "PATH",
            "HOME",
            "GITHUB_WORKSPACE",
        ];
        let w = withheld_vars(names.map(String::from));
        assert_eq!(
            w,
            [
                "INPUT_GITHUB-TOKEN",
                "INPUT_SLACK_WEBHOOK",
                "GITHUB_TOKEN",
                "ACTIONS_RUNTIME_TOKEN"
            ]
        );
    }

    /// A run dropped before its tool ends (the job was cancelled) kills the tool's whole process
    /// group: a grandchild the tool started in the background dies with it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_a_run_kills_the_tools_group() {
        let dir = tempfile::tempdir().unwrap();
        let cmd = ToolCommand {
            argv: vec![
                "sh".into(),
                "-c".into(),
                "sleep 600 & echo $! > bg.pid; wait".into(),
            ],
            cwd: dir.path().to_path_buf(),
            env: BTreeMap::new(),
            timeout: Duration::from_secs(600),
            output_cap: 1024,
        };
        let pid_file = dir.path().join("bg.pid");
        let pid = {
            let run = run_process(cmd);
            tokio::pin!(run);
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                tokio::select! {
                    o = &mut run => panic!("the tool ended by itself: {o:?}"),
                    _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                }
                if let Some(pid) = std::fs::read_to_string(&pid_file)
                    .ok()
                    .and_then(|s| s.trim().parse::<i32>().ok())
                {
                    break pid;
                }
                assert!(
                    Instant::now() < deadline,
                    "the tool never started its child"
                );
            }
            // `run` is dropped here.
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // Gone, or a zombie waiting for its reaper: either way no longer running.
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok();
            let alive = state.as_deref().is_some_and(|s| {
                s.rsplit_once(") ")
                    .is_some_and(|(_, rest)| !rest.starts_with('Z'))
            });
            if !alive {
                break;
            }
            assert!(Instant::now() < deadline, "the background child survived");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
