//! `setup`: branch protection and environment protection from the policy. Pure: desired state,
//! current state parsed from GitHub's JSON, the difference, and the request bodies.
//!
//! Owns: what "protected as the policy says" means. Must not touch: the network (the adapter in
//! `github::setup` reads and writes; it decides nothing).

use crate::policy::Policy;
use crate::policy::model::GatePhase;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// Protection of one literal branch, normalised so that desired and current compare equal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct BranchProtection {
    pub branch: String,
    /// Status check contexts that must pass.
    pub required_checks: BTreeSet<String>,
    /// The branch must be up to date with the base before merging.
    pub strict: bool,
    pub required_reviews: u32,
    pub dismiss_stale_reviews: bool,
    pub signed_commits: bool,
    pub allow_force_pushes: bool,
    /// `None`: anyone with write access may push.
    pub restrict_users: Option<BTreeSet<String>>,
    pub restrict_teams: Option<BTreeSet<String>>,
}

/// Protection of one deployment environment. Reviewers are `user` logins or `org/team` slugs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct EnvironmentProtection {
    pub environment: String,
    pub reviewers: BTreeSet<String>,
    pub wait_timer_minutes: u32,
    pub protected_branches_only: bool,
    pub prevent_self_review: bool,
}

/// What setup will do, and what it cannot.
#[derive(Debug, Clone, Serialize, Default)]
pub struct SetupPlan {
    pub branches: Vec<BranchProtection>,
    pub environments: Vec<EnvironmentProtection>,
    /// Rules that branch protection cannot express (globs), with the reason.
    pub not_applied: Vec<String>,
}

/// The check-run name a gate posts; branch protection requires these names.
pub fn check_name(gate: &str) -> String {
    format!("fm-deploy / {gate}")
}

pub fn desired(policy: &Policy) -> SetupPlan {
    let mut plan = SetupPlan::default();
    for rule in &policy.branches {
        if !rule.is_literal() {
            plan.not_applied.push(format!(
                "branch rule `{}`: classic branch protection takes literal branch names; protect the pattern with a repository ruleset",
                rule.pattern
            ));
            continue;
        }
        let mut checks: BTreeSet<String> = rule.required_checks.iter().cloned().collect();
        if let Some(tier) = policy.tiers.get(&rule.tier) {
            for g in &tier.gates {
                let pre = policy
                    .gates
                    .get(g)
                    .is_some_and(|s| s.phase == GatePhase::PreDeploy);
                if pre {
                    checks.insert(check_name(g));
                }
            }
        }
        checks.insert(check_name("decision"));
        let (users, teams): (Vec<&String>, Vec<&String>) =
            rule.restrict_pushes.iter().partition(|s| !s.contains('/'));
        let restricted = !rule.restrict_pushes.is_empty();
        plan.branches.push(BranchProtection {
            branch: rule.pattern.clone(),
            required_checks: checks,
            strict: true,
            required_reviews: rule.reviews,
            dismiss_stale_reviews: true,
            signed_commits: rule.signed_commits,
            allow_force_pushes: rule.allow_force_pushes,
            restrict_users: restricted.then(|| users.into_iter().cloned().collect()),
            restrict_teams: restricted.then(|| {
                teams
                    .into_iter()
                    .map(|t| team_slug(t).to_string())
                    .collect()
            }),
        });
    }
    for env in policy.environments.values() {
        let minutes = env.protection.wait_timer.as_secs().div_ceil(60);
        plan.environments.push(EnvironmentProtection {
            environment: env.name.clone(),
            reviewers: env.protection.reviewers.iter().cloned().collect(),
            wait_timer_minutes: u32::try_from(minutes).unwrap_or(u32::MAX),
            protected_branches_only: env.protection.protected_branches_only,
            prevent_self_review: env.protection.prevent_self_review,
        });
    }
    plan
}

/// `org/team` → `team`; a plain name stays.
fn team_slug(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}

/// GitHub's `GET …/branches/{b}/protection` body → the normalised form. `None` (a 404) is an
/// unprotected branch.
pub fn parse_branch_protection(
    branch: &str,
    body: Option<&Value>,
    signatures: bool,
) -> BranchProtection {
    let Some(v) = body else {
        return BranchProtection {
            branch: branch.to_string(),
            ..BranchProtection::default()
        };
    };
    let rsc = &v["required_status_checks"];
    let mut checks: BTreeSet<String> = rsc["contexts"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| c.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if let Some(a) = rsc["checks"].as_array() {
        checks.extend(
            a.iter()
                .filter_map(|c| c["context"].as_str().map(str::to_string)),
        );
    }
    let reviews = &v["required_pull_request_reviews"];
    let names = |key: &str, field: &str| -> Option<BTreeSet<String>> {
        let r = &v["restrictions"];
        if r.is_null() {
            return None;
        }
        Some(
            r[key]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x[field].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        )
    };
    BranchProtection {
        branch: branch.to_string(),
        required_checks: checks,
        strict: rsc["strict"].as_bool().unwrap_or(false),
        required_reviews: reviews["required_approving_review_count"]
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0),
        dismiss_stale_reviews: reviews["dismiss_stale_reviews"].as_bool().unwrap_or(false),
        signed_commits: signatures
            || v["required_signatures"]["enabled"]
                .as_bool()
                .unwrap_or(false),
        allow_force_pushes: v["allow_force_pushes"]["enabled"]
            .as_bool()
            .unwrap_or(false),
        restrict_users: names("users", "login"),
        restrict_teams: names("teams", "slug"),
    }
}

/// GitHub's `GET /repos/{o}/{r}/environments/{name}` body → the normalised form.
pub fn parse_environment(name: &str, body: Option<&Value>) -> EnvironmentProtection {
    let Some(v) = body else {
        return EnvironmentProtection {
            environment: name.to_string(),
            ..EnvironmentProtection::default()
        };
    };
    let mut out = EnvironmentProtection {
        environment: name.to_string(),
        protected_branches_only: v["deployment_branch_policy"]["protected_branches"]
            .as_bool()
            .unwrap_or(false),
        ..EnvironmentProtection::default()
    };
    for rule in v["protection_rules"].as_array().into_iter().flatten() {
        match rule["type"].as_str() {
            Some("wait_timer") => {
                out.wait_timer_minutes = rule["wait_timer"]
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .unwrap_or(0);
            }
            Some("required_reviewers") => {
                out.prevent_self_review = rule["prevent_self_review"].as_bool().unwrap_or(false);
                for r in rule["reviewers"].as_array().into_iter().flatten() {
                    let who = &r["reviewer"];
                    match r["type"].as_str() {
                        Some("Team") => {
                            // Team objects carry no organization field; their html_url is
                            // https://github.com/orgs/<org>/teams/<slug>.
                            let org = who["html_url"]
                                .as_str()
                                .and_then(|u| u.split("/orgs/").nth(1))
                                .and_then(|rest| rest.split('/').next());
                            if let Some(slug) = who["slug"].as_str() {
                                out.reviewers.insert(match org {
                                    Some(o) => format!("{o}/{slug}"),
                                    None => slug.to_string(),
                                });
                            }
                        }
                        _ => {
                            if let Some(l) = who["login"].as_str() {
                                out.reviewers.insert(l.to_string());
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// A set as the diff prints it: `a, b`, or `(none)`.
fn fmt_set(s: &BTreeSet<String>) -> String {
    if s.is_empty() {
        "(none)".to_string()
    } else {
        s.iter().cloned().collect::<Vec<_>>().join(", ")
    }
}

/// A push restriction: `None` is unrestricted.
fn fmt_restriction(s: &Option<BTreeSet<String>>) -> String {
    s.as_ref().map_or("(unrestricted)".to_string(), fmt_set)
}

/// Appends `label: current → desired` when the two differ.
fn change<T: PartialEq>(
    d: &mut Vec<String>,
    label: &str,
    current: &T,
    desired: &T,
    show: impl Fn(&T) -> String,
) {
    if current != desired {
        d.push(format!("{label}: {} → {}", show(current), show(desired)));
    }
}

/// One line per difference, `key: current → desired`; empty when nothing would change.
pub fn diff_branch(current: &BranchProtection, desired: &BranchProtection) -> Vec<String> {
    let mut d = Vec::new();
    if current.required_checks != desired.required_checks {
        let add: Vec<_> = desired
            .required_checks
            .difference(&current.required_checks)
            .cloned()
            .collect();
        let remove: Vec<_> = current
            .required_checks
            .difference(&desired.required_checks)
            .cloned()
            .collect();
        d.push(format!(
            "required checks: +[{}] -[{}]",
            add.join(", "),
            remove.join(", ")
        ));
    }
    let c = current;
    let w = desired;
    change(
        &mut d,
        "up to date before merge",
        &c.strict,
        &w.strict,
        ToString::to_string,
    );
    change(
        &mut d,
        "required reviews",
        &c.required_reviews,
        &w.required_reviews,
        ToString::to_string,
    );
    change(
        &mut d,
        "dismiss stale reviews",
        &c.dismiss_stale_reviews,
        &w.dismiss_stale_reviews,
        ToString::to_string,
    );
    change(
        &mut d,
        "signed commits",
        &c.signed_commits,
        &w.signed_commits,
        ToString::to_string,
    );
    change(
        &mut d,
        "force pushes",
        &c.allow_force_pushes,
        &w.allow_force_pushes,
        ToString::to_string,
    );
    change(
        &mut d,
        "push users",
        &c.restrict_users,
        &w.restrict_users,
        fmt_restriction,
    );
    change(
        &mut d,
        "push teams",
        &c.restrict_teams,
        &w.restrict_teams,
        fmt_restriction,
    );
    d
}

pub fn diff_environment(
    current: &EnvironmentProtection,
    desired: &EnvironmentProtection,
) -> Vec<String> {
    let mut d = Vec::new();
    let (c, w) = (current, desired);
    change(&mut d, "reviewers", &c.reviewers, &w.reviewers, fmt_set);
    change(
        &mut d,
        "wait timer",
        &c.wait_timer_minutes,
        &w.wait_timer_minutes,
        |m| format!("{m} min"),
    );
    change(
        &mut d,
        "protected branches only",
        &c.protected_branches_only,
        &w.protected_branches_only,
        ToString::to_string,
    );
    change(
        &mut d,
        "prevent self-review",
        &c.prevent_self_review,
        &w.prevent_self_review,
        ToString::to_string,
    );
    d
}

/// Body of `PUT /repos/{o}/{r}/branches/{b}/protection`. Signed commits are a separate endpoint.
pub fn branch_protection_body(p: &BranchProtection) -> Value {
    let checks: Vec<Value> = p
        .required_checks
        .iter()
        .map(|c| json!({ "context": c }))
        .collect();
    let reviews = if p.required_reviews > 0 {
        json!({
            "required_approving_review_count": p.required_reviews,
            "dismiss_stale_reviews": p.dismiss_stale_reviews,
        })
    } else {
        Value::Null
    };
    let restrictions = match (&p.restrict_users, &p.restrict_teams) {
        (None, None) => Value::Null,
        (u, t) => json!({
            "users": u.clone().unwrap_or_default(),
            "teams": t.clone().unwrap_or_default(),
        }),
    };
    json!({
        "required_status_checks": { "strict": p.strict, "checks": checks },
        "enforce_admins": false,
        "required_pull_request_reviews": reviews,
        "restrictions": restrictions,
        "allow_force_pushes": p.allow_force_pushes,
    })
}

/// A reviewer resolved to GitHub's numeric id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewerId {
    User(u64),
    Team(u64),
}

/// Body of `PUT /repos/{o}/{r}/environments/{name}`.
pub fn environment_body(p: &EnvironmentProtection, reviewers: &[ReviewerId]) -> Value {
    let reviewers: Vec<Value> = reviewers
        .iter()
        .map(|r| match r {
            ReviewerId::User(id) => json!({ "type": "User", "id": id }),
            ReviewerId::Team(id) => json!({ "type": "Team", "id": id }),
        })
        .collect();
    let policy = if p.protected_branches_only {
        json!({ "protected_branches": true, "custom_branch_policies": false })
    } else {
        Value::Null
    };
    json!({
        "wait_timer": p.wait_timer_minutes,
        "prevent_self_review": p.prevent_self_review,
        "reviewers": reviewers,
        "deployment_branch_policy": policy,
    })
}

impl SetupPlan {
    pub fn render_markdown(&self, diffs: &[(String, Vec<String>)]) -> String {
        let mut o = String::from("## fm-deploy setup\n\n");
        for (what, lines) in diffs {
            if lines.is_empty() {
                o.push_str(&format!("- **{what}**: already as the policy says\n"));
            } else {
                o.push_str(&format!("- **{what}**:\n"));
                for l in lines {
                    o.push_str(&format!("  - {l}\n"));
                }
            }
        }
        for n in &self.not_applied {
            o.push_str(&format!("- not applied: {n}\n"));
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn example() -> Policy {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/fm-deploy.yml");
        crate::policy::load_file(&p).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The guide's branch table: reviews 1/2/3, signed commits on main, force pushes on development,
    /// every pre-deploy gate of the tier required by name.
    #[test]
    fn desired_branch_protection_follows_the_guide() {
        let plan = desired(&example());
        let by = |b: &str| {
            plan.branches
                .iter()
                .find(|p| p.branch == b)
                .cloned()
                .unwrap()
        };
        let dev = by("development");
        assert_eq!(dev.required_reviews, 1);
        assert!(dev.allow_force_pushes);
        assert!(dev.required_checks.contains("fm-deploy / lint"));
        assert!(dev.required_checks.contains("fm-deploy / decision"));
        assert!(!dev.required_checks.contains("fm-deploy / e2e"));
        let main = by("main");
        assert_eq!(main.required_reviews, 3);
        assert!(main.signed_commits);
        assert!(!main.allow_force_pushes);
        assert!(main.required_checks.contains("fm-deploy / licenses"));
        assert!(
            !main.required_checks.contains("fm-deploy / smoke-tests"),
            "post-deploy gates are not PR checks"
        );
        assert_eq!(
            main.restrict_teams
                .clone()
                .unwrap()
                .into_iter()
                .collect::<Vec<_>>(),
            ["devops", "senior-developers"]
        );
        assert_eq!(by("staging").required_reviews, 2);
        assert_eq!(
            plan.not_applied.len(),
            2,
            "hotfix/* and feature/* need rulesets"
        );
    }

    /// Environment rules: QA reviews staging after 5 minutes; production waits 10 minutes and
    /// forbids self-review.
    #[test]
    fn desired_environments_follow_the_guide() {
        let plan = desired(&example());
        let by = |e: &str| {
            plan.environments
                .iter()
                .find(|p| p.environment == e)
                .cloned()
                .unwrap()
        };
        assert_eq!(by("staging").wait_timer_minutes, 5);
        assert!(by("staging").reviewers.contains("org/qa-team"));
        let prod = by("production");
        assert_eq!(prod.wait_timer_minutes, 10);
        assert!(prod.prevent_self_review && prod.protected_branches_only);
        assert!(!by("development").protected_branches_only);
    }

    /// Reading back what setup wrote yields no difference: setup is idempotent.
    #[test]
    fn round_trip_has_no_diff() {
        let plan = desired(&example());
        for want in &plan.branches {
            let mut body = branch_protection_body(want);
            // GitHub answers restrictions as objects with login / slug.
            if let Some(r) = body.get_mut("restrictions").filter(|r| !r.is_null()) {
                let users: Vec<Value> = want
                    .restrict_users
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|u| json!({"login": u}))
                    .collect();
                let teams: Vec<Value> = want
                    .restrict_teams
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|t| json!({"slug": t}))
                    .collect();
                *r = json!({"users": users, "teams": teams});
            }
            body["allow_force_pushes"] = json!({"enabled": want.allow_force_pushes});
            let got = parse_branch_protection(&want.branch, Some(&body), want.signed_commits);
            assert_eq!(
                diff_branch(&got, want),
                Vec::<String>::new(),
                "{}",
                want.branch
            );
        }
    }

    /// An unprotected branch shows every setting that will change.
    #[test]
    fn unprotected_branch_diff() {
        let plan = desired(&example());
        let main = plan.branches.iter().find(|p| p.branch == "main").unwrap();
        let d = diff_branch(&parse_branch_protection("main", None, false), main);
        assert!(d.iter().any(|l| l == "required reviews: 0 → 3"));
        assert!(d.iter().any(|l| l == "signed commits: false → true"));
    }

    /// Environment JSON as GitHub returns it parses to reviewers, timer and branch policy.
    #[test]
    fn parse_environment_json() {
        let v = json!({
            "deployment_branch_policy": {"protected_branches": true, "custom_branch_policies": false},
            "protection_rules": [
                {"type": "wait_timer", "wait_timer": 10},
                {"type": "required_reviewers", "prevent_self_review": true, "reviewers": [
                    {"type": "Team", "reviewer": {"slug": "devops", "parent": null, "html_url": "https://github.com/orgs/org/teams/devops"}},
                    {"type": "User", "reviewer": {"login": "octocat"}}
                ]}
            ]
        });
        let e = parse_environment("production", Some(&v));
        assert_eq!(e.wait_timer_minutes, 10);
        assert!(e.prevent_self_review && e.protected_branches_only);
        assert_eq!(
            e.reviewers.into_iter().collect::<Vec<_>>(),
            ["octocat", "org/devops"]
        );
    }
}
