//! Verdict: pure (gate outcomes, policy, overrides) → per-gate verdict and overall decision.
//!
//! Owns: the severity → action table, secrets / licences / lint-count / coverage / performance
//! rules, diff scope, exceptions and label overrides. Must not touch: processes, files, GitHub.
//! Every outcome is matched explicitly: a gate that did not parse cleanly blocks.

use crate::gates::diff::{DiffClass, DiffIndex};
use crate::gates::exceptions::Exception;
use crate::gates::finding::{Finding, FindingClass, Severity};
use crate::gates::outcome::GateOutcome;
use crate::gates::parsers::Metrics;
use crate::policy::base::{PolicyOrigin, Requirement, requirement};
use crate::policy::model::{Action, DiffScope, GateSpec, ParserKind, Ratio, TierSpec};
use chrono::NaiveDate;
use serde::Serialize;
use std::collections::BTreeMap;

/// The decision for one gate and for the run. Ordered: `Allow < NeedsApproval < Block`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    Allow,
    NeedsApproval,
    Block,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::NeedsApproval => "needs-approval",
            Decision::Block => "block",
        }
    }

    /// Process exit code for the `gates` command: 0 allow, 1 otherwise.
    pub fn exit_code(self) -> i32 {
        match self {
            Decision::Allow => 0,
            Decision::NeedsApproval | Decision::Block => 1,
        }
    }
}

impl std::fmt::Display for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The built-in table: critical blocks, high needs approval, medium warns, low and info are ignored.
pub fn default_action(s: Severity) -> Action {
    match s {
        Severity::Critical => Action::Block,
        Severity::High => Action::NeedsApproval,
        Severity::Medium => Action::Warn,
        Severity::Low | Severity::Info => Action::Ignore,
    }
}

/// The action for one finding under a gate's table. Secrets and denied licences always block.
pub fn action_for(spec: &GateSpec, f: &Finding) -> Action {
    match f.class {
        FindingClass::Secret | FindingClass::DeniedLicense => Action::Block,
        FindingClass::General => spec
            .severity
            .get(&f.severity)
            .copied()
            .unwrap_or_else(|| default_action(f.severity)),
    }
}

/// A PR label added by an approver, verified by the caller through the issue events API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LabelApproval {
    pub label: String,
    pub pr: u64,
    /// Login of the user who added the label.
    pub user: String,
    /// The approver entry that matched (`alice` or `org/security-team`).
    pub approver: String,
}

/// One override that changed the outcome, with who and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum OverrideUse {
    Exception {
        gate: String,
        fingerprint: String,
        rule: String,
        approver: String,
        reason: String,
        expires: NaiveDate,
    },
    Label {
        gate: String,
        label: String,
        pr: u64,
        user: String,
        approver: String,
    },
}

/// Everything the verdict reads besides the gates.
#[derive(Debug, Clone, Copy)]
pub struct VerdictContext<'a> {
    pub tier: &'a TierSpec,
    /// The target environment's coverage minimum (production: 80 %).
    pub env_coverage_min: Option<Ratio>,
    /// The PR's changes; `None` outside pull requests (every finding counts).
    pub diff: Option<&'a DiffIndex>,
    pub diff_scope: DiffScope,
    pub exceptions: &'a [Exception],
    pub label_approval: Option<&'a LabelApproval>,
    /// Today (UTC), for exception expiry.
    pub today: NaiveDate,
    /// On pull requests: where the policy came from and what the PR changes in it.
    pub policy_origin: Option<&'a PolicyOrigin>,
}

/// One gate's input to the verdict.
#[derive(Debug, Clone, Copy)]
pub struct GateInput<'a> {
    pub spec: &'a GateSpec,
    pub outcome: &'a GateOutcome,
    pub metrics: &'a Metrics,
}

/// A finding with what the verdict made of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JudgedFinding {
    #[serde(flatten)]
    pub finding: Finding,
    pub action: Action,
    pub diff: Option<DiffClass>,
    /// Counts against the gate (in diff scope and not excepted).
    pub counted: bool,
    /// Approver of the exception that excused it.
    pub excepted_by: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DiffCounts {
    pub new_in_diff: u32,
    pub in_changed_file: u32,
    pub pre_existing: u32,
    pub not_file_bound: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateVerdict {
    pub gate: String,
    pub decision: Decision,
    /// Why, most severe first; empty for a clean allow.
    pub reasons: Vec<String>,
    /// Counted findings by severity.
    pub counts: BTreeMap<Severity, u32>,
    /// All findings by diff class (only on pull requests).
    pub diff_counts: Option<DiffCounts>,
    pub findings: Vec<JudgedFinding>,
    /// The outcome failed to parse cleanly (tool missing, crashed, timed out, garbage).
    pub failed: bool,
    pub coverage: Option<f64>,
    pub coverage_min: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub decision: Decision,
    /// Sorted by gate name, so the verdict does not depend on the order gates finished in.
    pub gates: Vec<GateVerdict>,
    pub overrides: Vec<OverrideUse>,
    /// Exceptions past their expiry date: not applied.
    pub expired_exceptions: Vec<Exception>,
    /// On pull requests: where the policy came from and what the PR changes in it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_origin: Option<PolicyOrigin>,
    /// What the policy origin adds (a changed policy or exceptions file, no policy on the base).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_requirement: Option<Requirement>,
}

fn counts_in_scope(scope: DiffScope, class: DiffClass, f: &Finding) -> bool {
    if f.class == FindingClass::Secret {
        return true;
    }
    match (scope, class) {
        (_, DiffClass::NotFileBound) | (DiffScope::All, _) => true,
        (DiffScope::ChangedFiles, DiffClass::NewInDiff | DiffClass::InChangedFile) => true,
        (DiffScope::ChangedFiles, DiffClass::PreExisting) => false,
        (DiffScope::NewInDiff, DiffClass::NewInDiff) => true,
        (DiffScope::NewInDiff, DiffClass::InChangedFile | DiffClass::PreExisting) => false,
    }
}

fn fmt_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2}s", ms / 1000.0)
    } else {
        format!("{ms:.0}ms")
    }
}

/// Judges one gate. Pure.
pub fn judge_gate(
    g: GateInput<'_>,
    ctx: &VerdictContext<'_>,
    overrides: &mut Vec<OverrideUse>,
) -> GateVerdict {
    let spec = g.spec;
    let mut reasons: Vec<(Decision, String)> = Vec::new();
    let mut decision = Decision::Allow;
    let mut raise = |d: Decision, why: String, decision: &mut Decision| {
        *decision = (*decision).max(d);
        reasons.push((d, why));
    };
    let failed = match g.outcome {
        GateOutcome::Passed | GateOutcome::Findings { .. } => false,
        GateOutcome::FailedToStart { .. }
        | GateOutcome::Crashed { .. }
        | GateOutcome::TimedOut { .. }
        | GateOutcome::Unparseable { .. } => true,
    };
    if let Some(why) = g.outcome.failure() {
        raise(Decision::Block, why, &mut decision);
    }

    let active: BTreeMap<&str, &Exception> = ctx
        .exceptions
        .iter()
        .filter(|e| e.expires >= ctx.today)
        .map(|e| (e.fingerprint.as_str(), e))
        .collect();
    let mut findings: Vec<JudgedFinding> = Vec::new();
    let mut diff_counts = ctx.diff.map(|_| DiffCounts::default());
    for f in g.outcome.findings() {
        let action = action_for(spec, f);
        let diff = ctx.diff.map(|d| d.classify(f));
        if let (Some(dc), Some(c)) = (diff_counts.as_mut(), diff) {
            match c {
                DiffClass::NewInDiff => dc.new_in_diff += 1,
                DiffClass::InChangedFile => dc.in_changed_file += 1,
                DiffClass::PreExisting => dc.pre_existing += 1,
                DiffClass::NotFileBound => dc.not_file_bound += 1,
            }
        }
        let in_scope = diff.is_none_or(|c| counts_in_scope(ctx.diff_scope, c, f));
        let mut excepted_by = None;
        if in_scope && let Some(e) = active.get(f.fingerprint.as_str()) {
            match action {
                Action::Block => raise(
                    Decision::Block,
                    format!(
                        "exception for {} ({}) not applied: the finding blocks and cannot be excepted",
                        f.fingerprint, f.rule
                    ),
                    &mut decision,
                ),
                Action::Ignore | Action::Warn | Action::NeedsApproval => {
                    excepted_by = Some(e.approver.clone());
                    overrides.push(OverrideUse::Exception {
                        gate: spec.name.clone(),
                        fingerprint: f.fingerprint.clone(),
                        rule: f.rule.clone(),
                        approver: e.approver.clone(),
                        reason: e.reason.clone(),
                        expires: e.expires,
                    });
                }
            }
        }
        let counted = in_scope && excepted_by.is_none();
        findings.push(JudgedFinding {
            finding: f.clone(),
            action,
            diff,
            counted,
            excepted_by,
        });
    }

    let mut counts: BTreeMap<Severity, u32> = BTreeMap::new();
    let mut by_action: BTreeMap<Action, u32> = BTreeMap::new();
    let mut secrets = 0u32;
    let mut denied = 0u32;
    for jf in findings.iter().filter(|j| j.counted) {
        *counts.entry(jf.finding.severity).or_default() += 1;
        *by_action.entry(jf.action).or_default() += 1;
        match jf.finding.class {
            FindingClass::Secret => secrets += 1,
            FindingClass::DeniedLicense => denied += 1,
            FindingClass::General => {}
        }
    }
    if secrets > 0 {
        raise(
            Decision::Block,
            format!("{secrets} secret(s) detected"),
            &mut decision,
        );
    }
    if denied > 0 {
        raise(
            Decision::Block,
            format!("{denied} dependency licence(s) denied by the policy"),
            &mut decision,
        );
    }
    let blocking = by_action
        .get(&Action::Block)
        .copied()
        .unwrap_or(0)
        .saturating_sub(secrets + denied);
    if blocking > 0 {
        raise(
            Decision::Block,
            format!("{blocking} finding(s) at a blocking severity"),
            &mut decision,
        );
    }
    if let Some(n) = by_action
        .get(&Action::NeedsApproval)
        .copied()
        .filter(|n| *n > 0)
    {
        raise(
            Decision::NeedsApproval,
            format!("{n} finding(s) need approval"),
            &mut decision,
        );
    }
    let total: u32 = counts.values().sum();
    if let Some(max) = spec.block_over
        && total > max
    {
        raise(
            Decision::Block,
            format!("{total} finding(s), the policy allows at most {max}"),
            &mut decision,
        );
    }

    // Coverage: the highest of the gate's, the tier's and the environment's minimum.
    let reports_coverage = spec.coverage.is_some()
        || spec.parser == ParserKind::Cobertura
        || g.metrics.coverage.is_some();
    let min = [
        spec.coverage_min,
        ctx.tier.coverage_min,
        ctx.env_coverage_min,
    ]
    .into_iter()
    .flatten()
    .map(|r| r.0)
    .fold(None, |a: Option<f64>, b| Some(a.map_or(b, |a| a.max(b))));
    let coverage_min = if reports_coverage { min } else { None };
    if let Some(min) = coverage_min
        && !failed
    {
        match g.metrics.coverage {
            None => raise(
                Decision::Block,
                format!("no coverage figure was read, minimum is {}", Ratio(min)),
                &mut decision,
            ),
            Some(c) if c < min => raise(
                Decision::Block,
                format!("coverage {} is below the minimum {}", Ratio(c), Ratio(min)),
                &mut decision,
            ),
            Some(_) => {}
        }
    }

    // Performance budgets: every budgeted metric must be measured and within budget.
    if let (Some(b), false) = (&spec.budgets, failed) {
        let perf = g.metrics.perf.unwrap_or_default();
        let checks: [(&str, Option<f64>, Option<f64>, bool); 4] = [
            (
                "page load",
                b.page_load.map(|d| d.as_secs_f64() * 1000.0),
                perf.page_load_ms,
                true,
            ),
            (
                "API response",
                b.api.map(|d| d.as_secs_f64() * 1000.0),
                perf.api_ms,
                true,
            ),
            (
                "certificate generation",
                b.certificate_generation.map(|d| d.as_secs_f64() * 1000.0),
                perf.certificate_generation_ms,
                true,
            ),
            (
                "error rate",
                b.error_rate.map(|r| r.0),
                perf.error_rate,
                false,
            ),
        ];
        for (name, budget, got, is_time) in checks {
            let Some(budget) = budget else { continue };
            let show = |v: f64| {
                if is_time {
                    fmt_ms(v)
                } else {
                    Ratio(v).to_string()
                }
            };
            match got {
                None => raise(
                    Decision::Block,
                    format!("{name} was not measured (budget {})", show(budget)),
                    &mut decision,
                ),
                Some(v) if v > budget => raise(
                    Decision::Block,
                    format!("{name} {} is over its budget {}", show(v), show(budget)),
                    &mut decision,
                ),
                Some(_) => {}
            }
        }
    }

    if decision == Decision::NeedsApproval
        && let Some(l) = ctx.label_approval
    {
        decision = Decision::Allow;
        reasons.push((
            Decision::Allow,
            format!(
                "approved by label `{}` added by {} ({})",
                l.label, l.user, l.approver
            ),
        ));
        overrides.push(OverrideUse::Label {
            gate: spec.name.clone(),
            label: l.label.clone(),
            pr: l.pr,
            user: l.user.clone(),
            approver: l.approver.clone(),
        });
    }
    reasons.sort_by_key(|r| std::cmp::Reverse(r.0));
    GateVerdict {
        gate: spec.name.clone(),
        decision,
        reasons: reasons.into_iter().map(|(_, r)| r).collect(),
        counts,
        diff_counts,
        findings,
        failed,
        coverage: g.metrics.coverage,
        coverage_min,
    }
}

/// The name an approval of a pull request's policy change is recorded under (not a gate).
pub const POLICY_CHANGE: &str = "policy-change";

/// Judges every gate and decides the run: the most severe gate decision. Pure.
pub fn decide(gates: &[GateInput<'_>], ctx: &VerdictContext<'_>) -> Verdict {
    let mut overrides = Vec::new();
    let mut verdicts: Vec<GateVerdict> = gates
        .iter()
        .map(|g| judge_gate(*g, ctx, &mut overrides))
        .collect();
    verdicts.sort_by(|a, b| a.gate.cmp(&b.gate));
    overrides.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    let mut decision = verdicts
        .iter()
        .map(|g| g.decision)
        .max()
        .unwrap_or(Decision::Allow);
    let policy_requirement = ctx.policy_origin.and_then(requirement);
    if let Some(r) = &policy_requirement {
        match ctx.label_approval.filter(|_| r.grantable) {
            Some(l) => overrides.push(OverrideUse::Label {
                gate: POLICY_CHANGE.into(),
                label: l.label.clone(),
                pr: l.pr,
                user: l.user.clone(),
                approver: l.approver.clone(),
            }),
            None => decision = decision.max(Decision::NeedsApproval),
        }
    }
    let expired_exceptions = ctx
        .exceptions
        .iter()
        .filter(|e| e.expires < ctx.today)
        .cloned()
        .collect();
    Verdict {
        decision,
        gates: verdicts,
        overrides,
        expired_exceptions,
        policy_origin: ctx.policy_origin.cloned(),
        policy_requirement,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gates::runner::ExitStatus;
    use crate::policy::model::{GatePhase, PerfBudgets};
    use proptest::prelude::*;
    use std::time::Duration;

    pub(crate) fn spec(name: &str, parser: ParserKind) -> GateSpec {
        GateSpec {
            name: name.into(),
            run: vec!["true".into()],
            parser,
            report: None,
            timeout: Duration::from_secs(60),
            phase: GatePhase::PreDeploy,
            severity: BTreeMap::new(),
            block_over: None,
            coverage: None,
            coverage_min: None,
            budgets: None,
            licenses: None,
            env: BTreeMap::new(),
            working_dir: None,
            annotation_budget: 50,
        }
    }

    fn tier(min: Option<f64>) -> TierSpec {
        TierSpec {
            name: "t".into(),
            gates: vec![],
            matrix: None,
            coverage_min: min.map(Ratio),
        }
    }

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn ctx<'a>(t: &'a TierSpec, ex: &'a [Exception]) -> VerdictContext<'a> {
        VerdictContext {
            tier: t,
            env_coverage_min: None,
            diff: None,
            diff_scope: DiffScope::All,
            exceptions: ex,
            label_approval: None,
            today: day("2026-11-27"),
            policy_origin: None,
        }
    }

    fn f(sev: Severity, path: &str, line: u32) -> Finding {
        Finding::new("tool", format!("R{line}"), sev, format!("m{line}")).at(path, Some(line), None)
    }

    fn findings(v: Vec<Finding>) -> GateOutcome {
        if v.is_empty() {
            GateOutcome::Passed
        } else {
            GateOutcome::Findings { findings: v }
        }
    }

    fn one(s: &GateSpec, o: &GateOutcome, m: &Metrics, c: &VerdictContext<'_>) -> Verdict {
        decide(
            &[GateInput {
                spec: s,
                outcome: o,
                metrics: m,
            }],
            c,
        )
    }

    /// The default severity table, row by row.
    #[test]
    fn severity_table() {
        let t = tier(None);
        let c = ctx(&t, &[]);
        let s = spec("g", ParserKind::Bandit);
        let m = Metrics::default();
        let cases = [
            (Severity::Critical, Decision::Block),
            (Severity::High, Decision::NeedsApproval),
            (Severity::Medium, Decision::Allow),
            (Severity::Low, Decision::Allow),
            (Severity::Info, Decision::Allow),
        ];
        for (sev, want) in cases {
            assert_eq!(
                one(&s, &findings(vec![f(sev, "a.py", 1)]), &m, &c).decision,
                want,
                "{sev}"
            );
        }
    }

    /// Every non-parse outcome blocks and names its cause.
    #[test]
    fn failures_block() {
        let t = tier(None);
        let c = ctx(&t, &[]);
        let s = spec("g", ParserKind::Flake8Json);
        let m = Metrics::default();
        let outs = [
            GateOutcome::FailedToStart {
                program: "flake8".into(),
                missing: true,
                message: "`flake8` was not found on PATH".into(),
            },
            GateOutcome::Crashed {
                status: ExitStatus::Code(137),
                message: "ended with exit code 137".into(),
                stderr_tail: String::new(),
            },
            GateOutcome::TimedOut {
                after: Duration::from_secs(2),
                stderr_tail: String::new(),
            },
            GateOutcome::Unparseable {
                message: "parse flake8 json output: expected value".into(),
                stderr_tail: String::new(),
            },
        ];
        for o in outs {
            let v = one(&s, &o, &m, &c);
            assert_eq!(v.decision, Decision::Block);
            assert!(v.gates[0].failed);
            assert!(!v.gates[0].reasons.is_empty());
        }
    }

    /// block_over 0 blocks any counted lint finding, even ignored severities.
    #[test]
    fn block_over_counts() {
        let t = tier(None);
        let c = ctx(&t, &[]);
        let mut s = spec("lint", ParserKind::Flake8Json);
        s.block_over = Some(0);
        let v = one(
            &s,
            &findings(vec![f(Severity::Low, "a.py", 1)]),
            &Metrics::default(),
            &c,
        );
        assert_eq!(v.decision, Decision::Block);
        assert!(v.gates[0].reasons[0].contains("at most 0"));
    }

    /// Coverage below the highest minimum blocks; a missing figure blocks.
    #[test]
    fn coverage_minimum() {
        let t = tier(Some(0.8));
        let c = ctx(&t, &[]);
        let mut s = spec("unit", ParserKind::Junit);
        s.coverage = Some("cov.xml".into());
        let low = Metrics {
            coverage: Some(0.2764),
            ..Metrics::default()
        };
        let v = one(&s, &GateOutcome::Passed, &low, &c);
        assert_eq!(v.decision, Decision::Block);
        assert_eq!(
            v.gates[0].reasons,
            vec!["coverage 27.64% is below the minimum 80%".to_string()]
        );
        let ok = Metrics {
            coverage: Some(0.8191),
            ..Metrics::default()
        };
        assert_eq!(
            one(&s, &GateOutcome::Passed, &ok, &c).decision,
            Decision::Allow
        );
        assert_eq!(
            one(&s, &GateOutcome::Passed, &Metrics::default(), &c).decision,
            Decision::Block
        );
    }

    /// Performance over budget or not measured blocks.
    #[test]
    fn perf_budgets() {
        let t = tier(None);
        let c = ctx(&t, &[]);
        let mut s = spec("perf", ParserKind::Perf);
        s.budgets = Some(PerfBudgets {
            page_load: Some(Duration::from_secs(3)),
            api: Some(Duration::from_secs(1)),
            certificate_generation: None,
            error_rate: Some(Ratio(0.001)),
        });
        let m = |api: f64, err: Option<f64>| Metrics {
            perf: Some(crate::gates::parsers::PerfMetrics {
                page_load_ms: Some(900.0),
                api_ms: Some(api),
                certificate_generation_ms: None,
                error_rate: err,
            }),
            ..Metrics::default()
        };
        assert_eq!(
            one(&s, &GateOutcome::Passed, &m(400.0, Some(0.0005)), &c).decision,
            Decision::Allow
        );
        let v = one(&s, &GateOutcome::Passed, &m(1400.0, Some(0.0005)), &c);
        assert_eq!(
            v.gates[0].reasons,
            vec!["API response 1.40s is over its budget 1.00s".to_string()]
        );
        let v = one(&s, &GateOutcome::Passed, &m(400.0, None), &c);
        assert_eq!(v.decision, Decision::Block);
    }

    /// Secrets block whatever the table says; an exception cannot excuse them.
    #[test]
    fn secrets_block_and_cannot_be_excepted() {
        let t = tier(None);
        let mut s = spec("secrets", ParserKind::DetectSecrets);
        s.severity.insert(Severity::Critical, Action::Ignore);
        let sec = f(Severity::Critical, "config.py", 4).classed(FindingClass::Secret);
        let ex = [Exception {
            fingerprint: sec.fingerprint.clone(),
            reason: "r".into(),
            approver: "a".into(),
            expires: day("2030-01-01"),
        }];
        let c = ctx(&t, &ex);
        let v = one(&s, &findings(vec![sec]), &Metrics::default(), &c);
        assert_eq!(v.decision, Decision::Block);
        assert!(v.overrides.is_empty());
    }

    /// An active exception excuses a needs-approval finding and is listed; an expired one does not and is reported.
    #[test]
    fn exceptions_apply_until_expiry() {
        let t = tier(None);
        let s = spec("deps", ParserKind::PipAudit);
        let high = f(Severity::High, "a.py", 1);
        let live = Exception {
            fingerprint: high.fingerprint.clone(),
            reason: "no fix yet".into(),
            approver: "alice".into(),
            expires: day("2026-11-27"),
        };
        let v = one(
            &s,
            &findings(vec![high.clone()]),
            &Metrics::default(),
            &ctx(&t, std::slice::from_ref(&live)),
        );
        assert_eq!(v.decision, Decision::Allow);
        assert!(
            matches!(&v.overrides[0], OverrideUse::Exception { approver, reason, .. } if approver == "alice" && reason == "no fix yet")
        );
        let old = Exception {
            expires: day("2026-11-26"),
            ..live
        };
        let v = one(
            &s,
            &findings(vec![high]),
            &Metrics::default(),
            &ctx(&t, std::slice::from_ref(&old)),
        );
        assert_eq!(v.decision, Decision::NeedsApproval);
        assert_eq!(v.expired_exceptions, vec![old]);
    }

    /// A PR that changes its policy needs approval even when every gate allows; a verified label
    /// grants it (recorded as an override) unless the base has no policy at all.
    #[test]
    fn policy_change_needs_approval() {
        use crate::policy::base::{FileChange, Via};
        let t = tier(None);
        let s = spec("g", ParserKind::ExitCode);
        let m = Metrics::default();
        let changed = PolicyOrigin {
            base_sha: "b".repeat(40),
            via: Via::Git,
            policy_path: ".github/fm-deploy.yml".into(),
            base_has_policy: true,
            changes: vec![FileChange {
                path: ".github/fm-deploy.yml".into(),
                diff: "-a\n+b\n".into(),
            }],
        };
        let mut c = ctx(&t, &[]);
        c.policy_origin = Some(&changed);
        let v = one(&s, &GateOutcome::Passed, &m, &c);
        assert_eq!(v.decision, Decision::NeedsApproval);
        assert!(v.policy_requirement.as_ref().is_some_and(|r| r.grantable));
        let l = LabelApproval {
            label: "ok".into(),
            pr: 7,
            user: "sec".into(),
            approver: "sec".into(),
        };
        c.label_approval = Some(&l);
        let v = one(&s, &GateOutcome::Passed, &m, &c);
        assert_eq!(v.decision, Decision::Allow);
        assert!(
            matches!(&v.overrides[0], OverrideUse::Label { gate, .. } if gate == POLICY_CHANGE)
        );
        let unseeded = PolicyOrigin {
            base_has_policy: false,
            changes: vec![],
            ..changed.clone()
        };
        c.policy_origin = Some(&unseeded);
        assert_eq!(
            one(&s, &GateOutcome::Passed, &m, &c).decision,
            Decision::NeedsApproval
        );
        let unchanged = PolicyOrigin {
            changes: vec![],
            ..changed.clone()
        };
        c.policy_origin = Some(&unchanged);
        c.label_approval = None;
        assert_eq!(
            one(&s, &GateOutcome::Passed, &m, &c).decision,
            Decision::Allow
        );
    }

    /// A verified label turns needs-approval into allow and is listed; it never lifts a block.
    #[test]
    fn label_override() {
        let t = tier(None);
        let l = LabelApproval {
            label: "fm-deploy/approve-high".into(),
            pr: 7,
            user: "bob".into(),
            approver: "org/security".into(),
        };
        let mut c = ctx(&t, &[]);
        c.label_approval = Some(&l);
        let s = spec("bandit", ParserKind::Bandit);
        let v = one(
            &s,
            &findings(vec![f(Severity::High, "a.py", 1)]),
            &Metrics::default(),
            &c,
        );
        assert_eq!(v.decision, Decision::Allow);
        assert!(matches!(&v.overrides[0], OverrideUse::Label { user, .. } if user == "bob"));
        let v = one(
            &s,
            &findings(vec![f(Severity::Critical, "a.py", 1)]),
            &Metrics::default(),
            &c,
        );
        assert_eq!(v.decision, Decision::Block);
    }

    /// Diff scope: new-in-diff counts only changed lines; the summary counts all three classes.
    #[test]
    fn diff_scope() {
        let t = tier(None);
        let idx = crate::gates::diff::parse_unified_diff(
            "diff --git a/a.py b/a.py\n--- a/a.py\n+++ b/a.py\n@@ -1 +1,2 @@\n+x\n+y\n",
        )
        .unwrap();
        let mut c = ctx(&t, &[]);
        c.diff = Some(&idx);
        c.diff_scope = DiffScope::NewInDiff;
        let s = spec("bandit", ParserKind::Bandit);
        let fs = vec![f(Severity::High, "a.py", 9), f(Severity::High, "b.py", 1)];
        let v = one(&s, &findings(fs.clone()), &Metrics::default(), &c);
        assert_eq!(v.decision, Decision::Allow);
        assert_eq!(
            v.gates[0].diff_counts,
            Some(DiffCounts {
                new_in_diff: 0,
                in_changed_file: 1,
                pre_existing: 1,
                not_file_bound: 0
            })
        );
        let mut more = fs;
        more.push(f(Severity::High, "a.py", 2));
        assert_eq!(
            one(&s, &findings(more), &Metrics::default(), &c).decision,
            Decision::NeedsApproval
        );
    }

    fn arb_sev() -> impl Strategy<Value = Severity> {
        prop_oneof![
            Just(Severity::Info),
            Just(Severity::Low),
            Just(Severity::Medium),
            Just(Severity::High),
            Just(Severity::Critical)
        ]
    }

    proptest! {
        /// Adding a finding never improves a gate's or the run's decision.
        #[test]
        fn adding_a_finding_never_improves(sevs in proptest::collection::vec((arb_sev(), 0u32..5, any::<bool>()), 0..12), extra in (arb_sev(), 0u32..5, any::<bool>()), block_over in proptest::option::of(0u32..4)) {
            let t = tier(None);
            let c = ctx(&t, &[]);
            let mut s = spec("g", ParserKind::Bandit);
            s.block_over = block_over;
            let mk = |(sev, l, secret): (Severity, u32, bool)| {
                let x = f(sev, "a.py", l);
                if secret { x.classed(FindingClass::Secret) } else { x }
            };
            let base: Vec<Finding> = sevs.iter().copied().map(mk).collect();
            let mut plus = base.clone();
            plus.push(mk(extra));
            let a = one(&s, &findings(base), &Metrics::default(), &c).decision;
            let b = one(&s, &findings(plus), &Metrics::default(), &c).decision;
            prop_assert!(b >= a);
        }

        /// The verdict does not depend on the order of the gates.
        #[test]
        fn gate_order_does_not_matter(sevs in proptest::collection::vec(proptest::option::of(arb_sev()), 1..6), rot in 0usize..6) {
            let t = tier(None);
            let c = ctx(&t, &[]);
            let specs: Vec<GateSpec> = (0..sevs.len()).map(|i| spec(&format!("g{i}"), ParserKind::Bandit)).collect();
            let outs: Vec<GateOutcome> = sevs.iter().enumerate().map(|(i, s)| match s {
                Some(sev) => findings(vec![f(*sev, "a.py", i as u32)]),
                None => GateOutcome::TimedOut { after: Duration::from_secs(1), stderr_tail: String::new() },
            }).collect();
            let m = Metrics::default();
            let mut inputs: Vec<GateInput<'_>> = specs.iter().zip(&outs).map(|(s, o)| GateInput { spec: s, outcome: o, metrics: &m }).collect();
            let a = decide(&inputs, &c);
            let k = rot % inputs.len();
            inputs.rotate_left(k);
            inputs.reverse();
            let b = decide(&inputs, &c);
            prop_assert_eq!(a, b);
        }
    }
}
