//! The runtime's file and command formats, checked against re-implementations of how the GitHub
//! runner reads them (`actions/runner`: `FileCommandManager` for `GITHUB_OUTPUT`, `ActionCommand`
//! unescaping for workflow commands), and one run's plumbing end to end with a real event payload.

use std::collections::BTreeMap;
use std::path::Path;

use fm_deploy::inputs::{GithubContext, RawInputs};
use fm_deploy::runtime::{
    Annotation, BufferConsole, Level, OutputKey, Runtime, escape_data, escape_property,
    format_annotation, format_output,
};
use proptest::prelude::*;

/// The runner's reading of a `GITHUB_OUTPUT` file: `key=value` lines, or `key<<DELIM` … `DELIM`
/// (the runner's `ReadLine` splits on `\n`, `\r\n` and a bare `\r`).
fn runner_parse_outputs(text: &str) -> Result<Vec<(String, String)>, String> {
    let normalized = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut lines = normalized.split('\n').peekable();
    let mut out = Vec::new();
    while let Some(line) = lines.next() {
        if line.is_empty() {
            continue;
        }
        let eq = line.find('=');
        let heredoc = line.find("<<");
        match (eq, heredoc) {
            (Some(e), h) if h.is_none_or(|h| e < h) => {
                out.push((line[..e].to_owned(), line[e + 1..].to_owned()));
            }
            (_, Some(h)) => {
                let (key, delim) = (&line[..h], &line[h + 2..]);
                let mut value = Vec::new();
                loop {
                    match lines.next() {
                        Some(l) if l == delim => break,
                        Some(l) => value.push(l),
                        None => return Err(format!("missing delimiter {delim}")),
                    }
                }
                out.push((key.to_owned(), value.join("\n")));
            }
            (None, None) | (Some(_), None) => return Err(format!("invalid line {line:?}")),
        }
    }
    Ok(out)
}

/// The runner's unescaping of command data and property values.
fn runner_unescape(s: &str) -> String {
    s.replace("%0D", "\r")
        .replace("%0A", "\n")
        .replace("%3A", ":")
        .replace("%2C", ",")
        .replace("%25", "%")
}

proptest! {
    /// Any value (without a carriage return) written as an output reads back unchanged, and never
    /// produces a second key — whatever delimiter-like or `key=value` text it contains.
    #[test]
    fn outputs_round_trip(value in "(ghadelimiter_[0-9a-f]{0,4}|[a-z=<>{}\"]{0,6}|\n|decision=allow){0,12}") {
        let entry = format_output("report", &value).unwrap();
        let parsed = runner_parse_outputs(&entry).unwrap();
        prop_assert_eq!(parsed, vec![("report".to_owned(), value)]);
    }

    /// With carriage returns the runner may rewrite line breaks, but a value still sets exactly
    /// one output.
    #[test]
    fn outputs_never_inject(value in "(\r|\n|\r\n|x=y|a<<b|ghadelimiter_){0,10}") {
        let entry = format_output("matrix", &value).unwrap();
        let parsed = runner_parse_outputs(&entry).unwrap();
        prop_assert_eq!(parsed.len(), 1);
        prop_assert_eq!(&parsed[0].0, "matrix");
    }

    /// Escaped data and properties are single-line, carry no separator the runner would split on,
    /// and unescape to the original.
    #[test]
    fn escaping_round_trips(s in "(%|%0A|%25|:|,|\r|\n|::|[a-z ]){0,20}") {
        let d = escape_data(&s);
        prop_assert!(!d.contains(['\r', '\n']));
        prop_assert_eq!(runner_unescape(&d), s.clone());
        let p = escape_property(&s);
        prop_assert!(!p.contains(['\r', '\n', ':', ',']));
        prop_assert_eq!(runner_unescape(&p), s);
    }

    /// An annotation is one line whose properties and message unescape to what was given.
    #[test]
    fn annotation_is_one_line(title in "[a-z:, %\n]{0,12}", msg in "[a-z:, %\n]{0,30}", line in 1u32..5000) {
        let mut a = Annotation::new(Level::Warning, msg.clone());
        a.file = Some("src/a,b:c.py".to_owned());
        a.line = Some(line);
        a.title = Some(title.clone());
        let text = format_annotation(&a);
        prop_assert!(!text.contains('\n'));
        let rest = text.strip_prefix("::warning ").unwrap();
        let (props, message) = rest.split_once("::").unwrap();
        prop_assert_eq!(runner_unescape(message), msg);
        let props: BTreeMap<&str, String> = props
            .split(',')
            .map(|kv| { let (k, v) = kv.split_once('=').unwrap(); (k, runner_unescape(v)) })
            .collect();
        prop_assert_eq!(props.get("title"), Some(&title));
        prop_assert_eq!(props.get("file").map(String::as_str), Some("src/a,b:c.py"));
        prop_assert_eq!(props.get("line"), Some(&line.to_string()));
    }
}

/// One run's plumbing with the variables GitHub sets for a push: context from a real payload,
/// inputs in GitHub's spelling, masks first, outputs and summary in the runner's files.
#[test]
fn push_run_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let payload =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/events/push.branch.json");
    let (out, sum) = (dir.path().join("output"), dir.path().join("summary"));
    let vars: Vec<(String, String)> = [
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_EVENT_NAME", "push"),
        ("GITHUB_EVENT_PATH", payload.to_str().unwrap()),
        ("GITHUB_REF", "refs/heads/master"),
        ("GITHUB_SHA", "6113728f27ae82c7b1a177c8d03f9e96e0adf246"),
        ("GITHUB_REPOSITORY", "Codertocat/Hello-World"),
        ("GITHUB_OUTPUT", out.to_str().unwrap()),
        ("GITHUB_STEP_SUMMARY", sum.to_str().unwrap()),
        ("INPUT_COMMAND", "plan"),
        ("INPUT_CONFIG", ""),
        (
            "INPUT_GITHUB-TOKEN",
            "ghs_16C7e42F292c6912E7710c838347Ae178B4a",
        ),
        ("INPUT_DRY-RUN", "false"),
        ("HOME", "/github/home"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let ctx = GithubContext::from_vars(vars.clone()).unwrap();
    let raw = RawInputs::from_vars(vars).unwrap();
    let mut rt = Runtime::from_context(BufferConsole::default(), &ctx);
    assert_eq!(rt.mask_secrets(&raw).unwrap(), 1);
    let inputs = raw.validate(&ctx).unwrap();
    assert_eq!(ctx.branch().as_deref(), Some("master"));
    // No `image-tag` input: the reference is the policy's image at the commit the push is about.
    assert_eq!(inputs.image_tag, None);
    let image = fm_deploy::image_ref::ImageInputs {
        image: inputs.image.clone(),
        tag: inputs.image_tag.clone(),
        digest: inputs.image_digest.clone(),
    };
    assert_eq!(
        fm_deploy::image_ref::compose(&image, "ghcr.io/o/app", ctx.commit_sha().unwrap())
            .as_deref(),
        Ok("ghcr.io/o/app:6113728f27ae82c7b1a177c8d03f9e96e0adf246")
    );

    rt.group_start("plan").unwrap();
    rt.line("environment: production").unwrap();
    rt.group_end().unwrap();
    rt.set_output(OutputKey::Decision, "skipped").unwrap();
    rt.set_output(OutputKey::Report, "{\n  \"branch\": \"master\"\n}")
        .unwrap();
    rt.append_summary("## fm-deploy plan\n").unwrap();

    let lines = &rt.console().lines;
    assert_eq!(
        lines[0],
        "::add-mask::ghs_16C7e42F292c6912E7710c838347Ae178B4a"
    );
    assert_eq!(
        lines[1..],
        ["::group::plan", "environment: production", "::endgroup::"]
    );
    let parsed = runner_parse_outputs(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(
        parsed,
        [
            ("decision".to_owned(), "skipped".to_owned()),
            (
                "report".to_owned(),
                "{\n  \"branch\": \"master\"\n}".to_owned()
            )
        ]
    );
    assert_eq!(
        std::fs::read_to_string(&sum).unwrap(),
        "## fm-deploy plan\n"
    );
}
