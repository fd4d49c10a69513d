//! The binary against hostile input: alias bombs, deep nesting and gigabyte files in every place
//! untrusted input enters (policy, event payload, tool report, tool output, exceptions file) are
//! refused with a message naming the budget, within a bounded peak memory of the child.
//!
//! Wall time and peak RSS of each run are printed (`cargo nextest run --test budgets_cli
//! --no-capture`); only the memory bound is asserted. Peak RSS is read with `getrusage
//! (RUSAGE_CHILDREN)` after the child is reaped: nextest runs each test in its own process, so it
//! is this test's child (or, under `cargo test`, the largest child of the binary — still an upper
//! bound).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly on the first surprise"
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const BIN: &str = env!("CARGO_BIN_EXE_fm-deploy");

/// The memory bound of the issue: refusing hostile input stays under 150 MB.
const MAX_RSS_BYTES: u64 = 150 * 1024 * 1024;

const GIB: u64 = 1024 * 1024 * 1024;

struct Run {
    code: Option<i32>,
    text: String,
    peak_rss: u64,
}

/// Runs the binary and measures it.
fn run(name: &str, mut cmd: Command) -> Run {
    let started = Instant::now();
    let out = cmd.output().unwrap();
    let elapsed = started.elapsed();
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .expect("getrusage");
    // Linux reports ru_maxrss in KiB.
    let peak_rss = u64::try_from(usage.max_rss()).unwrap_or(0) * 1024;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "{name}: exit {:?} in {:.3} s, peak RSS {:.1} MB",
        out.status.code(),
        elapsed.as_secs_f64(),
        peak_rss as f64 / 1e6
    );
    let r = Run {
        code: out.status.code(),
        text,
        peak_rss,
    };
    assert!(
        r.peak_rss < MAX_RSS_BYTES,
        "{name}: peak RSS {} bytes is over the bound\n{}",
        r.peak_rss,
        r.text
    );
    r
}

/// A workspace holding `policy` at `.github/fm-deploy.yml`.
fn workspace(policy: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    std::fs::create_dir_all(ws.join(".github")).unwrap();
    std::fs::write(ws.join(".github/fm-deploy.yml"), policy).unwrap();
    (dir, ws)
}

/// `fm-deploy <command>` on a terminal, in `ws`, for branch `main`.
fn cli(command: &str, ws: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(ws)
        .args([command, "--branch", "main", "--sha", "abc"])
        .arg("--summary")
        .arg(ws.join("report.md"));
    cmd
}

/// A sparse file of `len` bytes: made instantly, reads as zeros.
fn sparse(path: &Path, len: u64) {
    std::fs::File::create(path).unwrap().set_len(len).unwrap();
}

/// A one-gate policy: the gate runs `run` and reads its output with `parser` (from `report`
/// when given).
fn gate_policy(run: &str, parser: &str, report: Option<&str>, extra: &str) -> String {
    let report = report
        .map(|r| format!("    report: {r}\n"))
        .unwrap_or_default();
    format!(
        "version: 1\napp: {{name: fm-llm-solver-web, image: ghcr.io/org/fm-llm-solver, port: 8080, health_path: /health}}\nbranches:\n  main: {{tier: basic}}\ntiers:\n  basic: {{gates: [hostile]}}\ngates:\n  hostile:\n    run: {run}\n    parser: {parser}\n{report}{extra}"
    )
}

/// `levels` levels of nine aliases each: 9^levels nodes once expanded, in a few hundred bytes.
fn alias_bomb(levels: usize) -> String {
    let mut bomb = String::from("version: 1\nx0: &x0 [lol]\n");
    for i in 1..=levels {
        let p = i - 1;
        let refs = vec![format!("*x{p}"); 9].join(",");
        bomb.push_str(&format!("x{i}: &x{i} [{refs}]\n"));
    }
    bomb
}

/// The alias bomb (seven levels took 1.9 GB, eight killed the job) and one of twelve
/// levels: refused at the alias that goes over the node budget, exit 2, bounded memory.
#[test]
fn policy_alias_bomb_is_refused() {
    for levels in [7, 8, 12] {
        let (_dir, ws) = workspace(&alias_bomb(levels));
        let r = run(
            &format!("plan, {levels}-level alias bomb"),
            cli("plan", &ws),
        );
        assert_eq!(r.code, Some(2), "{}", r.text);
        assert!(r.text.contains("(the node budget)"), "{}", r.text);
    }
}

/// Nesting past the depth budget — flow or block style — is refused by the depth budget, and a
/// megabyte of `[` (nesting a recursive reader would overflow on) by the scanner's own limit;
/// exit 2 every time.
#[test]
fn policy_deep_nesting_is_refused() {
    let block: String = (0..200)
        .map(|i| format!("{}a:\n", "  ".repeat(i)))
        .collect();
    for (name, text, budget) in [
        ("200 levels of [", "[".repeat(200), true),
        ("200 levels of block mappings", block, true),
        ("1 MB of [", "[".repeat(1024 * 1000), false),
    ] {
        let (_dir, ws) = workspace(&text);
        let r = run(&format!("plan, {name}"), cli("plan", &ws));
        assert_eq!(r.code, Some(2), "{}", r.text);
        assert!(
            !budget || r.text.contains("(the depth budget)"),
            "{name}: {}",
            r.text
        );
    }
}

/// A 1 GiB policy file is refused from its length, before it is read: exit 2.
#[test]
fn gigabyte_policy_is_refused() {
    let (_dir, ws) = workspace("");
    sparse(&ws.join(".github/fm-deploy.yml"), GIB);
    let r = run("plan, 1 GiB policy", cli("plan", &ws));
    assert_eq!(r.code, Some(2), "{}", r.text);
    assert!(
        r.text
            .contains("accept policy file of 1073741824 bytes: the size budget is 1048576 bytes"),
        "{}",
        r.text
    );
}

/// A 1 GiB event payload at `GITHUB_EVENT_PATH` is refused before it is read: exit 2.
#[test]
fn gigabyte_event_payload_is_refused() {
    let (dir, ws) = workspace(&gate_policy("[true]", "exit-code", None, ""));
    let payload = dir.path().join("event.json");
    sparse(&payload, GIB);
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_EVENT_NAME", "pull_request")
        .env("GITHUB_EVENT_PATH", &payload)
        .env("GITHUB_WORKSPACE", &ws)
        .env("GITHUB_REPOSITORY", "org/fm-llm-solver")
        .env("INPUT_COMMAND", "plan");
    let r = run("plan, 1 GiB event payload", cmd);
    assert_eq!(r.code, Some(2), "{}", r.text);
    assert!(
        r.text.contains("accept event payload of 1073741824 bytes"),
        "{}",
        r.text
    );
}

/// A tool that leaves a 1 GiB report fails its gate closed, naming the output cap, without the
/// report being read.
#[test]
fn gigabyte_report_fails_its_gate() {
    let (_dir, ws) = workspace(&gate_policy(
        "[truncate, -s, 1G, out.sarif]",
        "sarif",
        Some("out.sarif"),
        "",
    ));
    let r = run("gates, 1 GiB report file", cli("gates", &ws));
    assert_eq!(r.code, Some(1), "{}", r.text);
    assert!(r.text.contains("unparseable"), "{}", r.text);
    assert!(r.text.contains("`runner.output_cap`"), "{}", r.text);
}

/// A tool that prints 1 GiB fails its gate closed: the runner keeps the cap and drops the rest.
#[test]
fn gigabyte_stdout_fails_its_gate() {
    let (_dir, ws) = workspace(&gate_policy(
        "[head, -c, 1G, /dev/zero]",
        "flake8",
        None,
        "",
    ));
    let r = run("gates, 1 GiB on stdout", cli("gates", &ws));
    assert_eq!(r.code, Some(1), "{}", r.text);
    assert!(r.text.contains("`runner.output_cap`"), "{}", r.text);
}

/// A 1 GiB exceptions file is refused before it is read: no exception applies (the run only gets
/// stricter) and the note names the budget.
#[test]
fn gigabyte_exceptions_file_is_refused() {
    let extra = "overrides:\n  exceptions_file: .github/exceptions.yml\n";
    let (_dir, ws) = workspace(&gate_policy("[true]", "exit-code", None, extra));
    sparse(&ws.join(".github/exceptions.yml"), GIB);
    let r = run("gates, 1 GiB exceptions file", cli("gates", &ws));
    assert!(
        r.text.contains(
            "accept exceptions file of 1073741824 bytes: the size budget is 1048576 bytes"
        ),
        "{}",
        r.text
    );
}

/// The policy (from the pull request) cannot lift the output cap past the tool-output budget.
#[test]
fn output_cap_cannot_exceed_the_budget() {
    let extra = "runner:\n  output_cap: 1073741824\n";
    let (_dir, ws) = workspace(&gate_policy("[true]", "exit-code", None, extra));
    let r = run("plan, output_cap 1 GiB", cli("plan", &ws));
    assert_eq!(r.code, Some(2), "{}", r.text);
    assert!(
        r.text
            .contains("1073741824 is over the tool-output budget of 268435456 bytes"),
        "{}",
        r.text
    );
}
