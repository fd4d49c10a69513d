//! Fail closed: a tool that prints garbage, exits 137, hangs past its timeout, floods its output
//! or is missing fails its gate with a message naming the cause, and the run's decision is block.
//! The tool shapes are small scripts written to a temp dir and run by the real process runner.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions fail loudly"
)]

mod support_gates;

use chrono::NaiveDate;
use fm_deploy::gates::outcome::GateOutcome;
use fm_deploy::gates::run::{GateContext, NoLabels, run_gates};
use fm_deploy::gates::runner::{ExecOutcome, ExitStatus, ProcessRunner, ToolCommand, ToolRunner};
use fm_deploy::policy::model::*;
use fm_deploy::verdict::Decision;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support_gates::*;

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn ctx(dir: &Path) -> GateContext {
    GateContext {
        workspace: dir.to_path_buf(),
        phase: GatePhase::PreDeploy,
        environment: None,
        pull_request: None,
        diff_scope: DiffScope::All,
        deploy_url: None,
        image: None,
        today: NaiveDate::from_ymd_opt(2026, 11, 27).unwrap(),
        exceptions_from: Default::default(),
        policy_origin: None,
    }
}

fn pid_alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

/// Each broken shape fails its own gate naming the cause; one good gate still passes; the run blocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_tools_block_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let garbage = script(
        d,
        "garbage.sh",
        "echo 'Traceback (most recent call last): this is not json'",
    );
    let killed = script(d, "killed.sh", "echo 'Killed' >&2; exit 137");
    let hang = script(d, "hang.sh", "sleep 300 &\necho $! > child.pid\nwait");
    let flood = script(d, "flood.sh", "yes '{\"a.py\": []}' | head -c 200000");
    let good = script(d, "good.sh", "echo '{\"./a.py\": []}'");
    let s = |p: &PathBuf| p.display().to_string();
    let mut gates = vec![
        gate("garbage", &[&s(&garbage)], ParserKind::Flake8Json),
        gate("killed", &[&s(&killed)], ParserKind::Flake8Json),
        gate("hang", &[&s(&hang)], ParserKind::Flake8Json),
        gate("flood", &[&s(&flood)], ParserKind::Flake8Json),
        gate(
            "missing",
            &["fm-deploy-no-such-tool", "--check"],
            ParserKind::Black,
        ),
        gate("missing-black", &["black", "--check"], ParserKind::Black),
        gate("good", &[&s(&good)], ParserKind::Flake8Json),
    ];
    gates[2].timeout = Duration::from_secs(1);
    // An empty PATH: `black` cannot be found, so the message must say how the image provides it.
    gates[5]
        .env
        .insert("PATH".into(), d.join("empty-bin").display().to_string());
    let names: Vec<String> = gates.iter().map(|g| g.name.clone()).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut p = policy(gates, vec![tier("basic", &names, None)], vec![], 8);
    p.runner.output_cap = 64 * 1024;
    let started = Instant::now();
    let r = run_gates(&p, &p.tiers["basic"], &ctx(d), &ProcessRunner, &NoLabels).await;
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the hung tool was not killed"
    );

    let reason = |g: &str| {
        r.verdict
            .gates
            .iter()
            .find(|x| x.gate == g)
            .unwrap()
            .reasons
            .join("; ")
    };
    let outcome = |g: &str| r.runs.iter().find(|x| x.gate == g).unwrap().outcome.clone();
    assert!(matches!(
        outcome("garbage"),
        GateOutcome::Unparseable { .. }
    ));
    assert!(
        reason("garbage").contains("unparseable output: parse flake8 json output"),
        "{}",
        reason("garbage")
    );
    assert!(matches!(
        outcome("killed"),
        GateOutcome::Crashed {
            status: ExitStatus::Code(137),
            ..
        }
    ));
    assert!(
        reason("killed").contains("exit code 137"),
        "{}",
        reason("killed")
    );
    assert!(matches!(outcome("hang"), GateOutcome::TimedOut { .. }));
    assert!(
        reason("hang").contains("timed out after 1s"),
        "{}",
        reason("hang")
    );
    assert!(matches!(outcome("flood"), GateOutcome::Unparseable { .. }));
    assert!(
        reason("flood").contains("output cap"),
        "{}",
        reason("flood")
    );
    assert!(
        r.runs
            .iter()
            .find(|x| x.gate == "flood")
            .unwrap()
            .stdout_dropped
            > 0
    );
    assert!(matches!(
        outcome("missing"),
        GateOutcome::FailedToStart { missing: true, .. }
    ));
    assert!(
        reason("missing").contains("`fm-deploy-no-such-tool` was not found on PATH"),
        "{}",
        reason("missing")
    );
    assert!(
        reason("missing-black").contains("pip install black==26.10.1"),
        "{}",
        reason("missing-black")
    );
    assert_eq!(outcome("good"), GateOutcome::Passed);
    for g in &r.verdict.gates {
        let want = if g.gate == "good" {
            Decision::Allow
        } else {
            Decision::Block
        };
        assert_eq!(g.decision, want, "{}", g.gate);
    }
    assert_eq!(r.verdict.decision, Decision::Block);

    // The hung script's background child was in the killed process group: it must be gone.
    let pid: i32 = std::fs::read_to_string(d.join("child.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while pid_alive(pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!pid_alive(pid), "grandchild {pid} survived the group kill");
}

/// A tool killed by a signal is a crash carrying the signal, and stderr is read while stdout is
/// still being written (no pipe deadlock on large stderr).
#[tokio::test]
async fn signal_and_concurrent_stderr() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let sig = script(d, "sig.sh", "kill -9 $$");
    let both = script(
        d,
        "both.sh",
        "head -c 300000 /dev/zero | tr '\\0' e >&2; echo '{}'",
    );
    let cmd = |p: &Path| ToolCommand {
        argv: vec![p.display().to_string()],
        cwd: d.to_path_buf(),
        env: Default::default(),
        timeout: Duration::from_secs(30),
        output_cap: 1 << 20,
    };
    match ProcessRunner.run(&cmd(&sig)).await {
        ExecOutcome::Exited { status, .. } => assert_eq!(status, ExitStatus::Signal(9)),
        other => panic!("{other:?}"),
    }
    match ProcessRunner.run(&cmd(&both)).await {
        ExecOutcome::Exited {
            status,
            stdout,
            stderr,
            ..
        } => {
            assert_eq!(status, ExitStatus::Code(0));
            assert_eq!(stdout.bytes, b"{}\n");
            assert_eq!(stderr.bytes.len(), 300000);
        }
        other => panic!("{other:?}"),
    }
}

/// A report file left by an earlier run is removed first: a tool that writes none fails the gate.
#[tokio::test]
async fn stale_report_is_never_read() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::create_dir_all(d.join("reports")).unwrap();
    std::fs::copy(
        repo_root().join("tests/fixtures/pytest/clean.junit.xml"),
        d.join("reports/junit.xml"),
    )
    .unwrap();
    let noop = script(d, "noop.sh", "exit 0");
    let mut g = gate(
        "unit-tests",
        &[&noop.display().to_string()],
        ParserKind::Junit,
    );
    g.report = Some("reports/junit.xml".into());
    let p = policy(
        vec![g],
        vec![tier("basic", &["unit-tests"], None)],
        vec![],
        1,
    );
    let r = run_gates(&p, &p.tiers["basic"], &ctx(d), &ProcessRunner, &NoLabels).await;
    assert!(
        matches!(&r.runs[0].outcome, GateOutcome::Unparseable { message, .. } if message.contains("reports/junit.xml")),
        "{:?}",
        r.runs[0].outcome
    );
    assert_eq!(r.verdict.decision, Decision::Block);
}
