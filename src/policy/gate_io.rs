//! Checks of what a gate reads and writes: `run` or a report-only gate, report globs, `{out}`.
//!
//! Owns: the rules for a gate's `run`, `report` and `coverage` keys taken together. Must not touch:
//! the other gate keys (that is `load`), the file system.
//!
//! - A gate with `run` runs a tool; its `report` / `coverage` may start with `{out}/` (the gate's
//!   own temporary folder, outside the checkout).
//! - A gate without `run` is report-only: it reads files the matrix jobs uploaded and the workflow
//!   downloaded into the workspace. Its `report` (and `coverage`) may hold one `*`, filling part of
//!   one path component; the text it matches is the matrix cell's name
//!   (`reports/tests-*/junit.xml` reads `reports/tests-ubuntu-latest-py3.10/junit.xml` as cell
//!   `ubuntu-latest-py3.10`).

use super::decode::Decoder;
use super::model::ParserKind;
use super::yaml::Node;
use crate::gates::scratch::OUT;
use std::path::Path;

/// Parsers whose reports merge across matrix cells (test results and coverage).
const MERGEABLE: [ParserKind; 2] = [ParserKind::Junit, ParserKind::Cobertura];

/// One path key of a gate, as read.
pub struct PathKey<'a> {
    pub node: &'a Node,
    pub key_path: String,
    pub value: &'a Path,
}

/// Reports every problem of a gate's `run` / `report` / `coverage` combination.
pub fn check(
    d: &mut Decoder,
    gate_path: &str,
    gate_pos: &Node,
    has_run: bool,
    parser: Option<ParserKind>,
    paths: &[PathKey<'_>],
) {
    let report = paths.iter().find(|p| p.key_path.ends_with(".report"));
    if !has_run && report.is_none() {
        d.error_hint(
            gate_pos.pos,
            gate_path,
            "a gate needs `run` (a command) or `report` (files the matrix jobs uploaded)",
            Some("e.g. `report: reports/tests-*/junit.xml` for the test matrix's results".into()),
        );
    }
    for p in paths {
        let text = p.value.to_string_lossy();
        let stars = text.matches('*').count();
        if text.contains(OUT) {
            let first = p.value.components().next().map(|c| c.as_os_str() == OUT);
            if has_run && first != Some(true) {
                d.error(
                    p.node.pos,
                    &p.key_path,
                    format!("`{OUT}` may only start the path (`{OUT}/report.xml`)"),
                );
            } else if !has_run {
                d.error(
                    p.node.pos,
                    &p.key_path,
                    format!("`{OUT}` is the folder of a gate's own `run`; this gate has none"),
                );
            }
        }
        let rest = text.replace(OUT, "");
        if rest.contains(['?', '[', ']', '{', '}']) || rest.contains("**") {
            d.error_hint(
                p.node.pos,
                &p.key_path,
                "report paths take one `*` and no other pattern",
                Some(
                    "the `*` matches the matrix cell's folder, e.g. `reports/tests-*/junit.xml`"
                        .into(),
                ),
            );
            continue;
        }
        if stars == 0 {
            continue;
        }
        if has_run {
            d.error_hint(
                p.node.pos,
                &p.key_path,
                "a report glob reads uploaded files and cannot go with `run`",
                Some(format!(
                    "write the report to `{OUT}/…`, or drop `run` for a report-only gate"
                )),
            );
        } else if stars > 1 {
            d.error(
                p.node.pos,
                &p.key_path,
                "a report glob takes exactly one `*` (the matrix cell)",
            );
        }
    }
    if let Some(parser) = parser
        && !has_run
        && !MERGEABLE.contains(&parser)
        && let Some(r) = report
    {
        d.error_hint(
            r.node.pos,
            &r.key_path,
            "a report-only gate reads JUnit or Cobertura files",
            Some("use `parser: junit` or `parser: cobertura`, or give the gate a `run`".into()),
        );
    }
}
