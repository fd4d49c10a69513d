//! The gates part of the job summary (Markdown), the terminal report (plain text) and the JSON
//! report file. Pure: `&GatesReport` in, text out.
//!
//! Owns: how gate results read for people. Must not touch: files, GitHub, the verdict's rules.

use crate::gates::finding::Severity;
use crate::gates::outcome::GateOutcome;
use crate::gates::run::{GateRun, GatesReport};
use crate::runtime::{md_code, md_text};
use crate::verdict::{Decision, GateVerdict, OverrideUse, POLICY_CHANGE};
use std::fmt::Write as _;

/// Findings listed per gate in the Markdown summary; the rest are counted.
pub const MARKDOWN_FINDINGS_PER_GATE: usize = 20;

fn icon(d: Decision) -> &'static str {
    match d {
        Decision::Allow => "✅",
        Decision::NeedsApproval => "⚠️",
        Decision::Block => "❌",
    }
}

fn counts(g: &GateVerdict) -> String {
    let parts: Vec<String> = Severity::ALL
        .iter()
        .filter_map(|s| {
            g.counts
                .get(s)
                .filter(|n| **n > 0)
                .map(|n| format!("{n} {s}"))
        })
        .collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

fn outcome_word(o: &GateOutcome) -> &'static str {
    match o {
        GateOutcome::Passed => "passed",
        GateOutcome::Findings { .. } => "findings",
        GateOutcome::FailedToStart { .. } => "failed to start",
        GateOutcome::Crashed { .. } => "crashed",
        GateOutcome::TimedOut { .. } => "timed out",
        GateOutcome::Unparseable { .. } => "unparseable",
    }
}

fn run_of<'a>(r: &'a GatesReport, gate: &str) -> Option<&'a GateRun> {
    r.runs.iter().find(|x| x.gate == gate)
}

fn override_line(o: &OverrideUse) -> String {
    match o {
        OverrideUse::Exception {
            gate,
            fingerprint,
            rule,
            approver,
            reason,
            expires,
        } => {
            format!(
                "exception `{fingerprint}` ({gate} / {rule}) approved by {approver} until {expires}: {reason}"
            )
        }
        OverrideUse::Label {
            gate,
            label,
            pr,
            user,
            approver,
        } => {
            format!(
                "label `{label}` on PR #{pr} added by {user} (approver {approver}) allowed {gate}"
            )
        }
    }
}

/// The Markdown for `GITHUB_STEP_SUMMARY`.
pub fn render_markdown(r: &GatesReport) -> String {
    let v = &r.verdict;
    let mut s = String::new();
    let _ = writeln!(s, "## {} Gates: {}\n", icon(v.decision), v.decision);
    let _ = write!(s, "Tier **{}**", r.tier);
    if let Some(e) = &r.environment {
        let _ = write!(s, " · environment **{e}**");
    }
    if let Some(pr) = r.pull_request {
        let _ = write!(s, " · PR #{pr}");
    }
    if let Some(scope) = r.diff_scope {
        let _ = write!(
            s,
            " · counting {}",
            serde_json::to_value(scope)
                .ok()
                .and_then(|x| x.as_str().map(String::from))
                .unwrap_or_default()
        );
    }
    let _ = writeln!(s, " · {} gates, {} at once\n", r.runs.len(), r.parallelism);
    let with_diff = v.gates.iter().any(|g| g.diff_counts.is_some());
    if with_diff {
        let _ = writeln!(
            s,
            "| Gate | Decision | Outcome | Counted findings | New in diff | In changed files | Pre-existing | Time |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
    } else {
        let _ = writeln!(s, "| Gate | Decision | Outcome | Counted findings | Time |");
        let _ = writeln!(s, "|---|---|---|---|---|");
    }
    for g in &v.gates {
        let run = run_of(r, &g.gate);
        let outcome = run.map(|x| outcome_word(&x.outcome)).unwrap_or("not run");
        let time = run
            .map(|x| format!("{:.1}s", x.elapsed.as_secs_f64()))
            .unwrap_or_default();
        let _ = write!(
            s,
            "| `{}` | {} {} | {} | {} ",
            g.gate,
            icon(g.decision),
            g.decision,
            outcome,
            counts(g)
        );
        if with_diff {
            let d = g.diff_counts.unwrap_or_default();
            let _ = write!(
                s,
                "| {} | {} | {} ",
                d.new_in_diff, d.in_changed_file, d.pre_existing
            );
        }
        let _ = writeln!(s, "| {time} |");
    }
    let _ = writeln!(s);
    for g in v
        .gates
        .iter()
        .filter(|g| g.decision != Decision::Allow || !g.reasons.is_empty())
    {
        let _ = writeln!(s, "### {} `{}`\n", icon(g.decision), g.gate);
        for reason in &g.reasons {
            let _ = writeln!(s, "- {}", md_text(reason));
        }
        if let Some(run) = run_of(r, &g.gate) {
            let tail = match &run.outcome {
                GateOutcome::Crashed { stderr_tail, .. }
                | GateOutcome::TimedOut { stderr_tail, .. }
                | GateOutcome::Unparseable { stderr_tail, .. } => Some(stderr_tail),
                GateOutcome::Passed
                | GateOutcome::Findings { .. }
                | GateOutcome::FailedToStart { .. } => None,
            };
            if let Some(t) = tail.filter(|t| !t.is_empty()) {
                let t: String = t
                    .chars()
                    .rev()
                    .take(1500)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                let _ = writeln!(
                    s,
                    "\n<details><summary>output tail</summary>\n\n```text\n{}\n```\n</details>",
                    t.replace("```", "'''")
                );
            }
        }
        let mut listed: Vec<_> = g.findings.iter().filter(|f| f.counted).collect();
        listed.sort_by_key(|f| std::cmp::Reverse(f.finding.severity));
        if !listed.is_empty() {
            let _ = writeln!(
                s,
                "\n| Severity | Rule | Where | Message |\n|---|---|---|---|"
            );
            for f in listed.iter().take(MARKDOWN_FINDINGS_PER_GATE) {
                let at = match (&f.finding.path, f.finding.line) {
                    (Some(p), Some(l)) => md_code(&format!("{p}:{l}")),
                    (Some(p), None) => md_code(p),
                    (None, _) => String::new(),
                };
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} |",
                    f.finding.severity,
                    md_code(&f.finding.rule),
                    at,
                    md_text(&f.finding.message)
                );
            }
            if listed.len() > MARKDOWN_FINDINGS_PER_GATE {
                let _ = writeln!(
                    s,
                    "\n… and {} more (see the JSON report).",
                    listed.len() - MARKDOWN_FINDINGS_PER_GATE
                );
            }
        }
        let _ = writeln!(s);
    }
    if !v.overrides.is_empty() {
        let _ = writeln!(s, "### Overrides used\n");
        for o in &v.overrides {
            let _ = writeln!(s, "- {}", md_text(&override_line(o)));
        }
        let _ = writeln!(s);
    }
    if let Some(o) = &v.policy_origin {
        let _ = writeln!(s, "### Policy\n");
        let _ = writeln!(
            s,
            "Policy {} and exceptions file read from the base commit `{}` through {}; the pull \
             request's own copies never count.\n",
            md_code(&o.policy_path),
            o.base_sha,
            o.via
        );
        if let Some(req) = &v.policy_requirement {
            for why in &req.reasons {
                let _ = writeln!(s, "- ⚠️ {}", md_text(why));
            }
            let _ = writeln!(
                s,
                "\n{}\n",
                if req.grantable {
                    "This needs approval: the override label added by an approver grants it."
                } else {
                    "This needs approval that no label can grant: merge the policy to the base branch first."
                }
            );
        }
    }
    if !v.expired_exceptions.is_empty() {
        let _ = writeln!(s, "### Expired exceptions (not applied)\n");
        for e in &v.expired_exceptions {
            let _ = writeln!(
                s,
                "- `{}` approved by {} expired {}: {}",
                e.fingerprint,
                e.approver,
                e.expires,
                md_text(&e.reason)
            );
        }
        let _ = writeln!(s);
    }
    let cuts: Vec<String> = r
        .runs
        .iter()
        .filter(|x| x.stdout_dropped > 0 || x.stderr_dropped > 0)
        .map(|x| {
            format!(
                "`{}`: output cut at the cap ({} bytes of stdout and {} of stderr dropped)",
                x.gate, x.stdout_dropped, x.stderr_dropped
            )
        })
        .collect();
    if !r.notes.is_empty() || !cuts.is_empty() {
        let _ = writeln!(s, "### Notes\n");
        for n in r.notes.iter().chain(&cuts) {
            let _ = writeln!(s, "- {}", md_text(n));
        }
    }
    s
}

/// The plain-text report for a terminal (`fm-deploy gates --local`).
pub fn render_text(r: &GatesReport) -> String {
    let v = &r.verdict;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "gates: {} (tier {}{})",
        v.decision,
        r.tier,
        r.environment
            .as_ref()
            .map(|e| format!(", environment {e}"))
            .unwrap_or_default()
    );
    let width = v.gates.iter().map(|g| g.gate.len()).max().unwrap_or(4);
    for g in &v.gates {
        let run = run_of(r, &g.gate);
        let outcome = run.map(|x| outcome_word(&x.outcome)).unwrap_or("not run");
        let _ = writeln!(
            s,
            "  {:<width$}  {:<14}  {:<15}  {}",
            g.gate,
            g.decision.as_str(),
            outcome,
            counts(g)
        );
        for reason in &g.reasons {
            let _ = writeln!(s, "  {:<width$}    - {reason}", "");
        }
    }
    for g in &v.gates {
        let mut listed: Vec<_> = g.findings.iter().filter(|f| f.counted).collect();
        listed.sort_by_key(|f| std::cmp::Reverse(f.finding.severity));
        for f in listed {
            let at = match (&f.finding.path, f.finding.line, f.finding.column) {
                (Some(p), Some(l), Some(c)) => format!("{p}:{l}:{c}: "),
                (Some(p), Some(l), None) => format!("{p}:{l}: "),
                (Some(p), None, _) => format!("{p}: "),
                (None, _, _) => String::new(),
            };
            let _ = writeln!(
                s,
                "{at}{} [{} {}] {}",
                f.finding.severity, g.gate, f.finding.rule, f.finding.message
            );
        }
    }
    for o in &v.overrides {
        let _ = writeln!(s, "override: {}", override_line(o));
    }
    if let Some(req) = &v.policy_requirement {
        for why in &req.reasons {
            let _ = writeln!(s, "policy: {why}");
        }
    }
    for e in &v.expired_exceptions {
        let _ = writeln!(
            s,
            "expired exception (not applied): {} by {} on {}",
            e.fingerprint, e.approver, e.expires
        );
    }
    for n in &r.notes {
        let _ = writeln!(s, "note: {n}");
    }
    s
}

/// The JSON report file (the `report` output points at it).
pub fn render_json(r: &GatesReport) -> String {
    serde_json::to_string_pretty(r)
        .unwrap_or_else(|e| format!("{{\"error\": \"failed to serialize the gates report: {e}\"}}"))
}

/// One gate's check run (`fm-deploy / <gate>`): conclusion, title and summary from its verdict and
/// run. Pure; the verdict already decided everything.
pub fn gate_check(
    r: &GatesReport,
    g: &GateVerdict,
    annotation_budget: u32,
) -> crate::report::checks::GateCheck {
    use crate::report::checks::{CheckConclusion, GateCheck};
    let run = run_of(r, &g.gate);
    let conclusion = match (g.decision, run.map(|x| &x.outcome)) {
        (_, Some(GateOutcome::TimedOut { .. })) => CheckConclusion::TimedOut,
        (Decision::Block, _) => CheckConclusion::Failure,
        (Decision::NeedsApproval, _) => CheckConclusion::ActionRequired,
        (Decision::Allow, _) if g.findings.iter().any(|f| f.counted) => CheckConclusion::Neutral,
        (Decision::Allow, _) => CheckConclusion::Success,
    };
    let outcome = run.map_or("not run", |x| outcome_word(&x.outcome));
    let title = format!("{} — {} ({outcome})", counts(g), g.decision);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "**{} {}** · outcome {outcome}",
        icon(g.decision),
        g.decision
    );
    if let Some(x) = run {
        let _ = writeln!(
            s,
            "\n`{}` · {:.1}s",
            md_text(&x.argv.join(" ")),
            x.elapsed.as_secs_f64()
        );
    }
    if !g.reasons.is_empty() {
        let _ = writeln!(s, "\n**Why:**\n");
        for reason in &g.reasons {
            let _ = writeln!(s, "- {}", md_text(reason));
        }
    }
    let _ = writeln!(s, "\nCounted findings: {}", counts(g));
    if let Some(d) = &g.diff_counts {
        let _ = writeln!(
            s,
            "\nOn this pull request: {} new in the diff, {} in changed files, {} pre-existing, {} not tied to a file.",
            d.new_in_diff, d.in_changed_file, d.pre_existing, d.not_file_bound
        );
    }
    if let (Some(c), Some(m)) = (g.coverage, g.coverage_min) {
        let _ = writeln!(s, "\nCoverage {c:.2}% (minimum {m:.2}%)");
    }
    let text = run.and_then(|x| match &x.outcome {
        GateOutcome::Crashed { stderr_tail, .. }
        | GateOutcome::TimedOut { stderr_tail, .. }
        | GateOutcome::Unparseable { stderr_tail, .. }
            if !stderr_tail.is_empty() =>
        {
            Some(format!("stderr (last lines):\n\n```\n{stderr_tail}\n```\n"))
        }
        _ => None,
    });
    GateCheck {
        name: g.gate.clone(),
        conclusion,
        title,
        summary_markdown: s,
        text_markdown: text,
        findings: g.findings.iter().map(|f| f.finding.clone()).collect(),
        annotation_budget,
    }
}

/// The `fm-deploy / decision` check run: the whole verdict, no annotations (each gate has its own).
pub fn decision_check(r: &GatesReport) -> crate::report::checks::GateCheck {
    use crate::report::checks::{CheckConclusion, GateCheck};
    let v = &r.verdict;
    let conclusion = match v.decision {
        Decision::Allow => CheckConclusion::Success,
        Decision::NeedsApproval => CheckConclusion::ActionRequired,
        Decision::Block => CheckConclusion::Failure,
    };
    let mut blocking: Vec<&str> = v
        .gates
        .iter()
        .filter(|g| g.decision != Decision::Allow)
        .map(|g| g.gate.as_str())
        .collect();
    let policy_open = v.policy_requirement.is_some()
        && !v
            .overrides
            .iter()
            .any(|o| matches!(o, OverrideUse::Label { gate, .. } if gate == POLICY_CHANGE));
    if policy_open {
        blocking.push("policy change");
    }
    let title = if blocking.is_empty() {
        format!("{} — all {} gates passed", v.decision, v.gates.len())
    } else {
        format!("{} — {}", v.decision, blocking.join(", "))
    };
    GateCheck {
        name: "decision".into(),
        conclusion,
        title,
        summary_markdown: render_markdown(r),
        text_markdown: policy_diffs(r),
        findings: Vec::new(),
        annotation_budget: 0,
    }
}

/// The pull request's changes to its policy and exceptions file, as fenced diffs.
fn policy_diffs(r: &GatesReport) -> Option<String> {
    let o = r.verdict.policy_origin.as_ref()?;
    if o.changes.is_empty() {
        return None;
    }
    let mut s = String::from("## Changes to the policy in this pull request (not in effect)\n\n");
    for c in &o.changes {
        // A fence longer than any backtick run in the diff, so the diff cannot close it.
        let longest = c
            .diff
            .split(|ch| ch != '`')
            .map(str::len)
            .max()
            .unwrap_or(0);
        let fence = "`".repeat(longest.max(2) + 1);
        let _ = writeln!(
            s,
            "{}:\n\n{fence}diff\n{}\n{fence}\n",
            md_code(&c.path),
            c.diff.trim_end()
        );
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gates::outcome::{Captured, classify};
    use crate::gates::run::GateRun;
    use crate::gates::runner::ExitStatus;
    use crate::policy::model::{GatePhase, GateSpec, ParserKind, TierSpec};
    use crate::verdict::{GateInput, VerdictContext, decide};
    use std::collections::BTreeMap;
    use std::time::Duration;

    fn fixture(rel: &str) -> Vec<u8> {
        std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(rel),
        )
        .unwrap()
    }

    fn spec(name: &str, parser: ParserKind, block_over: Option<u32>) -> GateSpec {
        GateSpec {
            name: name.into(),
            run: vec![name.into()],
            parser,
            report: None,
            timeout: Duration::from_secs(60),
            phase: GatePhase::PreDeploy,
            severity: BTreeMap::new(),
            block_over,
            coverage: None,
            coverage_min: None,
            budgets: None,
            licenses: None,
            env: BTreeMap::new(),
            working_dir: None,
            annotation_budget: 50,
        }
    }

    /// The summary and terminal report of real recorded runs (planted project), pinned.
    #[test]
    fn renders_real_runs() {
        let cases = [
            (
                spec("lint", ParserKind::Flake8Json, Some(0)),
                1,
                "flake8/findings.json",
                "",
            ),
            (
                spec("bandit", ParserKind::Bandit, None),
                1,
                "bandit/findings.json",
                "",
            ),
            (
                spec("secrets", ParserKind::DetectSecrets, None),
                0,
                "detect-secrets/findings.json",
                "",
            ),
            (
                spec("dependencies", ParserKind::PipAudit, None),
                0,
                "pip-audit/all-skipped-pypi-404.json",
                "pip-audit/all-skipped-pypi-404.json.stderr.txt",
            ),
        ];
        let runs: Vec<GateRun> = cases
            .iter()
            .map(|(s, code, out, err)| {
                let out = fixture(out);
                let err = if err.is_empty() { vec![] } else { fixture(err) };
                let (outcome, metrics) = classify(
                    s.parser,
                    Captured {
                        status: ExitStatus::Code(*code),
                        output: &out,
                        output_truncated: false,
                        stderr: &err,
                    },
                );
                GateRun {
                    gate: s.name.clone(),
                    parser: s.parser,
                    argv: s.run.clone(),
                    outcome,
                    metrics,
                    elapsed: Duration::ZERO,
                    stdout_dropped: 0,
                    stderr_dropped: 0,
                }
            })
            .collect();
        let tier = TierSpec {
            name: "basic".into(),
            gates: vec![],
            matrix: None,
            coverage_min: None,
        };
        let ctx = VerdictContext {
            tier: &tier,
            env_coverage_min: None,
            diff: None,
            diff_scope: crate::policy::model::DiffScope::All,
            exceptions: &[],
            label_approval: None,
            today: chrono::NaiveDate::from_ymd_opt(2026, 11, 27).unwrap(),
            policy_origin: None,
        };
        let inputs: Vec<GateInput<'_>> = cases
            .iter()
            .zip(&runs)
            .map(|((s, ..), r)| GateInput {
                spec: s,
                outcome: &r.outcome,
                metrics: &r.metrics,
            })
            .collect();
        let verdict = decide(&inputs, &ctx);
        let report = GatesReport {
            tier: "basic".into(),
            environment: Some("development".into()),
            pull_request: None,
            diff_scope: None,
            parallelism: 2,
            runs,
            verdict,
            notes: vec![],
            elapsed: Duration::ZERO,
        };
        assert_eq!(report.verdict.decision, Decision::Block);
        insta::assert_snapshot!("markdown", render_markdown(&report));
        insta::assert_snapshot!("text", render_text(&report));
        let json: serde_json::Value = serde_json::from_str(&render_json(&report)).unwrap();
        assert_eq!(json["verdict"]["decision"], "block");
    }
}
