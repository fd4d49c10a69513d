//! Benchmark driver for the gates (see `scripts/bench-gates.sh` and the `## Gates` section of
//! BENCHMARKS.md). Modes:
//!
//! - `gen-sarif N FILE`: writes a SARIF 2.1.0 log with N results (50 rules, realistic fields);
//! - `gen-flake8 N FILE`: writes flake8-json output with N violations over N/20 files;
//! - `parse KIND FILE`: reads FILE into memory (as the runner holds a tool's stdout) and parses it
//!   with the gate parser KIND (`sarif`, `flake8-json`); prints the number of findings;
//! - `stream KIND FILE`: the same through the streaming reader (report-file mode);
//! - `sleep GATES PARALLELISM`: runs GATES gates of `sleep 1` through `run_gates` with the real
//!   process runner and prints the wall time in milliseconds.

use std::io::Write;
use std::time::{Duration, Instant};

fn gen_sarif(n: usize, out: &mut impl Write) -> std::io::Result<()> {
    write!(
        out,
        r#"{{"$schema":"https://json.schemastore.org/sarif-2.1.0.json","version":"2.1.0","runs":[{{"tool":{{"driver":{{"name":"Bandit","rules":["#
    )?;
    for r in 0..50 {
        if r > 0 {
            write!(out, ",")?;
        }
        write!(
            out,
            r#"{{"id":"B{r:03}","name":"rule_{r}","helpUri":"https://bandit.readthedocs.io/en/1.9.4/plugins/b{r:03}.html","properties":{{"tags":["security"],"precision":"high"}}}}"#
        )?;
    }
    write!(out, r#"]}}}},"results":["#)?;
    let sev = ["LOW", "MEDIUM", "HIGH"];
    for i in 0..n {
        if i > 0 {
            write!(out, ",")?;
        }
        let r = i % 50;
        let line = 1 + (i * 7) % 900;
        write!(
            out,
            r#"{{"message":{{"text":"Possible issue number {i}: call to a function that may be unsafe with untrusted input"}},"locations":[{{"physicalLocation":{{"region":{{"snippet":{{"text":"    value = call(arg_{i})\n"}},"endColumn":30,"endLine":{line},"startColumn":5,"startLine":{line}}},"artifactLocation":{{"uri":"pkg/module_{m}/file_{f}.py"}}}}}}],"properties":{{"issue_confidence":"HIGH","issue_severity":"{s}"}},"ruleId":"B{r:03}","ruleIndex":{r}}}"#,
            m = i % 97,
            f = i % 13,
            s = sev[i % 3]
        )?;
    }
    write!(out, "]}}]}}")
}

fn gen_flake8(n: usize, out: &mut impl Write) -> std::io::Result<()> {
    let files = (n / 20).max(1);
    write!(out, "{{")?;
    let codes = ["E501", "W291", "F401", "E225", "C901", "E231"];
    let mut written = 0;
    for f in 0..files {
        if f > 0 {
            write!(out, ", ")?;
        }
        write!(out, r#""./pkg/module_{f}.py": ["#)?;
        let per = if f + 1 == files {
            n - written
        } else {
            n / files
        };
        for j in 0..per {
            if j > 0 {
                write!(out, ", ")?;
            }
            let c = codes[(f + j) % codes.len()];
            write!(
                out,
                r#"{{"code": "{c}", "filename": "./pkg/module_{f}.py", "line_number": {l}, "column_number": {col}, "text": "violation {c} found here in module {f}", "physical_line": "    x = some_call(a,b)  \n"}}"#,
                l = j + 1,
                col = 1 + j % 80
            )?;
        }
        written += per;
        write!(out, "]")?;
    }
    write!(out, "}}")
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let mut stdout = std::io::stdout().lock();
    match args.get(1).map(String::as_str) {
        Some(mode @ ("gen-sarif" | "gen-flake8")) => {
            let n: usize = args
                .get(2)
                .ok_or_else(|| anyhow::anyhow!("N missing"))?
                .parse()?;
            let path = args.get(3).ok_or_else(|| anyhow::anyhow!("FILE missing"))?;
            let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
            if mode == "gen-sarif" {
                gen_sarif(n, &mut w)?
            } else {
                gen_flake8(n, &mut w)?
            }
            w.flush()?;
        }
        Some("stream") => {
            let kind = args.get(2).ok_or_else(|| anyhow::anyhow!("KIND missing"))?;
            let path = args.get(3).ok_or_else(|| anyhow::anyhow!("FILE missing"))?;
            let file = std::io::BufReader::with_capacity(256 * 1024, std::fs::File::open(path)?);
            let n = match kind.as_str() {
                "sarif" => fm_deploy::gates::parsers::sarif::parse_reader(file)?.len(),
                "flake8-json" => fm_deploy::gates::parsers::flake8::parse_json_reader(file)?.len(),
                other => anyhow::bail!("unknown kind {other}"),
            };
            writeln!(stdout, "{n}")?;
        }
        Some("parse") => {
            let kind = args.get(2).ok_or_else(|| anyhow::anyhow!("KIND missing"))?;
            let path = args.get(3).ok_or_else(|| anyhow::anyhow!("FILE missing"))?;
            let bytes = std::fs::read(path)?;
            let n = match kind.as_str() {
                "sarif" => fm_deploy::gates::parsers::sarif::parse(&bytes)?.len(),
                "flake8-json" => fm_deploy::gates::parsers::flake8::parse_json(&bytes)?.len(),
                other => anyhow::bail!("unknown kind {other}"),
            };
            writeln!(stdout, "{n}")?;
        }
        Some("sleep") => {
            use fm_deploy::gates::run::{GateContext, NoLabels, run_gates};
            use fm_deploy::policy::model::*;
            let gates: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(8);
            let par: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(8);
            let text = format!(
                "version: 1\napp: {{name: bench, image: example/bench, port: 8080}}\nbranches:\n  main: {{tier: t}}\ntiers:\n  t: [{}]\ngates:\n{}runner: {{parallelism: {par}}}\n",
                (0..gates)
                    .map(|i| format!("s{i}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                (0..gates)
                    .map(|i| format!("  s{i}: {{run: [sleep, \"1\"], parser: exit-code}}\n"))
                    .collect::<String>()
            );
            let policy = fm_deploy::policy::load_str(&text, std::path::Path::new("bench.yml"))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let tier = policy
                .tiers
                .get("t")
                .ok_or_else(|| anyhow::anyhow!("no tier"))?
                .clone();
            let ctx = GateContext {
                workspace: std::env::current_dir()?,
                phase: GatePhase::PreDeploy,
                environment: None,
                pull_request: None,
                diff_scope: DiffScope::All,
                deploy_url: None,
                image: None,
                today: chrono::Utc::now().date_naive(),
                exceptions_from: Default::default(),
                policy_origin: None,
            };
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let started = Instant::now();
            let report = rt.block_on(run_gates(
                &policy,
                &tier,
                &ctx,
                &fm_deploy::gates::runner::ProcessRunner,
                &NoLabels,
            ));
            let wall: Duration = started.elapsed();
            writeln!(
                stdout,
                "{} {:.1}",
                report.verdict.decision,
                wall.as_secs_f64() * 1000.0
            )?;
        }
        _ => anyhow::bail!(
            "usage: gates_bench gen-sarif N FILE | gen-flake8 N FILE | parse KIND FILE | sleep GATES PAR"
        ),
    }
    Ok(())
}
