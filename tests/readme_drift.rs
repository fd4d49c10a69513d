//! README's inputs and outputs tables are generated from action.yml; this test fails when they drift.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test fails loudly on the first surprise"
)]

use fm_deploy::policy::yaml::{self, Node, NodeKind};

fn entries<'a>(n: &'a Node, key: &str) -> &'a [(Node, Node)] {
    let NodeKind::Map(top) = &n.kind else {
        panic!("action.yml is a mapping")
    };
    let (_, v) = top.iter().find(|(k, _)| k.scalar() == Some(key)).unwrap();
    let NodeKind::Map(items) = &v.kind else {
        panic!("{key} is a mapping")
    };
    items
}

fn field<'a>(n: &'a Node, key: &str) -> Option<&'a str> {
    let NodeKind::Map(m) = &n.kind else {
        return None;
    };
    m.iter()
        .find(|(k, _)| k.scalar() == Some(key))
        .and_then(|(_, v)| v.scalar())
}

fn cell(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

/// The tables as README must show them.
fn expected() -> String {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/action.yml")).unwrap();
    let root = yaml::parse(&text).unwrap().unwrap();
    let mut o = String::from("| input | default | description |\n|---|---|---|\n");
    for (k, v) in entries(&root, "inputs") {
        let default = field(v, "default").map_or(String::new(), |d| format!("`{}`", cell(d)));
        o.push_str(&format!(
            "| `{}` | {} | {} |\n",
            k.scalar().unwrap(),
            default,
            cell(field(v, "description").unwrap_or(""))
        ));
    }
    o.push_str("\n| output | description |\n|---|---|\n");
    for (k, v) in entries(&root, "outputs") {
        o.push_str(&format!(
            "| `{}` | {} |\n",
            k.scalar().unwrap(),
            cell(field(v, "description").unwrap_or(""))
        ));
    }
    o
}

/// README's inputs/outputs section equals the tables generated from action.yml.
#[test]
fn readme_tables_match_action_yml() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = "<!-- action-io:start -->\n";
    let end = "<!-- action-io:end -->";
    let s = readme
        .find(start)
        .expect("README has the action-io markers")
        + start.len();
    let e = readme[s..].find(end).expect("end marker") + s;
    let want = expected();
    assert!(
        readme[s..e] == want,
        "README inputs/outputs drifted from action.yml; replace the section with:\n{want}"
    );
}
