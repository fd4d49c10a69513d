//! Pre-deploy validation: may this deploy start at all? (every other check on the commit green,
//! the environments it depends on healthy, no open incident).
//!
//! Owns: the one verdict over gathered facts ([`evaluate`]) and the health half of gathering
//! ([`probe_environments`], through the [`Prober`] port). Must not touch: GitHub — the commit's
//! check runs, statuses and incident issues are judged by `github::predeploy::judge` (pure) and
//! arrive here as its problems.

use crate::deploy::health::Prober;
use crate::github::PreDeployProblem;
use crate::policy::model::PreDeploy;
use std::time::Duration;

/// What the adapters found out before the deploy.
#[derive(Debug, Clone, Default)]
pub struct PreDeployFacts {
    /// What `github::predeploy::judge` found wrong with the commit (red or pending checks and
    /// statuses, open incidents). `None`: GitHub was not asked (no token, local run).
    pub github: Option<Vec<PreDeployProblem>>,
    /// Environment name → `Ok` or the probe failure, for every environment `healthy:` names.
    pub health: Vec<(String, Result<(), String>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreDeployVerdict {
    Proceed,
    /// Every reason, so one run shows all that is wrong.
    Blocked {
        reasons: Vec<String>,
    },
}

/// Pure: the verdict of the environment's `pre_deploy` rules over the facts. Fails closed: a rule
/// that could not be checked blocks.
pub fn evaluate(spec: &PreDeploy, facts: &PreDeployFacts, emergency: bool) -> PreDeployVerdict {
    let mut reasons = Vec::new();
    let needs_github = spec.checks_green || spec.incident_label.is_some();
    match &facts.github {
        Some(problems) => reasons.extend(
            problems
                .iter()
                .filter(|p| match p {
                    PreDeployProblem::CheckNotGreen { .. } | PreDeployProblem::StatusNotGreen { .. } => spec.checks_green,
                    PreDeployProblem::OpenIncident { .. } => spec.incident_label.is_some(),
                })
                .map(ToString::to_string),
        ),
        None if needs_github => reasons.push(
            "the commit's checks and open incidents could not be read (no GitHub token): they are not proven green"
                .to_string(),
        ),
        None => {}
    }
    // An emergency branch (hotfix) goes straight to production: other environments' health is
    // not its gate.
    if !emergency {
        for env in &spec.healthy {
            match facts.health.iter().find(|(n, _)| n == env) {
                Some((_, Ok(()))) => {}
                Some((_, Err(e))) => reasons.push(format!("environment {env} is not healthy: {e}")),
                None => reasons.push(format!("environment {env} was not probed")),
            }
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

    fn red(name: &str) -> PreDeployProblem {
        PreDeployProblem::CheckNotGreen {
            name: name.into(),
            status: "completed".into(),
            conclusion: Some("failure".into()),
        }
    }

    fn spec() -> PreDeploy {
        PreDeploy {
            checks_green: true,
            healthy: vec!["staging".into()],
            incident_label: Some("incident".into()),
        }
    }

    /// Protects the happy path: GitHub found nothing wrong, staging is healthy.
    #[test]
    fn proceeds_when_everything_is_green() {
        let facts = PreDeployFacts {
            github: Some(vec![]),
            health: vec![("staging".into(), Ok(()))],
        };
        assert_eq!(evaluate(&spec(), &facts, false), PreDeployVerdict::Proceed);
    }

    /// Protects fail-closed collection: GitHub's problems, an unprobed environment, all at once.
    #[test]
    fn blocks_with_every_reason() {
        let facts = PreDeployFacts {
            github: Some(vec![
                red("ci / test"),
                PreDeployProblem::OpenIncident {
                    number: 42,
                    title: "db down".into(),
                },
            ]),
            health: vec![],
        };
        match evaluate(&spec(), &facts, false) {
            PreDeployVerdict::Blocked { reasons } => {
                assert_eq!(reasons.len(), 3, "{reasons:?}");
                assert!(reasons[2].contains("staging was not probed"));
            }
            PreDeployVerdict::Proceed => panic!("must block"),
        }
        let unhealthy = PreDeployFacts {
            github: None,
            health: vec![("staging".into(), Err("HTTP 503".into()))],
        };
        let relaxed = PreDeploy {
            checks_green: false,
            healthy: vec!["staging".into()],
            incident_label: None,
        };
        assert!(matches!(
            evaluate(&relaxed, &unhealthy, false),
            PreDeployVerdict::Blocked { .. }
        ));
    }

    /// Without a token, rules that need GitHub are not proven: blocked, not waved through.
    #[test]
    fn no_github_fails_closed() {
        let facts = PreDeployFacts {
            github: None,
            health: vec![("staging".into(), Ok(()))],
        };
        assert!(matches!(
            evaluate(&spec(), &facts, false),
            PreDeployVerdict::Blocked { .. }
        ));
    }

    /// The hotfix path skips the staging-health requirement, nothing else.
    #[test]
    fn emergency_skips_health_only() {
        let facts = PreDeployFacts {
            github: Some(vec![]),
            health: vec![],
        };
        assert_eq!(evaluate(&spec(), &facts, true), PreDeployVerdict::Proceed);
        let failing = PreDeployFacts {
            github: Some(vec![red("x")]),
            health: vec![],
        };
        assert!(matches!(
            evaluate(&spec(), &failing, true),
            PreDeployVerdict::Blocked { .. }
        ));
    }

    /// A red check does not block an environment that does not ask for green checks.
    #[test]
    fn checks_only_when_asked() {
        let relaxed = PreDeploy {
            checks_green: false,
            healthy: vec![],
            incident_label: None,
        };
        let facts = PreDeployFacts {
            github: Some(vec![red("x")]),
            health: vec![],
        };
        assert_eq!(evaluate(&relaxed, &facts, false), PreDeployVerdict::Proceed);
    }
}
