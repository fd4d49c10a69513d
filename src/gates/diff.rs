//! Diff awareness: which lines a pull request added or changed, from `git diff` output.
//!
//! Owns: parsing a unified diff (pure) and classifying a finding against it. Must not touch:
//! git itself (the caller runs `git diff --unified=0 base...head` through the runner).

use crate::gates::finding::Finding;
use serde::Serialize;
use std::collections::BTreeMap;

/// Where a finding sits relative to the pull request's changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiffClass {
    /// On a line the PR added or changed.
    NewInDiff,
    /// In a file the PR touched, on a line it did not change.
    InChangedFile,
    /// In a file the PR did not touch.
    PreExisting,
    /// Not tied to a file (a dependency advisory, a failed test): always counts.
    NotFileBound,
}

/// Changed files and their added line ranges (new-side numbering, inclusive).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DiffIndex {
    pub files: BTreeMap<String, Vec<(u32, u32)>>,
}

/// The argv that produces what [`parse_unified_diff`] reads. `base` and `head` are passed as
/// separate arguments, never through a shell.
pub fn git_diff_argv(base: &str, head: &str) -> Vec<String> {
    [
        "git",
        "diff",
        "--unified=0",
        "--no-color",
        "--no-ext-diff",
        "--find-renames",
    ]
    .into_iter()
    .map(String::from)
    .chain([format!("{base}...{head}"), "--".to_string()])
    .collect()
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("parse git diff output: {0}")]
pub struct DiffError(String);

fn unquote(p: &str) -> &str {
    p.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(p)
}

/// Parses `git diff --unified=0` output. Deleted files are not "changed" (nothing of them is left
/// to find problems in).
pub fn parse_unified_diff(text: &str) -> Result<DiffIndex, DiffError> {
    let mut idx = DiffIndex::default();
    let mut current: Option<String> = None;
    let mut deleted = false;
    for (i, line) in text.lines().enumerate() {
        if let Some(rest) = line.strip_prefix("diff --git ") {
            deleted = false;
            // `a/x b/y`: take the b side; refined by the `+++` line when there is one.
            current = rest.rsplit_once(" b/").map(|(_, b)| unquote(b).to_string());
            if let Some(c) = &current {
                idx.files.entry(c.clone()).or_default();
            }
        } else if let Some(rest) = line.strip_prefix("+++ ") {
            let rest = unquote(rest.trim_end());
            if rest == "/dev/null" {
                if let Some(c) = current.take() {
                    idx.files.remove(&c);
                }
                deleted = true;
            } else {
                deleted = false;
                let p = rest.strip_prefix("b/").unwrap_or(rest).to_string();
                idx.files.entry(p.clone()).or_default();
                current = Some(p);
            }
        } else if let Some(rest) = line.strip_prefix("@@ ").filter(|_| !deleted) {
            let Some(file) = current.as_ref() else {
                return Err(DiffError(format!("hunk without a file on line {}", i + 1)));
            };
            let new = rest
                .split_whitespace()
                .find_map(|w| w.strip_prefix('+'))
                .ok_or_else(|| DiffError(format!("bad hunk header on line {}", i + 1)))?;
            let mut it = new.splitn(2, ',');
            let start: u32 = it
                .next()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| DiffError(format!("bad hunk start on line {}", i + 1)))?;
            let len: u32 = match it.next() {
                Some(l) => l
                    .parse()
                    .map_err(|_| DiffError(format!("bad hunk length on line {}", i + 1)))?,
                None => 1,
            };
            if len > 0 {
                idx.files
                    .entry(file.clone())
                    .or_default()
                    .push((start, start.saturating_add(len - 1)));
            }
        }
    }
    Ok(idx)
}

impl DiffIndex {
    pub fn classify(&self, f: &Finding) -> DiffClass {
        let Some(path) = f.path.as_deref() else {
            return DiffClass::NotFileBound;
        };
        let Some(ranges) = self.files.get(path) else {
            return DiffClass::PreExisting;
        };
        let lo = f.line.unwrap_or(0);
        let hi = f.end_line.unwrap_or(lo).max(lo);
        if f.line.is_some() && ranges.iter().any(|(a, b)| lo <= *b && hi >= *a) {
            DiffClass::NewInDiff
        } else {
            DiffClass::InChangedFile
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gates::finding::Severity;

    const DIFF: &str = "diff --git a/certsolver/solver.py b/certsolver/solver.py
index 1111111..2222222 100644
--- a/certsolver/solver.py
+++ b/certsolver/solver.py
@@ -10,0 +11,2 @@ def f():
+    x = 1
+    y = 2
@@ -40 +42 @@ def g():
-    return a
+    return b
diff --git a/old.py b/old.py
deleted file mode 100644
--- a/old.py
+++ /dev/null
@@ -1,3 +0,0 @@
-a
-b
-c
diff --git a/img.png b/img.png
Binary files a/img.png and b/img.png differ
";

    fn at(path: &str, line: u32) -> Finding {
        Finding::new("t", "r", Severity::Low, "m").at(path, Some(line), None)
    }

    /// Added lines are new-in-diff; other lines of a touched file are in-changed-file; others pre-existing.
    #[test]
    fn classifies_findings() {
        let idx = parse_unified_diff(DIFF).unwrap();
        assert_eq!(
            idx.files.get("certsolver/solver.py"),
            Some(&vec![(11, 12), (42, 42)])
        );
        assert!(!idx.files.contains_key("old.py"));
        assert!(idx.files.contains_key("img.png"));
        assert_eq!(
            idx.classify(&at("certsolver/solver.py", 12)),
            DiffClass::NewInDiff
        );
        assert_eq!(
            idx.classify(&at("certsolver/solver.py", 42)),
            DiffClass::NewInDiff
        );
        assert_eq!(
            idx.classify(&at("certsolver/solver.py", 13)),
            DiffClass::InChangedFile
        );
        assert_eq!(idx.classify(&at("other.py", 1)), DiffClass::PreExisting);
        assert_eq!(
            idx.classify(&Finding::new("t", "r", Severity::Low, "m")),
            DiffClass::NotFileBound
        );
    }

    /// The git argv keeps base and head as one argument, never a shell string.
    #[test]
    fn argv_is_plain() {
        let a = git_diff_argv("origin/main", "HEAD; rm -rf /");
        assert_eq!(a[6], "origin/main...HEAD; rm -rf /");
    }

    proptest::proptest! {
        /// Arbitrary text never panics the diff parser.
        #[test]
        fn never_panics(s in "\\PC{0,300}") {
            let _ = parse_unified_diff(&s);
        }
    }
}
