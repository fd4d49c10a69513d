//! Trivy JSON (`--format json`, schema 2): vulnerabilities, secrets and licences per result.
//! Secrets are class `Secret` (block); a licence in Trivy's `forbidden` category is class
//! `DeniedLicense` (blocks). `UNKNOWN` severity is high (needs approval).

use super::{ParseError, json, pos};
use crate::gates::finding::{Finding, FindingClass, Severity};
use serde::Deserialize;

const FORMAT: &str = "trivy json";

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Report {
    schema_version: u32,
    #[serde(default)]
    results: Vec<Res>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Res {
    target: String,
    #[serde(default)]
    vulnerabilities: Vec<Vuln>,
    #[serde(default)]
    secrets: Vec<Secret>,
    #[serde(default)]
    licenses: Vec<License>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Vuln {
    #[serde(rename = "VulnerabilityID")]
    vulnerability_id: String,
    pkg_name: String,
    installed_version: Option<String>,
    fixed_version: Option<String>,
    severity: String,
    title: Option<String>,
    #[serde(rename = "PrimaryURL")]
    primary_url: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Secret {
    #[serde(rename = "RuleID")]
    rule_id: String,
    severity: String,
    title: Option<String>,
    start_line: Option<u64>,
    end_line: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct License {
    severity: String,
    category: String,
    pkg_name: String,
    #[serde(default)]
    file_path: String,
    name: String,
}

fn sev(s: &str) -> Result<Severity, ParseError> {
    match s {
        "UNKNOWN" => Ok(Severity::High),
        other => Severity::parse(other)
            .ok_or_else(|| ParseError::shape(FORMAT, format!("unknown severity `{other}`"))),
    }
}

pub fn parse(bytes: &[u8]) -> Result<Vec<Finding>, ParseError> {
    let r: Report = json(FORMAT, bytes)?;
    if r.schema_version != 2 {
        return Err(ParseError::shape(
            FORMAT,
            format!("unsupported SchemaVersion {}", r.schema_version),
        ));
    }
    let mut out = Vec::new();
    for res in r.results {
        for v in res.vulnerabilities {
            let fix = v
                .fixed_version
                .filter(|f| !f.is_empty())
                .map(|f| format!(", fixed in {f}"))
                .unwrap_or_default();
            let mut f = Finding::new(
                "trivy",
                v.vulnerability_id.clone(),
                sev(&v.severity)?,
                format!(
                    "{} {} in {}: {}{fix}",
                    v.pkg_name,
                    v.installed_version.unwrap_or_default(),
                    res.target,
                    v.title.unwrap_or(v.vulnerability_id)
                ),
            );
            if let Some(u) = v.primary_url {
                f = f.help(u);
            }
            out.push(f);
        }
        for s in res.secrets {
            out.push(
                Finding::new(
                    "trivy",
                    s.rule_id.clone(),
                    sev(&s.severity)?.max(Severity::Critical),
                    format!("secret: {}", s.title.unwrap_or(s.rule_id)),
                )
                .at(&res.target, pos(s.start_line), None)
                .ending(pos(s.end_line), None)
                .classed(FindingClass::Secret),
            );
        }
        for l in res.licenses {
            let denied = l.category.eq_ignore_ascii_case("forbidden");
            let mut f = Finding::new(
                "trivy",
                format!("license-{}", l.category),
                if denied {
                    Severity::Critical
                } else {
                    sev(&l.severity)?
                },
                format!(
                    "{} is licensed `{}` ({})",
                    if l.pkg_name.is_empty() {
                        &l.file_path
                    } else {
                        &l.pkg_name
                    },
                    l.name,
                    l.category
                ),
            );
            if denied {
                f = f.classed(FindingClass::DeniedLicense);
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

    fn count(f: &[Finding], s: Severity) -> usize {
        f.iter().filter(|x| x.severity == s).count()
    }

    /// Trivy's own goldens: severities as Trivy reported them.
    #[test]
    fn upstream_vulnerabilities() {
        let f = parse(&fixture("trivy/image-critical-high.json")).unwrap();
        assert_eq!(
            (count(&f, Severity::Critical), count(&f, Severity::High)),
            (2, 1)
        );
        let f = parse(&fixture("trivy/image-critical-medium.json")).unwrap();
        assert_eq!(
            (count(&f, Severity::Critical), count(&f, Severity::Medium)),
            (2, 4)
        );
        let f = parse(&fixture("trivy/repo-python-pip.json")).unwrap();
        assert_eq!(
            (count(&f, Severity::High), count(&f, Severity::Medium)),
            (1, 1)
        );
        insta::assert_json_snapshot!(f);
        assert!(
            parse(&fixture("trivy/image-no-results.json"))
                .unwrap()
                .is_empty()
        );
    }

    /// Secrets are blocking secrets; licences keep Trivy's severity.
    #[test]
    fn upstream_secrets_and_licenses() {
        let s = parse(&fixture("trivy/secrets.json")).unwrap();
        assert_eq!(s.len(), 2);
        assert!(s.iter().all(|x| x.class == FindingClass::Secret));
        let l = parse(&fixture("trivy/licenses.json")).unwrap();
        assert_eq!(
            (count(&l, Severity::Medium), count(&l, Severity::Low)),
            (1, 2)
        );
        insta::assert_json_snapshot!((s, l));
    }
}
