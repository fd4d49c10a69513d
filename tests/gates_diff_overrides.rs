//! Diff awareness and the exceptions file with the real tools: a pull request that adds one lint
//! problem is judged on that line only; an exception file entry excuses a needs-approval finding
//! (listed with approver and reason) while an expired entry does not apply and is reported.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions fail loudly"
)]

mod support_gates;

use chrono::NaiveDate;
use fm_deploy::gates::diff::DiffClass;
use fm_deploy::gates::run::{GateContext, NoLabels, PullRequestRef, run_gates};
use fm_deploy::gates::runner::ProcessRunner;
use fm_deploy::policy::model::*;
use fm_deploy::report::gates_summary::render_markdown;
use fm_deploy::verdict::{Decision, OverrideUse};
use support_gates::*;

fn ctx(dir: &std::path::Path) -> GateContext {
    GateContext {
        workspace: dir.to_path_buf(),
        phase: GatePhase::PreDeploy,
        environment: None,
        pull_request: None,
        diff_scope: DiffScope::All,
        deploy_url: None,
        image: None,
        today: NaiveDate::from_ymd_opt(2026, 11, 27).unwrap(),
        exceptions_from: Default::default(),
        policy_origin: None,
    }
}

/// On a PR, new-in-diff scope counts only the added violation; the summary shows all three classes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_request_diff_scope_real_flake8() {
    let bin = python_tools();
    let dir = project("sample-project");
    let mut lint = gate(
        "lint",
        &["flake8", "--format=json", "."],
        ParserKind::Flake8Json,
    );
    lint.block_over = Some(0);
    lint.env.insert("PATH".into(), path_with(&bin));
    let p = policy(vec![lint], vec![tier("basic", &["lint"], None)], vec![], 1);

    // A PR that touches client.py without adding a problem: 17 pre-existing/changed-file findings, none new.
    commit_change(dir.path(), "certsolver/client.py", "\n\nCLEAN = 1");
    let mut c = ctx(dir.path());
    c.pull_request = Some(PullRequestRef {
        number: 3,
        base: "HEAD~1".into(),
        head: "HEAD".into(),
    });
    c.diff_scope = DiffScope::NewInDiff;
    let r = run_gates(&p, &p.tiers["basic"], &c, &ProcessRunner, &NoLabels).await;
    assert!(r.notes.is_empty(), "{:?}", r.notes);
    let g = &r.verdict.gates[0];
    let d = g.diff_counts.unwrap();
    assert_eq!((d.new_in_diff, d.in_changed_file + d.pre_existing), (0, 17));
    assert!(d.in_changed_file > 0 && d.pre_existing > 0);
    assert_eq!(g.decision, Decision::Allow, "{:?}", g.reasons);

    // The next commit adds an unused import at the bottom: exactly its two findings (F401 unused,
    // E402 import not at top) are new, and they block (zero lint errors).
    commit_change(dir.path(), "certsolver/client.py", "import json");
    let r = run_gates(&p, &p.tiers["basic"], &c, &ProcessRunner, &NoLabels).await;
    let g = &r.verdict.gates[0];
    let new: Vec<_> = g
        .findings
        .iter()
        .filter(|f| f.diff == Some(DiffClass::NewInDiff))
        .collect();
    let mut rules: Vec<&str> = new.iter().map(|f| f.finding.rule.as_str()).collect();
    rules.sort();
    assert_eq!(rules, ["E402", "F401"]);
    assert_eq!(g.decision, Decision::Block);
    assert!(render_markdown(&r).contains("| New in diff |"));

    // Scope all: every finding counts again.
    c.diff_scope = DiffScope::All;
    let r = run_gates(&p, &p.tiers["basic"], &c, &ProcessRunner, &NoLabels).await;
    assert_eq!(r.verdict.gates[0].counts.values().sum::<u32>(), 19);
}

/// Exceptions: a live entry excuses bandit's high findings (listed with who and why); an expired
/// entry for the same finding does not apply and is reported; a secret cannot be excepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exceptions_file_real_bandit() {
    let bin = python_tools();
    let dir = project("sample-project");
    let mut security = gate(
        "security",
        &["bandit", "-r", ".", "-f", "json"],
        ParserKind::Bandit,
    );
    security.env.insert("PATH".into(), path_with(&bin));
    let mut p = policy(
        vec![security],
        vec![tier("basic", &["security"], None)],
        vec![],
        1,
    );
    p.overrides = Some(OverrideSpec {
        label: None,
        approvers: vec!["alice".into()],
        exceptions_file: Some(".github/fm-deploy-exceptions.yml".into()),
    });

    let first = run_gates(
        &p,
        &p.tiers["basic"],
        &ctx(dir.path()),
        &ProcessRunner,
        &NoLabels,
    )
    .await;
    assert_eq!(first.verdict.decision, Decision::NeedsApproval);
    let highs: Vec<String> = first.verdict.gates[0]
        .findings
        .iter()
        .filter(|f| f.action == Action::NeedsApproval)
        .map(|f| f.finding.fingerprint.clone())
        .collect();
    assert_eq!(highs.len(), 3);

    let mut yaml = String::from("exceptions:\n");
    for (i, fp) in highs.iter().enumerate() {
        let expires = if i == 0 { "2026-11-01" } else { "2027-01-31" };
        yaml.push_str(&format!("  - fingerprint: {fp}\n    reason: tracked in SEC-{i}\n    approver: alice\n    expires: {expires}\n"));
    }
    std::fs::create_dir_all(dir.path().join(".github")).unwrap();
    std::fs::write(dir.path().join(".github/fm-deploy-exceptions.yml"), &yaml).unwrap();
    let r = run_gates(
        &p,
        &p.tiers["basic"],
        &ctx(dir.path()),
        &ProcessRunner,
        &NoLabels,
    )
    .await;
    // Two excused, the expired one still needs approval.
    assert_eq!(r.verdict.decision, Decision::NeedsApproval);
    assert_eq!(r.verdict.overrides.len(), 2);
    assert!(
        r.verdict
            .overrides
            .iter()
            .all(|o| matches!(o, OverrideUse::Exception { approver, .. } if approver == "alice"))
    );
    assert_eq!(r.verdict.expired_exceptions.len(), 1);
    assert_eq!(r.verdict.expired_exceptions[0].fingerprint, highs[0]);
    let md = render_markdown(&r);
    assert!(
        md.contains("### Overrides used") && md.contains("### Expired exceptions"),
        "{md}"
    );

    // Renew the expired one: allow.
    std::fs::write(
        dir.path().join(".github/fm-deploy-exceptions.yml"),
        yaml.replace("2026-11-01", "2026-12-01"),
    )
    .unwrap();
    let r = run_gates(
        &p,
        &p.tiers["basic"],
        &ctx(dir.path()),
        &ProcessRunner,
        &NoLabels,
    )
    .await;
    assert_eq!(r.verdict.decision, Decision::Allow);
    assert_eq!(r.verdict.overrides.len(), 3);

    // A broken exceptions file applies nothing and says so.
    std::fs::write(
        dir.path().join(".github/fm-deploy-exceptions.yml"),
        "exceptions:\n  - fingerprint: [\n",
    )
    .unwrap();
    let r = run_gates(
        &p,
        &p.tiers["basic"],
        &ctx(dir.path()),
        &ProcessRunner,
        &NoLabels,
    )
    .await;
    assert_eq!(r.verdict.decision, Decision::NeedsApproval);
    assert!(r.notes[0].contains("exceptions file"), "{:?}", r.notes);
}
