//! Generic SARIF 2.1.0. Severity, most specific first: `properties.issue_severity` (Bandit),
//! `properties.security-severity` of the result or its rule (CVSS score: ≥9 critical, ≥7 high,
//! ≥4 medium, else low), then the SARIF level (error high, warning medium, note low, none info;
//! absent → the rule's default level → warning). A failed invocation or an error-level
//! notification means the scan is incomplete (fail closed).

use super::{ParseError, pos};
use crate::gates::finding::{Finding, FindingClass, Severity};
use serde::Deserialize;
use std::collections::HashMap;

const FORMAT: &str = "sarif";

#[derive(Deserialize)]
struct Log {
    version: String,
    runs: Vec<Run>,
}

#[derive(Deserialize)]
struct Run {
    tool: Tool,
    #[serde(default)]
    results: Vec<SResult>,
    #[serde(default)]
    invocations: Vec<Invocation>,
}

#[derive(Deserialize)]
struct Tool {
    driver: Driver,
}

#[derive(Deserialize)]
struct Driver {
    name: String,
    #[serde(default)]
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
struct Rule {
    id: String,
    #[serde(rename = "helpUri")]
    help_uri: Option<String>,
    #[serde(rename = "defaultConfiguration")]
    default_configuration: Option<Config>,
    properties: Option<Props>,
}

#[derive(Deserialize)]
struct Config {
    level: Option<String>,
}

#[derive(Deserialize, Default)]
struct Props {
    issue_severity: Option<String>,
    #[serde(rename = "security-severity")]
    security_severity: Option<String>,
}

#[derive(Deserialize)]
struct SResult {
    #[serde(rename = "ruleId")]
    rule_id: Option<String>,
    #[serde(rename = "ruleIndex")]
    rule_index: Option<usize>,
    level: Option<String>,
    message: Message,
    #[serde(default)]
    locations: Vec<Location>,
    properties: Option<Props>,
}

#[derive(Deserialize)]
struct Message {
    text: Option<String>,
}

#[derive(Deserialize)]
struct Location {
    #[serde(rename = "physicalLocation")]
    physical_location: Option<Physical>,
}

#[derive(Deserialize)]
struct Physical {
    #[serde(rename = "artifactLocation")]
    artifact_location: Option<Artifact>,
    region: Option<Region>,
}

#[derive(Deserialize)]
struct Artifact {
    uri: Option<String>,
}

#[derive(Deserialize)]
struct Region {
    #[serde(rename = "startLine")]
    start_line: Option<u64>,
    #[serde(rename = "startColumn")]
    start_column: Option<u64>,
    #[serde(rename = "endLine")]
    end_line: Option<u64>,
    #[serde(rename = "endColumn")]
    end_column: Option<u64>,
}

#[derive(Deserialize)]
struct Invocation {
    #[serde(rename = "executionSuccessful")]
    execution_successful: bool,
    #[serde(rename = "toolConfigurationNotifications", default)]
    config_notes: Vec<Notification>,
    #[serde(rename = "toolExecutionNotifications", default)]
    exec_notes: Vec<Notification>,
}

#[derive(Deserialize)]
struct Notification {
    level: Option<String>,
    message: Message,
}

fn level_severity(level: &str) -> Option<Severity> {
    match level {
        "error" => Some(Severity::High),
        "warning" => Some(Severity::Medium),
        "note" => Some(Severity::Low),
        "none" => Some(Severity::Info),
        _ => None,
    }
}

fn score_severity(s: &str) -> Option<Severity> {
    let v: f64 = s.trim().parse().ok()?;
    Some(if v >= 9.0 {
        Severity::Critical
    } else if v >= 7.0 {
        Severity::High
    } else if v >= 4.0 {
        Severity::Medium
    } else if v > 0.0 {
        Severity::Low
    } else {
        Severity::Info
    })
}

pub fn parse(bytes: &[u8]) -> Result<Vec<Finding>, ParseError> {
    let log: Log = super::json(FORMAT, bytes)?;
    if log.version != "2.1.0" {
        return Err(ParseError::shape(
            FORMAT,
            format!("unsupported SARIF version `{}`", log.version),
        ));
    }
    let mut out = Vec::new();
    for run in log.runs {
        let tool = run.tool.driver.name.to_ascii_lowercase();
        for inv in &run.invocations {
            let failed = inv
                .config_notes
                .iter()
                .chain(&inv.exec_notes)
                .find(|n| n.level.as_deref() == Some("error"));
            if !inv.execution_successful || failed.is_some() {
                let why = failed
                    .and_then(|n| n.message.text.clone())
                    .unwrap_or_else(|| "executionSuccessful is false".into());
                return Err(ParseError::incomplete(
                    FORMAT,
                    format!("{tool} did not scan everything: {why}"),
                ));
            }
        }
        let by_id: HashMap<&str, &Rule> = run
            .tool
            .driver
            .rules
            .iter()
            .map(|r| (r.id.as_str(), r))
            .collect();
        for r in &run.results {
            let rule = r
                .rule_index
                .and_then(|i| run.tool.driver.rules.get(i))
                .or_else(|| r.rule_id.as_deref().and_then(|id| by_id.get(id).copied()));
            let rule_id = r
                .rule_id
                .clone()
                .or_else(|| rule.map(|x| x.id.clone()))
                .unwrap_or_else(|| "sarif".into());
            let props = r.properties.as_ref();
            let rprops = rule.and_then(|x| x.properties.as_ref());
            let sev = props
                .and_then(|p| p.issue_severity.as_deref())
                .and_then(Severity::parse)
                .or_else(|| {
                    props
                        .and_then(|p| p.security_severity.as_deref())
                        .and_then(score_severity)
                })
                .or_else(|| {
                    rprops
                        .and_then(|p| p.security_severity.as_deref())
                        .and_then(score_severity)
                })
                .or_else(|| r.level.as_deref().and_then(level_severity))
                .or_else(|| {
                    rule.and_then(|x| x.default_configuration.as_ref())
                        .and_then(|c| c.level.as_deref())
                        .and_then(level_severity)
                })
                .unwrap_or(Severity::Medium);
            let msg = r.message.text.clone().unwrap_or_else(|| rule_id.clone());
            let mut f = Finding::new(&tool, rule_id, sev, msg);
            if let Some(p) = r
                .locations
                .first()
                .and_then(|l| l.physical_location.as_ref())
                && let Some(uri) = p.artifact_location.as_ref().and_then(|a| a.uri.as_deref())
            {
                let reg = p.region.as_ref();
                let path = uri.strip_prefix("file://").unwrap_or(uri);
                f = f
                    .at(
                        path,
                        pos(reg.and_then(|r| r.start_line)),
                        pos(reg.and_then(|r| r.start_column)),
                    )
                    .ending(
                        pos(reg.and_then(|r| r.end_line)),
                        pos(reg.and_then(|r| r.end_column)),
                    );
            }
            if let Some(u) = rule.and_then(|x| x.help_uri.clone()) {
                f = f.help(u);
            }
            // A secret scanner's every result is a leaked credential, whatever level it carries.
            if tool == "gitleaks" {
                f.severity = Severity::Critical;
                f = f.classed(FindingClass::Secret);
            }
            out.push(f);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gates::parsers::testutil::fixture;

    /// Bandit's SARIF gives the same 20 findings with the same severities as its JSON.
    #[test]
    fn real_bandit_sarif_matches_json() {
        let s = parse(&fixture("bandit/findings.sarif")).unwrap();
        let j = crate::gates::parsers::bandit::parse(&fixture("bandit/findings.json")).unwrap();
        let key = |f: &Finding| (f.path.clone(), f.line, f.rule.clone(), f.severity);
        let mut a: Vec<_> = s.iter().map(key).collect();
        let mut b: Vec<_> = j.iter().map(key).collect();
        a.sort();
        b.sort();
        assert_eq!(a, b);
        insta::assert_json_snapshot!(s);
    }

    /// Bandit's SARIF for a file it could not parse is an incomplete scan; a clean one is empty.
    #[test]
    fn real_bandit_broken_and_clean() {
        assert!(matches!(
            parse(&fixture("bandit/broken-syntax.sarif")),
            Err(ParseError::Incomplete { .. })
        ));
        assert!(parse(&fixture("bandit/clean.sarif")).unwrap().is_empty());
    }

    /// Trivy's SARIF: the CVSS security-severity of the rule decides, not the flat `warning` level.
    #[test]
    fn upstream_trivy_and_gitleaks_sarif() {
        let t = parse(&fixture("trivy/image.sarif")).unwrap();
        assert_eq!(t.len(), 4);
        insta::assert_json_snapshot!(t);
        let g = parse(&fixture("gitleaks/findings.sarif")).unwrap();
        assert_eq!(
            (g.len(), g[0].tool.as_str(), g[0].class),
            (1, "gitleaks", FindingClass::Secret)
        );
    }
}
