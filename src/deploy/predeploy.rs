//! Pre-deploy validation: may this deploy start at all? (every other check on the commit green,
//! the environments it depends on healthy, no open incident).
//!
//! Owns: the pure verdict over gathered facts ([`evaluate`]) and the health half of gathering
//! ([`probe_environments`], through the [`Prober`] port). Must not touch: GitHub — the check runs,
//! statuses and incident issues are gathered by the GitHub adapter and passed in as facts.

use crate::deploy::health::Prober;
use crate::policy::model::PreDeploy;
use std::time::Duration;

/// One check run or commit status on the commit being deployed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckFact {
    pub name: String,
    /// `queued`, `in_progress`, `completed` (statuses: `pending` or `completed`).
    pub status: String,
    /// `success`, `failure`, `neutral`, `skipped`, `cancelled`, `timed_out`, `action_required`, …
    pub conclusion: Option<String>,
}

/// What the adapters found out before the deploy.
#[derive(Debug, Clone, Default)]
pub struct PreDeployFacts {
    pub checks: Vec<CheckFact>,
    /// Check names of this run itself (they are in progress by definition): ignored.
    pub own_checks: Vec<String>,
    /// Environment name → `Ok` or the probe failure, for every environment `healthy:` names.
    pub health: Vec<(String, Result<(), String>)>,
    /// Open issues carrying the incident label: (number, title).
    pub open_incidents: Vec<(u64, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreDeployVerdict {
    Proceed,
    /// Every reason, so one run shows all that is wrong.
    Blocked {
        reasons: Vec<String>,
    },
}

/// Pure: the verdict of the environment's `pre_deploy` rules over the facts.
pub fn evaluate(spec: &PreDeploy, facts: &PreDeployFacts) -> PreDeployVerdict {
    let mut reasons = Vec::new();
    if spec.checks_green {
        for c in facts
            .checks
            .iter()
            .filter(|c| !facts.own_checks.contains(&c.name))
        {
            match (c.status.as_str(), c.conclusion.as_deref()) {
                ("completed", Some("success" | "neutral" | "skipped")) => {}
                ("completed", Some(other)) => {
                    reasons.push(format!("check {:?} concluded {other}", c.name))
                }
                ("completed", None) => {
                    reasons.push(format!("check {:?} completed without a conclusion", c.name))
                }
                (status, _) => reasons.push(format!("check {:?} is still {status}", c.name)),
            }
        }
    }
    for env in &spec.healthy {
        match facts.health.iter().find(|(n, _)| n == env) {
            Some((_, Ok(()))) => {}
            Some((_, Err(e))) => reasons.push(format!("environment {env} is not healthy: {e}")),
            // Not probed counts as not proven healthy (fail closed).
            None => reasons.push(format!("environment {env} was not probed")),
        }
    }
    if let Some(label) = &spec.incident_label {
        for (n, title) in &facts.open_incidents {
            reasons.push(format!(
                "incident #{n} ({title}) is open with label {label:?}"
            ));
        }
    }
    if reasons.is_empty() {
        PreDeployVerdict::Proceed
    } else {
        PreDeployVerdict::Blocked { reasons }
    }
}

/// Probes `health_path` at each (environment, URL) within `deadline` each.
pub async fn probe_environments<P: Prober>(
    prober: &P,
    targets: &[(String, String)],
    health_path: &str,
    deadline: Duration,
) -> Vec<(String, Result<(), String>)> {
    let mut out = Vec::new();
    for (env, url) in targets {
        let r = prober
            .smoke(url, &[health_path.to_string()], deadline)
            .await
            .map_err(|e| format!("failed to {e}"));
        out.push((env.clone(), r));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> PreDeploy {
        PreDeploy {
            checks_green: true,
            healthy: vec!["staging".into()],
            incident_label: Some("incident".into()),
        }
    }

    fn check(name: &str, status: &str, conclusion: Option<&str>) -> CheckFact {
        CheckFact {
            name: name.into(),
            status: status.into(),
            conclusion: conclusion.map(str::to_string),
        }
    }

    /// Protects the happy path: green checks (own run ignored), healthy staging, no incident.
    #[test]
    fn proceeds_when_everything_is_green() {
        let facts = PreDeployFacts {
            checks: vec![
                check("ci / test", "completed", Some("success")),
                check("docs", "completed", Some("skipped")),
                check("fm-deploy / deploy production", "in_progress", None),
            ],
            own_checks: vec!["fm-deploy / deploy production".into()],
            health: vec![("staging".into(), Ok(()))],
            open_incidents: vec![],
        };
        assert_eq!(evaluate(&spec(), &facts), PreDeployVerdict::Proceed);
    }

    /// Protects fail-closed collection: a red check, a pending check, an unprobed or unhealthy
    /// environment and an open incident each block, all reported at once.
    #[test]
    fn blocks_with_every_reason() {
        let facts = PreDeployFacts {
            checks: vec![
                check("ci / test", "completed", Some("failure")),
                check("ci / lint", "in_progress", None),
            ],
            own_checks: vec![],
            health: vec![],
            open_incidents: vec![(42, "db down".into())],
        };
        match evaluate(&spec(), &facts) {
            PreDeployVerdict::Blocked { reasons } => {
                assert_eq!(reasons.len(), 4, "{reasons:?}");
                assert!(reasons[0].contains("failure"));
                assert!(reasons[1].contains("in_progress"));
                assert!(reasons[2].contains("staging was not probed"));
                assert!(reasons[3].contains("#42"));
            }
            PreDeployVerdict::Proceed => panic!("must block"),
        }
        let unhealthy = PreDeployFacts {
            health: vec![("staging".into(), Err("HTTP 503".into()))],
            ..Default::default()
        };
        let relaxed = PreDeploy {
            checks_green: false,
            healthy: vec!["staging".into()],
            incident_label: None,
        };
        assert!(matches!(
            evaluate(&relaxed, &unhealthy),
            PreDeployVerdict::Blocked { .. }
        ));
    }
}
