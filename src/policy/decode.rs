//! Typed reading of a spanned YAML tree that collects problems instead of stopping at the first.
//!
//! Owns: `Problem`, `Decoder` and its typed getters (strings, numbers, durations, ratios, lists,
//! mappings with unknown-key detection and "did you mean"). Must not touch: the meaning of any
//! particular key (that is `load`).

use super::model::Ratio;
use super::yaml::{Node, NodeKind, Pos, parse_bool};
use std::fmt;
use std::time::Duration;

/// One thing wrong with the policy file, located and explained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub pos: Pos,
    /// Dotted key path, e.g. `branches.main.tier`.
    pub path: String,
    pub message: String,
    /// "did you mean …" or another hint.
    pub hint: Option<String>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.pos.line, self.pos.col)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)?;
        if let Some(h) = &self.hint {
            write!(f, " ({h})")?;
        }
        Ok(())
    }
}

/// Appends a key to a dotted path, quoting keys that are not plain identifiers.
pub fn join(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let key = if plain {
        key.to_string()
    } else {
        format!("\"{key}\"")
    };
    if path.is_empty() {
        key
    } else {
        format!("{path}.{key}")
    }
}

/// The closest candidate to `word`, when one is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        let score = strsim::jaro_winkler(&word.to_ascii_lowercase(), &c.to_ascii_lowercase());
        if score >= 0.8 && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| format!("did you mean `{c}`?"))
}

/// Collects problems while reading.
#[derive(Debug, Default)]
pub struct Decoder {
    pub problems: Vec<Problem>,
}

/// A mapping's entries, after unknown keys were reported.
pub struct Fields<'n> {
    pub node: &'n Node,
    pub path: String,
    entries: Vec<(&'n str, &'n Node, Pos)>,
}

impl<'n> Fields<'n> {
    pub fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, v, _)| *k == key && !v.is_null())
            .map(|(_, v, _)| *v)
    }

    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn key_pos(&self, key: &str) -> Option<Pos> {
        self.entries
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, _, p)| *p)
    }

    pub fn child(&self, key: &str) -> String {
        join(&self.path, key)
    }
}

impl Decoder {
    pub fn error(&mut self, pos: Pos, path: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            pos,
            path: path.to_string(),
            message: message.into(),
            hint: None,
        });
    }

    pub fn error_hint(
        &mut self,
        pos: Pos,
        path: &str,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        self.problems.push(Problem {
            pos,
            path: path.to_string(),
            message: message.into(),
            hint,
        });
    }

    fn expected(&mut self, node: &Node, path: &str, what: &str) {
        let found = node.type_name();
        self.error(node.pos, path, format!("expected {what}, found {found}"));
    }

    /// Reads a mapping with exactly the `known` keys allowed; unknown keys are reported with the
    /// closest known one.
    pub fn fields<'n>(&mut self, node: &'n Node, path: &str, known: &[&str]) -> Option<Fields<'n>> {
        let NodeKind::Map(entries) = &node.kind else {
            if !node.is_null() {
                self.expected(node, path, "a mapping");
            }
            return None;
        };
        let mut out = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            let Some(key) = k.scalar() else {
                self.expected(k, path, "a string key");
                continue;
            };
            if known.contains(&key) {
                out.push((key, v, k.pos));
            } else {
                let hint = did_you_mean(key, known.iter().copied())
                    .or_else(|| Some(format!("known keys: {}", known.join(", "))));
                self.error_hint(k.pos, &join(path, key), "unknown key", hint);
            }
        }
        Some(Fields {
            node,
            path: path.to_string(),
            entries: out,
        })
    }

    /// A mapping with free-form keys (names), in file order.
    pub fn entries<'n>(&mut self, node: &'n Node, path: &str) -> Vec<(&'n str, &'n Node, Pos)> {
        match &node.kind {
            NodeKind::Map(entries) => entries
                .iter()
                .filter_map(|(k, v)| match k.scalar() {
                    Some(key) => Some((key, v, k.pos)),
                    None => {
                        self.expected(k, path, "a string key");
                        None
                    }
                })
                .collect(),
            _ => {
                if !node.is_null() {
                    self.expected(node, path, "a mapping");
                }
                Vec::new()
            }
        }
    }

    /// A required field: reports its absence at the mapping.
    pub fn require<'n>(&mut self, f: &Fields<'n>, key: &str) -> Option<&'n Node> {
        let v = f.get(key);
        if v.is_none() {
            self.error(f.node.pos, &f.child(key), "missing required key");
        }
        v
    }

    pub fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        match &node.kind {
            NodeKind::Scalar { value, .. } if !node.is_null() => Some(value.clone()),
            _ => {
                self.expected(node, path, "a string");
                None
            }
        }
    }

    pub fn non_empty_string(&mut self, node: &Node, path: &str) -> Option<String> {
        let s = self.string(node, path)?;
        if s.trim().is_empty() {
            self.error(node.pos, path, "must not be empty");
            return None;
        }
        Some(s)
    }

    pub fn bool(&mut self, node: &Node, path: &str) -> Option<bool> {
        match &node.kind {
            NodeKind::Scalar { value, plain: true } => {
                let b = parse_bool(value);
                if b.is_none() {
                    self.expected(node, path, "true or false");
                }
                b
            }
            _ => {
                self.expected(node, path, "true or false");
                None
            }
        }
    }

    pub fn u64(&mut self, node: &Node, path: &str) -> Option<u64> {
        match &node.kind {
            NodeKind::Scalar { value, plain: true } => match value.parse::<u64>() {
                Ok(n) => Some(n),
                Err(_) => {
                    self.expected(node, path, "a whole number");
                    None
                }
            },
            _ => {
                self.expected(node, path, "a whole number");
                None
            }
        }
    }

    pub fn u32_in(&mut self, node: &Node, path: &str, min: u32, max: u32) -> Option<u32> {
        let n = self.u64(node, path)?;
        match u32::try_from(n) {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                self.error(
                    node.pos,
                    path,
                    format!("must be between {min} and {max}, found {n}"),
                );
                None
            }
        }
    }

    pub fn f64(&mut self, node: &Node, path: &str) -> Option<f64> {
        match &node.kind {
            NodeKind::Scalar { value, plain: true } => match value.parse::<f64>() {
                Ok(n) if n.is_finite() => Some(n),
                _ => {
                    self.expected(node, path, "a number");
                    None
                }
            },
            _ => {
                self.expected(node, path, "a number");
                None
            }
        }
    }

    /// `30s`, `5m`, `24h`, `1h 30m` (humantime). A bare number is refused: units are required.
    pub fn duration(&mut self, node: &Node, path: &str) -> Option<Duration> {
        let s = self.string(node, path)?;
        match humantime::parse_duration(s.trim()) {
            Ok(d) => Some(d),
            Err(e) => {
                let hint = if s.trim().parse::<f64>().is_ok() {
                    Some(format!("add a unit, e.g. `{}s`", s.trim()))
                } else {
                    Some("e.g. `30s`, `5m`, `24h`".into())
                };
                self.error_hint(node.pos, path, format!("invalid duration `{s}`: {e}"), hint);
                None
            }
        }
    }

    /// `0.1%` or a fraction in `[0, 1]` such as `0.001`. A bare number above 1 is refused,
    /// because `80` could mean 80 % or 8000 %.
    pub fn ratio(&mut self, node: &Node, path: &str) -> Option<Ratio> {
        let s = self.string(node, path)?;
        let t = s.trim();
        if let Some(pct) = t.strip_suffix('%') {
            match pct.trim().parse::<f64>() {
                Ok(p) if p.is_finite() && (0.0..=100.0).contains(&p) => Some(Ratio(p / 100.0)),
                _ => {
                    self.error(
                        node.pos,
                        path,
                        format!("invalid percentage `{s}` (0% to 100%)"),
                    );
                    None
                }
            }
        } else {
            match t.parse::<f64>() {
                Ok(f) if f.is_finite() && (0.0..=1.0).contains(&f) => Some(Ratio(f)),
                Ok(f) if f.is_finite() && f > 1.0 && f <= 100.0 => {
                    self.error_hint(
                        node.pos,
                        path,
                        format!("ambiguous ratio `{s}`"),
                        Some(format!(
                            "write `{s}%` for a percentage, or a fraction in 0..1"
                        )),
                    );
                    None
                }
                _ => {
                    self.error(
                        node.pos,
                        path,
                        format!("expected a percentage like `80%` or a fraction, found `{s}`"),
                    );
                    None
                }
            }
        }
    }

    /// A number threshold; also accepts `1%` (→ 0.01) and a duration such as `5s` (→ seconds),
    /// because latency queries return seconds.
    pub fn threshold(&mut self, node: &Node, path: &str) -> Option<f64> {
        let s = self.string(node, path)?;
        let t = s.trim();
        if let Ok(n) = t.parse::<f64>()
            && n.is_finite()
        {
            return Some(n);
        }
        if let Some(pct) = t.strip_suffix('%')
            && let Ok(p) = pct.trim().parse::<f64>()
            && p.is_finite()
        {
            return Some(p / 100.0);
        }
        if let Ok(d) = humantime::parse_duration(t) {
            return Some(d.as_secs_f64());
        }
        self.error(
            node.pos,
            path,
            format!("expected a number, a percentage or a duration, found `{s}`"),
        );
        None
    }

    pub fn list<'n>(&mut self, node: &'n Node, path: &str) -> &'n [Node] {
        match &node.kind {
            NodeKind::Seq(items) => items,
            _ => {
                if !node.is_null() {
                    self.expected(node, path, "a list");
                }
                &[]
            }
        }
    }

    pub fn string_list(&mut self, node: &Node, path: &str) -> Vec<String> {
        let items = self.list(node, path);
        items
            .iter()
            .enumerate()
            .filter_map(|(i, n)| self.string(n, &format!("{path}[{i}]")))
            .collect()
    }

    /// One of `choices`, with "did you mean" on a near miss.
    pub fn choice<T: Copy>(&mut self, node: &Node, path: &str, choices: &[(&str, T)]) -> Option<T> {
        let s = self.string(node, path)?;
        if let Some((_, v)) = choices.iter().find(|(k, _)| *k == s) {
            return Some(*v);
        }
        let names: Vec<&str> = choices.iter().map(|(k, _)| *k).collect();
        let hint = did_you_mean(&s, names.iter().copied())
            .or_else(|| Some(format!("one of: {}", names.join(", "))));
        self.error_hint(node.pos, path, format!("unknown value `{s}`"), hint);
        None
    }
}

/// DNS-1123 label: what Kubernetes accepts for namespaces and object names.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A Kubernetes resource quantity in the shapes people write: `8`, `0.5`, `500m`, `16Gi`, `1G`.
pub fn is_quantity(s: &str) -> bool {
    const SUFFIXES: [&str; 14] = [
        "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P",
    ];
    let number = SUFFIXES
        .iter()
        .find_map(|suf| s.strip_suffix(suf))
        .unwrap_or(s);
    !number.is_empty()
        && number
            .parse::<f64>()
            .is_ok_and(|n| n.is_finite() && n >= 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Near-miss keys get a suggestion; unrelated words do not.
    #[test]
    fn suggestions_only_for_near_misses() {
        assert_eq!(
            did_you_mean("enviroment", ["environment", "tier"]),
            Some("did you mean `environment`?".into())
        );
        assert_eq!(did_you_mean("zzz", ["environment", "tier"]), None);
    }

    /// Kubernetes quantities in the shapes the guide uses are accepted; nonsense is not.
    #[test]
    fn quantities() {
        for ok in ["8", "0.5", "500m", "16Gi", "4G"] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["", "Gi", "lots", "-1"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }

    /// Key paths quote keys that are globs.
    #[test]
    fn join_quotes_globs() {
        assert_eq!(join("branches", "hotfix/*"), "branches.\"hotfix/*\"");
        assert_eq!(join("", "app"), "app");
    }
}
