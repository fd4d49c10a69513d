//! detect-secrets `scan` JSON. Every reported secret is critical and of class `Secret` (blocks).
//! The message names the detector and the secret's hash prefix, never the secret.

use super::{ParseError, json, pos};
use crate::gates::finding::{Finding, FindingClass, Severity};
use serde::Deserialize;
use std::collections::BTreeMap;

const FORMAT: &str = "detect-secrets json";

#[derive(Deserialize)]
struct Report {
    #[expect(
        dead_code,
        reason = "required to recognise the format; the value is not used"
    )]
    version: String,
    results: BTreeMap<String, Vec<Secret>>,
}

#[derive(Deserialize)]
struct Secret {
    #[serde(rename = "type")]
    kind: String,
    filename: String,
    hashed_secret: Option<String>,
    line_number: Option<u64>,
}

pub fn parse(bytes: &[u8]) -> Result<Vec<Finding>, ParseError> {
    let r: Report = json(FORMAT, bytes)?;
    Ok(r.results
        .into_values()
        .flatten()
        .map(|s| {
            let hash = s
                .hashed_secret
                .as_deref()
                .map(|h| h.get(..8).unwrap_or(h))
                .unwrap_or("");
            Finding::new(
                "detect-secrets",
                s.kind.clone(),
                Severity::Critical,
                format!("possible secret: {} (hash {hash})", s.kind),
            )
            .at(&s.filename, pos(s.line_number), None)
            .classed(FindingClass::Secret)
            .help("https://github.com/Yelp/detect-secrets#viewing-results")
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gates::parsers::testutil::fixture;

    /// Real scan of the planted project: 6 secrets in config.py, all blocking secrets.
    #[test]
    fn real_findings() {
        let f = parse(&fixture("detect-secrets/findings.json")).unwrap();
        assert_eq!(f.len(), 6);
        assert!(
            f.iter()
                .all(|x| x.class == FindingClass::Secret && x.severity == Severity::Critical)
        );
        insta::assert_json_snapshot!(f);
    }

    /// A clean scan has no findings.
    #[test]
    fn real_clean() {
        assert!(
            parse(&fixture("detect-secrets/clean.json"))
                .unwrap()
                .is_empty()
        );
    }
}
