//! Runs the action's image the way GitHub's runner runs a container action (GitHub's docs,
//! "Dockerfile support for GitHub Actions"; the runner's `docker run` line): root, the image's
//! ENTRYPOINT, `--workdir /github/workspace`, the workspace at `/github/workspace`, `/github/home`,
//! `/github/workflow` (the event payload), `/github/file_commands` (GITHUB_OUTPUT,
//! GITHUB_STEP_SUMMARY, GITHUB_ENV), every input as `INPUT_<NAME>` with hyphens kept, the GITHUB_*
//! and RUNNER_* variables; `--network host` stands in for the job's network so the container reaches
//! the loopback testbeds.
//!
//! The image is `$FM_TEST_IMAGE` (scripts/test.sh builds it and sets it) or, when unset, built here
//! by scripts/build-image.sh (cached and locked, so concurrent tests wait for one build).
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test support fails loudly; not every test binary uses every helper"
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The image reference to run.
pub fn image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        if let Ok(i) = std::env::var("FM_TEST_IMAGE")
            && !i.is_empty()
        {
            return i;
        }
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let out = std::process::Command::new(root.join("scripts/build-image.sh"))
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("run scripts/build-image.sh");
        assert!(out.status.success(), "scripts/build-image.sh failed");
        let stdout = String::from_utf8_lossy(&out.stdout);
        stdout
            .lines()
            .last()
            .expect("build-image.sh printed the image reference")
            .trim()
            .to_string()
    })
}

/// One job's directories on the "runner", mounted where GitHub mounts them.
pub struct Job {
    pub dir: tempfile::TempDir,
    pub workspace: PathBuf,
    pub name: String,
    inputs: BTreeMap<String, String>,
    env: BTreeMap<String, String>,
}

const OUTPUT: &str = "set_output_0d9b2b3f";
const SUMMARY: &str = "step_summary_0d9b2b3f";
const ENV: &str = "set_env_0d9b2b3f";

impl Job {
    /// A job with an empty workspace, the given event name and payload.
    pub fn new(event_name: &str, payload: &serde_json::Value) -> Job {
        let dir = tempfile::tempdir().unwrap();
        let workspace = dir.path().join("workspace");
        for d in ["workspace", "home", "workflow", "file_commands"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        for f in [OUTPUT, SUMMARY, ENV] {
            std::fs::write(dir.path().join("file_commands").join(f), b"").unwrap();
        }
        std::fs::write(
            dir.path().join("workflow/event.json"),
            serde_json::to_vec_pretty(payload).unwrap(),
        )
        .unwrap();
        let name = format!(
            "fm-deploy-test-{}-{}",
            std::process::id(),
            dir.path()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .to_lowercase()
        );
        let mut env = BTreeMap::new();
        for (k, v) in [
            ("GITHUB_ACTIONS", "true"),
            ("CI", "true"),
            ("HOME", "/github/home"),
            ("GITHUB_WORKSPACE", "/github/workspace"),
            ("GITHUB_EVENT_PATH", "/github/workflow/event.json"),
            ("GITHUB_EVENT_NAME", event_name),
            ("GITHUB_OUTPUT", &format!("/github/file_commands/{OUTPUT}")),
            (
                "GITHUB_STEP_SUMMARY",
                &format!("/github/file_commands/{SUMMARY}"),
            ),
            ("GITHUB_ENV", &format!("/github/file_commands/{ENV}")),
            ("GITHUB_REPOSITORY", "octocat/hello-world"),
            ("GITHUB_REPOSITORY_OWNER", "octocat"),
            ("GITHUB_SERVER_URL", "https://github.com"),
            ("GITHUB_API_URL", "https://api.github.com"),
            ("GITHUB_RUN_ID", "4711"),
            ("GITHUB_RUN_NUMBER", "7"),
            ("GITHUB_RUN_ATTEMPT", "1"),
            ("GITHUB_JOB", "pipeline"),
            ("GITHUB_ACTOR", "octocat"),
            ("GITHUB_WORKFLOW", "deploy"),
            ("GITHUB_ACTION", "fm"),
            ("RUNNER_OS", "Linux"),
            ("RUNNER_ARCH", "X64"),
            ("RUNNER_NAME", "GitHub Actions 2"),
            ("RUNNER_TEMP", "/home/runner/work/_temp"),
            ("RUNNER_TOOL_CACHE", "/opt/hostedtoolcache"),
            ("RUNNER_ENVIRONMENT", "github-hosted"),
        ] {
            env.insert(k.to_string(), v.to_string());
        }
        Job {
            dir,
            workspace,
            name,
            inputs: BTreeMap::new(),
            env,
        }
    }

    /// Sets an input as the runner does: `INPUT_` + the name upper-cased, hyphens kept.
    pub fn input(&mut self, name: &str, value: &str) -> &mut Job {
        self.inputs.insert(
            format!("INPUT_{}", name.replace(' ', "_").to_uppercase()),
            value.to_string(),
        );
        self
    }

    pub fn env(&mut self, name: &str, value: &str) -> &mut Job {
        self.env.insert(name.to_string(), value.to_string());
        self
    }

    /// The `podman run` the runner's `docker run` corresponds to (the container is named, so a test
    /// can signal it; `--rm` as the runner does).
    pub fn command(&self) -> tokio::process::Command {
        let mut c = tokio::process::Command::new("podman");
        c.args(["run", "--rm", "--name", &self.name, "--network", "host"]);
        c.args(["--workdir", "/github/workspace"]);
        for (host, at) in [
            ("workspace", "/github/workspace"),
            ("home", "/github/home"),
            ("workflow", "/github/workflow"),
            ("file_commands", "/github/file_commands"),
        ] {
            c.arg("-v")
                .arg(format!("{}:{at}", self.dir.path().join(host).display()));
        }
        // The job's network: this machine reaches the package registries through a TLS proxy
        // whose CA only the host's bundle holds (a hosted runner needs nothing of the kind), so
        // the policy's `install:` step can run pip inside the image.
        let ca = Path::new("/etc/ssl/certs/ca-certificates.crt");
        if ca.is_file() {
            c.arg("-v")
                .arg(format!("{}:{}:ro", ca.display(), ca.display()));
        }
        for (k, v) in self.env.iter().chain(self.inputs.iter()) {
            c.arg("-e").arg(format!("{k}={v}"));
        }
        c.arg(image());
        c.stdin(std::process::Stdio::null()).kill_on_drop(true);
        c
    }

    /// Runs the container to its end.
    pub async fn run(&self) -> std::process::Output {
        self.command().output().await.unwrap()
    }

    /// The step outputs the container wrote through GITHUB_OUTPUT (`k=v` and `k<<delimiter`).
    pub fn outputs(&self) -> BTreeMap<String, String> {
        parse_outputs(&self.file(OUTPUT))
    }

    pub fn summary(&self) -> String {
        self.file(SUMMARY)
    }

    fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join("file_commands").join(name)).unwrap()
    }
}

/// GitHub's file-command format: `name=value` lines and `name<<DELIM` … `DELIM` blocks.
pub fn parse_outputs(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some((k, delim)) = line.split_once("<<") {
            let mut value = Vec::new();
            for l in lines.by_ref() {
                if l == delim {
                    break;
                }
                value.push(l);
            }
            out.insert(k.to_string(), value.join("\n"));
        } else if let Some((k, v)) = line.split_once('=') {
            out.insert(k.to_string(), v.to_string());
        }
    }
    out
}

/// Copies `src` into `dst` recursively (examples into a job's workspace).
pub fn copy_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), &to).unwrap();
        }
    }
}
