//! The outcome of one gate: what its tool did, reduced to one exhaustive enum, plus the metrics
//! it reported. Pure: built from an [`ExecOutcome`] and the bytes read.
//!
//! Owns: the per-parser exit-code contract and the fail-closed classification. Must not touch:
//! processes, the verdict.

use crate::gates::finding::{Finding, normalize_path};
use crate::gates::parsers::{self, Metrics, ParseError};
use crate::gates::runner::{ExitStatus, tail_text};
use crate::policy::model::ParserKind;
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

/// Bytes of stderr (or stdout) quoted in failure messages.
pub const TAIL_BYTES: usize = 2000;

/// Everything a gate can come to. Only `Passed` and `Findings` are a clean parse; every other
/// variant fails the gate (fail closed).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum GateOutcome {
    /// The tool ran and reported nothing.
    Passed,
    /// The tool ran and its output parsed into these findings.
    Findings { findings: Vec<Finding> },
    /// The tool could not be started (missing from the machine, bad working directory, …).
    FailedToStart {
        program: String,
        missing: bool,
        message: String,
    },
    /// The tool ended in a way its contract does not allow (unexpected exit code, a signal,
    /// or an exit code saying "findings" with nothing parsed).
    Crashed {
        status: ExitStatus,
        message: String,
        stderr_tail: String,
    },
    /// The timeout fired and the process group was killed.
    TimedOut {
        #[serde(with = "crate::policy::model::duration_text")]
        after: Duration,
        stderr_tail: String,
    },
    /// The output (or report file) could not be read as the declared format.
    Unparseable {
        message: String,
        stderr_tail: String,
    },
}

impl GateOutcome {
    /// True for the two clean-parse outcomes.
    pub fn parsed_cleanly(&self) -> bool {
        match self {
            GateOutcome::Passed | GateOutcome::Findings { .. } => true,
            GateOutcome::FailedToStart { .. }
            | GateOutcome::Crashed { .. }
            | GateOutcome::TimedOut { .. }
            | GateOutcome::Unparseable { .. } => false,
        }
    }

    pub fn findings(&self) -> &[Finding] {
        match self {
            GateOutcome::Findings { findings } => findings,
            GateOutcome::Passed
            | GateOutcome::FailedToStart { .. }
            | GateOutcome::Crashed { .. }
            | GateOutcome::TimedOut { .. }
            | GateOutcome::Unparseable { .. } => &[],
        }
    }

    /// One line saying why a gate that did not parse failed; `None` for clean parses.
    pub fn failure(&self) -> Option<String> {
        match self {
            GateOutcome::Passed | GateOutcome::Findings { .. } => None,
            GateOutcome::FailedToStart { message, .. } => {
                Some(format!("failed to start: {message}"))
            }
            GateOutcome::Crashed { message, .. } => Some(format!("tool crashed: {message}")),
            GateOutcome::TimedOut { after, .. } => Some(format!(
                "timed out after {} (process group killed)",
                humantime::format_duration(*after)
            )),
            GateOutcome::Unparseable { message, .. } => {
                Some(format!("unparseable output: {message}"))
            }
        }
    }
}

/// Exit codes a tool may end with after a complete run, and which of them mean "findings".
pub fn exit_contract(kind: ParserKind) -> (&'static [i32], &'static [i32]) {
    match kind {
        ParserKind::Black
        | ParserKind::Flake8
        | ParserKind::Flake8Json
        | ParserKind::Mypy
        | ParserKind::MypyJson
        | ParserKind::Bandit
        | ParserKind::PipAudit
        | ParserKind::Junit
        | ParserKind::Gitleaks => (&[0, 1], &[1]),
        ParserKind::Safety => (&[0, 64], &[64]),
        ParserKind::Trivy | ParserKind::Sarif => (&[0, 1], &[]),
        ParserKind::DetectSecrets
        | ParserKind::PipLicenses
        | ParserKind::Cobertura
        | ParserKind::ExitCode => (&[0], &[]),
        // k6 exits 99 when its own thresholds fail; the budgets decide here.
        ParserKind::K6 => (&[0, 99], &[]),
        ParserKind::Perf => (&[0, 1], &[]),
    }
}

/// Tools whose stdout is a JSON document on every run that completed, findings or none.
fn always_reports(kind: ParserKind) -> bool {
    matches!(
        kind,
        ParserKind::PipAudit
            | ParserKind::Safety
            | ParserKind::Bandit
            | ParserKind::DetectSecrets
            | ParserKind::PipLicenses
            | ParserKind::Trivy
    )
}

/// What a tool's documented exit code means, when it is not one the gate accepts: safety's own
/// codes (`safety/constants.py`: 65 … 69) say why no scan happened.
pub fn exit_meaning(kind: ParserKind, code: i32) -> Option<&'static str> {
    match (kind, code) {
        (ParserKind::Safety, 65) => Some("safety's API key was refused"),
        (ParserKind::Safety, 66) => Some("safety's server answered too many requests"),
        (ParserKind::Safety, 67) => Some("safety could not load its local vulnerability database"),
        (ParserKind::Safety, 68) => Some(
            "safety could not fetch its vulnerability database (no network path to its server?)",
        ),
        (ParserKind::Safety, 69) => Some("safety's vulnerability database is malformed"),
        _ => None,
    }
}

/// How the image provides a tool, for the "missing tool" message.
pub fn install_hint(program: &str) -> String {
    let pip = |pkg: &str| {
        format!(
            "the fm-deploy image ships it in its tools venv; locally: `pip install {pkg}` (or scripts/install-python-tools.sh)"
        )
    };
    match Path::new(program).file_name().and_then(|f| f.to_str()).unwrap_or(program) {
        "black" => pip("black==26.10.1"),
        "flake8" => pip("flake8==7.5.0 flake8-json==24.4.0"),
        "mypy" => pip("mypy==2.4.1"),
        "bandit" => pip("'bandit[sarif]==1.9.4'"),
        "detect-secrets" => pip("detect-secrets==1.5.0"),
        "pip-licenses" => pip("pip-licenses==5.5.5"),
        "pytest" | "coverage" => pip("pytest==9.2.0 pytest-cov==7.1.0 coverage==7.17.5"),
        "pip-audit" => pip("pip-audit==2.10.1"),
        "safety" => pip("safety==2.2.0"),
        "trivy" | "gitleaks" => "it is not in this image or not installed: the published fm-deploy image copies the pinned binary from its release image (an image built with SCANNERS=none has none); elsewhere install it and put it on PATH".into(),
        _ => "add it to the image (a pinned tool stage) or to PATH".into(),
    }
}

/// What the runner captured, as the classifier needs it.
#[derive(Debug, Clone, Copy)]
pub struct Captured<'a> {
    pub status: ExitStatus,
    /// stdout, or the report file's bytes in report mode.
    pub output: &'a [u8],
    pub output_truncated: bool,
    pub stderr: &'a [u8],
}

/// Classifies a run that ended by itself. Pure. Fail closed at every step.
pub fn classify(kind: ParserKind, c: Captured<'_>) -> (GateOutcome, Metrics) {
    let tail = || {
        let t = tail_text(c.stderr, TAIL_BYTES);
        if t.is_empty() {
            tail_text(c.output, TAIL_BYTES)
        } else {
            t
        }
    };
    let crashed = |message: String| {
        (
            GateOutcome::Crashed {
                status: c.status,
                message,
                stderr_tail: tail(),
            },
            Metrics::default(),
        )
    };
    let (ok, finding_codes) = exit_contract(kind);
    let code = match c.status {
        ExitStatus::Code(code) if ok.contains(&code) => code,
        ExitStatus::Code(_) | ExitStatus::Signal(_) => {
            let meaning = match c.status {
                ExitStatus::Code(code) => exit_meaning(kind, code)
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default(),
                ExitStatus::Signal(_) => String::new(),
            };
            let message = format!(
                "ended with {} (expected exit code {}){meaning}",
                c.status,
                list(ok)
            );
            return crashed(message);
        }
    };
    if c.output_truncated {
        let message =
            "output exceeded the output cap (the tool-output budget, `runner.output_cap`) and was cut; it cannot be trusted".to_string();
        return (
            GateOutcome::Unparseable {
                message,
                stderr_tail: tail(),
            },
            Metrics::default(),
        );
    }
    // detect-secrets exits 0 with empty results when it could not list files ("fatal: not a git
    // repository" on stderr): anything on its stderr means the scan is not to be trusted.
    if kind == ParserKind::DetectSecrets && !c.stderr.iter().all(u8::is_ascii_whitespace) {
        let message =
            "detect-secrets reported an error on stderr, the scan is incomplete".to_string();
        return crashed(message);
    }
    if kind == ParserKind::ExitCode {
        return (GateOutcome::Passed, Metrics::default());
    }
    // A tool that always prints a JSON document printed nothing, and said something on stderr: it
    // failed before it wrote a report (pip-audit exits 1 for a traceback as for vulnerabilities).
    // That is a crash, not a report to parse. (black, flake8 and mypy print nothing when clean.)
    if always_reports(kind)
        && c.output.iter().all(u8::is_ascii_whitespace)
        && !c.stderr.iter().all(u8::is_ascii_whitespace)
    {
        let last = tail_text(c.stderr, TAIL_BYTES)
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_default()
            .trim()
            .to_string();
        let message = format!("printed no report (exit code {code}); its stderr ends: {last}");
        return crashed(message);
    }
    let parsed = match parsers::parse(kind, c.output) {
        Ok(p) => p,
        Err(e) => return (unparseable(&e, tail()), Metrics::default()),
    };
    if finding_codes.contains(&code)
        && parsed
            .findings
            .iter()
            .all(|f| f.severity == crate::gates::finding::Severity::Info)
    {
        let message =
            format!("exit code {code} means findings, but none were parsed from its output");
        return (
            GateOutcome::Crashed {
                status: c.status,
                message,
                stderr_tail: tail(),
            },
            parsed.metrics,
        );
    }
    let outcome = if parsed.findings.is_empty() {
        GateOutcome::Passed
    } else {
        GateOutcome::Findings {
            findings: parsed.findings,
        }
    };
    (outcome, parsed.metrics)
}

fn unparseable(e: &ParseError, stderr_tail: String) -> GateOutcome {
    GateOutcome::Unparseable {
        message: e.to_string(),
        stderr_tail,
    }
}

fn list(codes: &[i32]) -> String {
    codes
        .iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(" or ")
}

/// Makes finding paths relative to the workspace: strips the absolute tool working directory
/// (Black, coverage print absolute paths) and prefixes the gate's `working_dir`.
pub fn relativize(findings: &mut [Finding], abs_cwd: &Path, working_dir: Option<&Path>) {
    let cwd = abs_cwd.to_string_lossy().replace('\\', "/");
    let cwd = cwd.trim_end_matches('/');
    let prefix = working_dir
        .map(|w| normalize_path(&w.to_string_lossy()))
        .filter(|w| !w.is_empty() && w != ".");
    for f in findings.iter_mut() {
        let Some(p) = f.path.clone() else { continue };
        let rel = match p.strip_prefix(cwd).and_then(|r| r.strip_prefix('/')) {
            Some(r) => r.to_string(),
            None if p.starts_with('/') => continue,
            None => p,
        };
        let rel = match &prefix {
            Some(w) => format!("{}/{}", w.trim_end_matches('/'), rel),
            None => rel,
        };
        f.path = Some(normalize_path(&rel));
        f.refresh_fingerprint();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gates::parsers::testutil::fixture;

    fn run(kind: ParserKind, code: i32, out: &[u8], err: &[u8]) -> GateOutcome {
        classify(
            kind,
            Captured {
                status: ExitStatus::Code(code),
                output: out,
                output_truncated: false,
                stderr: err,
            },
        )
        .0
    }

    /// pip-audit without pip in its environment: a traceback on stderr, nothing on stdout, exit
    /// code 1 (its "vulnerabilities found" code). A crash naming the last stderr line, not a
    /// parse error; black printing nothing on stdout is a clean run.
    #[test]
    fn no_report_with_stderr_is_a_crash() {
        let err = b"Traceback (most recent call last):\n  File \"x\", line 1\nsubprocess.CalledProcessError: Command '['python3', '-m', 'pip', '--version']' returned non-zero exit status 1.\n";
        match run(ParserKind::PipAudit, 1, b"", err) {
            GateOutcome::Crashed { message, .. } => assert_eq!(
                message,
                "printed no report (exit code 1); its stderr ends: subprocess.CalledProcessError: Command '['python3', '-m', 'pip', '--version']' returned non-zero exit status 1."
            ),
            other => panic!("{other:?}"),
        }
        let done = b"All done! \xe2\x9c\xa8 1 file would be left unchanged.\n";
        assert_eq!(run(ParserKind::Black, 0, b"", done), GateOutcome::Passed);
    }

    /// safety's own exit codes say why it did not scan.
    #[test]
    fn safety_exit_codes_are_named() {
        match run(ParserKind::Safety, 68, b"", b"") {
            GateOutcome::Crashed { message, .. } => assert_eq!(
                message,
                "ended with exit code 68 (expected exit code 0 or 64): safety could not fetch its vulnerability database (no network path to its server?)"
            ),
            other => panic!("{other:?}"),
        }
    }

    /// The recorded broken runs of the real tools all fail their gate.
    #[test]
    fn real_broken_runs_fail_closed() {
        let cases: Vec<(ParserKind, i32, Vec<u8>, Vec<u8>)> = vec![
            (
                ParserKind::Black,
                123,
                fixture("black/broken-syntax.stdout.txt"),
                fixture("black/broken-syntax.stderr.txt"),
            ),
            (
                ParserKind::Flake8Json,
                1,
                fixture("flake8/broken-config.json"),
                fixture("flake8/broken-config.json.stderr.txt"),
            ),
            (
                ParserKind::Bandit,
                0,
                fixture("bandit/broken-syntax.json"),
                vec![],
            ),
            (
                ParserKind::Sarif,
                0,
                fixture("bandit/broken-syntax.sarif"),
                vec![],
            ),
            (
                ParserKind::DetectSecrets,
                0,
                fixture("detect-secrets/broken-not-a-git-repo.json"),
                fixture("detect-secrets/broken-not-a-git-repo.json.stderr.txt"),
            ),
            (
                ParserKind::DetectSecrets,
                1,
                fixture("detect-secrets/broken-bad-baseline.stdout.txt"),
                fixture("detect-secrets/broken-bad-baseline.stderr.txt"),
            ),
            (
                ParserKind::PipLicenses,
                1,
                fixture("pip-licenses/broken-no-python.stdout.txt"),
                fixture("pip-licenses/broken-no-python.stderr.txt"),
            ),
            (
                ParserKind::PipLicenses,
                1,
                fixture("pip-licenses/findings-allow-only.stdout.txt"),
                fixture("pip-licenses/findings-allow-only.stderr.txt"),
            ),
            (
                ParserKind::PipAudit,
                0,
                fixture("pip-audit/all-skipped-pypi-404.json"),
                fixture("pip-audit/all-skipped-pypi-404.json.stderr.txt"),
            ),
            (
                ParserKind::PipAudit,
                1,
                fixture("pip-audit/broken-osv-unreachable.stdout.txt"),
                fixture("pip-audit/broken-osv-unreachable.stderr.txt"),
            ),
            (
                ParserKind::Safety,
                68,
                fixture("safety/broken-no-network.stdout.txt"),
                fixture("safety/broken-no-network.stderr.txt"),
            ),
            (
                ParserKind::Junit,
                5,
                fixture("pytest/no-tests-selected.junit.xml"),
                vec![],
            ),
            (
                ParserKind::Cobertura,
                1,
                fixture("coverage/broken-no-data.stdout.txt"),
                vec![],
            ),
        ];
        for (kind, code, out, err) in cases {
            let o = run(kind, code, &out, &err);
            assert!(!o.parsed_cleanly(), "{kind:?} exit {code} passed: {o:?}");
            assert!(o.failure().is_some());
        }
    }

    /// The recorded findings runs parse to findings with their real exit codes.
    #[test]
    fn real_findings_runs_parse() {
        assert_eq!(
            run(
                ParserKind::Flake8Json,
                1,
                &fixture("flake8/findings.json"),
                &[]
            )
            .findings()
            .len(),
            17
        );
        assert_eq!(
            run(
                ParserKind::Safety,
                64,
                &fixture("safety/findings.json"),
                &[]
            )
            .findings()
            .len(),
            5
        );
        assert_eq!(
            run(
                ParserKind::Black,
                0,
                &fixture("black/clean.stdout.txt"),
                &fixture("black/clean.stderr.txt")
            ),
            GateOutcome::Passed
        );
    }

    /// Exit 137 (killed) and a signal are crashes naming the status.
    #[test]
    fn kill_is_a_crash() {
        let o = run(ParserKind::Flake8Json, 137, b"{}", b"Killed");
        assert!(
            matches!(&o, GateOutcome::Crashed { message, .. } if message.contains("137")),
            "{o:?}"
        );
        let s = classify(
            ParserKind::Mypy,
            Captured {
                status: ExitStatus::Signal(9),
                output: b"",
                output_truncated: false,
                stderr: b"",
            },
        )
        .0;
        assert!(matches!(s, GateOutcome::Crashed { .. }));
    }

    /// Absolute paths under the tool's cwd become workspace-relative, with the working_dir prefix.
    #[test]
    fn relativizes_paths() {
        let mut f =
            crate::gates::parsers::black::parse(&fixture("black/findings.stdout.diff")).unwrap();
        relativize(&mut f, Path::new("/github/workspace/sample-project"), None);
        assert_eq!(f[0].path.as_deref(), Some("certsolver/__init__.py"));
        relativize(&mut f, Path::new("/elsewhere"), Some(Path::new("svc")));
        assert_eq!(f[0].path.as_deref(), Some("svc/certsolver/__init__.py"));
    }
}
