//! The test matrix of a tier as GitHub `strategy.matrix` JSON. Pure.
//!
//! `os` and `python` are dimensions; `services` is not (every job needs the same services), so it is
//! added to every combination through one `include` entry, which GitHub merges into all jobs whose
//! original values it does not overwrite. `include` / `exclude` from the policy pass through.

use crate::policy::model::MatrixSpec;
use serde::Serialize;
use serde_json::{Map, Value, json};

#[derive(Debug, Clone, Serialize)]
pub struct MatrixJson {
    /// One line, ready for `matrix=<json>` in `GITHUB_OUTPUT` and `fromJSON(...)`.
    pub json: String,
    /// Jobs GitHub will start: the product of the dimensions, less exclusions, plus includes that
    /// match no combination.
    pub job_count: usize,
}

pub fn to_json(m: &MatrixSpec) -> MatrixJson {
    let mut obj = Map::new();
    if !m.os.is_empty() {
        obj.insert("os".into(), json!(m.os));
    }
    if !m.python.is_empty() {
        obj.insert("python".into(), json!(m.python));
    }
    let mut include: Vec<Value> = Vec::new();
    if !m.services.is_empty() {
        include.push(json!({ "services": m.services }));
    }
    include.extend(m.include.iter().map(|e| json!(e)));
    if !include.is_empty() {
        obj.insert("include".into(), Value::Array(include));
    }
    if !m.exclude.is_empty() {
        obj.insert("exclude".into(), json!(m.exclude));
    }
    let json = Value::Object(obj).to_string();
    MatrixJson {
        json,
        job_count: job_count(m),
    }
}

fn job_count(m: &MatrixSpec) -> usize {
    cells(m).len()
}

/// One job of the matrix, by its dimensions.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Cell {
    pub os: Option<String>,
    pub python: Option<String>,
}

impl Cell {
    /// The cell's name in artifact and folder names: `ubuntu-latest-py3.10` (`<os>-py<python>`;
    /// just `<os>` or `py<python>` when the matrix has one dimension). The example workflows name
    /// their uploads `tests-${{ matrix.os }}-py${{ matrix.python }}` to match.
    pub fn name(&self) -> String {
        match (&self.os, &self.python) {
            (Some(o), Some(p)) => format!("{o}-py{p}"),
            (Some(o), None) => o.clone(),
            (None, Some(p)) => format!("py{p}"),
            (None, None) => String::new(),
        }
    }
}

/// The jobs GitHub will start: the product of the dimensions, less exclusions, plus includes that
/// match no combination.
pub fn cells(m: &MatrixSpec) -> Vec<Cell> {
    let dim = |v: &[String]| -> Vec<Option<String>> {
        if v.is_empty() {
            vec![None]
        } else {
            v.iter().cloned().map(Some).collect()
        }
    };
    let matches = |entry: &std::collections::BTreeMap<String, String>, c: &Cell| {
        entry.iter().all(|(k, v)| match k.as_str() {
            "os" => c.os.as_deref() == Some(v.as_str()),
            "python" => c.python.as_deref() == Some(v.as_str()),
            _ => true,
        })
    };
    let mut kept: Vec<Cell> = Vec::new();
    if !(m.os.is_empty() && m.python.is_empty()) {
        for os in dim(&m.os) {
            for python in dim(&m.python) {
                let c = Cell {
                    os: os.clone(),
                    python,
                };
                if !m.exclude.iter().any(|e| matches(e, &c)) {
                    kept.push(c);
                }
            }
        }
    }
    // An include adds a job only when it cannot merge into an existing combination, i.e. when
    // one of its dimension values matches none.
    let extra: Vec<Cell> = m
        .include
        .iter()
        .filter(|e| {
            let overwrites_dimension = e.keys().any(|k| k == "os" || k == "python");
            overwrites_dimension && !kept.iter().any(|c| matches(e, c))
        })
        .map(|e| Cell {
            os: e.get("os").cloned(),
            python: e.get("python").cloned(),
        })
        .collect();
    kept.extend(extra);
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn spec() -> MatrixSpec {
        MatrixSpec {
            name: "full".into(),
            os: vec!["ubuntu-latest".into(), "windows-latest".into()],
            python: vec!["3.8".into(), "3.9".into(), "3.10".into(), "3.11".into()],
            services: vec!["postgres".into(), "redis".into()],
            include: vec![],
            exclude: vec![BTreeMap::from([
                ("os".into(), "windows-latest".into()),
                ("python".into(), "3.8".into()),
            ])],
        }
    }

    /// The guide's full matrix: 2 OS × 4 Python less one exclusion, services on every job.
    #[test]
    fn full_matrix_json() {
        let m = to_json(&spec());
        assert_eq!(
            m.json,
            r#"{"exclude":[{"os":"windows-latest","python":"3.8"}],"include":[{"services":["postgres","redis"]}],"os":["ubuntu-latest","windows-latest"],"python":["3.8","3.9","3.10","3.11"]}"#
        );
        assert_eq!(m.job_count, 7);
        assert!(!m.json.contains('\n'));
        let names: Vec<String> = cells(&spec()).iter().map(Cell::name).collect();
        assert_eq!(names.len(), 7);
        assert!(names.contains(&"windows-latest-py3.9".to_string()));
        assert!(!names.contains(&"windows-latest-py3.8".to_string()));
    }

    /// An include with a new OS adds a job; one that only adds a key does not.
    #[test]
    fn include_counts() {
        let mut s = spec();
        s.exclude.clear();
        s.include.push(BTreeMap::from([
            ("os".into(), "macos-latest".into()),
            ("python".into(), "3.11".into()),
        ]));
        s.include
            .push(BTreeMap::from([("experimental".into(), "true".into())]));
        assert_eq!(to_json(&s).job_count, 9);
    }
}
