//! Parsers: pure functions from a tool's bytes to findings (and, for tests, coverage and
//! performance reports, to metrics).
//!
//! Owns: one module per output format and the dispatch on [`ParserKind`]. Must not touch:
//! processes, files, the policy's decisions. Every parser is total: any input gives `Ok` or a
//! [`ParseError`], never a panic.

pub mod bandit;
pub mod black;
pub mod cobertura;
pub mod detect_secrets;
pub mod flake8;
pub mod gitleaks;
pub mod junit;
pub mod k6;
pub mod mypy;
pub mod perf;
pub mod pip_audit;
pub mod pip_licenses;
pub mod safety;
pub mod sarif;
pub mod trivy;

use crate::budget::REPORT;
use crate::gates::finding::Finding;
use crate::policy::model::ParserKind;
use serde::Serialize;

/// Why a tool's output could not be turned into findings. Any of these fails the gate.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ParseError {
    #[error("parse {format} output: {message}")]
    Syntax {
        format: &'static str,
        message: String,
    },
    #[error("read {format} output: {message}")]
    Shape {
        format: &'static str,
        message: String,
    },
    #[error("trust {format} output: {message}")]
    Incomplete {
        format: &'static str,
        message: String,
    },
    /// Over the [`REPORT`] budget (too large, or XML nested too deep).
    #[error("{0}")]
    Budget(String),
}

impl ParseError {
    pub(crate) fn syntax(format: &'static str, e: impl std::fmt::Display) -> Self {
        ParseError::Syntax {
            format,
            message: e.to_string(),
        }
    }
    pub(crate) fn shape(format: &'static str, message: impl Into<String>) -> Self {
        ParseError::Shape {
            format,
            message: message.into(),
        }
    }
    pub(crate) fn incomplete(format: &'static str, message: impl Into<String>) -> Self {
        ParseError::Incomplete {
            format,
            message: message.into(),
        }
    }
}

/// Test counts from a JUnit report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TestCounts {
    pub tests: u32,
    pub failures: u32,
    pub errors: u32,
    pub skipped: u32,
}

/// Measured performance, in the units the budgets use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct PerfMetrics {
    pub page_load_ms: Option<f64>,
    pub api_ms: Option<f64>,
    pub certificate_generation_ms: Option<f64>,
    /// A fraction: 0.001 is 0.1 %.
    pub error_rate: Option<f64>,
}

/// One installed package and its declared licence (pip-licenses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageLicense {
    pub name: String,
    pub version: String,
    pub license: String,
}

/// Numbers a gate reports besides findings.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Metrics {
    /// Line coverage as a fraction (Cobertura `line-rate`).
    pub coverage: Option<f64>,
    pub tests: Option<TestCounts>,
    pub perf: Option<PerfMetrics>,
    pub packages: Vec<PackageLicense>,
}

/// What a parser made of one output.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Parsed {
    pub findings: Vec<Finding>,
    pub metrics: Metrics,
}

impl From<Vec<Finding>> for Parsed {
    fn from(findings: Vec<Finding>) -> Self {
        Parsed {
            findings,
            metrics: Metrics::default(),
        }
    }
}

/// Parses `bytes` as the output of `kind` within the [`REPORT`] budget (size here, depth in the
/// XML parsers, serde_json's own depth limit in the JSON ones). `ExitCode` gates have nothing to
/// parse.
pub fn parse(kind: ParserKind, bytes: &[u8]) -> Result<Parsed, ParseError> {
    REPORT
        .check_size(bytes.len() as u64)
        .map_err(|e| ParseError::Budget(e.to_string()))?;
    match kind {
        ParserKind::Black => black::parse(bytes).map(Parsed::from),
        ParserKind::Flake8 => flake8::parse_text(bytes).map(Parsed::from),
        ParserKind::Flake8Json => flake8::parse_json(bytes).map(Parsed::from),
        ParserKind::Mypy => mypy::parse_text(bytes).map(Parsed::from),
        ParserKind::MypyJson => mypy::parse_json(bytes).map(Parsed::from),
        ParserKind::Bandit => bandit::parse(bytes).map(Parsed::from),
        ParserKind::DetectSecrets => detect_secrets::parse(bytes).map(Parsed::from),
        ParserKind::PipLicenses => pip_licenses::parse(bytes),
        ParserKind::PipAudit => pip_audit::parse(bytes).map(Parsed::from),
        ParserKind::Safety => safety::parse(bytes).map(Parsed::from),
        ParserKind::Trivy => trivy::parse(bytes).map(Parsed::from),
        ParserKind::Gitleaks => gitleaks::parse(bytes).map(Parsed::from),
        ParserKind::Sarif => sarif::parse(bytes).map(Parsed::from),
        ParserKind::Junit => junit::parse(bytes),
        ParserKind::Cobertura => cobertura::parse(bytes),
        ParserKind::K6 => k6::parse(bytes),
        ParserKind::Perf => perf::parse(bytes),
        ParserKind::ExitCode => Ok(Parsed::default()),
    }
}

/// An XML element's attribute, unescaped, naming the format in the error.
pub(crate) fn xml_attr(
    format: &'static str,
    e: &quick_xml::events::BytesStart<'_>,
    name: &[u8],
) -> Result<Option<String>, ParseError> {
    for a in e.attributes() {
        let a = a.map_err(|x| ParseError::syntax(format, x))?;
        if a.key.as_ref() == name {
            let v = a
                .unescape_value()
                .map_err(|x| ParseError::syntax(format, x))?;
            return Ok(Some(v.into_owned()));
        }
    }
    Ok(None)
}

/// Decodes JSON into `T`, naming the format in the error.
pub(crate) fn json<'a, T: serde::Deserialize<'a>>(
    format: &'static str,
    bytes: &'a [u8],
) -> Result<T, ParseError> {
    serde_json::from_slice(bytes).map_err(|e| ParseError::syntax(format, e))
}

/// Counts one more open XML element, refusing the report past the [`REPORT`] depth budget.
pub(crate) fn xml_open(depth: &mut usize) -> Result<(), ParseError> {
    *depth += 1;
    REPORT
        .check_depth(*depth)
        .map_err(|e| ParseError::Budget(e.to_string()))
}

/// UTF-8 text, naming the format in the error.
pub(crate) fn text<'a>(format: &'static str, bytes: &'a [u8]) -> Result<&'a str, ParseError> {
    std::str::from_utf8(bytes).map_err(|e| ParseError::syntax(format, e))
}

/// A `u64` from a tool as a `u32` line/column (saturating: positions past 4 G are not real).
pub(crate) fn pos(n: Option<u64>) -> Option<u32> {
    n.map(|v| u32::try_from(v).unwrap_or(u32::MAX))
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;
    use proptest::prelude::*;

    /// Every parser on arbitrary bytes: never panics.
    pub fn never_panics(bytes: &[u8]) {
        for kind in ALL_KINDS {
            let _ = parse(kind, bytes);
        }
    }

    pub const ALL_KINDS: [ParserKind; 18] = [
        ParserKind::Black,
        ParserKind::Flake8,
        ParserKind::Flake8Json,
        ParserKind::Mypy,
        ParserKind::MypyJson,
        ParserKind::Bandit,
        ParserKind::DetectSecrets,
        ParserKind::PipLicenses,
        ParserKind::PipAudit,
        ParserKind::Safety,
        ParserKind::Trivy,
        ParserKind::Gitleaks,
        ParserKind::Sarif,
        ParserKind::Junit,
        ParserKind::Cobertura,
        ParserKind::K6,
        ParserKind::Perf,
        ParserKind::ExitCode,
    ];

    pub fn fixture(rel: &str) -> Vec<u8> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(rel);
        match std::fs::read(&p) {
            Ok(b) => b,
            Err(e) => panic!("fixture {}: {e}", p.display()),
        }
    }

    proptest! {
        /// No parser panics on arbitrary bytes.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            never_panics(&bytes);
        }

        /// Structured formats reject text that is not their syntax (garbage → error, not "no findings").
        #[test]
        fn garbage_is_an_error(s in "[a-z]{1,8} [^\\{\\[<]{0,40}") {
            for kind in [ParserKind::Flake8Json, ParserKind::Bandit, ParserKind::DetectSecrets,
                         ParserKind::PipLicenses, ParserKind::PipAudit, ParserKind::Safety, ParserKind::Trivy,
                         ParserKind::Gitleaks, ParserKind::Sarif, ParserKind::Junit, ParserKind::Cobertura,
                         ParserKind::K6, ParserKind::Perf, ParserKind::Black, ParserKind::Flake8,
                         ParserKind::Mypy, ParserKind::MypyJson] {
                prop_assert!(parse(kind, s.as_bytes()).is_err(), "{kind:?} accepted {s:?}");
            }
        }
    }
}

#[cfg(test)]
mod truncation {
    use super::testutil::fixture;
    use super::*;
    use proptest::prelude::*;

    const CASES: [(ParserKind, &str); 14] = [
        (ParserKind::Flake8Json, "flake8/findings.json"),
        (ParserKind::MypyJson, "mypy/findings.jsonl"),
        (ParserKind::Bandit, "bandit/findings.json"),
        (ParserKind::Sarif, "bandit/findings.sarif"),
        (ParserKind::DetectSecrets, "detect-secrets/findings.json"),
        (ParserKind::PipLicenses, "pip-licenses/plain.json"),
        (ParserKind::PipAudit, "pip-audit/findings.json"),
        (ParserKind::Safety, "safety/findings.json"),
        (ParserKind::Trivy, "trivy/image-critical-high.json"),
        (ParserKind::Gitleaks, "gitleaks/findings.json"),
        (ParserKind::Junit, "pytest/findings.junit.xml"),
        (ParserKind::Cobertura, "coverage/findings.cobertura.xml"),
        (ParserKind::Perf, "perf/certsolver.json"),
        (ParserKind::Sarif, "trivy/image.sarif"),
    ];

    proptest! {
        /// A real report cut short (a tool killed mid-write) is an error, never a smaller pass.
        /// Line formats (mypy JSON lines) may lose whole lines only at line ends; a cut inside a
        /// line is an error.
        #[test]
        fn truncated_real_reports_fail(case in 0..CASES.len(), frac in 0.0f64..1.0) {
            let (kind, file) = CASES[case];
            let full = fixture(file);
            let body = full.trim_ascii_end();
            let cut = ((body.len() as f64) * frac) as usize;
            prop_assume!(cut > 0 && cut < body.len());
            let prefix = &body[..cut];
            if kind == ParserKind::MypyJson && (prefix.ends_with(b"\n") || body[cut] == b'\n') {
                return Ok(());
            }
            prop_assert!(parse(kind, prefix).is_err(), "{file} cut at {cut} of {} parsed", body.len());
        }
    }
}
