//! pip-licenses `--format=json`: the installed packages and their licences. The parser only
//! lists them (metrics); the gate turns them into findings with the policy's allow/deny lists
//! ([`license_findings`]).

use super::{Metrics, PackageLicense, ParseError, Parsed, json};
use crate::gates::finding::{Finding, FindingClass, Severity};
use crate::policy::model::LicensePolicy;
use serde::Deserialize;

const FORMAT: &str = "pip-licenses json";

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    license: String,
    name: String,
    version: String,
}

pub fn parse(bytes: &[u8]) -> Result<Parsed, ParseError> {
    let entries: Vec<Entry> = json(FORMAT, bytes)?;
    if entries.is_empty() {
        // Every environment has packages; an empty list means pip-licenses looked at the wrong
        // interpreter (or none), so nothing was checked.
        return Err(ParseError::incomplete(
            FORMAT,
            "pip-licenses listed no package",
        ));
    }
    Ok(Parsed {
        findings: Vec::new(),
        metrics: Metrics {
            packages: entries
                .into_iter()
                .map(|e| PackageLicense {
                    name: e.name,
                    version: e.version,
                    license: e.license,
                })
                .collect(),
            ..Metrics::default()
        },
    })
}

/// A denied licence is a critical `DeniedLicense` finding (blocks); with an allow list, a licence
/// not on it is high (needs approval). Matching is case-insensitive on the whole licence text or
/// any of its `;`-separated parts.
pub fn license_findings(packages: &[PackageLicense], policy: &LicensePolicy) -> Vec<Finding> {
    let has = |list: &[String], lic: &str| {
        let parts: Vec<&str> = std::iter::once(lic)
            .chain(lic.split(';'))
            .map(str::trim)
            .collect();
        list.iter()
            .any(|l| parts.iter().any(|p| p.eq_ignore_ascii_case(l.trim())))
    };
    let mut out = Vec::new();
    for p in packages {
        let msg = |what: &str| {
            format!(
                "{} {} is licensed `{}`, {what}",
                p.name, p.version, p.license
            )
        };
        if has(&policy.deny, &p.license) {
            out.push(
                Finding::new(
                    "pip-licenses",
                    "license-denied",
                    Severity::Critical,
                    msg("which the policy denies"),
                )
                .classed(FindingClass::DeniedLicense),
            );
        } else if !policy.allow.is_empty() && !has(&policy.allow, &p.license) {
            out.push(Finding::new(
                "pip-licenses",
                "license-not-allowed",
                Severity::High,
                msg("which is not on the allow list"),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gates::parsers::testutil::fixture;

    /// Real pip-licenses JSON: 6 packages, their licences as declared.
    #[test]
    fn real_packages() {
        let p = parse(&fixture("pip-licenses/plain.json")).unwrap();
        assert_eq!(p.metrics.packages.len(), 6);
        insta::assert_json_snapshot!(p.metrics.packages);
    }

    /// An empty listing is not a clean licence check.
    #[test]
    fn empty_listing_fails() {
        assert!(matches!(parse(b"[]"), Err(ParseError::Incomplete { .. })));
    }

    /// Denying MPL blocks certifi; an allow list without MPL asks approval for it instead.
    #[test]
    fn deny_and_allow_lists() {
        let p = parse(&fixture("pip-licenses/plain.json"))
            .unwrap()
            .metrics
            .packages;
        let deny = LicensePolicy {
            deny: vec!["mozilla public license 2.0 (mpl 2.0)".into()],
            allow: vec![],
        };
        let f = license_findings(&p, &deny);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].class, FindingClass::DeniedLicense);
        assert!(f[0].message.starts_with("certifi "));
        let allow = LicensePolicy {
            deny: vec![],
            allow: [
                "MIT License",
                "MIT",
                "BSD-3-Clause",
                "Apache Software License",
            ]
            .map(String::from)
            .to_vec(),
        };
        let f = license_findings(&p, &allow);
        assert_eq!((f.len(), f[0].severity), (1, Severity::High));
    }
}
