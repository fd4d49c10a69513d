//! Safety 2.x `check --output json`. The free database gives `severity: null`; an unknown
//! severity is high (needs approval). A CVSS block, when present, gives the severity.

use super::{ParseError, json};
use crate::gates::finding::{Finding, Severity};
use serde::Deserialize;

const FORMAT: &str = "safety json";

#[derive(Deserialize)]
struct Report {
    #[expect(
        dead_code,
        reason = "required to recognise the format; the value is not used"
    )]
    report_meta: serde::de::IgnoredAny,
    vulnerabilities: Vec<Vuln>,
}

#[derive(Deserialize)]
struct Vuln {
    vulnerability_id: String,
    package_name: String,
    analyzed_version: Option<String>,
    advisory: Option<String>,
    #[serde(rename = "CVE")]
    cve: Option<String>,
    severity: Option<serde_json::Value>,
    more_info_url: Option<String>,
}

fn severity(v: &Option<serde_json::Value>) -> Severity {
    let Some(v) = v else { return Severity::High };
    let found = ["cvssv3", "cvssv2"].iter().find_map(|k| {
        v.get(k)
            .and_then(|c| c.get("base_severity"))
            .and_then(|s| s.as_str())
            .and_then(Severity::parse)
    });
    found
        .or_else(|| v.as_str().and_then(Severity::parse))
        .unwrap_or(Severity::High)
}

pub fn parse(bytes: &[u8]) -> Result<Vec<Finding>, ParseError> {
    let r: Report = json(FORMAT, bytes)?;
    Ok(r.vulnerabilities
        .into_iter()
        .map(|v| {
            let cve = v.cve.map(|c| format!(" ({c})")).unwrap_or_default();
            let adv: String = v.advisory.unwrap_or_default().chars().take(200).collect();
            let mut f = Finding::new(
                "safety",
                v.vulnerability_id.clone(),
                severity(&v.severity),
                format!(
                    "{} {}: {}{cve}. {adv}",
                    v.package_name,
                    v.analyzed_version.unwrap_or_default(),
                    v.vulnerability_id
                ),
            );
            if let Some(u) = v.more_info_url.filter(|u| u.starts_with("http")) {
                f = f.help(u);
            }
            f
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gates::parsers::testutil::fixture;

    /// Real Safety 2.2.0 JSON: 5 vulnerabilities, severity null → high.
    #[test]
    fn real_findings() {
        let f = parse(&fixture("safety/findings.json")).unwrap();
        assert_eq!(f.len(), 5);
        assert!(f.iter().all(|x| x.severity == Severity::High));
        insta::assert_json_snapshot!(f);
    }

    /// Clean run and Safety's own upstream report (list-shaped `vulnerable_spec`) both parse.
    #[test]
    fn real_clean_and_upstream() {
        assert!(parse(&fixture("safety/clean.json")).unwrap().is_empty());
        assert_eq!(
            parse(&fixture("safety/upstream-report.json"))
                .unwrap()
                .len(),
            1
        );
    }
}
