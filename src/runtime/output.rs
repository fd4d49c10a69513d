//! The action's outputs and the `GITHUB_OUTPUT` file format. Pure.
//!
//! Single-line values are written `name=value`; multi-line values use the heredoc form
//! `name<<ghadelimiter_<random>` … `ghadelimiter_<random>`, as `@actions/core` does, with a delimiter
//! checked not to occur in the value (so a value cannot end the heredoc early and set other outputs).

use rand::Rng as _;

use super::writer::Error;

/// Prefix of every heredoc delimiter (the one `@actions/core` uses).
pub const DELIMITER_PREFIX: &str = "ghadelimiter_";

/// Every output `action.yml` declares. `tests/contract_action_yml.rs` asserts they match exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OutputKey {
    /// The environment the branch (or override) maps to; empty when gates only.
    Environment,
    /// The gate tier.
    Tier,
    /// `direct`, `rolling` or `blue-green`.
    Strategy,
    /// `allow`, `needs-approval`, `block` or `skipped`.
    Decision,
    /// The test matrix JSON for `strategy.matrix: ${{ fromJSON(...) }}`.
    Matrix,
    /// `blue` or `green` after a blue-green deploy, rollback or promote.
    ActiveColor,
    /// `true` when the deploy was rolled back.
    RolledBack,
    /// The rollback trigger that fired.
    Trigger,
    /// The GitHub Deployment id.
    DeploymentId,
    /// The run's report as JSON.
    Report,
}

impl OutputKey {
    /// Every output, in `action.yml` order.
    pub const ALL: [OutputKey; 10] = [
        OutputKey::Environment,
        OutputKey::Tier,
        OutputKey::Strategy,
        OutputKey::Decision,
        OutputKey::Matrix,
        OutputKey::ActiveColor,
        OutputKey::RolledBack,
        OutputKey::Trigger,
        OutputKey::DeploymentId,
        OutputKey::Report,
    ];

    /// The output named `name` in `action.yml`, if there is one.
    pub fn from_name(name: &str) -> Option<OutputKey> {
        OutputKey::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The output's name in `action.yml` (`steps.<id>.outputs.<name>`).
    pub fn as_str(self) -> &'static str {
        match self {
            OutputKey::Environment => "environment",
            OutputKey::Tier => "tier",
            OutputKey::Strategy => "strategy",
            OutputKey::Decision => "decision",
            OutputKey::Matrix => "matrix",
            OutputKey::ActiveColor => "active-color",
            OutputKey::RolledBack => "rolled-back",
            OutputKey::Trigger => "trigger",
            OutputKey::DeploymentId => "deployment-id",
            OutputKey::Report => "report",
        }
    }
}

/// A fresh delimiter: the prefix and 128 random bits in hex.
pub fn random_delimiter() -> String {
    format!("{DELIMITER_PREFIX}{:032x}", rand::rng().random::<u128>())
}

/// Formats one output entry with a random delimiter when the value spans lines.
pub fn format_output(name: &str, value: &str) -> Result<String, Error> {
    // A collision with 128 random bits means the value was built to contain our delimiter; retrying
    // a few times keeps this total without trusting luck once.
    let mut last = Err(Error::DelimiterInValue {
        name: name.to_owned(),
    });
    for _ in 0..4 {
        last = format_output_with_delimiter(name, value, &random_delimiter());
        if last.is_ok() {
            break;
        }
    }
    last
}

/// Formats one output entry with the given delimiter (tests pass a fixed one).
pub fn format_output_with_delimiter(
    name: &str,
    value: &str,
    delimiter: &str,
) -> Result<String, Error> {
    if name.is_empty() || name.contains(['=', '\n', '\r', '<']) {
        return Err(Error::OutputName {
            name: name.to_owned(),
        });
    }
    if !value.contains(['\n', '\r']) {
        return Ok(format!("{name}={value}\n"));
    }
    if value.contains(delimiter) {
        return Err(Error::DelimiterInValue {
            name: name.to_owned(),
        });
    }
    Ok(format!("{name}<<{delimiter}\n{value}\n{delimiter}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Single-line values use `name=value`.
    #[test]
    fn single_line() {
        assert_eq!(
            format_output_with_delimiter("decision", "allow", "D").unwrap(),
            "decision=allow\n"
        );
        assert_eq!(
            format_output_with_delimiter("matrix", "{\"a\":1}", "D").unwrap(),
            "matrix={\"a\":1}\n"
        );
    }

    /// Multi-line values use the heredoc form.
    #[test]
    fn multi_line_heredoc() {
        let d = "ghadelimiter_0123";
        assert_eq!(
            format_output_with_delimiter("report", "a\nb", d).unwrap(),
            "report<<ghadelimiter_0123\na\nb\nghadelimiter_0123\n"
        );
    }

    /// A value containing the delimiter is refused, so it cannot inject other outputs.
    #[test]
    fn delimiter_in_value_is_refused() {
        let d = "ghadelimiter_x";
        let err = format_output_with_delimiter("report", "a\nghadelimiter_x\ndecision=allow", d)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "write output `report`: its value contains the heredoc delimiter"
        );
    }

    /// Output names that would break the file format are refused.
    #[test]
    fn bad_names() {
        for n in ["", "a=b", "a\nb", "a<<b"] {
            assert!(format_output_with_delimiter(n, "v", "D").is_err(), "{n:?}");
        }
    }

    /// Random delimiters have the prefix and differ between calls; the random path yields a heredoc
    /// whose delimiter does not occur in the value.
    #[test]
    fn random_delimiters() {
        let (a, b) = (random_delimiter(), random_delimiter());
        assert!(a.starts_with(DELIMITER_PREFIX) && a.len() == DELIMITER_PREFIX.len() + 32);
        assert_ne!(a, b);
        let value = format!("x\n{DELIMITER_PREFIX}\ny");
        let entry = format_output("report", &value).unwrap();
        let first = entry.lines().next().unwrap();
        let delim = first.strip_prefix("report<<").unwrap();
        assert!(!value.contains(delim));
        assert!(entry.ends_with(&format!("\n{delim}\n")));
    }

    /// Every name maps back to its key; unknown names to none.
    #[test]
    fn from_name_round_trips() {
        for k in OutputKey::ALL {
            assert_eq!(OutputKey::from_name(k.as_str()), Some(k));
        }
        assert_eq!(OutputKey::from_name("active_color"), None);
    }

    /// Output names are unique.
    #[test]
    fn names_unique() {
        let mut names: Vec<&str> = OutputKey::ALL.iter().map(|k| k.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), OutputKey::ALL.len());
    }
}
