//! The one finding model every parser produces and every report consumes.
//!
//! Owns: `Severity`, `Finding`, fingerprints. Must not touch: processes, policy, I/O.

use serde::{Deserialize, Serialize};
use std::fmt;

/// How bad a finding is, on one scale shared by every tool. Ordered: `Info < Low < … < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 5] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Info,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Severity> {
        match s.trim().to_ascii_lowercase().as_str() {
            "info" | "informational" | "note" | "none" | "unknown" => Some(Severity::Info),
            "low" => Some(Severity::Low),
            "medium" | "moderate" | "warning" => Some(Severity::Medium),
            "high" | "error" => Some(Severity::High),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem a tool reported, normalised. Paths are relative to the workspace, `/`-separated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// The gate (policy name) that produced it, e.g. `lint`.
    pub gate: String,
    /// The tool's own name, e.g. `flake8`.
    pub tool: String,
    /// The tool's rule or advisory id, e.g. `E501`, `B105`, `PYSEC-2023-74`.
    pub rule: String,
    pub severity: Severity,
    pub path: Option<String>,
    pub line: Option<u32>,
    pub column: Option<u32>,
    pub end_line: Option<u32>,
    pub end_column: Option<u32>,
    pub message: String,
    pub help_url: Option<String>,
    /// Longer text for people (a failed test's full message and traceback): the annotation's raw
    /// details. Never part of the fingerprint (tracebacks hold addresses that change every run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
    /// Stable across runs and line shifts: tool, rule, path and a digest of the message.
    pub fingerprint: String,
    /// What kind of problem this is, where the verdict treats kinds differently (secrets and denied
    /// licences block whatever the severity table says).
    #[serde(default)]
    pub class: FindingClass,
}

/// Kinds of finding with a fixed verdict, independent of the severity table.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum FindingClass {
    #[default]
    General,
    /// A credential in the code or history: blocks immediately.
    Secret,
    /// A dependency under a licence the policy denies: blocks.
    DeniedLicense,
}

impl Finding {
    /// A finding with no location yet; parsers fill the rest with the builder methods.
    pub fn new(
        tool: &str,
        rule: impl Into<String>,
        severity: Severity,
        message: impl Into<String>,
    ) -> Self {
        let mut f = Finding {
            gate: String::new(),
            tool: tool.to_string(),
            rule: rule.into(),
            severity,
            path: None,
            line: None,
            column: None,
            end_line: None,
            end_column: None,
            message: message.into(),
            help_url: None,
            details: None,
            fingerprint: String::new(),
            class: FindingClass::General,
        };
        f.refresh_fingerprint();
        f
    }

    pub fn at(mut self, path: impl Into<String>, line: Option<u32>, column: Option<u32>) -> Self {
        self.path = Some(normalize_path(&path.into()));
        self.line = line;
        self.column = column;
        self.refresh_fingerprint();
        self
    }

    pub fn ending(mut self, end_line: Option<u32>, end_column: Option<u32>) -> Self {
        self.end_line = end_line;
        self.end_column = end_column;
        self
    }

    pub fn classed(mut self, class: FindingClass) -> Self {
        self.class = class;
        self
    }

    pub fn detailed(mut self, text: impl Into<String>) -> Self {
        let text = text.into();
        self.details = if text.trim().is_empty() {
            None
        } else {
            Some(text)
        };
        self
    }

    pub fn help(mut self, url: impl Into<String>) -> Self {
        let url = url.into();
        self.help_url = if url.is_empty() { None } else { Some(url) };
        self
    }

    /// Recomputes the fingerprint from tool, rule, path and message (never the line: a finding
    /// that moves because code above it changed keeps its identity).
    pub fn refresh_fingerprint(&mut self) {
        let mut h = Fnv64::default();
        for part in [
            self.tool.as_str(),
            self.rule.as_str(),
            self.path.as_deref().unwrap_or(""),
            self.message.as_str(),
        ] {
            h.write(part.as_bytes());
            h.write(&[0]);
        }
        self.fingerprint = format!("{:016x}", h.0);
    }
}

/// Strips `./` and turns `\` into `/`, so findings from every tool compare equal.
pub fn normalize_path(p: &str) -> String {
    let p = p.replace('\\', "/");
    let mut s = p.as_str();
    while let Some(rest) = s.strip_prefix("./") {
        s = rest;
    }
    s.to_string()
}

/// FNV-1a 64: a tiny stable hash (std's `DefaultHasher` is not stable across releases).
struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv64 {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Severity ordering drives "most severe first" everywhere.
    #[test]
    fn severity_orders_from_info_to_critical() {
        assert!(Severity::Critical > Severity::High);
        assert!(Severity::Low > Severity::Info);
        assert_eq!(Severity::parse("MODERATE"), Some(Severity::Medium));
        assert_eq!(Severity::parse("bogus"), None);
    }

    /// A finding keeps its fingerprint when only its line moves.
    #[test]
    fn fingerprint_ignores_line() {
        let a = Finding::new("flake8", "E501", Severity::Medium, "line too long").at(
            "./a.py",
            Some(1),
            None,
        );
        let b = Finding::new("flake8", "E501", Severity::Medium, "line too long").at(
            "a.py",
            Some(9),
            Some(3),
        );
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_eq!(a.path.as_deref(), Some("a.py"));
    }
}
