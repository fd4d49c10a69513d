//! Loading: policy text → validated `Policy`, every problem collected with file:line:col and key path.
//!
//! Owns: the policy file's keys, their defaults and every cross-reference check (tiers name known
//! gates, branches name known tiers and environments, `extends` has no cycle, …). Must not touch:
//! the file system beyond the one read in `load_file`.

use super::decode::{Decoder, Fields, Problem, did_you_mean, is_dns_label, join};
use super::gate_io;
use super::model::*;
use super::yaml::{self, Node, NodeKind, Pos};
use crate::budget;
use crate::gates::finding::Severity;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a policy could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("read policy file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("load policy {path}: {} problem(s)\n{}", problems.len(), render(path, problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

fn render(path: &Path, problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  {}:{p}", path.display()))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Error {
    /// The problems, for tests and annotations (empty for read errors).
    pub fn problems(&self) -> &[Problem] {
        match self {
            Error::Read { .. } => &[],
            Error::Invalid { problems, .. } => problems,
        }
    }
}

pub fn load_file(path: &Path) -> Result<Policy, Error> {
    let text = budget::read_to_string(path, &budget::POLICY).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    load_str(&text, path)
}

/// Parses and validates `text`; `path` is only used in messages and `Policy::source`.
pub fn load_str(text: &str, path: &Path) -> Result<Policy, Error> {
    let invalid = |problems| Error::Invalid {
        path: path.to_path_buf(),
        problems,
    };
    let root = match yaml::parse(text) {
        Ok(Some(root)) => root,
        Ok(None) => {
            return Err(invalid(vec![Problem {
                pos: Pos { line: 1, col: 1 },
                path: String::new(),
                message: "the policy file is empty".into(),
                hint: Some("start with `version: 1`".into()),
            }]));
        }
        Err(e) => {
            let message = if e.over_budget {
                e.message
            } else {
                format!("invalid YAML: {}", e.message)
            };
            return Err(invalid(vec![Problem {
                pos: e.pos,
                path: String::new(),
                message,
                hint: None,
            }]));
        }
    };
    let mut d = Decoder::default();
    let policy = decode_policy(&mut d, &root, path);
    match policy {
        Some(p) if d.problems.is_empty() => Ok(p),
        _ => {
            let mut problems = d.problems;
            problems.sort_by_key(|a| a.pos);
            problems.dedup();
            Err(invalid(problems))
        }
    }
}

const TOP_KEYS: &[&str] = &[
    "version",
    "app",
    "branches",
    "tiers",
    "gates",
    "matrix",
    "environments",
    "overrides",
    "notify",
    "runner",
    "install",
];

pub const PARSERS: &[(&str, ParserKind)] = &[
    ("black", ParserKind::Black),
    ("flake8", ParserKind::Flake8),
    ("flake8-json", ParserKind::Flake8Json),
    ("mypy", ParserKind::Mypy),
    ("mypy-json", ParserKind::MypyJson),
    ("bandit", ParserKind::Bandit),
    ("detect-secrets", ParserKind::DetectSecrets),
    ("pip-licenses", ParserKind::PipLicenses),
    ("pip-audit", ParserKind::PipAudit),
    ("safety", ParserKind::Safety),
    ("trivy", ParserKind::Trivy),
    ("gitleaks", ParserKind::Gitleaks),
    ("sarif", ParserKind::Sarif),
    ("junit", ParserKind::Junit),
    ("cobertura", ParserKind::Cobertura),
    ("k6", ParserKind::K6),
    ("perf", ParserKind::Perf),
    ("exit-code", ParserKind::ExitCode),
];

const ACTIONS: &[(&str, Action)] = &[
    ("block", Action::Block),
    ("needs-approval", Action::NeedsApproval),
    ("warn", Action::Warn),
    ("ignore", Action::Ignore),
];

fn decode_policy(d: &mut Decoder, root: &Node, path: &Path) -> Option<Policy> {
    let f = d.fields(root, "", TOP_KEYS)?;
    if let Some(v) = d.require(&f, "version")
        && let Some(n) = d.u64(v, "version")
        && n != 1
    {
        d.error_hint(
            v.pos,
            "version",
            format!("unsupported version {n}"),
            Some("this release reads `version: 1`".into()),
        );
    }
    let app = d.require(&f, "app").and_then(|n| decode_app(d, n));
    let runner = match f.get("runner") {
        Some(n) => decode_runner(d, n),
        None => Some(default_runner()),
    };
    let runner = runner.unwrap_or_else(default_runner);

    // Names declared in the file, valid or not: cross-references check against these, so one
    // broken gate is reported once rather than again at every tier that names it.
    let declared_gates = declared(f.get("gates"));
    let declared_tiers = declared(f.get("tiers"));
    let declared_envs = declared(f.get("environments"));
    let gates = match d.require(&f, "gates") {
        Some(n) => decode_gates(d, n, &runner),
        None => BTreeMap::new(),
    };
    let matrices = match f.get("matrix") {
        Some(n) => decode_matrices(d, n),
        None => BTreeMap::new(),
    };
    let tiers = match d.require(&f, "tiers") {
        Some(n) => decode_tiers(d, n, &declared_gates, &matrices),
        None => BTreeMap::new(),
    };
    let environments = match f.get("environments") {
        Some(n) => decode_environments(d, n, &gates, &declared_gates, app.as_ref()),
        None => BTreeMap::new(),
    };
    let branches = match d.require(&f, "branches") {
        Some(n) => decode_branches(d, n, &declared_tiers, &declared_envs),
        None => Vec::new(),
    };
    check_env_cross_refs(d, &f, &environments, &declared_envs);
    let overrides = f.get("overrides").and_then(|n| decode_overrides(d, n));
    let notify = f
        .get("notify")
        .and_then(|n| decode_notify(d, n))
        .unwrap_or_default();

    let install = f
        .get("install")
        .map(|v| command(d, v, "install"))
        .unwrap_or_default();

    Some(Policy {
        install,
        source: path.to_path_buf(),
        app: app?,
        branches,
        tiers,
        gates,
        matrices,
        environments,
        overrides,
        notify,
        runner,
    })
}

fn declared(n: Option<&Node>) -> BTreeSet<String> {
    match n.map(|n| &n.kind) {
        Some(NodeKind::Map(entries)) => entries
            .iter()
            .filter_map(|(k, _)| k.scalar().map(str::to_string))
            .collect(),
        _ => BTreeSet::new(),
    }
}

fn default_runner() -> RunnerSpec {
    RunnerSpec {
        parallelism: 0,
        default_timeout: Duration::from_secs(15 * 60),
        output_cap: budget::DEFAULT_OUTPUT_CAP,
    }
}

fn decode_runner(d: &mut Decoder, n: &Node) -> Option<RunnerSpec> {
    let f = d.fields(n, "runner", &["parallelism", "timeout", "output_cap"])?;
    let mut r = default_runner();
    if let Some(v) = f.get("parallelism")
        && let Some(p) = d.u32_in(v, &f.child("parallelism"), 0, 256)
    {
        r.parallelism = p as usize;
    }
    if let Some(v) = f.get("timeout")
        && let Some(t) = d.duration(v, &f.child("timeout"))
    {
        r.default_timeout = t;
    }
    if let Some(v) = f.get("output_cap")
        && let Some(c) = d.u64(v, &f.child("output_cap"))
    {
        // The policy comes with the pull request: it may lower the cap, not lift it past the
        // tool-output budget.
        if c > budget::REPORT.max_bytes {
            d.error(
                v.pos,
                &f.child("output_cap"),
                format!(
                    "{c} is over the tool-output budget of {} bytes",
                    budget::REPORT.max_bytes
                ),
            );
        } else {
            r.output_cap = c;
        }
    }
    Some(r)
}

fn decode_app(d: &mut Decoder, n: &Node) -> Option<AppSpec> {
    let f = d.fields(
        n,
        "app",
        &["name", "image", "port", "health_path", "endpoints"],
    )?;
    let name = d
        .require(&f, "name")
        .and_then(|v| d.non_empty_string(v, "app.name"));
    if let (Some(name), Some(v)) = (&name, f.get("name"))
        && !is_dns_label(name)
    {
        d.error(
            v.pos,
            "app.name",
            format!("`{name}` is not a valid Kubernetes name (lowercase letters, digits, `-`)"),
        );
    }
    let image = d
        .require(&f, "image")
        .and_then(|v| d.non_empty_string(v, "app.image"));
    if let (Some(image), Some(v)) = (&image, f.get("image"))
        && (image.contains('@')
            || image
                .rsplit('/')
                .next()
                .is_some_and(|last| last.contains(':')))
    {
        d.error_hint(
            v.pos,
            "app.image",
            "the image must not carry a tag or digest",
            Some("the tag comes from the `image-tag` input (default: the commit SHA)".into()),
        );
    }
    let port = match f.get("port") {
        Some(v) => d.u32_in(v, "app.port", 1, 65535).map(|p| p as u16),
        None => Some(8080),
    };
    let health_path = match f.get("health_path") {
        Some(v) => d
            .string(v, "app.health_path")
            .and_then(|p| check_url_path(d, v, "app.health_path", p)),
        None => Some("/health".to_string()),
    };
    let endpoints = match f.get("endpoints") {
        Some(v) => path_list(d, v, "app.endpoints"),
        None => Vec::new(),
    };
    Some(AppSpec {
        name: name?,
        image: image?,
        port: port?,
        health_path: health_path?,
        endpoints,
    })
}

fn check_url_path(d: &mut Decoder, n: &Node, path: &str, p: String) -> Option<String> {
    if p.starts_with('/') {
        Some(p)
    } else {
        d.error_hint(
            n.pos,
            path,
            format!("`{p}` is not an absolute URL path"),
            Some(format!("write `/{p}`")),
        );
        None
    }
}

fn path_list(d: &mut Decoder, n: &Node, path: &str) -> Vec<String> {
    let items = d.list(n, path);
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let p = format!("{path}[{i}]");
        if let Some(s) = d.string(item, &p)
            && let Some(s) = check_url_path(d, item, &p, s)
        {
            out.push(s);
        }
    }
    out
}

const GATE_KEYS: &[&str] = &[
    "run",
    "parser",
    "report",
    "timeout",
    "phase",
    "severity",
    "block_over",
    "coverage",
    "coverage_min",
    "budgets",
    "licenses",
    "env",
    "working_dir",
    "annotation_budget",
];

fn is_gate_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn decode_gates(d: &mut Decoder, n: &Node, runner: &RunnerSpec) -> BTreeMap<String, GateSpec> {
    let mut out = BTreeMap::new();
    for (name, node, pos) in d.entries(n, "gates") {
        let path = join("gates", name);
        if !is_gate_name(name) {
            d.error(
                pos,
                &path,
                "gate names are lowercase letters, digits, `-` and `_`",
            );
            continue;
        }
        if let Some(g) = decode_gate(d, name, node, &path, runner) {
            out.insert(name.to_string(), g);
        }
    }
    out
}

fn decode_gate(
    d: &mut Decoder,
    name: &str,
    n: &Node,
    path: &str,
    runner: &RunnerSpec,
) -> Option<GateSpec> {
    let f = d.fields(n, path, GATE_KEYS)?;
    // No `run`: a report-only gate (checked with `report` below).
    let run = Some(
        f.get("run")
            .map(|v| command(d, v, &f.child("run")))
            .unwrap_or_default(),
    );
    let parser = d
        .require(&f, "parser")
        .and_then(|v| d.choice(v, &f.child("parser"), PARSERS));
    let report = f
        .get("report")
        .and_then(|v| relative_path(d, v, &f.child("report")));
    let timeout = match f.get("timeout") {
        Some(v) => d.duration(v, &f.child("timeout")),
        None => Some(runner.default_timeout),
    };
    let phase = match f.get("phase") {
        Some(v) => d.choice(
            v,
            &f.child("phase"),
            &[
                ("pre-deploy", GatePhase::PreDeploy),
                ("post-deploy", GatePhase::PostDeploy),
            ],
        ),
        None => Some(GatePhase::PreDeploy),
    };
    let mut severity = BTreeMap::new();
    if let Some(v) = f.get("severity") {
        let sp = f.child("severity");
        for (key, val, kpos) in d.entries(v, &sp) {
            let kp = join(&sp, key);
            match Severity::ALL.iter().find(|s| s.as_str() == key) {
                Some(sev) => {
                    if let Some(a) = d.choice(val, &kp, ACTIONS) {
                        severity.insert(*sev, a);
                    }
                }
                None => {
                    let hint = did_you_mean(key, Severity::ALL.iter().map(|s| s.as_str()))
                        .or_else(|| Some("one of: critical, high, medium, low, info".into()));
                    d.error_hint(kpos, &kp, "unknown severity", hint);
                }
            }
        }
    }
    let block_over = f
        .get("block_over")
        .and_then(|v| d.u32_in(v, &f.child("block_over"), 0, u32::MAX));
    let coverage = f
        .get("coverage")
        .and_then(|v| relative_path(d, v, &f.child("coverage")));
    let coverage_min = f
        .get("coverage_min")
        .and_then(|v| d.ratio(v, &f.child("coverage_min")));
    let budgets = f
        .get("budgets")
        .and_then(|v| decode_budgets(d, v, &f.child("budgets")));
    let licenses = f.get("licenses").and_then(|v| {
        let lp = f.child("licenses");
        let lf = d.fields(v, &lp, &["deny", "allow"])?;
        Some(LicensePolicy {
            deny: lf
                .get("deny")
                .map(|n| d.string_list(n, &lf.child("deny")))
                .unwrap_or_default(),
            allow: lf
                .get("allow")
                .map(|n| d.string_list(n, &lf.child("allow")))
                .unwrap_or_default(),
        })
    });
    let mut env = BTreeMap::new();
    if let Some(v) = f.get("env") {
        let ep = f.child("env");
        for (key, val, kpos) in d.entries(v, &ep) {
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                d.error(
                    kpos,
                    &join(&ep, key),
                    "environment variable names are letters, digits and `_`",
                );
                continue;
            }
            if let Some(s) = d.string(val, &join(&ep, key)) {
                env.insert(key.to_string(), s);
            }
        }
    }
    let working_dir = f
        .get("working_dir")
        .and_then(|v| relative_path(d, v, &f.child("working_dir")));
    let annotation_budget = match f.get("annotation_budget") {
        Some(v) => d.u32_in(v, &f.child("annotation_budget"), 0, 100_000),
        None => Some(1000),
    };
    let io_paths: Vec<gate_io::PathKey<'_>> = [("report", &report), ("coverage", &coverage)]
        .into_iter()
        .filter_map(|(k, p)| {
            Some(gate_io::PathKey {
                node: f.get(k)?,
                key_path: f.child(k),
                value: p.as_deref()?,
            })
        })
        .collect();
    gate_io::check(d, path, n, f.has("run"), parser, &io_paths);
    if let (Some(parser), Some(v)) = (parser, f.get("parser")) {
        let needs_budgets = matches!(parser, ParserKind::Perf | ParserKind::K6);
        if needs_budgets && budgets.is_none() {
            d.error_hint(
                v.pos,
                &f.child("budgets"),
                "a performance gate needs budgets",
                Some("e.g. `budgets: {page_load: 3s, api: 1s}`".into()),
            );
        }
        if licenses.is_some() && !matches!(parser, ParserKind::PipLicenses | ParserKind::Trivy) {
            d.error(
                v.pos,
                &f.child("licenses"),
                "licence rules apply only to the pip-licenses and trivy parsers",
            );
        }
    }
    Some(GateSpec {
        name: name.to_string(),
        run: run?,
        parser: parser?,
        report,
        timeout: timeout?,
        phase: phase?,
        severity,
        block_over,
        coverage,
        coverage_min,
        budgets,
        licenses,
        env,
        working_dir,
        annotation_budget: annotation_budget?,
    })
}

/// An argv list: at least the program, and not one string with spaces (never a shell).
fn command(d: &mut Decoder, v: &Node, path: &str) -> Vec<String> {
    let run = d.string_list(v, path);
    if run.is_empty() {
        d.error(
            v.pos,
            path,
            "the command must have at least the program name",
        );
    } else if run[0].contains(' ') && run.len() == 1 {
        d.error_hint(
            v.pos,
            path,
            "the command is one string with spaces",
            Some("write it as a list of arguments; commands never run through a shell".into()),
        );
    }
    run
}

fn relative_path(d: &mut Decoder, n: &Node, path: &str) -> Option<PathBuf> {
    let s = d.non_empty_string(n, path)?;
    let p = PathBuf::from(&s);
    if p.is_absolute()
        || p.components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        d.error(
            n.pos,
            path,
            format!("`{s}` must be a path inside the workspace (relative, no `..`)"),
        );
        return None;
    }
    Some(p)
}

fn decode_budgets(d: &mut Decoder, n: &Node, path: &str) -> Option<PerfBudgets> {
    let f = d.fields(
        n,
        path,
        &["page_load", "api", "certificate_generation", "error_rate"],
    )?;
    let dur = |d: &mut Decoder, k: &str| f.get(k).and_then(|v| d.duration(v, &f.child(k)));
    let b = PerfBudgets {
        page_load: dur(d, "page_load"),
        api: dur(d, "api"),
        certificate_generation: dur(d, "certificate_generation"),
        error_rate: f
            .get("error_rate")
            .and_then(|v| d.ratio(v, &f.child("error_rate"))),
    };
    Some(b)
}

fn decode_matrices(d: &mut Decoder, n: &Node) -> BTreeMap<String, MatrixSpec> {
    let mut out = BTreeMap::new();
    for (name, node, _) in d.entries(n, "matrix") {
        let path = join("matrix", name);
        let Some(f) = d.fields(
            node,
            &path,
            &["os", "python", "services", "include", "exclude"],
        ) else {
            continue;
        };
        let list = |d: &mut Decoder, k: &str| {
            f.get(k)
                .map(|v| d.string_list(v, &f.child(k)))
                .unwrap_or_default()
        };
        let os = list(d, "os");
        let python = list(d, "python");
        let services = list(d, "services");
        let objects = |d: &mut Decoder, k: &str| -> Vec<BTreeMap<String, String>> {
            let Some(v) = f.get(k) else { return Vec::new() };
            let kp = f.child(k);
            let items = d.list(v, &kp);
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let ip = format!("{kp}[{i}]");
                let mut obj = BTreeMap::new();
                for (key, val, _) in d.entries(item, &ip) {
                    if let Some(s) = d.string(val, &join(&ip, key)) {
                        obj.insert(key.to_string(), s);
                    }
                }
                out.push(obj);
            }
            out
        };
        let include = objects(d, "include");
        let exclude = objects(d, "exclude");
        if os.is_empty() && python.is_empty() && include.is_empty() {
            d.error(
                node.pos,
                &path,
                "a matrix needs `os`, `python` or `include` entries",
            );
        }
        out.insert(
            name.to_string(),
            MatrixSpec {
                name: name.to_string(),
                os,
                python,
                services,
                include,
                exclude,
            },
        );
    }
    out
}

struct RawTier {
    pos: Pos,
    extends: Option<(String, Pos)>,
    gates: Vec<(String, Pos)>,
    matrix: Option<String>,
    coverage_min: Option<Ratio>,
}

fn decode_tiers(
    d: &mut Decoder,
    n: &Node,
    gates: &BTreeSet<String>,
    matrices: &BTreeMap<String, MatrixSpec>,
) -> BTreeMap<String, TierSpec> {
    let mut raw: BTreeMap<String, RawTier> = BTreeMap::new();
    let gate_names: Vec<&str> = gates.iter().map(String::as_str).collect();
    for (name, node, pos) in d.entries(n, "tiers") {
        let path = join("tiers", name);
        let mut tier = RawTier {
            pos,
            extends: None,
            gates: Vec::new(),
            matrix: None,
            coverage_min: None,
        };
        let gate_list = |d: &mut Decoder, v: &Node, p: &str| -> Vec<(String, Pos)> {
            d.list(v, p)
                .iter()
                .enumerate()
                .filter_map(|(i, item)| d.string(item, &format!("{p}[{i}]")).map(|s| (s, item.pos)))
                .collect()
        };
        match &node.kind {
            NodeKind::Seq(_) => tier.gates = gate_list(d, node, &path),
            _ => {
                let Some(f) = d.fields(
                    node,
                    &path,
                    &["extends", "add", "gates", "matrix", "coverage_min"],
                ) else {
                    continue;
                };
                tier.extends = f
                    .get("extends")
                    .and_then(|v| d.string(v, &f.child("extends")).map(|s| (s, v.pos)));
                if let Some(v) = f.get("gates") {
                    tier.gates = gate_list(d, v, &f.child("gates"));
                }
                if let Some(v) = f.get("add") {
                    tier.gates.extend(gate_list(d, v, &f.child("add")));
                }
                if let Some(v) = f.get("matrix")
                    && let Some(m) = d.string(v, &f.child("matrix"))
                {
                    if !matrices.contains_key(&m) {
                        let hint = did_you_mean(&m, matrices.keys().map(String::as_str));
                        d.error_hint(
                            v.pos,
                            &f.child("matrix"),
                            format!("unknown matrix `{m}`"),
                            hint,
                        );
                    }
                    tier.matrix = Some(m);
                }
                tier.coverage_min = f
                    .get("coverage_min")
                    .and_then(|v| d.ratio(v, &f.child("coverage_min")));
            }
        }
        for (g, gpos) in &tier.gates {
            if !gates.contains(g) {
                let hint = did_you_mean(g, gate_names.iter().copied())
                    .or_else(|| Some(format!("defined gates: {}", gate_names.join(", "))));
                d.error_hint(*gpos, &path, format!("unknown gate `{g}`"), hint);
            }
        }
        raw.insert(name.to_string(), tier);
    }
    // Resolve `extends`, refusing cycles and unknown parents.
    let mut out = BTreeMap::new();
    for name in raw.keys() {
        let mut chain: Vec<&str> = vec![name.as_str()];
        let mut cur = name.as_str();
        let mut broken = false;
        while let Some(Some((parent, ppos))) = raw.get(cur).map(|t| &t.extends) {
            if !raw.contains_key(parent) {
                let hint = did_you_mean(parent, raw.keys().map(String::as_str));
                d.error_hint(
                    *ppos,
                    &join(&join("tiers", cur), "extends"),
                    format!("unknown tier `{parent}`"),
                    hint,
                );
                broken = true;
                break;
            }
            if chain.contains(&parent.as_str()) {
                chain.push(parent);
                // Report the cycle once, at its member that sorts first.
                let start = chain.iter().position(|t| t == parent).unwrap_or(0);
                let members = &chain[start..];
                if members.iter().min() == Some(&name.as_str()) {
                    d.error(
                        *ppos,
                        &join(&join("tiers", cur), "extends"),
                        format!("`extends` forms a cycle: {}", chain.join(" → ")),
                    );
                }
                broken = true;
                break;
            }
            chain.push(parent);
            cur = parent;
        }
        if broken {
            continue;
        }
        // chain: [name, parent, grandparent, …]; gates accumulate from the root down.
        let mut gates_out: Vec<String> = Vec::new();
        let mut matrix = None;
        let mut coverage_min = None;
        for t in chain.iter().rev() {
            let Some(rt) = raw.get(*t) else { continue };
            for (g, _) in &rt.gates {
                if !gates_out.contains(g) {
                    gates_out.push(g.clone());
                }
            }
            if rt.matrix.is_some() {
                matrix = rt.matrix.clone();
            }
            if rt.coverage_min.is_some() {
                coverage_min = rt.coverage_min;
            }
        }
        if gates_out.is_empty()
            && let Some(rt) = raw.get(name)
        {
            d.error(
                rt.pos,
                &join("tiers", name),
                "a tier needs at least one gate",
            );
        }
        out.insert(
            name.clone(),
            TierSpec {
                name: name.clone(),
                gates: gates_out,
                matrix,
                coverage_min,
            },
        );
    }
    out
}

const BRANCH_KEYS: &[&str] = &[
    "environment",
    "tier",
    "reviews",
    "signed_commits",
    "emergency",
    "allow_force_pushes",
    "required_checks",
    "restrict_pushes",
    "diff",
];

fn decode_branches(
    d: &mut Decoder,
    n: &Node,
    tiers: &BTreeSet<String>,
    envs: &BTreeSet<String>,
) -> Vec<BranchRule> {
    let mut out = Vec::new();
    for (pattern, node, kpos) in d.entries(n, "branches") {
        let path = join("branches", pattern);
        if let Err(e) = globset::GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
        {
            d.error(kpos, &path, format!("invalid branch glob: {}", e.kind()));
            continue;
        }
        let Some(f) = d.fields(node, &path, BRANCH_KEYS) else {
            continue;
        };
        let environment = f.get("environment").and_then(|v| {
            let e = d.string(v, &f.child("environment"))?;
            if !envs.contains(&e) {
                let hint = did_you_mean(&e, envs.iter().map(String::as_str));
                d.error_hint(
                    v.pos,
                    &f.child("environment"),
                    format!("unknown environment `{e}`"),
                    hint,
                );
            }
            Some(e)
        });
        let tier = d.require(&f, "tier").and_then(|v| {
            let t = d.string(v, &f.child("tier"))?;
            if !tiers.contains(&t) {
                let hint = did_you_mean(&t, tiers.iter().map(String::as_str));
                d.error_hint(v.pos, &f.child("tier"), format!("unknown tier `{t}`"), hint);
            }
            Some(t)
        });
        let get_bool = |d: &mut Decoder, k: &str| {
            f.get(k)
                .and_then(|v| d.bool(v, &f.child(k)))
                .unwrap_or(false)
        };
        let signed_commits = get_bool(d, "signed_commits");
        let emergency = get_bool(d, "emergency");
        let allow_force_pushes = get_bool(d, "allow_force_pushes");
        let reviews = f
            .get("reviews")
            .and_then(|v| d.u32_in(v, &f.child("reviews"), 0, 6))
            .unwrap_or(0);
        let required_checks = f
            .get("required_checks")
            .map(|v| d.string_list(v, &f.child("required_checks")))
            .unwrap_or_default();
        let restrict_pushes = f
            .get("restrict_pushes")
            .map(|v| d.string_list(v, &f.child("restrict_pushes")))
            .unwrap_or_default();
        let diff_scope = f.get("diff").and_then(|v| {
            d.choice(
                v,
                &f.child("diff"),
                &[
                    ("all", DiffScope::All),
                    ("changed-files", DiffScope::ChangedFiles),
                    ("new-in-diff", DiffScope::NewInDiff),
                ],
            )
        });
        if emergency
            && environment.is_none()
            && let Some(p) = f.key_pos("emergency")
        {
            d.error(
                p,
                &f.child("emergency"),
                "an emergency branch must name the environment it deploys to",
            );
        }
        if let Some(tier) = tier {
            out.push(BranchRule {
                pattern: pattern.to_string(),
                environment,
                tier,
                reviews,
                signed_commits,
                emergency,
                allow_force_pushes,
                required_checks,
                restrict_pushes,
                diff_scope,
            });
        }
    }
    out
}

const ENV_KEYS: &[&str] = &[
    "namespace",
    "url",
    "strategy",
    "replicas",
    "resources",
    "autoscaling",
    "progress_deadline",
    "pre_deploy",
    "protection",
    "smoke",
    "post_deploy",
    "coverage_min",
    "secrets",
    "tls_secret",
    "blue_green",
    "rollback",
    "probes",
    "security_context",
    "image_pull_secrets",
    "service_account",
    "tls_mount",
    "drain",
    "create_namespace",
    "patches",
];

fn decode_environments(
    d: &mut Decoder,
    n: &Node,
    gates: &BTreeMap<String, GateSpec>,
    declared_gates: &BTreeSet<String>,
    app: Option<&AppSpec>,
) -> BTreeMap<String, EnvironmentSpec> {
    let mut out = BTreeMap::new();
    for (name, node, kpos) in d.entries(n, "environments") {
        let path = join("environments", name);
        if !is_dns_label(name) {
            d.error(
                kpos,
                &path,
                "environment names are lowercase letters, digits and `-`",
            );
            continue;
        }
        if let Some(e) = decode_environment(d, name, node, &path, gates, declared_gates, app) {
            out.insert(name.to_string(), e);
        }
    }
    out
}

fn decode_environment(
    d: &mut Decoder,
    name: &str,
    n: &Node,
    path: &str,
    gates: &BTreeMap<String, GateSpec>,
    declared_gates: &BTreeSet<String>,
    app: Option<&AppSpec>,
) -> Option<EnvironmentSpec> {
    let f = d.fields(n, path, ENV_KEYS)?;
    let namespace = d.require(&f, "namespace").and_then(|v| {
        let s = d.string(v, &f.child("namespace"))?;
        if !is_dns_label(&s) {
            d.error(
                v.pos,
                &f.child("namespace"),
                format!("`{s}` is not a valid namespace name"),
            );
            return None;
        }
        Some(s)
    });
    let url = d.require(&f, "url").and_then(|v| {
        let s = d.string(v, &f.child("url"))?;
        if !(s.starts_with("https://") || s.starts_with("http://")) {
            d.error(
                v.pos,
                &f.child("url"),
                format!("`{s}` is not an http(s) URL"),
            );
            return None;
        }
        Some(s.trim_end_matches('/').to_string())
    });
    let strategy = d.require(&f, "strategy").and_then(|v| {
        d.choice(
            v,
            &f.child("strategy"),
            &[
                ("direct", StrategyKind::Direct),
                ("rolling", StrategyKind::Rolling),
                ("blue-green", StrategyKind::BlueGreen),
            ],
        )
    });
    let replicas = f
        .get("replicas")
        .map(|v| d.u32_in(v, &f.child("replicas"), 1, 1000))
        .unwrap_or(Some(1));
    let resources = match f.get("resources") {
        Some(v) => super::workload::decode_resources(d, v, &f.child("resources")),
        None => Some(Resources::same("500m", "512Mi")),
    };
    let workload = super::workload::decode_workload(d, &f);
    let autoscaling = f.get("autoscaling").and_then(|v| {
        let ap = f.child("autoscaling");
        let af = d.fields(v, &ap, &["min", "max", "cpu_target"])?;
        let min = d
            .require(&af, "min")
            .and_then(|x| d.u32_in(x, &af.child("min"), 1, 1000));
        let max = d
            .require(&af, "max")
            .and_then(|x| d.u32_in(x, &af.child("max"), 1, 1000));
        let cpu = af
            .get("cpu_target")
            .map(|x| {
                d.ratio(x, &af.child("cpu_target"))
                    .map(|r| (r.0 * 100.0).round() as u32)
            })
            .unwrap_or(Some(70));
        let (min, max, cpu) = (min?, max?, cpu?);
        if min > max {
            d.error(v.pos, &ap, format!("min ({min}) is above max ({max})"));
            return None;
        }
        Some(Autoscaling {
            min,
            max,
            cpu_target_percent: cpu,
        })
    });
    if let (Some(a), Some(r), Some(v)) = (&autoscaling, replicas, f.get("replicas"))
        && (r < a.min || r > a.max)
    {
        d.error(
            v.pos,
            &f.child("replicas"),
            format!("{r} replicas is outside autoscaling {}–{}", a.min, a.max),
        );
    }
    let progress_deadline = f
        .get("progress_deadline")
        .map(|v| d.duration(v, &f.child("progress_deadline")))
        .unwrap_or(Some(Duration::from_secs(600)));
    let pre_deploy = match f.get("pre_deploy") {
        Some(v) => decode_pre_deploy(d, v, &f.child("pre_deploy")),
        None => Some(PreDeploy {
            checks_green: false,
            healthy: Vec::new(),
            incident_label: None,
        }),
    };
    let protection = match f.get("protection") {
        Some(v) => decode_protection(d, v, &f.child("protection")),
        None => Some(Protection {
            reviewers: Vec::new(),
            wait_timer: Duration::ZERO,
            protected_branches_only: false,
            prevent_self_review: false,
        }),
    };
    let smoke = match f.get("smoke") {
        Some(v) => {
            let sp = f.child("smoke");
            d.fields(v, &sp, &["endpoints", "deadline"]).and_then(|sf| {
                let endpoints = sf
                    .get("endpoints")
                    .map(|x| path_list(d, x, &sf.child("endpoints")))
                    .unwrap_or_default();
                let deadline = sf
                    .get("deadline")
                    .map(|x| d.duration(x, &sf.child("deadline")))
                    .unwrap_or(Some(Duration::from_secs(120)))?;
                Some(SmokeSpec {
                    endpoints,
                    deadline,
                })
            })
        }
        None => Some(SmokeSpec {
            endpoints: Vec::new(),
            deadline: Duration::from_secs(120),
        }),
    };
    let smoke = smoke.map(|mut s| {
        // The health path always comes first, then the app's endpoints, then the environment's.
        let mut eps = vec![app.map_or_else(|| "/health".to_string(), |a| a.health_path.clone())];
        for e in app
            .map(|a| a.endpoints.clone())
            .unwrap_or_default()
            .into_iter()
            .chain(s.endpoints)
        {
            if !eps.contains(&e) {
                eps.push(e);
            }
        }
        s.endpoints = eps;
        s
    });
    let post_deploy = f
        .get("post_deploy")
        .map(|v| {
            let pp = f.child("post_deploy");
            let mut names = Vec::new();
            for (i, item) in d.list(v, &pp).iter().enumerate() {
                let ip = format!("{pp}[{i}]");
                if let Some(g) = d.string(item, &ip) {
                    match gates.get(&g) {
                        None if declared_gates.contains(&g) => {}
                        None => {
                            let hint = did_you_mean(&g, declared_gates.iter().map(String::as_str));
                            d.error_hint(item.pos, &ip, format!("unknown gate `{g}`"), hint);
                        }
                        Some(spec) if spec.phase != GatePhase::PostDeploy => {
                            d.error_hint(
                                item.pos,
                                &ip,
                                format!("gate `{g}` is not a post-deploy gate"),
                                Some(format!("set `phase: post-deploy` on gates.{g}")),
                            );
                        }
                        Some(_) => names.push(g),
                    }
                }
            }
            names
        })
        .unwrap_or_default();
    let coverage_min = f
        .get("coverage_min")
        .and_then(|v| d.ratio(v, &f.child("coverage_min")));
    let mut secrets = BTreeMap::new();
    if f.get("secrets").is_none() {
        secrets.insert("DATABASE_URL".to_string(), "database-url".to_string());
        secrets.insert("REDIS_URL".to_string(), "redis-url".to_string());
    }
    if let Some(v) = f.get("secrets") {
        let sp = f.child("secrets");
        for (key, val, kpos) in d.entries(v, &sp) {
            if !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
                || key.is_empty()
            {
                d.error(
                    kpos,
                    &join(&sp, key),
                    "Secret keys are letters, digits, `-`, `_` and `.`",
                );
                continue;
            }
            if let Some(input) = d.string(val, &join(&sp, key)) {
                // Pods read the Secret with `envFrom`: keys are environment variable names.
                secrets.insert(env_var_name(key), input);
            }
        }
    }
    let tls_secret = f
        .get("tls_secret")
        .and_then(|v| d.string(v, &f.child("tls_secret")));
    let blue_green = f
        .get("blue_green")
        .and_then(|v| decode_blue_green(d, v, &f.child("blue_green")));
    let rollback = match f.get("rollback") {
        Some(v) => decode_rollback(d, v, &f.child("rollback"), app),
        None => Some(RollbackSpec {
            sample_every: Duration::from_secs(10),
            on_no_data: NoDataPolicy::Hold,
            min_data: DEFAULT_MIN_DATA,
            on_inconclusive: InconclusivePolicy::Rollback,
            triggers: Vec::new(),
        }),
    };
    match (strategy, f.key_pos("blue_green")) {
        (Some(StrategyKind::BlueGreen), None) => {
            if let Some(p) = f.key_pos("strategy") {
                d.error_hint(
                    p,
                    &f.child("blue_green"),
                    "strategy blue-green needs a `blue_green` section",
                    Some("at least `service: <name>`".into()),
                );
            }
        }
        (Some(StrategyKind::Direct | StrategyKind::Rolling), Some(p)) => {
            d.error(
                p,
                &f.child("blue_green"),
                "`blue_green` settings only apply to strategy blue-green",
            );
        }
        _ => {}
    }
    if strategy != Some(StrategyKind::Rolling)
        && !post_deploy.is_empty()
        && let Some(p) = f.key_pos("post_deploy")
    {
        // Direct and blue-green deploys check through smoke endpoints, health and triggers; a
        // list that would be silently ignored is an error.
        if strategy.is_some() {
            d.error_hint(
                p,
                &f.child("post_deploy"),
                "post-deploy test gates need strategy rolling (they roll back on failure)",
                Some("use `smoke.endpoints` (and rollback triggers for blue-green)".into()),
            );
        }
    }
    Some(EnvironmentSpec {
        name: name.to_string(),
        namespace: namespace?,
        url: url?,
        strategy: strategy?,
        replicas: replicas?,
        resources: resources?,
        workload: workload?,
        autoscaling,
        progress_deadline: progress_deadline?,
        pre_deploy: pre_deploy?,
        protection: protection?,
        smoke: smoke?,
        post_deploy,
        coverage_min,
        secrets,
        tls_secret,
        blue_green,
        rollback: rollback?,
    })
}

/// `database-url` → `DATABASE_URL`: the name an app reads from its environment.
fn env_var_name(key: &str) -> String {
    key.chars()
        .map(|c| match c {
            '-' | '.' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect()
}

fn decode_pre_deploy(d: &mut Decoder, n: &Node, path: &str) -> Option<PreDeploy> {
    let f = d.fields(n, path, &["checks", "healthy", "incidents"])?;
    let checks_green = f
        .get("checks")
        .map(|v| {
            d.choice(
                v,
                &f.child("checks"),
                &[("all-green", true), ("none", false)],
            )
        })
        .unwrap_or(Some(false));
    let healthy = f
        .get("healthy")
        .map(|v| d.string_list(v, &f.child("healthy")))
        .unwrap_or_default();
    let incident_label = f.get("incidents").and_then(|v| {
        let ip = f.child("incidents");
        let inf = d.fields(v, &ip, &["label"])?;
        let l = d.require(&inf, "label")?;
        d.non_empty_string(l, &inf.child("label"))
    });
    Some(PreDeploy {
        checks_green: checks_green?,
        healthy,
        incident_label,
    })
}

fn decode_protection(d: &mut Decoder, n: &Node, path: &str) -> Option<Protection> {
    let f = d.fields(
        n,
        path,
        &["reviewers", "wait_timer", "branches", "prevent_self_review"],
    )?;
    let reviewers = f
        .get("reviewers")
        .map(|v| d.string_list(v, &f.child("reviewers")))
        .unwrap_or_default();
    let wait_timer = f
        .get("wait_timer")
        .map(|v| d.duration(v, &f.child("wait_timer")))
        .unwrap_or(Some(Duration::ZERO));
    if let (Some(w), Some(v)) = (wait_timer, f.get("wait_timer"))
        && w > Duration::from_secs(43_200 * 60)
    {
        d.error(
            v.pos,
            &f.child("wait_timer"),
            "GitHub allows a wait timer of at most 30 days",
        );
    }
    let protected = f
        .get("branches")
        .map(|v| {
            d.choice(
                v,
                &f.child("branches"),
                &[("protected", true), ("all", false)],
            )
        })
        .unwrap_or(Some(false));
    let prevent = f
        .get("prevent_self_review")
        .and_then(|v| d.bool(v, &f.child("prevent_self_review")))
        .unwrap_or(false);
    Some(Protection {
        reviewers,
        wait_timer: wait_timer?,
        protected_branches_only: protected?,
        prevent_self_review: prevent,
    })
}

fn decode_blue_green(d: &mut Decoder, n: &Node, path: &str) -> Option<BlueGreenSpec> {
    let f = d.fields(
        n,
        path,
        &[
            "service",
            "preview_service",
            "preview_url",
            "shift",
            "shift_mode",
            "canary_ingress",
            "shift_pause",
            "monitor",
            "keep_previous",
            "manual_promote",
            "keep_failed",
        ],
    )?;
    let service = d.require(&f, "service").and_then(|v| {
        let s = d.string(v, &f.child("service"))?;
        if !is_dns_label(&s) {
            d.error(
                v.pos,
                &f.child("service"),
                format!("`{s}` is not a valid Service name"),
            );
            return None;
        }
        Some(s)
    });
    let preview_service = f
        .get("preview_service")
        .and_then(|v| d.string(v, &f.child("preview_service")));
    let preview_url = f
        .get("preview_url")
        .and_then(|v| d.string(v, &f.child("preview_url")));
    let mut steps: Vec<u8> = Vec::new();
    if let Some(v) = f.get("shift") {
        let sp = f.child("shift");
        let mut last = 0u32;
        for (i, item) in d.list(v, &sp).iter().enumerate() {
            let ip = format!("{sp}[{i}]");
            if let Some(p) = d.u32_in(item, &ip, 1, 100) {
                if p <= last {
                    d.error(
                        item.pos,
                        &ip,
                        format!("steps must increase ({p} after {last})"),
                    );
                }
                last = p;
                steps.push(p as u8);
            }
        }
        if last != 100 && !steps.is_empty() {
            d.error_hint(
                v.pos,
                &sp,
                "the last shift step must be 100",
                Some("the final step moves all traffic".into()),
            );
        }
    }
    if steps.is_empty() {
        steps.push(100);
    }
    let mode = match f.get("shift_mode") {
        Some(v) => {
            let m = d.choice(
                v,
                &f.child("shift_mode"),
                &[("none", 0u8), ("nginx-canary", 1), ("replica-ratio", 2)],
            );
            match m {
                Some(0) => Some(ShiftMode::None),
                Some(1) => match f
                    .get("canary_ingress")
                    .and_then(|x| d.string(x, &f.child("canary_ingress")))
                {
                    Some(ingress) => Some(ShiftMode::NginxCanary { ingress }),
                    None => {
                        d.error(
                            v.pos,
                            &f.child("canary_ingress"),
                            "shift_mode nginx-canary needs `canary_ingress: <ingress name>`",
                        );
                        None
                    }
                },
                Some(_) => Some(ShiftMode::ReplicaRatio),
                None => None,
            }
        }
        None => Some(ShiftMode::None),
    };
    if let (Some(ShiftMode::None), true) = (&mode, steps.len() > 1)
        && let Some(p) = f.key_pos("shift")
    {
        d.error_hint(
            p,
            &f.child("shift"),
            "gradual steps need a router",
            Some("set `shift_mode: replica-ratio` or `nginx-canary`".into()),
        );
    }
    let pause = f
        .get("shift_pause")
        .map(|v| d.duration(v, &f.child("shift_pause")))
        .unwrap_or(Some(Duration::from_secs(30)));
    let monitor = f
        .get("monitor")
        .map(|v| d.duration(v, &f.child("monitor")))
        .unwrap_or(Some(Duration::from_secs(300)));
    let keep_previous = f
        .get("keep_previous")
        .map(|v| d.duration(v, &f.child("keep_previous")))
        .unwrap_or(Some(Duration::from_secs(86_400)));
    let manual_promote = f
        .get("manual_promote")
        .and_then(|v| d.bool(v, &f.child("manual_promote")))
        .unwrap_or(false);
    let keep_failed = f
        .get("keep_failed")
        .and_then(|v| d.bool(v, &f.child("keep_failed")))
        .unwrap_or(false);
    Some(BlueGreenSpec {
        service: service?,
        preview_service,
        preview_url,
        shift: ShiftSpec {
            mode: mode?,
            steps,
            pause: pause?,
        },
        monitor: monitor?,
        keep_previous: keep_previous?,
        manual_promote,
        keep_failed,
    })
}

fn decode_rollback(
    d: &mut Decoder,
    n: &Node,
    path: &str,
    app: Option<&AppSpec>,
) -> Option<RollbackSpec> {
    let f = d.fields(
        n,
        path,
        &[
            "sample_every",
            "on_no_data",
            "min_data",
            "on_inconclusive",
            "triggers",
        ],
    )?;
    let min_data = f
        .get("min_data")
        .map(|v| d.ratio(v, &f.child("min_data")))
        .unwrap_or(Some(DEFAULT_MIN_DATA));
    let on_inconclusive = f
        .get("on_inconclusive")
        .map(|v| {
            d.choice(
                v,
                &f.child("on_inconclusive"),
                &[
                    ("rollback", InconclusivePolicy::Rollback),
                    ("pause", InconclusivePolicy::Pause),
                ],
            )
        })
        .unwrap_or(Some(InconclusivePolicy::Rollback));
    let sample_every = f
        .get("sample_every")
        .map(|v| d.duration(v, &f.child("sample_every")))
        .unwrap_or(Some(Duration::from_secs(10)));
    if let (Some(s), Some(v)) = (sample_every, f.get("sample_every"))
        && s < Duration::from_millis(100)
    {
        d.error(
            v.pos,
            &f.child("sample_every"),
            "sample at most every 100ms",
        );
    }
    let on_no_data = f
        .get("on_no_data")
        .map(|v| {
            d.choice(
                v,
                &f.child("on_no_data"),
                &[
                    ("hold", NoDataPolicy::Hold),
                    ("fail", NoDataPolicy::Fail),
                    ("pass", NoDataPolicy::Pass),
                ],
            )
        })
        .unwrap_or(Some(NoDataPolicy::Hold));
    let mut triggers = Vec::new();
    let mut seen = BTreeSet::new();
    if let Some(v) = f.get("triggers") {
        let tp = f.child("triggers");
        for (i, item) in d.list(v, &tp).iter().enumerate() {
            let ip = format!("{tp}[{i}]");
            if let Some(t) = decode_trigger(d, item, &ip, app) {
                if !seen.insert(t.name.clone()) {
                    d.error(
                        item.pos,
                        &ip,
                        format!("duplicate trigger name `{}`", t.name),
                    );
                }
                if let Some(s) = sample_every.filter(|s| t.for_ < *s) {
                    d.error(
                        item.pos,
                        &join(&ip, "for"),
                        format!(
                            "`for` ({}) is shorter than sample_every ({})",
                            humantime::format_duration(t.for_),
                            humantime::format_duration(s)
                        ),
                    );
                }
                triggers.push(t);
            }
        }
    }
    Some(RollbackSpec {
        sample_every: sample_every?,
        on_no_data: on_no_data?,
        min_data: min_data?,
        on_inconclusive: on_inconclusive?,
        triggers,
    })
}

fn decode_trigger(
    d: &mut Decoder,
    n: &Node,
    path: &str,
    app: Option<&AppSpec>,
) -> Option<TriggerSpec> {
    let f = d.fields(
        n,
        path,
        &[
            "name",
            "prometheus",
            "query_window",
            "probe",
            "above",
            "failures_above",
            "for",
        ],
    )?;
    let name = d
        .require(&f, "name")
        .and_then(|v| d.non_empty_string(v, &f.child("name")));
    let for_ = d
        .require(&f, "for")
        .and_then(|v| d.duration(v, &f.child("for")));
    let source = match (f.get("prometheus"), f.get("probe")) {
        (Some(q), None) => {
            let query = d.non_empty_string(q, &f.child("prometheus"));
            // Absent: read from the query's longest `[range]` where it is needed
            // (`deploy::triggers::trigger_query_window`).
            let query_window = f
                .get("query_window")
                .and_then(|v| d.duration(v, &f.child("query_window")));
            if f.has("failures_above")
                && let Some(p) = f.key_pos("failures_above")
            {
                d.error_hint(
                    p,
                    &f.child("failures_above"),
                    "`failures_above` is for probe triggers",
                    Some("use `above` with `prometheus`".into()),
                );
            }
            query.map(|query| TriggerSource::Prometheus {
                query,
                query_window,
            })
        }
        (None, Some(p)) => {
            let raw = d.string(p, &f.child("probe"));
            let path_ = match raw.as_deref() {
                Some("health_path") => {
                    Some(app.map_or_else(|| "/health".to_string(), |a| a.health_path.clone()))
                }
                Some(s) if s.starts_with('/') => Some(s.to_string()),
                Some(s) => {
                    d.error_hint(
                        p.pos,
                        &f.child("probe"),
                        format!("`{s}` is not a URL path"),
                        Some("write `health_path` or an absolute path such as `/health`".into()),
                    );
                    None
                }
                None => None,
            };
            if f.has("above")
                && let Some(pp) = f.key_pos("above")
            {
                d.error_hint(
                    pp,
                    &f.child("above"),
                    "probe triggers take `failures_above`",
                    Some("the failing fraction of probes, e.g. `50%`".into()),
                );
            }
            path_.map(|path| TriggerSource::Probe { path })
        }
        (Some(_), Some(_)) => {
            d.error(
                n.pos,
                path,
                "a trigger has either `prometheus` or `probe`, not both",
            );
            None
        }
        (None, None) => {
            d.error(
                n.pos,
                path,
                "a trigger needs `prometheus: <query>` or `probe: <path>`",
            );
            None
        }
    };
    let above = match &source {
        Some(TriggerSource::Probe { .. }) => d
            .require(&f, "failures_above")
            .and_then(|v| d.ratio(v, &f.child("failures_above")).map(|r| r.0)),
        Some(TriggerSource::Prometheus { .. }) => d
            .require(&f, "above")
            .and_then(|v| d.threshold(v, &f.child("above"))),
        None => None,
    };
    Some(TriggerSpec {
        name: name?,
        source: source?,
        above: above?,
        for_: for_?,
    })
}

fn decode_overrides(d: &mut Decoder, n: &Node) -> Option<OverrideSpec> {
    let f = d.fields(n, "overrides", &["label", "approvers", "exceptions_file"])?;
    let label = f
        .get("label")
        .and_then(|v| d.non_empty_string(v, &f.child("label")));
    let approvers = f
        .get("approvers")
        .map(|v| d.string_list(v, &f.child("approvers")))
        .unwrap_or_default();
    if label.is_some()
        && approvers.is_empty()
        && let Some(p) = f.key_pos("label")
    {
        d.error_hint(
            p,
            &f.child("approvers"),
            "a label override needs approvers",
            Some("anyone could add the label otherwise".into()),
        );
    }
    let exceptions_file = f
        .get("exceptions_file")
        .and_then(|v| relative_path(d, v, &f.child("exceptions_file")));
    Some(OverrideSpec {
        label,
        approvers,
        exceptions_file,
    })
}

fn decode_notify(d: &mut Decoder, n: &Node) -> Option<NotifySpec> {
    let f = d.fields(
        n,
        "notify",
        &["slack_webhook", "datadog_api_key", "sentry_dsn"],
    )?;
    let name = |d: &mut Decoder, k: &str| {
        let v = f.get(k)?;
        let s = d.string(v, &f.child(k))?;
        if s.contains("://") {
            d.error_hint(v.pos, &f.child(k), "this looks like a secret value", Some("name the secret / input (e.g. `SLACK_WEBHOOK`); never put the URL in the policy file".into()));
            return None;
        }
        Some(s)
    };
    Some(NotifySpec {
        slack_webhook: name(d, "slack_webhook"),
        datadog_api_key: name(d, "datadog_api_key"),
        sentry_dsn: name(d, "sentry_dsn"),
    })
}

fn check_env_cross_refs(
    d: &mut Decoder,
    f: &Fields<'_>,
    envs: &BTreeMap<String, EnvironmentSpec>,
    declared: &BTreeSet<String>,
) {
    let Some(n) = f.get("environments") else {
        return;
    };
    for (name, node, _) in d.entries(n, "environments") {
        let Some(env) = envs.get(name) else { continue };
        for h in &env.pre_deploy.healthy {
            if !declared.contains(h) || h == name {
                let msg = if h == name {
                    format!("environment `{h}` cannot require itself healthy")
                } else {
                    format!("unknown environment `{h}`")
                };
                let hint = did_you_mean(h, declared.iter().map(String::as_str));
                d.error_hint(
                    node.pos,
                    &join(&join(&join("environments", name), "pre_deploy"), "healthy"),
                    msg,
                    hint,
                );
            }
        }
    }
}
