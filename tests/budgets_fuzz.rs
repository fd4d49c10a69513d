//! Property tests over every parser of untrusted input: the policy (spanned YAML tree and
//! loader), the exceptions file, the event payload, every tool-output parser, and the kubeconfig
//! masker. Each gets arbitrary bytes and token soups of its own syntax (anchors and aliases,
//! nesting, entities) and must answer — `Ok` or an error — without panicking, with any tree it
//! builds inside its node budget, and the whole run inside a bounded peak RSS.
//!
//! Cases per test: `FM_PROPTEST_CASES` (default [`DEFAULT_CASES`]); every case of a test feeds
//! each parser of that test once. scripts/test.sh sets `FM_PROPTEST_CASES=1000000` (see BENCHMARKS.md).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly on the first surprise"
)]

use fm_deploy::budget::{self, POLICY};
use fm_deploy::gates::exceptions::parse_exceptions;
use fm_deploy::gates::parsers;
use fm_deploy::policy::load::PARSERS;
use fm_deploy::policy::yaml::{self, Node, NodeKind};
use proptest::prelude::*;
use proptest::test_runner::Config;
use std::path::Path;

/// Cases per property when `FM_PROPTEST_CASES` is not set.
const DEFAULT_CASES: u32 = 100_000;

/// Peak RSS of the whole test process after its cases: generous for the test harness, far below
/// what one expanded alias bomb or a gigabyte read would take.
const MAX_RSS_BYTES: u64 = 200 * 1024 * 1024;

fn config() -> Config {
    let cases = std::env::var("FM_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    Config {
        cases,
        // Inputs are cheap: the default local-rejection cap is not what bounds these runs.
        max_shrink_iters: 10_000,
        ..Config::default()
    }
}

/// This process's peak RSS so far (every case checks it: an input that blew up would show here).
fn peak_rss_is_bounded() {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF).unwrap();
    let peak = u64::try_from(usage.max_rss()).unwrap_or(0) * 1024;
    assert!(peak < MAX_RSS_BYTES, "peak RSS {peak} bytes");
}

/// A soup of `tokens`, up to `max` of them.
fn soup(tokens: &'static [&'static str], max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(tokens), 0..max).prop_map(|t| t.concat())
}

/// Text that is mostly not any syntax: arbitrary bytes (lossy UTF-8 for text parsers).
fn bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..512)
}

#[rustfmt::skip]
const YAML: &[&str] = &[
    "&a ", "&b ", "*a", "*b", "&a [", "&b {", "[", "]", "{", "}", ", ", ": ", "\n", "  ", "- ",
    "? ", "---\n", "...\n", "version: 1\n", "gates:\n", "tiers:\n", "app:\n", "name", "run: ",
    "extends: ", "'q'", "\"s\\n\"", "|\n", ">-\n", "!!str ", "!t ", "~", "null", "true", "1.5",
    "#c\n", "x", "*a, *a, *a, *a", "[*a, *b, *a, *b]", "%YAML 1.2\n",
];

#[rustfmt::skip]
const EXCEPTIONS: &[&str] = &[
    "exceptions:\n", "  - ", "fingerprint: ", "reason: ", "approver: ", "expires: ", "2026-12-31",
    "abc123", "\n", "    ", "[", "]", "{", "}", ", ", ": ", "&a ", "*a", "'x'",
];

#[rustfmt::skip]
const JSON: &[&str] = &[
    "{", "}", "[", "]", ",", ":", "\"pull_request\"", "\"number\"", "\"head\"", "\"base\"",
    "\"ref\"", "\"sha\"", "\"repo\"", "\"full_name\"", "\"labels\"", "\"name\"", "\"results\"",
    "\"runs\"", "\"tool\"", "\"version\"", "\"2.1.0\"", "\"Results\"", "\"Vulnerabilities\"",
    "\"metrics\"", "\"errors\"", "\"filename\"", "\"line_number\"", "\"issue_severity\"", "1", "-1",
    "1e999", "null", "true", "\"\\u0000\"", "\"x\"", " ", "\n",
];

#[rustfmt::skip]
const XML: &[&str] = &[
    "<?xml version=\"1.0\"?>", "<testsuites>", "</testsuites>", "<testsuite tests=\"1\">",
    "</testsuite>", "<testcase classname=\"a\" name=\"b\">", "</testcase>",
    "<failure message=\"m\"/>", "<error message=\"e\">", "</error>", "<skipped/>",
    "<coverage line-rate=\"0.5\">", "</coverage>", "<coverage line-rate=\"2\"/>", "&amp;", "&lol;",
    "&#65;", "<!DOCTYPE x [<!ENTITY lol \"lol\">]>", "<![CDATA[x]]>", "<!-- c -->", "<a>", "</a>",
    "<b/>", "text", " ", "\n",
];

#[rustfmt::skip]
const TEXT: &[&str] = &[
    "app.py:1:2: E501 line too long\n", "app.py:3: error: bad [x]\n", "--- a.py\n", "+++ b.py\n",
    "@@ -1 +1 @@\n", "would reformat a.py\n", "Found 1 error\n", "Success: no issues\n", ":", "\n",
    "x", "1",
];

#[rustfmt::skip]
const KUBECONFIG: &[&str] = &[
    "apiVersion: v1\n", "kind: Config\n", "clusters:\n", "users:\n", "- name: u\n", "  user:\n",
    "    token: ", "    password: ", "client-key-data: ", "exec:\n", "env:\n", "args: ",
    "[--token, t0k3n-value]", "{name: VAULT_TOKEN, value: v4lue}", "&a ", "*a", "[", "]", "{", "}",
    ", ", ": ", "\n", "  ", "- ", "'q'", "---\n", "s3cr3t-value",
];

/// Nodes in a tree, aliases counted as the copies they became.
fn nodes(n: &Node) -> usize {
    1 + match &n.kind {
        NodeKind::Scalar { .. } => 0,
        NodeKind::Seq(items) => items.iter().map(nodes).sum(),
        NodeKind::Map(entries) => entries.iter().map(|(k, v)| nodes(k) + nodes(v)).sum(),
    }
}

proptest! {
    #![proptest_config(config())]

    /// The spanned YAML tree and the policy loader answer every input; a tree is never larger
    /// than the node budget, however many aliases the input has.
    #[test]
    fn policy_parser(text in prop_oneof![
        soup(YAML, 48),
        bytes().prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]) {
        if let Ok(Some(root)) = yaml::parse(&text) {
            prop_assert!(nodes(&root) <= POLICY.max_nodes);
        }
        let _ = fm_deploy::policy::load_str(&text, Path::new("fm-deploy.yml"));
        peak_rss_is_bounded();
    }

    /// The exceptions parser answers every input.
    #[test]
    fn exceptions_parser(text in prop_oneof![
        soup(EXCEPTIONS, 48),
        bytes().prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]) {
        let _ = parse_exceptions("exceptions.yml", &text);
        peak_rss_is_bounded();
    }

    /// Both readers of the event payload answer every input, for every event name.
    #[test]
    fn event_parsers(payload in prop_oneof![soup(JSON, 64).prop_map(String::into_bytes), bytes()]) {
        let _ = fm_deploy::github::event::pull_request_event(&payload);
        for name in ["push", "pull_request", "workflow_dispatch", "schedule", "release"] {
            let _ = fm_deploy::inputs::Event::from_payload(name, &payload);
        }
        peak_rss_is_bounded();
    }

    /// Every tool-output parser answers every input: JSON, XML and text soups and raw bytes.
    #[test]
    fn report_parsers(output in prop_oneof![
        soup(JSON, 64).prop_map(String::into_bytes),
        soup(XML, 32).prop_map(String::into_bytes),
        soup(TEXT, 16).prop_map(String::into_bytes),
        bytes(),
    ]) {
        for (_, kind) in PARSERS {
            let _ = parsers::parse(*kind, &output);
        }
        peak_rss_is_bounded();
    }

    /// The kubeconfig masker answers every input, raw or base64, and never masks an empty string.
    #[test]
    fn kubeconfig_masks(text in prop_oneof![
        soup(KUBECONFIG, 48),
        bytes().prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]) {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&text);
        let masks = fm_deploy::runtime::mask_values([("kubeconfig", text.as_str()), ("kubeconfig", b64.as_str())]);
        prop_assert!(masks.iter().all(|m| !m.trim().is_empty()));
        peak_rss_is_bounded();
    }
}

/// The budgets really bound: an over-budget input of each kind is refused without being built
/// (a report over the size budget without being read), within the same memory bound.
#[test]
fn over_budget_inputs_are_refused() {
    let bomb = {
        let mut b = String::from("a0: &a0 [x]\n");
        for i in 1..=20 {
            b.push_str(&format!(
                "a{i}: &a{i} [{}]\n",
                vec![format!("*a{}", i - 1); 9].join(",")
            ));
        }
        b
    };
    assert!(yaml::parse(&bomb).is_err());
    // Zeroed pages are mapped lazily: the size check must refuse this without touching them.
    let report = vec![0u8; usize::try_from(budget::REPORT.max_bytes).unwrap() + 1];
    for (_, kind) in PARSERS {
        let err = parsers::parse(*kind, &report).err().map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("the size budget is 268435456 bytes")),
            "{kind:?}: {err:?}"
        );
    }
    drop(report);
    for (name, root) in [
        ("junit", "<testsuites>"),
        ("cobertura", "<coverage line-rate=\"1\">"),
    ] {
        let xml = format!("{root}{}", "<a>".repeat(budget::REPORT.max_depth));
        let kind = PARSERS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, k)| *k)
            .unwrap();
        let err = parsers::parse(kind, xml.as_bytes())
            .err()
            .map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("(the depth budget)")),
            "{kind:?}: {err:?}"
        );
    }
    // Deep JSON (and deep anything) is an error from every parser, never a stack overflow: serde_json
    // stops at its recursion limit, the XML parsers at the depth budget.
    for deep in [
        "[".repeat(100_000),
        format!("{{\"runs\": {}", "[".repeat(100_000)),
        format!("{{\"Results\": [{}", "{\"a\": ".repeat(100_000)),
        format!("<testsuites>{}", "<a>".repeat(100_000)),
    ] {
        for (_, kind) in PARSERS.iter().filter(|(n, _)| *n != "exit-code") {
            assert!(parsers::parse(*kind, deep.as_bytes()).is_err(), "{kind:?}");
        }
    }
    peak_rss_is_bounded();
}
