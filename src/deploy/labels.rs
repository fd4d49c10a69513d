//! Kubernetes label values from data this action does not control (image tags, names joined
//! together, anything a branch or a workflow input can shape). Pure.
//!
//! A label value is at most 63 characters, `[A-Za-z0-9_.-]`, beginning and ending with an
//! alphanumeric, or empty. [`label_value`] returns a valid value unchanged (so labels on objects
//! already in a cluster, selectors included, stay what they were) and maps anything else to a valid
//! one deterministically: other characters become `-`, and a value that had to be cut keeps a short
//! hash of the whole input, so two long inputs that share a prefix stay apart.

/// Kubernetes' limit on a label value, in characters.
pub const MAX_LABEL_VALUE: usize = 63;

/// Characters of the hash suffix a cut value ends with (after a `-`).
const HASH_CHARS: usize = 8;

/// True when Kubernetes accepts `s` as a label value.
pub fn is_label_value(s: &str) -> bool {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    s.is_empty()
        || (s.len() <= MAX_LABEL_VALUE
            && s.chars().all(ok)
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

/// A valid label value for `raw`: `raw` itself when valid, else its characters outside
/// `[A-Za-z0-9_.-]` as `-`, ends trimmed to alphanumerics, and, when that is too long, the first
/// 54 characters and `-` and 8 hex digits of a hash of `raw`.
pub fn label_value(raw: &str) -> String {
    if is_label_value(raw) {
        return raw.to_owned();
    }
    let cleaned: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = trim_to_alphanumeric(&cleaned);
    if trimmed.len() <= MAX_LABEL_VALUE {
        return trimmed.to_owned();
    }
    let keep = MAX_LABEL_VALUE - HASH_CHARS - 1;
    let head = trim_to_alphanumeric(&trimmed[..keep]);
    let hash = format!("{:016x}", fnv1a(raw.as_bytes()));
    if head.is_empty() {
        return hash[..HASH_CHARS].to_owned();
    }
    format!("{head}-{}", &hash[..HASH_CHARS])
}

fn trim_to_alphanumeric(s: &str) -> &str {
    s.trim_matches(|c: char| !c.is_ascii_alphanumeric())
}

/// FNV-1a, 64 bits: stable across builds and platforms (std's hasher is not), so a label computed
/// on one run matches the one on the next.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The validity check refuses what the apiserver refuses.
    #[test]
    fn invalid_values_are_recognised() {
        for v in ["-a", "a-", ".a", "a_", "a b", "a/b", "é", &"a".repeat(64)] {
            assert!(!is_label_value(v), "{v:?}");
        }
    }

    /// Valid values pass through untouched, so existing selectors never change.
    #[test]
    fn valid_values_are_kept() {
        for v in [
            "",
            "web",
            "web-production",
            "v1.2.3_rc1",
            "A",
            &"a".repeat(63),
        ] {
            assert_eq!(label_value(v), v);
        }
    }

    /// Hostile branch-shaped text becomes a valid value; long inputs that share a prefix differ.
    #[test]
    fn hostile_values_become_valid() {
        assert_eq!(label_value("feature/$(rm -rf /)"), "feature---rm--rf");
        assert_eq!(
            label_value("::set-output name=x::`id`;"),
            "set-output-name-x---id"
        );
        assert_eq!(label_value("🚀"), "");
        let long_a = format!("{}a", "x".repeat(300));
        let long_b = format!("{}b", "x".repeat(300));
        let (a, b) = (label_value(&long_a), label_value(&long_b));
        assert_eq!(a.len(), 63);
        assert_ne!(a, b);
        assert_eq!(label_value(&long_a), a, "deterministic");
        assert_eq!(label_value(&"-".repeat(100)), "");
    }

    proptest! {
        /// Whatever the input, the value passes Kubernetes' label-value rules.
        #[test]
        fn always_valid(raw in any::<String>()) {
            let v = label_value(&raw);
            prop_assert!(is_label_value(&v), "{raw:?} -> {v:?}");
        }

    }
}
