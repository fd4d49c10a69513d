//! pip-audit `-f json` (2.x: `{"dependencies": [...], "fixes": [...]}`). It carries no severity,
//! so every vulnerability is high (needs approval) unless the policy maps it otherwise.
//! When every dependency was skipped (`skip_reason`), nothing was audited although pip-audit
//! exits 0 and says "No known vulnerabilities found": that is an error here (fail closed).
//! A partly skipped audit reports each skipped dependency as a medium finding.

use super::{ParseError, json};
use crate::gates::finding::{Finding, Severity};
use serde::Deserialize;

const FORMAT: &str = "pip-audit json";

#[derive(Deserialize)]
struct Report {
    dependencies: Vec<Dep>,
}

#[derive(Deserialize)]
struct Dep {
    name: String,
    version: Option<String>,
    #[serde(default)]
    vulns: Vec<Vuln>,
    skip_reason: Option<String>,
}

#[derive(Deserialize)]
struct Vuln {
    id: String,
    #[serde(default)]
    fix_versions: Vec<String>,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    description: String,
}

pub fn parse(bytes: &[u8]) -> Result<Vec<Finding>, ParseError> {
    let r: Report = json(FORMAT, bytes)?;
    let skipped = r
        .dependencies
        .iter()
        .filter(|d| d.skip_reason.is_some())
        .count();
    if skipped > 0 && skipped == r.dependencies.len() {
        return Err(ParseError::incomplete(
            FORMAT,
            format!(
                "pip-audit skipped all {skipped} dependencies, nothing was audited (first: {})",
                r.dependencies
                    .first()
                    .and_then(|d| d.skip_reason.as_deref())
                    .unwrap_or("")
            ),
        ));
    }
    let mut out = Vec::new();
    for d in r.dependencies {
        let version = d.version.unwrap_or_default();
        if let Some(reason) = d.skip_reason {
            out.push(Finding::new(
                "pip-audit",
                "not-audited",
                Severity::Medium,
                format!("{} was not audited: {reason}", d.name),
            ));
            continue;
        }
        for v in d.vulns {
            let fix = if v.fix_versions.is_empty() {
                "no fix".to_string()
            } else {
                format!("fixed in {}", v.fix_versions.join(", "))
            };
            let aka = if v.aliases.is_empty() {
                String::new()
            } else {
                format!(" ({})", v.aliases.join(", "))
            };
            let first = v
                .description
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(200)
                .collect::<String>();
            out.push(
                Finding::new(
                    "pip-audit",
                    v.id.clone(),
                    Severity::High,
                    format!("{} {version}: {}{aka}, {fix}. {first}", d.name, v.id),
                )
                .help(format!("https://osv.dev/vulnerability/{}", v.id)),
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gates::parsers::testutil::fixture;

    /// Real pip-audit JSON: 13 vulnerabilities in 5 packages, all high (no severity in the format).
    #[test]
    fn real_findings() {
        let f = parse(&fixture("pip-audit/findings.json")).unwrap();
        assert_eq!(f.len(), 13);
        assert!(f.iter().all(|x| x.severity == Severity::High));
        insta::assert_json_snapshot!(f);
    }

    /// A clean audit has no findings.
    #[test]
    fn real_clean() {
        assert!(parse(&fixture("pip-audit/clean.json")).unwrap().is_empty());
    }

    /// The all-skipped run (exit 0, "no known vulnerabilities") fails closed.
    #[test]
    fn real_all_skipped_fails_closed() {
        let e = parse(&fixture("pip-audit/all-skipped-pypi-404.json")).unwrap_err();
        assert!(matches!(e, ParseError::Incomplete { .. }), "{e}");
    }
}
