//! Plan: pure (request, policy) → `Plan` — what a run would do for this event and branch.
//!
//! Owns: branch → rule → environment / tier resolution, gate argv substitution, effective thresholds,
//! the deploy strategy step by step, rollback triggers with their worst-case detection time, and
//! what is skipped and why. Must not touch: the environment, files, the network. Rendering to
//! text, Markdown and JSON lives here too because it is a pure function of the plan.

use crate::gates::finding::Severity;
use crate::matrix::{self, MatrixJson};
use crate::policy::Policy;
use crate::policy::model::{
    Action, EnvironmentSpec, GatePhase, GateSpec, NoDataPolicy, ParserKind, Ratio, ShiftMode,
    StrategyKind, TriggerSource,
};
use crate::runtime::{md_code, md_text};
use serde::Serialize;
use std::fmt::Write as _;
use std::time::Duration;

pub use crate::inputs::Command;

/// The event, reduced to what planning needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Trigger {
    Push,
    PullRequest {
        number: u64,
        fork: bool,
        head_ref: String,
    },
    WorkflowDispatch,
    Schedule,
    /// An event this action gates but never deploys from (`pull_request_target`, `release`, …).
    Other {
        name: String,
    },
    /// Run outside GitHub Actions.
    Local,
}

/// Everything the planner needs besides the policy; built by `app` from inputs and context.
#[derive(Debug, Clone, Serialize)]
pub struct PlanRequest {
    pub command: Command,
    pub trigger: Trigger,
    /// The branch whose rule applies: the pushed branch, or a pull request's base branch.
    pub branch: String,
    pub sha: String,
    /// `environment` input (workflow_dispatch).
    pub environment_override: Option<String>,
    /// The `image`, `image-tag` and `image-digest` inputs (see [`crate::image_ref`]).
    pub image: crate::image_ref::ImageInputs,
    pub dry_run: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub command: Command,
    pub trigger: Trigger,
    pub branch: String,
    pub sha: String,
    /// The matching branch rule's pattern.
    pub rule: Option<String>,
    pub environment: Option<String>,
    pub tier: Option<String>,
    pub reviews_required: u32,
    pub gates: Vec<PlannedGate>,
    pub matrix: Option<MatrixJson>,
    pub deploy: DeployPlan,
    /// Things that will not happen, each with the reason.
    pub skipped: Vec<Skip>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Skip {
    pub what: String,
    pub why: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedGate {
    pub name: String,
    /// argv with `{deploy_url}`, `{image}`, `{sha}` substituted; empty for a report-only gate.
    pub argv: Vec<String>,
    /// What a report-only gate reads (the matrix jobs' uploaded reports).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reads: Option<String>,
    pub parser: ParserKind,
    pub phase: GatePhase,
    #[serde(with = "crate::policy::model::duration_text")]
    pub timeout: Duration,
    /// The strictest of the gate's, the tier's and the environment's minimum.
    pub coverage_min: Option<Ratio>,
    /// Human-readable thresholds, most decisive first.
    pub thresholds: Vec<String>,
}

impl PlannedGate {
    /// The command line, or for a report-only gate what it reads.
    pub fn command(&self) -> String {
        match &self.reads {
            Some(r) => format!("reads the test matrix's {r}"),
            None => self.argv.join(" "),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum DeployPlan {
    Skipped { reason: String },
    Planned(Box<DeploySteps>),
}

#[derive(Debug, Clone, Serialize)]
pub struct DeploySteps {
    pub environment: String,
    pub namespace: String,
    pub url: String,
    pub strategy: StrategyKind,
    pub image: String,
    pub replicas: u32,
    pub emergency: bool,
    pub pre_deploy: Vec<String>,
    /// What the release writes, built by the same builder `deploy` uses (blue-green: with the
    /// first release's colour, blue; later releases deploy the colour not live).
    pub objects: Vec<crate::deploy::release::PlannedObject>,
    pub steps: Vec<String>,
    pub selector_changes: Vec<String>,
    pub triggers: Vec<PlannedTrigger>,
    pub on_no_data: Option<NoDataPolicy>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedTrigger {
    pub name: String,
    pub source: String,
    pub condition: String,
    #[serde(rename = "for", with = "crate::policy::model::duration_text")]
    pub for_: Duration,
    /// `for` + sample interval + the query's own look-back window.
    #[serde(with = "crate::policy::model::duration_text")]
    pub worst_case_detection: Duration,
}

/// Why no plan could be made (bad request, not bad luck: these exit 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("plan environment override `{0}`: no such environment in the policy")]
    UnknownEnvironment(String),
    /// `rollback`, `promote`, `cleanup` act on the environment they are given or on none: never
    /// on the branch's own environment in its place.
    #[error("{0}")]
    OverrideRefused(String),
    #[error("plan the objects of environment {environment}: {reason}")]
    Objects { environment: String, reason: String },
    #[error(transparent)]
    Image(#[from] crate::image_ref::ImageRefError),
}

/// The image reference this request gates and deploys.
pub fn image_reference(req: &PlanRequest, policy: &Policy) -> Result<String, PlanError> {
    Ok(crate::image_ref::compose(
        &req.image,
        &policy.app.image,
        &req.sha,
    )?)
}

pub fn plan(req: &PlanRequest, policy: &Policy) -> Result<Plan, PlanError> {
    let mut skipped = Vec::new();
    let rule = policy.branch_rule(&req.branch);
    let Some(rule) = rule else {
        skipped.push(Skip {
            what: "gates".into(),
            why: format!("no branch rule matches `{}`", req.branch),
        });
        return Ok(Plan {
            command: req.command,
            trigger: req.trigger.clone(),
            branch: req.branch.clone(),
            sha: req.sha.clone(),
            rule: None,
            environment: None,
            tier: None,
            reviews_required: 0,
            gates: Vec::new(),
            matrix: None,
            deploy: DeployPlan::Skipped {
                reason: format!("no branch rule matches `{}`", req.branch),
            },
            skipped,
        });
    };

    // Which environment: the override (if it is allowed), else the rule's.
    let mut env_name = rule.environment.clone();
    let mut override_refused = None;
    if let Some(o) = &req.environment_override {
        let Some(target) = policy.environments.get(o) else {
            return Err(PlanError::UnknownEnvironment(o.clone()));
        };
        let branch_deploys_there = rule.environment.as_deref() == Some(o.as_str());
        // `setup` protects every branch a literal rule names: those are the protected branches.
        let branch_protected = rule.is_literal();
        if branch_deploys_there || branch_protected || !target.protection.protected_branches_only {
            env_name = Some(o.clone());
        } else {
            let reason = format!(
                "environment override `{o}` refused: branch `{}` does not deploy there and `{o}` accepts protected branches only (the branches literal rules name)",
                req.branch
            );
            if matches!(
                req.command,
                Command::Rollback | Command::Promote | Command::Cleanup
            ) {
                return Err(PlanError::OverrideRefused(format!(
                    "{}: {reason}; nothing was changed",
                    req.command.as_str()
                )));
            }
            override_refused = Some(reason);
        }
    }
    let env = env_name.as_ref().and_then(|n| policy.environments.get(n));
    let tier = policy.tiers.get(&rule.tier);
    let image = image_reference(req, policy)?;
    let deploy_url = env.map(|e| e.url.clone()).unwrap_or_default();
    let subst = |arg: &str| {
        arg.replace("{deploy_url}", &deploy_url)
            .replace("{image}", &image)
            .replace("{sha}", &req.sha)
    };
    let coverage_floor = [
        tier.and_then(|t| t.coverage_min),
        env.and_then(|e| e.coverage_min),
    ]
    .into_iter()
    .flatten()
    .fold(None, |acc: Option<Ratio>, r| {
        Some(acc.map_or(r, |a| if r.0 > a.0 { r } else { a }))
    });

    let runs_gates = matches!(
        req.command,
        Command::Plan | Command::Gates | Command::Pipeline
    );
    let mut gates = Vec::new();
    if let Some(t) = tier {
        for name in &t.gates {
            if let Some(g) = policy.gates.get(name) {
                gates.push(planned_gate(g, &subst, coverage_floor));
            }
        }
    }
    // Post-deploy gates of a rolling environment run after its deploy.
    if let Some(e) = env {
        for name in &e.post_deploy {
            if let Some(g) = policy.gates.get(name)
                && !gates.iter().any(|p| &p.name == name)
            {
                gates.push(planned_gate(g, &subst, coverage_floor));
            }
        }
    }
    if !runs_gates {
        skipped.push(Skip {
            what: "gates".into(),
            why: format!("command `{}` does not run gates", req.command.as_str()),
        });
    }

    let matrix = tier
        .and_then(|t| t.matrix.as_ref())
        .and_then(|m| policy.matrices.get(m))
        .map(matrix::to_json);

    let deploys = matches!(
        req.command,
        Command::Plan | Command::Deploy | Command::Pipeline
    );
    let deploy = if !deploys {
        DeployPlan::Skipped {
            reason: format!("command `{}` does not deploy", req.command.as_str()),
        }
    } else if let Some(reason) = override_refused {
        DeployPlan::Skipped { reason }
    } else {
        match (&req.trigger, env) {
            (Trigger::PullRequest { fork: true, .. }, _) => DeployPlan::Skipped {
                reason: "pull requests from forks never deploy (and get no secrets)".into(),
            },
            (Trigger::PullRequest { .. }, _) => DeployPlan::Skipped {
                reason: "pull requests run gates only; the deploy happens on push after merge"
                    .into(),
            },
            (Trigger::Schedule, _) => DeployPlan::Skipped {
                reason: "scheduled runs do not deploy (use `cleanup`)".into(),
            },
            (Trigger::Other { name }, _) => DeployPlan::Skipped {
                reason: format!("`{name}` events never deploy"),
            },
            (_, None) => DeployPlan::Skipped {
                reason: format!(
                    "branch rule `{}` names no environment: gates only",
                    rule.pattern
                ),
            },
            (Trigger::Push | Trigger::WorkflowDispatch | Trigger::Local, Some(e)) => {
                DeployPlan::Planned(Box::new(deploy_steps(policy, e, &image, rule.emergency)?))
            }
        }
    };
    if let DeployPlan::Skipped { reason } = &deploy
        && deploys
    {
        skipped.push(Skip {
            what: "deploy".into(),
            why: reason.clone(),
        });
    }
    if let Trigger::PullRequest { fork: true, .. } = req.trigger {
        skipped.push(Skip {
            what: "check runs".into(),
            why:
                "a fork's token cannot write checks: results go to the job summary and annotations"
                    .into(),
        });
    }

    Ok(Plan {
        command: req.command,
        trigger: req.trigger.clone(),
        branch: req.branch.clone(),
        sha: req.sha.clone(),
        rule: Some(rule.pattern.clone()),
        environment: env_name.filter(|_| env.is_some()),
        tier: Some(rule.tier.clone()),
        reviews_required: rule.reviews,
        gates,
        matrix,
        deploy,
        skipped,
    })
}

fn planned_gate(g: &GateSpec, subst: &dyn Fn(&str) -> String, floor: Option<Ratio>) -> PlannedGate {
    let coverage_min = [g.coverage_min, floor]
        .into_iter()
        .flatten()
        .fold(None, |acc: Option<Ratio>, r| {
            Some(acc.map_or(r, |a| if r.0 > a.0 { r } else { a }))
        });
    let mut thresholds = Vec::new();
    let reports_coverage = g.coverage.is_some() || matches!(g.parser, ParserKind::Cobertura);
    let coverage_min = coverage_min.filter(|_| reports_coverage);
    let has_severities = !matches!(
        g.parser,
        ParserKind::Junit
            | ParserKind::Cobertura
            | ParserKind::Perf
            | ParserKind::K6
            | ParserKind::ExitCode
    );
    // Severity actions, most severe first, only those that matter.
    let mut by_action: Vec<(Action, Vec<&str>)> = Vec::new();
    for sev in Severity::ALL.into_iter().filter(|_| has_severities) {
        let a = g.action_for(sev);
        if a == Action::Ignore {
            continue;
        }
        match by_action.iter_mut().find(|(x, _)| *x == a) {
            Some((_, v)) => v.push(sev.as_str()),
            None => by_action.push((a, vec![sev.as_str()])),
        }
    }
    for (a, sevs) in by_action {
        thresholds.push(format!("{} → {}", sevs.join("/"), a.as_str()));
    }
    if let Some(n) = g.block_over {
        thresholds.push(if n == 0 {
            "any finding blocks".to_string()
        } else {
            format!("more than {n} findings block")
        });
    }
    if let Some(c) = coverage_min {
        thresholds.push(format!("coverage ≥ {c}"));
    }
    if let Some(b) = &g.budgets {
        let d = crate::policy::model::fmt_duration;
        if let Some(x) = b.page_load {
            thresholds.push(format!("page load < {}", d(x)));
        }
        if let Some(x) = b.api {
            thresholds.push(format!("API < {}", d(x)));
        }
        if let Some(x) = b.certificate_generation {
            thresholds.push(format!("certificate generation < {}", d(x)));
        }
        if let Some(x) = b.error_rate {
            thresholds.push(format!("error rate < {x}"));
        }
    }
    if let Some(l) = &g.licenses {
        if !l.deny.is_empty() {
            thresholds.push(format!("denied licences block: {}", l.deny.join(", ")));
        }
        if !l.allow.is_empty() {
            thresholds.push(format!(
                "licences outside {} need approval",
                l.allow.join(", ")
            ));
        }
    }
    if matches!(g.parser, ParserKind::Junit) {
        thresholds.push("any failed or errored test blocks".into());
    }
    if matches!(g.parser, ParserKind::ExitCode) {
        thresholds.push("non-zero exit blocks".into());
    }
    PlannedGate {
        name: g.name.clone(),
        argv: g.run.iter().map(|a| subst(a)).collect(),
        reads: g
            .run
            .is_empty()
            .then(|| g.report.as_ref().map(|r| r.display().to_string()))
            .flatten(),
        parser: g.parser,
        phase: g.phase,
        timeout: g.timeout,
        coverage_min,
        thresholds,
    }
}

fn deploy_steps(
    policy: &Policy,
    e: &EnvironmentSpec,
    image: &str,
    emergency: bool,
) -> Result<DeploySteps, PlanError> {
    let app = &policy.app.name;
    let d = crate::policy::model::fmt_duration;
    let mut pre = Vec::new();
    if e.pre_deploy.checks_green {
        pre.push(
            "every check run and status on the commit succeeded (this run's own excepted)"
                .to_string(),
        );
    }
    for h in &e.pre_deploy.healthy {
        if emergency {
            pre.push(format!("`{h}` health not required: emergency branch"));
        } else if let Some(he) = policy.environments.get(h) {
            pre.push(format!(
                "`{h}` is healthy ({}{})",
                he.url, policy.app.health_path
            ));
        }
    }
    if let Some(l) = &e.pre_deploy.incident_label {
        pre.push(format!("no open issue labelled `{l}`"));
    }
    pre.push(format!(
        "take Lease `fm-deploy-{}` in `{}` (one deploy at a time)",
        e.name, e.namespace
    ));

    // Every key the policy names; values are never part of a plan.
    let inputs = crate::deploy::manifests::DeployInputs {
        image: image.to_string(),
        secrets: e
            .secrets
            .keys()
            .map(|k| (k.clone(), String::new()))
            .collect(),
        tls: e
            .tls_secret
            .as_ref()
            .map(|_| (String::new(), String::new())),
        ..Default::default()
    };
    let objects = crate::deploy::release::release_objects(
        &policy.app,
        e,
        &inputs,
        crate::deploy::bluegreen::Color::Blue,
    )
    .map_err(|err| PlanError::Objects {
        environment: e.name.clone(),
        reason: {
            let mut text = err.to_string();
            let mut src = std::error::Error::source(&err);
            while let Some(e) = src {
                text.push_str(&format!(": {e}"));
                src = e.source();
            }
            text
        },
    })?;
    let mut steps = Vec::new();
    let mut selector_changes = Vec::new();
    let mut triggers = Vec::new();
    let mut on_no_data = None;
    let smoke = e.smoke.endpoints.join(", ");
    match e.strategy {
        StrategyKind::Direct | StrategyKind::Rolling => {
            steps.push(format!(
                "server-side apply Deployment/{app} with image {image}"
            ));
            steps.push(format!(
                "watch until every replica is updated and available (deadline {})",
                d(e.progress_deadline)
            ));
            steps.push(format!(
                "smoke test {smoke} at {} (deadline {})",
                e.url,
                d(e.smoke.deadline)
            ));
            if e.strategy == StrategyKind::Rolling {
                for g in &e.post_deploy {
                    steps.push(format!("post-deploy gate `{g}` against {}", e.url));
                }
                steps.push(
                    "any failure → roll back to the previous revision, wait until ready, exit 1"
                        .into(),
                );
            } else {
                steps.push("failure → exit 1 with the reason (development has no rollback)".into());
            }
        }
        StrategyKind::BlueGreen => {
            // The loader guarantees the section for strategy blue-green.
            let Some(bg) = &e.blue_green else {
                return Ok(DeploySteps {
                    environment: e.name.clone(),
                    namespace: e.namespace.clone(),
                    url: e.url.clone(),
                    strategy: e.strategy,
                    image: image.to_string(),
                    replicas: e.replicas,
                    emergency,
                    pre_deploy: pre,
                    objects,
                    steps,
                    selector_changes,
                    triggers,
                    on_no_data,
                });
            };
            steps.push(format!("read the state record (annotation on Service/{}); finish or undo a run that died mid-way", bg.service));
            steps.push(format!("server-side apply the idle colour Deployment/{app}-<idle> with image {image}; the live colour is untouched"));
            steps.push(format!("watch the idle colour until ready (deadline {}); failure → scale it to 0, traffic stays, exit 1", d(e.progress_deadline)));
            let idle = crate::deploy::bluegreen_run::from_policy(&policy.app, e, "plan")
                .map_or_else(|err| err.to_string(), |(cfg, _)| cfg.urls.describe_idle());
            steps.push(format!(
                "health-check the idle colour through {idle} : {smoke}"
            ));
            match &bg.shift.mode {
                ShiftMode::None => {}
                ShiftMode::ReplicaRatio | ShiftMode::NginxCanary { .. } => {
                    for s in bg.shift.steps.iter().filter(|s| **s < 100) {
                        let how = match &bg.shift.mode {
                            ShiftMode::ReplicaRatio => {
                                "by replica ratio behind the shared selector"
                            }
                            ShiftMode::NginxCanary { .. } => "by nginx canary-weight",
                            ShiftMode::None => "",
                        };
                        steps.push(format!("shift {s}% to the new colour {how}; hold {} while triggers are evaluated", d(bg.shift.pause)));
                    }
                }
            }
            if bg.manual_promote {
                steps.push("pause: a `promote` run continues to the switch".into());
            }
            steps.push(format!(
                "switch Service/{} selector to the new colour (one PATCH)",
                bg.service
            ));
            selector_changes.push(format!("Service/{}: version <live> → <idle>", bg.service));
            steps.push(format!("monitor {} sampling every {}; a trigger that holds for its window reverts the selector at once", d(bg.monitor), d(e.rollback.sample_every)));
            steps.push(format!("pass → record keep_until = now + {}; the previous colour stays scaled for instant rollback until a `cleanup` run", d(bg.keep_previous)));
            selector_changes.push(format!(
                "on rollback: Service/{}: version <idle> → <live>",
                bg.service
            ));
            on_no_data = Some(e.rollback.on_no_data);
            for t in &e.rollback.triggers {
                let (source, condition) = match &t.source {
                    TriggerSource::Prometheus { query, .. } => (
                        "prometheus".to_string(),
                        format!("{} > {}", one_line(query), t.above),
                    ),
                    TriggerSource::Probe { path } => (
                        format!("probe {path}"),
                        format!("failing probes > {}", Ratio(t.above)),
                    ),
                };
                triggers.push(PlannedTrigger {
                    name: t.name.clone(),
                    source,
                    condition,
                    for_: t.for_,
                    // `for` + sample interval + the query's own look-back window.
                    worst_case_detection: crate::deploy::triggers::worst_case_detection(
                        t,
                        e.rollback.sample_every,
                    ),
                });
            }
        }
    }
    Ok(DeploySteps {
        environment: e.name.clone(),
        namespace: e.namespace.clone(),
        url: e.url.clone(),
        strategy: e.strategy,
        image: image.to_string(),
        replicas: e.replicas,
        emergency,
        pre_deploy: pre,
        objects,
        steps,
        selector_changes,
        triggers,
        on_no_data,
    })
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn strategy_name(s: StrategyKind) -> &'static str {
    match s {
        StrategyKind::Direct => "direct",
        StrategyKind::Rolling => "rolling",
        StrategyKind::BlueGreen => "blue-green",
    }
}

impl Plan {
    pub fn strategy(&self) -> Option<StrategyKind> {
        match &self.deploy {
            DeployPlan::Planned(s) => Some(s.strategy),
            DeployPlan::Skipped { .. } => None,
        }
    }

    /// Plain text for a terminal.
    pub fn render_text(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "fm-deploy {} for branch `{}` ({})",
            self.command.as_str(),
            self.branch,
            trigger_text(&self.trigger)
        );
        let _ = writeln!(
            o,
            "  rule:        {}",
            self.rule.as_deref().unwrap_or("(none)")
        );
        let _ = writeln!(
            o,
            "  environment: {}",
            self.environment.as_deref().unwrap_or("(none)")
        );
        let _ = writeln!(
            o,
            "  tier:        {}",
            self.tier.as_deref().unwrap_or("(none)")
        );
        if self.reviews_required > 0 {
            let _ = writeln!(
                o,
                "  reviews:     {} approving review(s) on pull requests",
                self.reviews_required
            );
        }
        if !self.gates.is_empty() {
            let _ = writeln!(o, "\ngates ({}):", self.gates.len());
            for (i, g) in self.gates.iter().enumerate() {
                let phase = match g.phase {
                    GatePhase::PreDeploy => "",
                    GatePhase::PostDeploy => " [after deploy]",
                };
                let _ = writeln!(o, "  {:>2}. {}{phase}: {}", i + 1, g.name, g.command());
                let _ = writeln!(
                    o,
                    "      timeout {}; {}",
                    crate::policy::model::fmt_duration(g.timeout),
                    g.thresholds.join("; ")
                );
            }
        }
        if let Some(m) = &self.matrix {
            let _ = writeln!(o, "\nmatrix: {} job(s): {}", m.job_count, m.json);
        }
        match &self.deploy {
            DeployPlan::Skipped { reason } => {
                let _ = writeln!(o, "\ndeploy: skipped — {reason}");
            }
            DeployPlan::Planned(s) => {
                let _ = writeln!(
                    o,
                    "\ndeploy: {} to `{}` (namespace {}, {})",
                    strategy_name(s.strategy),
                    s.environment,
                    s.namespace,
                    s.url
                );
                let _ = writeln!(o, "  image: {}", s.image);
                let _ = writeln!(o, "  before:");
                for p in &s.pre_deploy {
                    let _ = writeln!(o, "    - {p}");
                }
                let _ = writeln!(o, "  objects:");
                for p in &s.objects {
                    let _ = writeln!(o, "    - {}", p.describe());
                }
                let _ = writeln!(o, "  steps:");
                for (i, p) in s.steps.iter().enumerate() {
                    let _ = writeln!(o, "    {}. {p}", i + 1);
                }
                if !s.triggers.is_empty() {
                    let _ = writeln!(
                        o,
                        "  rollback triggers (no data: {}):",
                        s.on_no_data.map_or("hold", no_data_name)
                    );
                    for t in &s.triggers {
                        let _ = writeln!(
                            o,
                            "    - {}: {} for {} ({}) → worst-case detection {}",
                            t.name,
                            t.condition,
                            crate::policy::model::fmt_duration(t.for_),
                            t.source,
                            crate::policy::model::fmt_duration(t.worst_case_detection)
                        );
                    }
                }
            }
        }
        if !self.skipped.is_empty() {
            let _ = writeln!(o, "\nskipped:");
            for s in &self.skipped {
                let _ = writeln!(o, "  - {}: {}", s.what, s.why);
            }
        }
        o
    }

    /// Markdown for the job summary.
    pub fn render_markdown(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "## fm-deploy plan: {}\n", md_code(&self.branch));
        let _ = writeln!(o, "| | |\n|---|---|");
        let _ = writeln!(o, "| event | {} |", trigger_text(&self.trigger));
        let _ = writeln!(o, "| rule | `{}` |", self.rule.as_deref().unwrap_or("none"));
        let _ = writeln!(
            o,
            "| environment | {} |",
            self.environment.as_deref().unwrap_or("—")
        );
        let _ = writeln!(o, "| tier | {} |", self.tier.as_deref().unwrap_or("—"));
        let _ = writeln!(
            o,
            "| strategy | {} |",
            self.strategy().map_or("—", strategy_name)
        );
        let _ = writeln!(o, "| reviews required | {} |", self.reviews_required);
        if !self.gates.is_empty() {
            let _ = writeln!(
                o,
                "\n### Gates\n\n| # | gate | command | thresholds |\n|---|---|---|---|"
            );
            for (i, g) in self.gates.iter().enumerate() {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} |",
                    i + 1,
                    md_code(&g.name),
                    md_code(&g.command()),
                    md_text(&g.thresholds.join("; "))
                );
            }
        }
        if let Some(m) = &self.matrix {
            let _ = writeln!(
                o,
                "\n### Test matrix ({} jobs)\n\n```json\n{}\n```",
                m.job_count, m.json
            );
        }
        match &self.deploy {
            DeployPlan::Skipped { reason } => {
                let _ = writeln!(o, "\n### Deploy\n\nSkipped: {}", md_text(reason));
            }
            DeployPlan::Planned(s) => {
                let _ = writeln!(
                    o,
                    "\n### Deploy: {} to `{}`\n",
                    strategy_name(s.strategy),
                    s.environment
                );
                let _ = writeln!(
                    o,
                    "Image {} → namespace `{}` ({})\n",
                    md_code(&s.image),
                    s.namespace,
                    md_text(&s.url)
                );
                let _ = writeln!(o, "**Before:**\n");
                for p in &s.pre_deploy {
                    let _ = writeln!(o, "- {}", md_text(p));
                }
                let _ = writeln!(o, "\n**Steps:**\n");
                for (i, p) in s.steps.iter().enumerate() {
                    let _ = writeln!(o, "{}. {}", i + 1, md_text(p));
                }
                if !s.triggers.is_empty() {
                    let _ = writeln!(
                        o,
                        "\n**Rollback triggers** (no data: {})\n\n| trigger | condition | for | worst-case detection |\n|---|---|---|---|",
                        s.on_no_data.map_or("hold", no_data_name)
                    );
                    for t in &s.triggers {
                        let _ = writeln!(
                            o,
                            "| {} | {} | {} | {} |",
                            md_text(&t.name),
                            md_code(&t.condition),
                            crate::policy::model::fmt_duration(t.for_),
                            crate::policy::model::fmt_duration(t.worst_case_detection)
                        );
                    }
                }
            }
        }
        if !self.skipped.is_empty() {
            let _ = writeln!(o, "\n### Skipped\n");
            for s in &self.skipped {
                let _ = writeln!(o, "- **{}**: {}", md_text(&s.what), md_text(&s.why));
            }
        }
        o
    }
}

fn no_data_name(p: NoDataPolicy) -> &'static str {
    match p {
        NoDataPolicy::Hold => "hold",
        NoDataPolicy::Fail => "fail",
        NoDataPolicy::Pass => "pass",
    }
}

fn trigger_text(t: &Trigger) -> String {
    match t {
        Trigger::Push => "push".into(),
        Trigger::PullRequest {
            number,
            fork,
            head_ref,
        } => {
            format!(
                "pull request #{number} from `{head_ref}`{}",
                if *fork { " (fork)" } else { "" }
            )
        }
        Trigger::WorkflowDispatch => "workflow_dispatch".into(),
        Trigger::Schedule => "schedule".into(),
        Trigger::Other { name } => name.clone(),
        Trigger::Local => "local run".into(),
    }
}
