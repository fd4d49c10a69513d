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

/// Parses a SARIF log held in memory.
pub fn parse(bytes: &[u8]) -> Result<Vec<Finding>, ParseError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let out = parse_with(&mut de)?;
    de.end().map_err(|e| ParseError::syntax(FORMAT, e))?;
    Ok(out)
}

/// Parses a SARIF log from a reader without holding the document: each result becomes a
/// finding as it is read (when, as tools write it, `tool` comes before `results`).
pub fn parse_reader<R: std::io::Read>(r: R) -> Result<Vec<Finding>, ParseError> {
    let mut de = serde_json::Deserializer::from_reader(r);
    let out = parse_with(&mut de)?;
    de.end().map_err(|e| ParseError::syntax(FORMAT, e))?;
    Ok(out)
}

/// What the streaming visitors collect besides findings.
#[derive(Default)]
struct State {
    out: Vec<Finding>,
    version: Option<String>,
    incomplete: Option<String>,
}

fn parse_with<'de, D>(de: D) -> Result<Vec<Finding>, ParseError>
where
    D: serde::Deserializer<'de, Error = serde_json::Error>,
{
    let mut st = State::default();
    serde::de::DeserializeSeed::deserialize(LogSeed(&mut st), de)
        .map_err(|e| ParseError::syntax(FORMAT, e))?;
    match st.version.as_deref() {
        Some("2.1.0") => {}
        Some(v) => {
            return Err(ParseError::shape(
                FORMAT,
                format!("unsupported SARIF version `{v}`"),
            ));
        }
        None => return Err(ParseError::shape(FORMAT, "no `version`")),
    }
    if let Some(why) = st.incomplete {
        return Err(ParseError::incomplete(FORMAT, why));
    }
    Ok(st.out)
}

struct LogSeed<'a>(&'a mut State);

impl<'de> serde::de::DeserializeSeed<'de> for LogSeed<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for LogSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a SARIF log object")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<(), A::Error> {
        let mut runs_seen = false;
        while let Some(k) = m.next_key::<std::borrow::Cow<'de, str>>()? {
            match k.as_ref() {
                "version" => self.0.version = Some(m.next_value()?),
                "runs" => {
                    runs_seen = true;
                    m.next_value_seed(RunsSeed(&mut *self.0))?;
                }
                _ => {
                    m.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        if !runs_seen {
            return Err(serde::de::Error::missing_field("runs"));
        }
        Ok(())
    }
}

struct RunsSeed<'a>(&'a mut State);

impl<'de> serde::de::DeserializeSeed<'de> for RunsSeed<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for RunsSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a list of runs")
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut s: A) -> Result<(), A::Error> {
        while s.next_element_seed(RunSeed(&mut *self.0))?.is_some() {}
        Ok(())
    }
}

struct RunSeed<'a>(&'a mut State);

impl<'de> serde::de::DeserializeSeed<'de> for RunSeed<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for RunSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a SARIF run object")
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<(), A::Error> {
        let mut tool: Option<Tool> = None;
        let mut buffered: Vec<SResult> = Vec::new();
        let mut invocations: Vec<Invocation> = Vec::new();
        while let Some(k) = m.next_key::<std::borrow::Cow<'de, str>>()? {
            match k.as_ref() {
                "tool" => tool = Some(m.next_value()?),
                "results" => match &tool {
                    Some(t) => {
                        let ctx = RunCtx::new(t);
                        m.next_value_seed(ResultsSeed {
                            ctx: &ctx,
                            out: &mut self.0.out,
                        })?;
                    }
                    None => buffered = m.next_value()?,
                },
                "invocations" => invocations = m.next_value()?,
                _ => {
                    m.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        let tool = tool.ok_or_else(|| serde::de::Error::missing_field("tool"))?;
        let ctx = RunCtx::new(&tool);
        for r in &buffered {
            self.0.out.push(ctx.finding(r));
        }
        for inv in &invocations {
            let failed = inv
                .config_notes
                .iter()
                .chain(&inv.exec_notes)
                .find(|n| n.level.as_deref() == Some("error"));
            if (!inv.execution_successful || failed.is_some()) && self.0.incomplete.is_none() {
                let why = failed
                    .and_then(|n| n.message.text.clone())
                    .unwrap_or_else(|| "executionSuccessful is false".into());
                self.0.incomplete = Some(format!("{} did not scan everything: {why}", ctx.tool));
            }
        }
        Ok(())
    }
}

struct ResultsSeed<'a> {
    ctx: &'a RunCtx<'a>,
    out: &'a mut Vec<Finding>,
}

impl<'de> serde::de::DeserializeSeed<'de> for ResultsSeed<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for ResultsSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a list of results")
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut s: A) -> Result<(), A::Error> {
        while let Some(r) = s.next_element::<SResult>()? {
            self.out.push(self.ctx.finding(&r));
        }
        Ok(())
    }
}

/// A run's tool and rules, to turn its results into findings.
struct RunCtx<'a> {
    tool: String,
    rules: &'a [Rule],
    by_id: HashMap<&'a str, &'a Rule>,
}

impl<'a> RunCtx<'a> {
    fn new(t: &'a Tool) -> Self {
        RunCtx {
            tool: t.driver.name.to_ascii_lowercase(),
            rules: &t.driver.rules,
            by_id: t.driver.rules.iter().map(|r| (r.id.as_str(), r)).collect(),
        }
    }

    fn finding(&self, r: &SResult) -> Finding {
        let tool = self.tool.as_str();
        let rule = r
            .rule_index
            .and_then(|i| self.rules.get(i))
            .filter(|x| r.rule_id.as_deref().is_none_or(|id| id == x.id))
            .or_else(|| {
                r.rule_id
                    .as_deref()
                    .and_then(|id| self.by_id.get(id).copied())
            });
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
        let mut msg = r.message.text.clone().unwrap_or_else(|| rule_id.clone());
        if tool == "bandit" {
            msg = super::bandit::redact(&msg);
        }
        let mut f = Finding::new(tool, rule_id, sev, msg);
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
        f
    }
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
        assert!(!s.iter().any(|x| x.message.contains("Sup3r")));
        insta::assert_json_snapshot!(s);
    }

    /// The streaming reader gives the same findings, also when `results` precede `tool`
    /// (re-serialising through `serde_json::Value` sorts the keys that way).
    #[test]
    fn reader_and_key_order() {
        for fx in [
            "bandit/findings.sarif",
            "trivy/image.sarif",
            "gitleaks/findings.sarif",
        ] {
            let bytes = fixture(fx);
            let want = parse(&bytes).unwrap();
            assert_eq!(parse_reader(&bytes[..]).unwrap(), want, "{fx}");
            let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            let sorted = serde_json::to_vec(&v).unwrap();
            assert!(
                sorted.windows(9).position(|w| w == b"\"results\"")
                    < sorted.windows(6).position(|w| w == b"\"tool\"")
            );
            assert_eq!(parse(&sorted).unwrap(), want, "{fx} sorted");
        }
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
