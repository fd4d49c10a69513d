//! Check-run payloads: titles, summaries, annotations in batches of 50, truncation, conclusions, and
//! the workflow-command fallback for runs that cannot write checks. Pure.
//!
//! Owns: GitHub's check-run limits (title ≤ 255 characters, summary/text ≤ 65 535 characters, ≤ 50
//! annotations per request, message/raw_details ≤ 64 KB, columns only on single-line annotations),
//! ordering (most severe first), the per-gate annotation budget, and the exact request plan a gate
//! costs. Must not touch: the network, the environment, the verdict logic (the caller maps its verdict
//! onto [`CheckConclusion`]).

use crate::gates::finding::{Finding, Severity};
use crate::runtime::{self, Level};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

/// Prefix of every check run this action posts, so branch protection can require stable names.
pub const CHECK_NAME_PREFIX: &str = "fm-deploy / ";
/// Name of the check run that carries the overall decision.
pub const DECISION_CHECK: &str = "fm-deploy / decision";
/// GitHub rejects more annotations than this in one create/update request.
pub const MAX_ANNOTATIONS_PER_REQUEST: usize = 50;
/// GitHub's limit on `output.title` and `annotations[].title`, in characters.
pub const MAX_TITLE_CHARS: usize = 255;
/// GitHub's limit on `output.summary` and `output.text`, in characters.
pub const MAX_OUTPUT_CHARS: usize = 65_535;
/// GitHub's limit on `annotations[].message` and `annotations[].raw_details`, in bytes.
pub const MAX_ANNOTATION_FIELD_BYTES: usize = 64 * 1024;
/// Annotations one gate posts when the policy says nothing.
pub const DEFAULT_ANNOTATION_BUDGET: u32 = 1000;
/// Workflow-command fallback: GitHub shows at most 10 of each level per step.
pub const MAX_WORKFLOW_ERRORS: usize = 10;
pub const MAX_WORKFLOW_WARNINGS: usize = 10;

/// The conclusion a completed check run shows. The caller maps its verdict onto this:
/// allow → `Success`; block or a gate tool that failed to run → `Failure`; needs-approval →
/// `ActionRequired` (GitHub shows "Action required" and links `details_url`); warn-only → `Neutral`;
/// cancelled run → `Cancelled`; gate timeout → `TimedOut`; gate not in this tier → `Skipped`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckConclusion {
    Success,
    Failure,
    Neutral,
    ActionRequired,
    Cancelled,
    TimedOut,
    Skipped,
}

impl CheckConclusion {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckConclusion::Success => "success",
            CheckConclusion::Failure => "failure",
            CheckConclusion::Neutral => "neutral",
            CheckConclusion::ActionRequired => "action_required",
            CheckConclusion::Cancelled => "cancelled",
            CheckConclusion::TimedOut => "timed_out",
            CheckConclusion::Skipped => "skipped",
        }
    }
}

/// Status of a check run, as GitHub spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    InProgress,
    Completed,
}

/// What the report needs from one finished gate (or from the decision). The caller fills it from
/// its gate outcome and verdict; nothing here re-decides anything.
#[derive(Debug, Clone, PartialEq)]
pub struct GateCheck {
    /// Gate name from the policy (`lint`), or `decision`; the check run is `fm-deploy / <name>`.
    pub name: String,
    pub conclusion: CheckConclusion,
    /// One line, e.g. `3 errors, 12 warnings — blocked`. Cut to 255 characters.
    pub title: String,
    /// Markdown summary. Cut to fit 65 535 characters together with the overflow note.
    pub summary_markdown: String,
    /// Optional longer Markdown (`output.text`), cut the same way.
    pub text_markdown: Option<String>,
    pub findings: Vec<Finding>,
    /// Most annotations to post for this gate (policy `annotation_budget`, default 1000).
    pub annotation_budget: u32,
}

/// The check-run name for a gate: `fm-deploy / <gate>`.
pub fn check_name(gate: &str) -> String {
    format!("{CHECK_NAME_PREFIX}{gate}")
}

/// The `external_id` that lets a re-run of the same job find its own check run: stable across
/// attempts of one workflow run (`GITHUB_RUN_ID`), distinct per job and gate.
pub fn external_id(run_id: &str, job: &str, gate: &str) -> String {
    format!("fm-deploy:{run_id}:{job}:{gate}")
}

/// Annotation level as GitHub spells it. `fatal` does not exist; GitHub rejects it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnnotationLevel {
    Notice,
    Warning,
    Failure,
}

impl AnnotationLevel {
    pub fn from_severity(s: Severity) -> Self {
        match s {
            Severity::Critical | Severity::High => AnnotationLevel::Failure,
            Severity::Medium => AnnotationLevel::Warning,
            Severity::Low | Severity::Info => AnnotationLevel::Notice,
        }
    }
}

/// One annotation exactly as the check-runs API takes it (and lists it back).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Annotation {
    pub path: String,
    pub start_line: u32,
    pub end_line: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_column: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_column: Option<u32>,
    pub annotation_level: AnnotationLevel,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_details: Option<String>,
}

/// `output` of a create/update request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckOutput {
    pub title: String,
    pub summary: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<Annotation>,
}

/// Body of `POST /repos/{owner}/{repo}/check-runs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreateCheckRun {
    pub name: String,
    pub head_sha: String,
    pub external_id: String,
    pub status: CheckStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<CheckOutput>,
}

/// Body of `PATCH /repos/{owner}/{repo}/check-runs/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpdateCheckRun {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<CheckStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conclusion: Option<CheckConclusion>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<CheckOutput>,
}

/// The create request posted when a gate starts: `in_progress`, no output yet.
pub fn start_request(
    gate: &str,
    head_sha: &str,
    external_id: &str,
    details_url: Option<&str>,
    started_at: &str,
) -> CreateCheckRun {
    CreateCheckRun {
        name: check_name(gate),
        head_sha: head_sha.to_string(),
        external_id: external_id.to_string(),
        status: CheckStatus::InProgress,
        details_url: details_url.map(str::to_string),
        started_at: Some(started_at.to_string()),
        output: None,
    }
}

/// A re-run found its own check run from an earlier attempt: put it back to `in_progress`.
pub fn restart_request(details_url: Option<&str>) -> UpdateCheckRun {
    UpdateCheckRun {
        status: Some(CheckStatus::InProgress),
        conclusion: None,
        completed_at: None,
        details_url: details_url.map(str::to_string),
        output: None,
    }
}

/// Everything a finished gate sends, already cut to GitHub's limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateReport {
    pub title: String,
    pub summary: String,
    pub text: Option<String>,
    /// Annotations to post, most severe first, within the budget.
    pub annotations: Vec<Annotation>,
    /// Findings with a location that did not fit the budget (counted in the summary).
    pub over_budget: usize,
    /// Findings without a file path (GitHub cannot annotate them; counted in the summary).
    pub unlocated: usize,
    pub conclusion: CheckConclusion,
}

/// Builds the report for one gate: sorts, budgets, truncates. `posted_before` are annotations an
/// earlier attempt of this job already posted on the same check run (GitHub only appends), so they
/// are not sent twice.
pub fn build_report(gate: &GateCheck, posted_before: &[Annotation]) -> GateReport {
    let mut located: Vec<&Finding> = gate
        .findings
        .iter()
        .filter(|f| f.path.as_deref().is_some_and(|p| !p.is_empty()))
        .collect();
    let unlocated = gate.findings.len() - located.len();
    located.sort_by(|a, b| most_severe_first(a, b));
    let budget = usize::try_from(gate.annotation_budget).unwrap_or(usize::MAX);
    let over_budget = located.len().saturating_sub(budget);
    let annotations: Vec<Annotation> = located
        .into_iter()
        .take(budget)
        .filter_map(annotation_for)
        .filter(|a| !posted_before.iter().any(|p| same_annotation(p, a)))
        .collect();

    let mut notes = Vec::new();
    if over_budget > 0 {
        notes.push(format!(
            "{over_budget} more finding(s) not annotated: the annotation budget of this gate is {}.",
            gate.annotation_budget
        ));
    }
    if unlocated > 0 {
        notes.push(format!(
            "{unlocated} finding(s) have no file location and are listed in the job summary only."
        ));
    }
    let footer = if notes.is_empty() {
        String::new()
    } else {
        format!("\n\n---\n{}", notes.join("\n"))
    };
    let body_room = MAX_OUTPUT_CHARS.saturating_sub(footer.chars().count());
    let summary = format!(
        "{}{footer}",
        truncate_chars(&gate.summary_markdown, body_room)
    );
    GateReport {
        title: truncate_line(&one_line(&gate.title), MAX_TITLE_CHARS),
        summary,
        text: gate
            .text_markdown
            .as_deref()
            .map(|t| truncate_chars(t, MAX_OUTPUT_CHARS)),
        annotations,
        over_budget,
        unlocated,
        conclusion: gate.conclusion,
    }
}

/// The PATCH requests that finish a gate: one per batch of ≤ 50 annotations, the completion
/// (`status: completed`, conclusion, `completed_at`) folded into the last one. A gate with no
/// annotations still needs one PATCH to complete. So a gate costs `1 + max(1, ⌈N/50⌉)` requests
/// after its create (see [`requests_for_gate`]).
pub fn finish_requests(
    report: &GateReport,
    completed_at: &str,
    details_url: Option<&str>,
) -> Vec<UpdateCheckRun> {
    let mut batches: Vec<Vec<Annotation>> = report
        .annotations
        .chunks(MAX_ANNOTATIONS_PER_REQUEST)
        .map(<[Annotation]>::to_vec)
        .collect();
    if batches.is_empty() {
        batches.push(Vec::new());
    }
    let last = batches.len() - 1;
    batches
        .into_iter()
        .enumerate()
        .map(|(i, annotations)| {
            let done = i == last;
            UpdateCheckRun {
                status: done.then_some(CheckStatus::Completed),
                conclusion: done.then_some(report.conclusion),
                completed_at: done.then(|| completed_at.to_string()),
                details_url: if done {
                    details_url.map(str::to_string)
                } else {
                    None
                },
                output: Some(CheckOutput {
                    title: report.title.clone(),
                    summary: report.summary.clone(),
                    text: report.text.clone(),
                    annotations,
                }),
            }
        })
        .collect()
}

/// Requests one gate costs on GitHub with `annotations` annotations to post: the create (or the
/// restart PATCH of a re-run) plus `max(1, ⌈N/50⌉)` PATCHes. The per-run lookup of existing check
/// runs (one GET for all gates) is not included.
pub fn requests_for_gate(annotations: usize) -> usize {
    1 + annotations.div_ceil(MAX_ANNOTATIONS_PER_REQUEST).max(1)
}

fn most_severe_first(a: &Finding, b: &Finding) -> Ordering {
    b.severity
        .cmp(&a.severity)
        .then_with(|| a.path.cmp(&b.path))
        .then_with(|| a.line.cmp(&b.line))
        .then_with(|| a.column.cmp(&b.column))
        .then_with(|| a.rule.cmp(&b.rule))
        .then_with(|| a.message.cmp(&b.message))
}

fn annotation_for(f: &Finding) -> Option<Annotation> {
    let path = f.path.clone().filter(|p| !p.is_empty())?;
    let start_line = f.line.unwrap_or(1).max(1);
    let end_line = f.end_line.unwrap_or(start_line).max(start_line);
    // GitHub rejects columns on annotations that span lines.
    let (start_column, end_column) = if start_line == end_line {
        match (f.column, f.end_column) {
            (Some(c), Some(e)) if c >= 1 && e >= c => (Some(c), Some(e)),
            (Some(c), _) if c >= 1 => (Some(c), Some(c)),
            _ => (None, None),
        }
    } else {
        (None, None)
    };
    let message = if f.message.trim().is_empty() {
        f.rule.clone()
    } else {
        f.message.clone()
    };
    let raw_details = match (f.details.as_deref(), f.help_url.as_deref()) {
        (Some(d), Some(u)) => Some(format!("{d}\n\n{u}")),
        (Some(d), None) => Some(d.to_string()),
        (None, u) => u.map(str::to_string),
    }
    .map(|t| truncate_bytes(&t, MAX_ANNOTATION_FIELD_BYTES));
    Some(Annotation {
        path,
        start_line,
        end_line,
        start_column,
        end_column,
        annotation_level: AnnotationLevel::from_severity(f.severity),
        message: truncate_bytes(&message, MAX_ANNOTATION_FIELD_BYTES),
        title: Some(truncate_line(
            &one_line(&format!("{} {} ({})", f.tool, f.rule, f.severity)),
            MAX_TITLE_CHARS,
        )),
        raw_details,
    })
}

/// Two annotations are the same when GitHub would show them identically in the same place; optional
/// fields GitHub echoes back as empty strings compare by content only.
pub fn same_annotation(a: &Annotation, b: &Annotation) -> bool {
    a.path == b.path
        && a.start_line == b.start_line
        && a.end_line == b.end_line
        && a.annotation_level == b.annotation_level
        && a.message == b.message
        && a.title.as_deref().unwrap_or("") == b.title.as_deref().unwrap_or("")
}

fn one_line(s: &str) -> String {
    s.split(['\r', '\n'])
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

const CUT_NOTE: &str = "\n\n… (truncated: the full text is in the job summary)";

/// Cuts `s` to at most `max` characters on a character boundary, ending with a note when it cut.
pub fn truncate_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let note_len = CUT_NOTE.chars().count();
    if max <= note_len {
        return s.chars().take(max).collect();
    }
    let mut out: String = s.chars().take(max - note_len).collect();
    out.push_str(CUT_NOTE);
    out
}

/// Cuts a one-line `s` to at most `max` characters, ending with `…` when it cut.
pub fn truncate_line(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    if max > 0 {
        out.push('…');
    }
    out
}

/// Cuts `s` to at most `max` bytes on a UTF-8 boundary, ending with a note when it cut.
pub fn truncate_bytes(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let room = max.saturating_sub(CUT_NOTE.len());
    let mut end = room.min(s.len());
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    if room == 0 {
        return String::new();
    }
    format!("{}{CUT_NOTE}", &s[..end])
}

// ---------------------------------------------------------------------------------------------
// Workflow-command fallback (fork PRs, no `checks: write`).

/// Picks what a run without check-run access prints as workflow commands: up to `max_errors`
/// critical/high findings and up to `max_warnings` medium/low findings, most severe first. Info
/// findings are left to the job summary.
pub fn select_workflow_annotations(
    findings: &[Finding],
    max_errors: usize,
    max_warnings: usize,
) -> Vec<&Finding> {
    let mut sorted: Vec<&Finding> = findings.iter().collect();
    sorted.sort_by(|a, b| most_severe_first(a, b));
    let errors = sorted
        .iter()
        .filter(|f| f.severity >= Severity::High)
        .take(max_errors);
    let warnings = sorted
        .iter()
        .filter(|f| matches!(f.severity, Severity::Medium | Severity::Low))
        .take(max_warnings);
    errors.chain(warnings).copied().collect()
}

/// The fallback's annotations for all gates' findings: ≤ 10 errors + ≤ 10 warnings, most severe
/// first. The caller prints them through the runtime, which escapes them.
pub fn workflow_commands(findings: &[Finding]) -> Vec<runtime::Annotation> {
    select_workflow_annotations(findings, MAX_WORKFLOW_ERRORS, MAX_WORKFLOW_WARNINGS)
        .into_iter()
        .map(workflow_command)
        .collect()
}

/// The `::error` / `::warning` annotation for a finding: error from high up, the position only
/// with a path, columns only on single-line findings.
pub fn workflow_command(f: &Finding) -> runtime::Annotation {
    let level = if f.severity >= Severity::High {
        Level::Error
    } else {
        Level::Warning
    };
    let mut a = runtime::Annotation::new(level, f.message.clone());
    a.title = Some(format!("{} {} ({})", f.tool, f.rule, f.severity));
    if let Some(path) = f.path.as_deref().filter(|p| !p.is_empty()) {
        a.file = Some(path.to_owned());
        if let Some(line) = f.line {
            a.line = Some(line);
            let end_line = f.end_line.unwrap_or(line);
            if end_line != line {
                a.end_line = Some(end_line);
            } else if let Some(col) = f.column {
                a.col = Some(col);
                a.end_column = f.end_column;
            }
        }
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(sev: Severity, path: &str, line: u32, msg: &str) -> Finding {
        Finding::new("flake8", "E1", sev, msg).at(path, Some(line), Some(2))
    }

    fn gate(findings: Vec<Finding>, budget: u32) -> GateCheck {
        GateCheck {
            name: "lint".into(),
            conclusion: CheckConclusion::Failure,
            title: "lint failed".into(),
            summary_markdown: "summary".into(),
            text_markdown: None,
            findings,
            annotation_budget: budget,
        }
    }

    /// Annotations go out most severe first, whatever order the tool printed them in.
    #[test]
    fn annotations_are_most_severe_first() {
        let g = gate(
            vec![
                finding(Severity::Low, "a.py", 1, "low"),
                finding(Severity::Critical, "b.py", 1, "crit"),
                finding(Severity::Medium, "a.py", 2, "med"),
            ],
            10,
        );
        let r = build_report(&g, &[]);
        let msgs: Vec<&str> = r.annotations.iter().map(|a| a.message.as_str()).collect();
        assert_eq!(msgs, ["crit", "med", "low"]);
        assert_eq!(r.annotations[0].annotation_level, AnnotationLevel::Failure);
        assert_eq!(r.annotations[2].annotation_level, AnnotationLevel::Notice);
    }

    /// Batches never exceed 50 and completion rides on the last PATCH: ⌈N/50⌉ PATCHes.
    #[test]
    fn batches_of_fifty_with_completion_on_last() {
        for n in [0usize, 1, 49, 50, 51, 100, 101, 1000] {
            let findings = (0..n)
                .map(|i| {
                    finding(
                        Severity::Medium,
                        "a.py",
                        u32::try_from(i).unwrap_or(0) + 1,
                        "m",
                    )
                })
                .collect();
            let r = build_report(&gate(findings, 1000), &[]);
            let reqs = finish_requests(&r, "2026-01-01T00:00:00Z", None);
            assert_eq!(reqs.len(), n.div_ceil(50).max(1), "n={n}");
            assert_eq!(1 + reqs.len(), requests_for_gate(n));
            let total: usize = reqs
                .iter()
                .map(|u| u.output.as_ref().map_or(0, |o| o.annotations.len()))
                .sum();
            assert_eq!(total, n);
            assert!(
                reqs.iter()
                    .all(|u| u.output.as_ref().is_some_and(|o| o.annotations.len() <= 50))
            );
            for (i, u) in reqs.iter().enumerate() {
                let last = i + 1 == reqs.len();
                assert_eq!(u.status.is_some(), last);
                assert_eq!(u.conclusion.is_some(), last);
            }
        }
    }

    /// Findings past the budget are counted in the summary, and the note survives truncation.
    #[test]
    fn budget_overflow_is_counted_in_summary() {
        let findings = (1..=30)
            .map(|i| finding(Severity::High, "a.py", i, "m"))
            .collect();
        let mut g = gate(findings, 25);
        g.summary_markdown = "x".repeat(70_000);
        let r = build_report(&g, &[]);
        assert_eq!(r.annotations.len(), 25);
        assert_eq!(r.over_budget, 5);
        assert!(r.summary.chars().count() <= MAX_OUTPUT_CHARS);
        assert!(r.summary.contains("5 more finding(s) not annotated"));
        assert!(r.summary.contains("truncated"));
    }

    /// Multi-byte text is cut on a character boundary, never mid-character, within the limit.
    #[test]
    fn truncation_respects_utf8() {
        let s = "é".repeat(70_000);
        let t = truncate_chars(&s, MAX_OUTPUT_CHARS);
        assert_eq!(t.chars().count(), MAX_OUTPUT_CHARS);
        let m = "€".repeat(30_000);
        let b = truncate_bytes(&m, MAX_ANNOTATION_FIELD_BYTES);
        assert!(b.len() <= MAX_ANNOTATION_FIELD_BYTES);
        assert!(b.ends_with("job summary)"));
        assert_eq!(truncate_chars("short", 10), "short");
    }

    /// Columns are dropped on multi-line annotations (GitHub rejects them there).
    #[test]
    fn columns_only_on_single_line() {
        let multi = Finding::new("mypy", "x", Severity::High, "m")
            .at("a.py", Some(3), Some(4))
            .ending(Some(5), Some(1));
        let single = Finding::new("mypy", "x", Severity::High, "m")
            .at("a.py", Some(3), Some(4))
            .ending(Some(3), Some(9));
        let r = build_report(&gate(vec![multi, single], 10), &[]);
        let by_end: Vec<(u32, Option<u32>)> = r
            .annotations
            .iter()
            .map(|a| (a.end_line, a.start_column))
            .collect();
        assert!(by_end.contains(&(5, None)));
        assert!(by_end.contains(&(3, Some(4))));
    }

    /// Findings without a path are not annotated but are counted.
    #[test]
    fn unlocated_findings_are_counted() {
        let f = Finding::new("pip-audit", "PYSEC-1", Severity::High, "vuln");
        let r = build_report(&gate(vec![f], 10), &[]);
        assert!(r.annotations.is_empty());
        assert_eq!(r.unlocated, 1);
        assert!(r.summary.contains("no file location"));
    }

    /// A re-run does not post annotations its earlier attempt already appended.
    #[test]
    fn rerun_skips_already_posted() {
        let g = gate(
            vec![
                finding(Severity::High, "a.py", 1, "one"),
                finding(Severity::High, "a.py", 2, "two"),
            ],
            10,
        );
        let first = build_report(&g, &[]);
        let again = build_report(&g, &first.annotations[..1]);
        assert_eq!(again.annotations.len(), 1);
        assert_eq!(again.annotations[0].message, "two");
    }

    /// Titles are one line of at most 255 characters.
    #[test]
    fn title_is_one_line_and_short() {
        let mut g = gate(vec![], 10);
        g.title = format!("a\nb{}", "t".repeat(300));
        let r = build_report(&g, &[]);
        assert!(r.title.chars().count() <= MAX_TITLE_CHARS);
        assert!(!r.title.contains('\n'));
    }

    /// The fallback keeps ≤ 10 errors and ≤ 10 warnings, the most severe ones.
    #[test]
    fn workflow_selection_by_severity() {
        let mut fs = Vec::new();
        for i in 0..15 {
            fs.push(finding(Severity::High, "h.py", i + 1, "h"));
            fs.push(finding(Severity::Low, "l.py", i + 1, "l"));
            fs.push(finding(Severity::Info, "i.py", i + 1, "i"));
        }
        fs.push(finding(Severity::Critical, "c.py", 1, "c"));
        fs.push(finding(Severity::Medium, "m.py", 1, "m"));
        let sel = select_workflow_annotations(&fs, MAX_WORKFLOW_ERRORS, MAX_WORKFLOW_WARNINGS);
        assert_eq!(sel.len(), 20);
        assert_eq!(sel[0].severity, Severity::Critical);
        assert_eq!(
            sel.iter().filter(|f| f.severity >= Severity::High).count(),
            10
        );
        assert!(sel.iter().any(|f| f.severity == Severity::Medium));
        assert!(sel.iter().all(|f| f.severity != Severity::Info));
    }

    /// Workflow commands escape data and properties exactly as GitHub's toolkit does.
    #[test]
    fn workflow_command_escaping() {
        use crate::runtime::format_annotation;
        let f = Finding::new("bandit", "B105", Severity::High, "100% bad\r\nreally").at(
            "dir,x/a:b.py",
            Some(7),
            Some(3),
        );
        assert_eq!(
            format_annotation(&workflow_command(&f)),
            "::error file=dir%2Cx/a%3Ab.py,line=7,col=3,title=bandit B105 (high)::100%25 bad%0D%0Areally"
        );
        let w = Finding::new("flake8", "E501", Severity::Medium, "long")
            .at("a.py", Some(1), None)
            .ending(Some(4), None);
        assert_eq!(
            format_annotation(&workflow_command(&w)),
            "::warning file=a.py,line=1,endLine=4,title=flake8 E501 (medium)::long"
        );
    }

    /// Request bodies serialize with GitHub's field names and without absent optionals.
    #[test]
    fn payload_shape() {
        let c = start_request(
            "lint",
            "abc",
            "fm-deploy:1:job:lint",
            None,
            "2026-01-01T00:00:00Z",
        );
        let v = serde_json::to_value(&c).unwrap_or_default();
        assert_eq!(v["name"], "fm-deploy / lint");
        assert_eq!(v["status"], "in_progress");
        assert!(v.get("output").is_none());
        let r = build_report(
            &gate(vec![finding(Severity::High, "a.py", 1, "m")], 10),
            &[],
        );
        let u = finish_requests(&r, "2026-01-01T00:00:00Z", None);
        let v = serde_json::to_value(&u[0]).unwrap_or_default();
        assert_eq!(v["conclusion"], "failure");
        assert_eq!(v["output"]["annotations"][0]["annotation_level"], "failure");
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn sev() -> impl Strategy<Value = Severity> {
            prop::sample::select(Severity::ALL.to_vec())
        }

        fn finding_strategy() -> impl Strategy<Value = Finding> {
            (
                sev(),
                "[a-zé€😀 \n]{0,40}",
                1u32..500,
                prop::option::of(0u32..5),
                prop::option::of(1u32..90),
            )
                .prop_map(|(s, msg, line, span, col)| {
                    Finding::new("t", "R", s, msg)
                        .at("p.py", Some(line), col)
                        .ending(span.map(|d| line + d), col.map(|c| c + 3))
                })
        }

        proptest! {
            /// Whatever the findings and budget: batches ≤ 50, the budget holds, the overflow is the
            /// rest, order is most severe first, and every request fits GitHub's limits.
            #[test]
            fn report_respects_github_limits(
                findings in prop::collection::vec(finding_strategy(), 0..300),
                budget in 0u32..400,
                summary in "[a-zé€😀\n]{0,200}",
                repeat in 1usize..700,
            ) {
                let g = GateCheck {
                    name: "lint".into(),
                    conclusion: CheckConclusion::Failure,
                    title: summary.repeat(repeat),
                    summary_markdown: summary.repeat(repeat),
                    text_markdown: Some(summary.repeat(repeat)),
                    findings: findings.clone(),
                    annotation_budget: budget,
                };
                let r = build_report(&g, &[]);
                let b = usize::try_from(budget).unwrap_or(usize::MAX);
                prop_assert_eq!(r.annotations.len(), findings.len().min(b));
                prop_assert_eq!(r.over_budget, findings.len().saturating_sub(b));
                prop_assert!(r.title.chars().count() <= MAX_TITLE_CHARS && !r.title.contains('\n'));
                prop_assert!(r.summary.chars().count() <= MAX_OUTPUT_CHARS);
                prop_assert!(r.text.as_ref().is_none_or(|t| t.chars().count() <= MAX_OUTPUT_CHARS));
                let levels: Vec<u8> = r.annotations.iter().map(|a| match a.annotation_level {
                    AnnotationLevel::Failure => 3, AnnotationLevel::Warning => 2, AnnotationLevel::Notice => 1,
                }).collect();
                prop_assert!(levels.windows(2).all(|w| w[0] >= w[1]));
                for a in &r.annotations {
                    prop_assert!(a.start_line >= 1 && a.end_line >= a.start_line);
                    prop_assert!(a.start_line == a.end_line || (a.start_column.is_none() && a.end_column.is_none()));
                    prop_assert!(a.message.len() <= MAX_ANNOTATION_FIELD_BYTES);
                }
                let reqs = finish_requests(&r, "2026-01-01T00:00:00Z", None);
                prop_assert_eq!(reqs.len(), r.annotations.len().div_ceil(50).max(1));
                prop_assert!(reqs.iter().all(|u| u.output.as_ref().is_some_and(|o| o.annotations.len() <= 50)));
            }
        }
    }
}
