//! The policy's `install:` step: the project's dependencies go into their own virtualenv outside
//! the checkout, where pytest imports them and pip-licenses lists them (and not the gate tools).
//! Offline: the dependency is a wheel built here.

mod support_gates;

use fm_deploy::gates::outcome::GateOutcome;
use fm_deploy::gates::run::{GateContext, GatesReport, NoLabels, run_gates};
use fm_deploy::policy::model::{ParserKind, Policy};
use fm_deploy::verdict::Decision;
use std::path::Path;
use support_gates::*;

/// The basic tier of [`install_policy`] on `dir`, tools first on PATH.
async fn decide(bin: &Path, dir: &Path, install: Vec<String>) -> GatesReport {
    let p = install_policy(install);
    let runner = WithPath(format!("{}:/usr/bin:/bin", bin.display()));
    run_gates(
        &p,
        &p.tiers["basic"],
        &GateContext::new(dir),
        &runner,
        &NoLabels,
    )
    .await
}

/// Writes `fmdep_probe-1.0-py3-none-any.whl` (licence MIT, `VALUE = 42`) into `dir`.
fn probe_wheel(bin: &Path, dir: &Path) -> std::path::PathBuf {
    const SCRIPT: &str = r#"
import sys, zipfile
files = {
    "fmdep_probe/__init__.py": "VALUE = 42\n",
    "fmdep_probe-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: fmdep-probe\nVersion: 1.0\nLicense: MIT\n",
    "fmdep_probe-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: fm-deploy-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
}
files["fmdep_probe-1.0.dist-info/RECORD"] = "".join(f"{k},,\n" for k in files) + "fmdep_probe-1.0.dist-info/RECORD,,\n"
with zipfile.ZipFile(sys.argv[1], "w") as z:
    for k, v in files.items():
        z.writestr(k, v)
"#;
    let whl = dir.join("fmdep_probe-1.0-py3-none-any.whl");
    let st = std::process::Command::new(bin.join("python"))
        .args(["-c", SCRIPT])
        .arg(&whl)
        .status()
        .unwrap_or_else(|e| panic!("run python: {e}"));
    assert!(st.success() && whl.is_file());
    whl
}

fn install_policy(install: Vec<String>) -> Policy {
    let mut tests = gate(
        "deps-tests",
        &[
            "pytest",
            "tests/unit/test_dep.py",
            "-q",
            "--junitxml={out}/u.xml",
        ],
        ParserKind::Junit,
    );
    tests.report = Some("{out}/u.xml".into());
    tests
        .env
        .insert("PYTHONPATH".into(), "{site_packages}".into());
    let licenses = gate(
        "licenses",
        &["pip-licenses", "--python", "{python}", "--format=json"],
        ParserKind::PipLicenses,
    );
    let mut p = policy(
        vec![tests, licenses],
        vec![tier("basic", &["deps-tests", "licenses"], None)],
        vec![],
        2,
    );
    p.install = install;
    p
}

/// pytest (the action's) imports a dependency the install step put into the project's venv, and
/// pip-licenses run against `{python}` lists that dependency and none of the gate tools.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gates_see_the_installed_project_dependencies() {
    let bin = python_tools();
    let wheels = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let whl = probe_wheel(&bin, wheels.path());
    let dir = project("sample-project");
    std::fs::write(
        dir.path().join("tests/unit/test_dep.py"),
        "import fmdep_probe\n\n\ndef test_dep():\n    assert fmdep_probe.VALUE == 42\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let install = ["pip", "install", "-q", "--no-index"]
        .map(String::from)
        .into_iter()
        .chain([whl.display().to_string()])
        .collect();
    let r = decide(&bin, dir.path(), install).await;
    let run = |g: &str| {
        r.runs
            .iter()
            .find(|x| x.gate == g)
            .unwrap_or_else(|| panic!("{g}"))
    };
    let t = run("deps-tests");
    assert_eq!(t.outcome, GateOutcome::Passed, "{:?}", t.outcome);
    assert_eq!(t.metrics.tests.map(|c| c.tests), Some(1));
    let l = run("licenses");
    assert!(l.outcome.parsed_cleanly(), "{:?}", l.outcome);
    let names: Vec<&str> = l.metrics.packages.iter().map(|p| p.name.as_str()).collect();
    assert!(names.contains(&"fmdep-probe"), "{names:?}");
    assert!(
        !names
            .iter()
            .any(|n| ["black", "mypy", "pytest", "bandit"].contains(n)),
        "the gate tools are not the app's dependencies: {names:?}"
    );
    assert_eq!(r.verdict.decision, Decision::Allow, "{:?}", r.verdict);
}

/// An install that fails fails every gate that runs a tool, with pip's own words in the message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_install_fails_closed_with_its_output() {
    let bin = python_tools();
    let dir = project("sample-project");
    let install = ["pip", "install", "--no-index", "fmdep-not-there==9.9"]
        .map(String::from)
        .to_vec();
    let r = decide(&bin, dir.path(), install).await;
    for run in &r.runs {
        match &run.outcome {
            GateOutcome::FailedToStart { message, .. } => {
                assert!(
                    message.contains("the install step (`pip install --no-index fmdep-not-there==9.9`) ended with exit code 1")
                        && message.contains("No matching distribution found for fmdep-not-there==9.9"),
                    "{message}"
                );
            }
            other => panic!("{}: {other:?}", run.gate),
        }
    }
    assert_eq!(r.verdict.decision, Decision::Block);
}
