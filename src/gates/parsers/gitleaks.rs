//! Gitleaks JSON report: an array of leaks. Every leak is a critical `Secret`; the message never
//! carries `Match` or `Secret`.

use super::{ParseError, json, pos};
use crate::gates::finding::{Finding, FindingClass, Severity};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Leak {
    #[serde(rename = "RuleID")]
    rule_id: String,
    #[serde(default)]
    description: String,
    start_line: Option<u64>,
    end_line: Option<u64>,
    start_column: Option<u64>,
    end_column: Option<u64>,
    file: String,
    #[serde(default)]
    commit: String,
}

pub fn parse(bytes: &[u8]) -> Result<Vec<Finding>, ParseError> {
    let leaks: Vec<Leak> = json("gitleaks json", bytes)?;
    Ok(leaks
        .into_iter()
        .map(|l| {
            let what = if l.description.is_empty() {
                l.rule_id.clone()
            } else {
                l.description.clone()
            };
            let commit = if l.commit.is_empty() {
                String::new()
            } else {
                format!(" (commit {})", l.commit.get(..12).unwrap_or(&l.commit))
            };
            Finding::new(
                "gitleaks",
                l.rule_id,
                Severity::Critical,
                format!("secret: {what}{commit}"),
            )
            .at(&l.file, pos(l.start_line), pos(l.start_column))
            .ending(pos(l.end_line), pos(l.end_column))
            .classed(FindingClass::Secret)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gates::parsers::testutil::fixture;

    /// Gitleaks' golden report: one leak, blocking, without the secret in the message.
    #[test]
    fn upstream_findings() {
        let f = parse(&fixture("gitleaks/findings.json")).unwrap();
        assert_eq!(f.len(), 1);
        assert!(!f[0].message.contains("a secret"));
        insta::assert_json_snapshot!(f);
        assert!(parse(&fixture("gitleaks/clean.json")).unwrap().is_empty());
    }
}
