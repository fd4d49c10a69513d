//! Report-only gates: the JUnit and Cobertura files the test matrix's jobs uploaded, merged into
//! one gate result.
//!
//! Layout: each matrix job uploads its reports as an artifact named after its cell
//! (`tests-ubuntu-latest-py3.10`, see [`crate::matrix::Cell::name`]); the gates job downloads
//! them all into `reports/`, one folder per artifact. The gate's `report:` (and `coverage:`) holds
//! one `*`: `reports/tests-*/junit.xml`; the text the `*` matches is the cell's name.
//!
//! Findings of every cell are kept, each message starting with its cell (`[windows-latest-py3.9]`);
//! test counts add up; coverage is the union of the lines covered in any cell
//! ([`cobertura::merged_rate`]). A cell of the tier's matrix without a report fails the gate
//! naming it: a job that never uploaded proved nothing.
//!
//! Owns: expanding the glob, reading and merging the cells' reports. Must not touch: running
//! tools, the verdict.

use crate::gates::outcome::GateOutcome;
use crate::gates::parsers::{self, Metrics, TestCounts, cobertura};
use crate::gates::run::{GateRun, read_capped, tidy_findings};
use crate::policy::model::{GateSpec, ParserKind};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::time::Instant;

/// Files matching `pattern` under `workspace`, by cell name. A pattern without `*` is one file
/// under the empty cell name (when it exists).
pub fn expand(workspace: &Path, pattern: &Path) -> std::io::Result<BTreeMap<String, PathBuf>> {
    let parts: Vec<String> = pattern
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let mut out = BTreeMap::new();
    let Some(i) = parts.iter().position(|p| p.contains('*')) else {
        let p = workspace.join(pattern);
        if p.is_file() {
            out.insert(String::new(), p);
        }
        return Ok(out);
    };
    let (prefix, suffix) = parts[i].split_once('*').unwrap_or((&parts[i], ""));
    let parent: PathBuf = parts[..i]
        .iter()
        .fold(workspace.to_path_buf(), |p, c| p.join(c));
    let entries = match std::fs::read_dir(&parent) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(cell) = name
            .strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(suffix))
            .filter(|c| !c.is_empty())
        else {
            continue;
        };
        let file = parts[i + 1..].iter().fold(entry.path(), |p, c| p.join(c));
        if file.is_file() {
            out.insert(cell.to_string(), file);
        }
    }
    Ok(out)
}

/// What the expected cells' reports were missing, or the first unreadable one.
fn gather(
    workspace: &Path,
    pattern: &Path,
    expected: Option<&[String]>,
) -> Result<BTreeMap<String, PathBuf>, String> {
    let found = expand(workspace, pattern)
        .map_err(|e| format!("list the reports matching {}: {e}", pattern.display()))?;
    let missing: Vec<String> = match expected {
        Some(cells) if pattern.to_string_lossy().contains('*') => cells
            .iter()
            .filter(|c| !found.contains_key(*c))
            .map(|c| {
                let p = pattern.to_string_lossy().replacen('*', c, 1);
                format!("`{c}` (no {p})")
            })
            .collect(),
        _ => Vec::new(),
    };
    if !missing.is_empty() {
        return Err(format!(
            "no report from matrix cell(s) {}: each cell's job must upload its reports",
            missing.join(", ")
        ));
    }
    if found.is_empty() {
        return Err(format!("no report matches {}", pattern.display()));
    }
    Ok(found)
}

/// Runs a report-only gate: reads each cell's report (and coverage) and merges them.
/// `expected` is the tier's matrix cells (`None` when the tier has no matrix).
pub async fn run(
    spec: &GateSpec,
    workspace: &Path,
    expected: Option<&[String]>,
    output_cap: u64,
) -> GateRun {
    let started = Instant::now();
    let mut run = GateRun {
        gate: spec.name.clone(),
        parser: spec.parser,
        argv: Vec::new(),
        outcome: GateOutcome::Passed,
        metrics: Metrics::default(),
        elapsed: std::time::Duration::ZERO,
        stdout_dropped: 0,
        stderr_dropped: 0,
    };
    let result = merge(
        spec,
        workspace,
        expected,
        output_cap,
        &mut run.stdout_dropped,
    )
    .await;
    run.elapsed = started.elapsed();
    match result {
        Ok((outcome, metrics)) => {
            run.outcome = outcome;
            run.metrics = metrics;
        }
        Err(message) => {
            run.outcome = GateOutcome::Unparseable {
                message,
                stderr_tail: String::new(),
            }
        }
    }
    if let GateOutcome::Findings { findings } = &mut run.outcome {
        tidy_findings(findings, spec, workspace);
    }
    run
}

async fn read_all(
    files: &BTreeMap<String, PathBuf>,
    cap: u64,
    dropped: &mut u64,
) -> Result<Vec<(String, PathBuf, Vec<u8>)>, String> {
    let mut out = Vec::new();
    for (cell, path) in files {
        let c = read_capped(path, cap)
            .await
            .map_err(|e| format!("read report file {}: {e}", path.display()))?;
        if c.truncated() {
            *dropped += c.dropped;
            return Err(format!(
                "report file {} exceeds the output cap and cannot be trusted",
                path.display()
            ));
        }
        out.push((cell.clone(), path.clone(), c.bytes));
    }
    Ok(out)
}

fn cell_tag(cell: &str) -> String {
    if cell.is_empty() {
        String::new()
    } else {
        format!("[{cell}] ")
    }
}

async fn merge(
    spec: &GateSpec,
    workspace: &Path,
    expected: Option<&[String]>,
    cap: u64,
    dropped: &mut u64,
) -> Result<(GateOutcome, Metrics), String> {
    let report = spec
        .report
        .as_deref()
        .ok_or_else(|| "a report-only gate needs `report`".to_string())?;
    let reports = read_all(&gather(workspace, report, expected)?, cap, dropped).await?;
    let mut findings = Vec::new();
    let mut tests: Option<TestCounts> = None;
    let mut lines = Vec::new();
    for (cell, path, bytes) in &reports {
        let where_ = || format!("{}report file {}", cell_tag(cell), path.display());
        if spec.parser == ParserKind::Cobertura {
            lines.push(cobertura::lines(bytes).map_err(|e| format!("{}: {e}", where_()))?);
            continue;
        }
        let parsed =
            parsers::parse(spec.parser, bytes).map_err(|e| format!("{}: {e}", where_()))?;
        if let Some(t) = parsed.metrics.tests {
            let sum = tests.get_or_insert_with(TestCounts::default);
            sum.tests += t.tests;
            sum.failures += t.failures;
            sum.errors += t.errors;
            sum.skipped += t.skipped;
        }
        for mut f in parsed.findings {
            f.message = format!("{}{}", cell_tag(cell), f.message);
            f.refresh_fingerprint();
            findings.push(f);
        }
    }
    if let Some(cov) = spec.coverage.as_deref() {
        for (cell, path, bytes) in
            read_all(&gather(workspace, cov, expected)?, cap, dropped).await?
        {
            let l = cobertura::lines(&bytes)
                .map_err(|e| format!("{}coverage file {}: {e}", cell_tag(&cell), path.display()))?;
            lines.push(l);
        }
    }
    let coverage =
        if lines.is_empty() {
            None
        } else {
            Some(cobertura::merged_rate(&lines).ok_or_else(|| {
                "the coverage reports list no line: nothing was measured".to_string()
            })?)
        };
    let metrics = Metrics {
        coverage,
        tests,
        ..Metrics::default()
    };
    let outcome = if findings.is_empty() {
        GateOutcome::Passed
    } else {
        GateOutcome::Findings { findings }
    };
    Ok((outcome, metrics))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `*` names the cell; folders that do not match or lack the file are not cells.
    #[test]
    fn expand_names_cells_by_the_star() {
        let d = tempfile::tempdir().unwrap();
        for c in [
            "tests-ubuntu-latest-py3.10",
            "tests-windows-latest-py3.11",
            "other",
        ] {
            std::fs::create_dir_all(d.path().join("reports").join(c)).unwrap();
            std::fs::write(d.path().join("reports").join(c).join("junit.xml"), "x").unwrap();
        }
        std::fs::create_dir_all(d.path().join("reports/tests-empty")).unwrap();
        let got = expand(d.path(), Path::new("reports/tests-*/junit.xml")).unwrap();
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            ["ubuntu-latest-py3.10", "windows-latest-py3.11"]
        );
        let err = gather(
            d.path(),
            Path::new("reports/tests-*/junit.xml"),
            Some(&[
                "ubuntu-latest-py3.10".to_string(),
                "macos-latest-py3.12".to_string(),
            ]),
        )
        .unwrap_err();
        assert!(
            err.contains("`macos-latest-py3.12` (no reports/tests-macos-latest-py3.12/junit.xml)"),
            "{err}"
        );
    }
}
