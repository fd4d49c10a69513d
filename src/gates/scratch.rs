//! A gate's own scratch directory, outside the checkout: tool caches, byte-code and reports.
//!
//! Gates run in parallel in one workspace; a cache one tool writes into the checkout is seen by the
//! next (detect-secrets once reported `.mypy_cache/CACHEDIR.TAG`, written a moment earlier by the
//! types gate, as a secret). So every gate gets a fresh temporary directory, the tools' cache
//! settings point into it, and `{out}` in a gate's argv or report paths names its `out/` folder.
//!
//! Owns: creating and removing that directory, the environment that points tools at it, and the
//! `{out}` substitution. Must not touch: running tools, parsing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// In a gate's `run` arguments and in its `report` / `coverage` paths: the gate's own output folder.
pub const OUT: &str = "{out}";

/// A gate's temporary directory, removed when dropped.
#[derive(Debug)]
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    /// A fresh directory under the system temporary directory (the runner's `TMPDIR`), with the
    /// `out/` and `tmp/` folders the tools are pointed at.
    pub fn new(gate: &str) -> std::io::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("fm-gate-{gate}-"))
            .tempdir()?;
        for sub in ["out", "tmp"] {
            std::fs::create_dir(dir.path().join(sub))?;
        }
        Ok(Scratch { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// What `{out}` stands for.
    pub fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    /// Variables that send the tools' caches and byte-code here instead of into the checkout.
    pub fn env(&self) -> BTreeMap<String, String> {
        scratch_env(self.path())
    }
}

/// The cache settings of the gate tools, pointed into `dir`: mypy's cache, Python's byte-code (not
/// written at all, and any prefix outside the tree), pytest's cache provider (off), coverage's
/// data file, black's cache, the XDG cache other tools use, and `TMPDIR`.
pub fn scratch_env(dir: &Path) -> BTreeMap<String, String> {
    let at = |sub: &str| dir.join(sub).display().to_string();
    BTreeMap::from([
        ("MYPY_CACHE_DIR".to_string(), at("mypy-cache")),
        ("PYTHONDONTWRITEBYTECODE".to_string(), "1".to_string()),
        ("PYTHONPYCACHEPREFIX".to_string(), at("pycache")),
        (
            "PYTEST_ADDOPTS".to_string(),
            "-p no:cacheprovider".to_string(),
        ),
        ("COVERAGE_FILE".to_string(), at(".coverage")),
        ("BLACK_CACHE_DIR".to_string(), at("black-cache")),
        ("XDG_CACHE_HOME".to_string(), at("cache")),
        ("TMPDIR".to_string(), at("tmp")),
    ])
}

/// `{out}` replaced by `out` inside one argument (never split, never through a shell).
pub fn substitute(arg: &str, out: &Path) -> String {
    arg.replace(OUT, &out.display().to_string())
}

/// Where a policy path points: `{out}/…` into the gate's output folder, anything else into the
/// workspace. The loader allows `{out}` only as a path's first component.
pub fn resolve(path: &Path, workspace: &Path, out: &Path) -> PathBuf {
    match path.strip_prefix(OUT) {
        Ok(rest) => out.join(rest),
        Err(_) => workspace.join(path),
    }
}

/// Whether a policy path lives in the gate's output folder (fresh for every run).
pub fn in_out(path: &Path) -> bool {
    path.starts_with(OUT)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `{out}` paths land in the scratch folder, other paths in the workspace.
    #[test]
    fn resolves_out_and_workspace_paths() {
        let ws = Path::new("/ws");
        let out = Path::new("/tmp/g/out");
        assert_eq!(
            resolve(Path::new("{out}/unit.xml"), ws, out),
            Path::new("/tmp/g/out/unit.xml")
        );
        assert_eq!(
            resolve(Path::new("reports/unit.xml"), ws, out),
            Path::new("/ws/reports/unit.xml")
        );
        assert!(in_out(Path::new("{out}/x")) && !in_out(Path::new("x/{out}")));
        assert_eq!(
            substitute("--junitxml={out}/u.xml", out),
            "--junitxml=/tmp/g/out/u.xml"
        );
    }

    /// Every cache variable points inside the scratch directory, which is removed on drop.
    #[test]
    fn caches_point_inside_and_are_removed() {
        let s = Scratch::new("types").unwrap();
        let root = s.path().to_path_buf();
        for (k, v) in s.env() {
            if k != "PYTHONDONTWRITEBYTECODE" && k != "PYTEST_ADDOPTS" {
                assert!(Path::new(&v).starts_with(&root), "{k}={v}");
            }
        }
        assert!(s.out().is_dir());
        drop(s);
        assert!(!root.exists());
    }
}
