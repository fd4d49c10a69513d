//! `setup` against Prism (proxy mode, GitHub's OpenAPI description) in front of the stateful fake:
//! the guide's branch and environment protection from `examples/fm-deploy.yml`, written once,
//! idempotent, dry-run, and GitHub's refusals.

mod support_github;

use axum::http::Method;
use fm_deploy::github::setup::{read_branch, resolve_reviewer, run_setup};
use fm_deploy::github::{GithubClient, SetupOutcome};
use fm_deploy::setup::{self, BranchProtection, ReviewerId, SetupPlan};
use std::path::Path;
use support_github::fake::{Environment, Protection};
use support_github::{TOKEN, Testbed};

/// The organization the example's reviewers and push teams (`org/…`) belong to.
const ORG: &str = "org";

fn example_plan() -> SetupPlan {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/fm-deploy.yml");
    let policy = fm_deploy::policy::load_file(&p).unwrap_or_else(|e| panic!("{e}"));
    setup::desired(&policy)
}

/// A client for a repository of `ORG`, so push restrictions name the owner's teams.
fn org_client(tb: &Testbed) -> GithubClient {
    let mut cfg = tb.config(TOKEN);
    cfg.repository = format!("{ORG}/fm-llm-solver");
    GithubClient::new(&cfg).unwrap_or_else(|e| panic!("client: {e}"))
}

/// The example's teams, as GitHub would know them: (qa-team, senior-developers, devops) ids.
fn add_teams(tb: &Testbed) -> (u64, u64, u64) {
    (
        tb.fake.add_team(ORG, "qa-team"),
        tb.fake.add_team(ORG, "senior-developers"),
        tb.fake.add_team(ORG, "devops"),
    )
}

/// `METHOD path` of every write that reached the fake, in order.
fn writes(tb: &Testbed) -> Vec<String> {
    tb.fake
        .writes()
        .iter()
        .map(|l| format!("{} {}", l.method, l.path))
        .collect()
}

fn checks(p: &Protection) -> Vec<String> {
    let mut c = p.status_checks.clone().map(|(_, c)| c).unwrap_or_default();
    c.sort();
    c
}

/// On an empty repository, setup writes exactly one PUT per literal branch, one POST for main's
/// signed commits and one PUT per environment that needs protection; the fake then holds the
/// guide's protection. A second run reads, finds nothing to change, and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_applies_the_guide_once_and_is_idempotent() {
    let tb = Testbed::start().await;
    let (qa, seniors, devops) = add_teams(&tb);
    let client = org_client(&tb);
    let plan = example_plan();

    let report = run_setup(&client, &plan, false)
        .await
        .unwrap_or_else(|e| panic!("setup: {e:#?}"));

    let repo = "/repos/org/fm-llm-solver";
    assert_eq!(
        writes(&tb),
        [
            format!("PUT {repo}/branches/development/protection"),
            format!("PUT {repo}/branches/staging/protection"),
            format!("PUT {repo}/branches/main/protection"),
            format!("POST {repo}/branches/main/protection/required_signatures"),
            format!("PUT {repo}/environments/production"),
            format!("PUT {repo}/environments/staging"),
        ]
    );
    // Reads: one GET per branch, one environment list, one lookup per reviewer team.
    assert_eq!(tb.fake.count(&Method::GET, "/protection"), 3);
    assert_eq!(tb.fake.count(&Method::GET, "/environments"), 1);
    assert_eq!(tb.fake.count(&Method::GET, "/orgs/org/teams/"), 3);
    assert_eq!(tb.fake.requests().len(), 13);
    assert_eq!(client.requests_sent(), 13);

    {
        let st = tb.fake.state();
        let dev = &st.protections["development"];
        assert_eq!(dev.reviews, Some((1, true)));
        assert!(dev.allow_force_pushes && !dev.required_signatures);
        assert_eq!(dev.restrictions, None);
        let dev_checks = checks(dev);
        for c in [
            "code-quality",
            "test-matrix",
            "fm-deploy / decision",
            "fm-deploy / lint",
        ] {
            assert!(dev_checks.iter().any(|x| x == c), "{c} in {dev_checks:?}");
        }
        let staging = &st.protections["staging"];
        assert_eq!(staging.reviews, Some((2, true)));
        assert!(!staging.allow_force_pushes && !staging.required_signatures);
        assert!(checks(staging).iter().any(|c| c == "build-and-push"));
        assert!(checks(staging).iter().any(|c| c == "fm-deploy / e2e"));
        let main = &st.protections["main"];
        assert_eq!(main.reviews, Some((3, true)));
        assert!(main.required_signatures && !main.allow_force_pushes);
        assert_eq!(
            main.restrictions,
            Some((
                vec![],
                vec!["devops".to_string(), "senior-developers".to_string()]
            ))
        );
        assert!(checks(main).iter().any(|c| c == "fm-deploy / licenses"));
        assert!(checks(main).iter().any(|c| c == "deploy-staging"));
        assert!(
            main.status_checks
                .as_ref()
                .is_some_and(|(strict, _)| *strict)
        );
        // Every branch requires exactly the checks the plan names.
        for want in &plan.branches {
            let stored = checks(&st.protections[&want.branch]);
            let wanted: Vec<String> = want.required_checks.iter().cloned().collect();
            assert_eq!(stored, wanted, "{}", want.branch);
        }

        let env = |name: &str| -> Environment {
            st.environments
                .iter()
                .find(|e| e.name == name)
                .cloned()
                .unwrap_or_else(|| panic!("environment {name} not created"))
        };
        let staging = env("staging");
        assert_eq!(staging.wait_timer, 5);
        assert_eq!(staging.reviewers, [("Team".to_string(), qa)]);
        assert_eq!(staging.branch_policy, Some((true, false)));
        assert!(!staging.prevent_self_review);
        let production = env("production");
        assert_eq!(production.wait_timer, 10);
        assert!(production.prevent_self_review);
        assert_eq!(production.branch_policy, Some((true, false)));
        let mut ids: Vec<u64> = production.reviewers.iter().map(|(_, id)| *id).collect();
        ids.sort_unstable();
        let mut want = vec![seniors, devops];
        want.sort_unstable();
        assert_eq!(ids, want);
        assert!(production.reviewers.iter().all(|(k, _)| k == "Team"));
        // development has nothing to protect, so it is not written.
        assert!(st.environments.iter().all(|e| e.name != "development"));
    }

    let outcomes = |r: &fm_deploy::github::SetupReport| -> Vec<(String, SetupOutcome)> {
        r.branches
            .iter()
            .chain(&r.environments)
            .map(|t| (t.name.clone(), t.outcome))
            .collect()
    };
    assert_eq!(
        outcomes(&report),
        [
            ("development".to_string(), SetupOutcome::Applied),
            ("staging".to_string(), SetupOutcome::Applied),
            ("main".to_string(), SetupOutcome::Applied),
            ("development".to_string(), SetupOutcome::Unchanged),
            ("production".to_string(), SetupOutcome::Applied),
            ("staging".to_string(), SetupOutcome::Applied),
        ]
    );
    assert_eq!(report.applied(), 5);
    assert_eq!(report.not_applied.len(), 2, "hotfix/* and feature/*");
    let md = report.render_markdown();
    assert!(md.contains("  - required reviews: 0 → 3"), "{md}");
    assert!(md.contains("  - reviewers: (none) → org/qa-team"), "{md}");
    assert!(md.contains("Applied 5 change(s)."), "{md}");

    // Second run: reads back exactly what was written, so nothing differs and nothing is written.
    let before = tb.fake.requests().len();
    let again = run_setup(&client, &plan, false)
        .await
        .unwrap_or_else(|e| panic!("second setup: {e:#?}"));
    assert_eq!(
        writes(&tb).len(),
        6,
        "the second run wrote: {:?}",
        writes(&tb)
    );
    assert_eq!(
        tb.fake.requests().len() - before,
        4,
        "three protection reads and one environment list"
    );
    assert_eq!(again.changed(), 0, "{again:#?}");
    assert!(
        outcomes(&again)
            .iter()
            .all(|(_, o)| *o == SetupOutcome::Unchanged)
    );
    assert!(again.render_markdown().contains("Nothing to change."));
    tb.assert_clean().await;
    tb.stop().await;
}

/// A dry run reads, reports every difference the real run would write, and writes nothing —
/// not even reviewer lookups.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_reports_the_diff_and_writes_nothing() {
    let tb = Testbed::start().await;
    add_teams(&tb);
    let client = org_client(&tb);
    let plan = example_plan();

    let report = run_setup(&client, &plan, true)
        .await
        .unwrap_or_else(|e| panic!("dry run: {e:#?}"));
    assert!(writes(&tb).is_empty(), "{:?}", writes(&tb));
    assert_eq!(tb.fake.count(&Method::GET, "/orgs/"), 0);
    assert_eq!(tb.fake.requests().len(), 4);
    assert!(report.dry_run);
    assert_eq!(report.applied(), 0);
    assert_eq!(report.changed(), 5);
    let main = report
        .branches
        .iter()
        .find(|b| b.name == "main")
        .unwrap_or_else(|| panic!("main in the report"));
    assert_eq!(main.outcome, SetupOutcome::WouldApply);
    for line in [
        "required reviews: 0 → 3",
        "signed commits: false → true",
        "push teams: (unrestricted) → devops, senior-developers",
    ] {
        assert!(
            main.diff.iter().any(|l| l == line),
            "{line} in {:?}",
            main.diff
        );
    }
    let production = report
        .environments
        .iter()
        .find(|e| e.name == "production")
        .unwrap_or_else(|| panic!("production in the report"));
    assert_eq!(
        production.diff,
        [
            "reviewers: (none) → org/devops, org/senior-developers",
            "wait timer: 0 min → 10 min",
            "protected branches only: false → true",
            "prevent self-review: false → true",
        ]
    );
    assert!(
        report
            .render_markdown()
            .contains("Dry run: 5 change(s) found, nothing written.")
    );

    // What the dry run promised is what a real run then writes.
    let applied = run_setup(&client, &plan, false)
        .await
        .unwrap_or_else(|e| panic!("setup: {e:#?}"));
    let diffs = |r: &fm_deploy::github::SetupReport| -> Vec<Vec<String>> {
        r.branches
            .iter()
            .chain(&r.environments)
            .map(|t| t.diff.clone())
            .collect()
    };
    assert_eq!(diffs(&applied), diffs(&report));
    let after = run_setup(&client, &plan, true)
        .await
        .unwrap_or_else(|e| panic!("dry run after: {e:#?}"));
    assert_eq!(after.changed(), 0);
    tb.assert_clean().await;
    tb.stop().await;
}

/// GitHub refusing a branch's protection (422: a push team that is not in the organization) ends
/// setup with an error naming the branch and carrying GitHub's reason; nothing after it is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_422_names_the_branch_and_stops() {
    let tb = Testbed::start().await;
    // No `devops` team: main's push restriction names a team GitHub does not know.
    tb.fake.add_team(ORG, "qa-team");
    tb.fake.add_team(ORG, "senior-developers");
    let client = org_client(&tb);

    let err = run_setup(&client, &example_plan(), false)
        .await
        .err()
        .unwrap_or_else(|| panic!("setup should fail on main"));
    assert_eq!(err.status(), Some(422));
    let top = err.to_string();
    assert_eq!(top, "apply branch protection to `main`");
    let chain = format!("{:#}", anyhow::Error::from(err));
    assert!(
        chain.contains("422") && chain.contains("no team `devops`"),
        "{chain}"
    );
    let w = writes(&tb);
    assert_eq!(w.len(), 3, "development, staging, then main refused: {w:?}");
    assert!(w.iter().all(|l| !l.contains("/environments/")), "{w:?}");
    // The refusal came from the fake's GitHub rule, and Prism found nothing to object to.
    assert_eq!(tb.fake.state().rejections.len(), 1);
    tb.sync_log().await;
    assert!(tb.violations().is_empty(), "{:?}", tb.violations());
    tb.stop().await;
}

/// Reviewers resolve to ids through `GET /users/{login}` and `GET /orgs/{org}/teams/{slug}`; a
/// missing one is an error naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reviewers_resolve_to_ids() {
    let tb = Testbed::start().await;
    let team = tb.fake.add_team(ORG, "qa-team");
    let user = tb.fake.add_user("octocat");
    let client = org_client(&tb);
    let got = resolve_reviewer(&client, "org/qa-team")
        .await
        .unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(got, ReviewerId::Team(team));
    let got = resolve_reviewer(&client, "octocat")
        .await
        .unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(got, ReviewerId::User(user));
    let err = resolve_reviewer(&client, "org/nobody")
        .await
        .err()
        .unwrap_or_else(|| panic!("a missing team resolves to nothing"));
    assert_eq!(err.status(), Some(404));
    assert!(
        err.to_string().starts_with("resolve reviewer `org/nobody`"),
        "{err}"
    );
    tb.assert_clean().await;
    tb.stop().await;
}

/// A branch name with `/` travels percent-encoded as one path segment: protected, then read back
/// equal, with a user reviewer on an environment alongside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn branch_names_with_slashes_and_user_reviewers() {
    let tb = Testbed::start().await;
    let user = tb.fake.add_user("octocat");
    let client = org_client(&tb);
    let mut plan = SetupPlan::default();
    plan.branches.push(BranchProtection {
        branch: "release/2.0".into(),
        required_checks: ["fm-deploy / decision".to_string()].into(),
        strict: true,
        required_reviews: 2,
        dismiss_stale_reviews: true,
        signed_commits: false,
        allow_force_pushes: false,
        restrict_users: Some(["octocat".to_string()].into()),
        restrict_teams: Some(Default::default()),
    });
    plan.environments.push(setup::EnvironmentProtection {
        environment: "qa lab".into(),
        reviewers: ["octocat".to_string()].into(),
        wait_timer_minutes: 0,
        protected_branches_only: false,
        prevent_self_review: false,
    });
    let report = run_setup(&client, &plan, false)
        .await
        .unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(report.applied(), 2);
    let w = writes(&tb);
    assert_eq!(
        w,
        [
            "PUT /repos/org/fm-llm-solver/branches/release%2F2.0/protection",
            "PUT /repos/org/fm-llm-solver/environments/qa%20lab",
        ]
    );
    assert!(tb.fake.state().protections.contains_key("release/2.0"));
    let env = tb.fake.state().environments[0].clone();
    assert_eq!(env.reviewers, [("User".to_string(), user)]);
    let back = read_branch(&client, "release/2.0")
        .await
        .unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(back, plan.branches[0]);
    let again = run_setup(&client, &plan, false)
        .await
        .unwrap_or_else(|e| panic!("{e:#?}"));
    assert_eq!(again.changed(), 0, "{again:#?}");
    tb.assert_clean().await;
    tb.stop().await;
}

/// A token without administration access gets GitHub's 404 "Not Found" on branch protection; that
/// is not an unprotected branch: even a dry run stops with an error naming the branch and the
/// permission, rather than reporting protected branches as open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_without_administration_is_not_read_as_unprotected() {
    let tb = Testbed::start().await;
    add_teams(&tb);
    tb.fake.state().no_admin_tokens.push(TOKEN.to_string());
    let client = org_client(&tb);
    let err = run_setup(&client, &example_plan(), true)
        .await
        .err()
        .unwrap_or_else(|| panic!("a hidden protection must not read as unprotected"));
    assert_eq!(err.status(), Some(404));
    assert_eq!(
        err.to_string(),
        "read branch protection of `development` (the token needs `administration: write` on the repository)"
    );
    assert!(writes(&tb).is_empty());
    assert_eq!(tb.fake.requests().len(), 1, "404 is not retried");
    tb.assert_clean().await;
    tb.stop().await;
}
