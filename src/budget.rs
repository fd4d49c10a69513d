//! Budgets for untrusted input: how many bytes, how deep and how many nodes (aliases expanded) a
//! parser accepts before it refuses the input.
//!
//! Owns: the limits of every parser of untrusted input (the policy and the exceptions file come
//! from the pull request, the event payload from GitHub, reports from tools the pull request's
//! code drives, the kubeconfig from a secret) and the one bounded file read that applies a size
//! budget before reading a file into memory. Must not touch: what any parser makes of its input.
//!
//! JSON nesting is bounded by `serde_json` itself: its deserializer refuses documents nested deeper
//! than [`JSON_DEPTH`] levels (the crate's fixed recursion limit of 128; the `unbounded_depth` feature
//! that lifts it is not enabled), so JSON budgets only add the size cap. XML is read as a stream
//! of events by `quick-xml`, which expands no entity beyond the five predefined ones and character
//! references (no DTD, so no "billion laughs"); the XML parsers count open elements against
//! [`Budget::max_depth`]. YAML aliases are counted while the tree is built
//! (`policy::yaml`), so an alias bomb is refused before it materialises.

use std::io::Read as _;
use std::path::Path;

/// Deepest nesting `serde_json` accepts: its built-in recursion limit of 128 refuses the 128th
/// level.
pub const JSON_DEPTH: usize = 127;

const MIB: u64 = 1024 * 1024;

/// Limits for one kind of untrusted input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// What the input is, for messages ("policy file").
    pub what: &'static str,
    /// Largest accepted input.
    pub max_bytes: u64,
    /// Deepest accepted nesting of collections (YAML) or elements (XML).
    pub max_depth: usize,
    /// Most nodes (scalars and collections, every alias counted as the nodes it stands for).
    pub max_nodes: usize,
}

/// The policy file: real ones are a few KiB and a few thousand nodes.
pub const POLICY: Budget = Budget {
    what: "policy file",
    max_bytes: MIB,
    max_depth: 64,
    max_nodes: 100_000,
};

/// The exceptions file: a list of flat mappings, so three levels (the parser refuses anything
/// deeper as an unexpected list or mapping); aliases are refused outright, scalars counted.
pub const EXCEPTIONS: Budget = Budget {
    what: "exceptions file",
    max_bytes: MIB,
    max_depth: 3,
    max_nodes: 100_000,
};

/// The webhook payload at `GITHUB_EVENT_PATH` (GitHub caps payloads at 25 MB). JSON has no
/// aliases: decoded into typed structs, its nodes are bounded by its size.
pub const EVENT: Budget = Budget {
    what: "event payload",
    max_bytes: 25 * MIB,
    max_depth: JSON_DEPTH,
    max_nodes: usize::MAX,
};

/// A kubeconfig (the input, or the file `--kubeconfig` names).
pub const KUBECONFIG: Budget = Budget {
    what: "kubeconfig",
    max_bytes: MIB,
    max_depth: 32,
    max_nodes: 100_000,
};

/// A tool's output or report file (JSON, XML or text: no aliases, nodes bounded by the size).
/// `max_bytes` is the ceiling for the policy's
/// `runner.output_cap` (which defaults to [`DEFAULT_OUTPUT_CAP`]) and the cap on the pull
/// request's `git diff`; the gate runner keeps at most the cap and a report past it fails its gate.
pub const REPORT: Budget = Budget {
    what: "tool output",
    max_bytes: 256 * MIB,
    max_depth: 256,
    max_nodes: usize::MAX,
};

/// The default `runner.output_cap`.
pub const DEFAULT_OUTPUT_CAP: u64 = 64 * MIB;

/// An input over one of its budget's limits.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum BudgetError {
    #[error("accept {what} of {size} bytes: the size budget is {limit} bytes")]
    TooLarge {
        what: &'static str,
        size: u64,
        limit: u64,
    },
    #[error("accept {what} nested deeper than {limit} levels (the depth budget)")]
    TooDeep { what: &'static str, limit: usize },
    #[error("accept {what} of more than {limit} nodes with aliases expanded (the node budget)")]
    TooManyNodes { what: &'static str, limit: usize },
}

impl Budget {
    /// Refuses an input of `size` bytes when it is over the size budget.
    pub fn check_size(&self, size: u64) -> Result<(), BudgetError> {
        if size > self.max_bytes {
            return Err(BudgetError::TooLarge {
                what: self.what,
                size,
                limit: self.max_bytes,
            });
        }
        Ok(())
    }

    /// Refuses nesting `depth` levels deep when it is over the depth budget.
    pub fn check_depth(&self, depth: usize) -> Result<(), BudgetError> {
        if depth > self.max_depth {
            return Err(BudgetError::TooDeep {
                what: self.what,
                limit: self.max_depth,
            });
        }
        Ok(())
    }

    /// Refuses `nodes` nodes when they are over the node budget.
    pub fn check_nodes(&self, nodes: usize) -> Result<(), BudgetError> {
        if nodes > self.max_nodes {
            return Err(BudgetError::TooManyNodes {
                what: self.what,
                limit: self.max_nodes,
            });
        }
        Ok(())
    }

    /// The same budget with another size limit (the gate runner's configured output cap).
    pub fn with_max_bytes(self, max_bytes: u64) -> Budget {
        Budget { max_bytes, ..self }
    }
}

/// Reads a whole file, refusing it — before reading it into memory — when it is larger than
/// `budget.max_bytes`. A file that grows while it is read (or a FIFO) is cut at one byte past the
/// budget and refused as well. A refusal is an [`std::io::ErrorKind::FileTooLarge`] error
/// carrying the [`BudgetError`].
pub fn read_file(path: &Path, budget: &Budget) -> std::io::Result<Vec<u8>> {
    let too_large = |e| std::io::Error::new(std::io::ErrorKind::FileTooLarge, e);
    let file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    budget.check_size(len).map_err(too_large)?;
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    let n = file
        .take(budget.max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)?;
    budget.check_size(n as u64).map_err(too_large)?;
    Ok(bytes)
}

/// [`read_file`] as UTF-8 text.
pub fn read_to_string(path: &Path, budget: &Budget) -> std::io::Result<String> {
    String::from_utf8(read_file(path, budget)?).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} is not UTF-8 text", budget.what),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file over the size budget is refused from its length, naming the budget; one within it
    /// is read whole.
    #[test]
    fn size_budget_applies_before_reading() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("big");
        let f = std::fs::File::create(&p)?;
        // Sparse: the length is there, the bytes are not; reading them would take the time.
        f.set_len(1 << 40)?;
        let err = read_file(&p, &POLICY).err();
        assert_eq!(
            err.as_ref().map(std::io::Error::kind),
            Some(std::io::ErrorKind::FileTooLarge)
        );
        assert_eq!(
            err.map(|e| e.to_string()),
            Some(format!(
                "accept policy file of {} bytes: the size budget is {} bytes",
                1u64 << 40,
                MIB
            ))
        );
        std::fs::write(&p, b"version: 1\n")?;
        assert_eq!(read_to_string(&p, &POLICY)?, "version: 1\n");
        Ok(())
    }

    /// A stream with no length (a FIFO-like file that grows) is cut one byte past the budget.
    #[test]
    fn growing_input_is_cut_and_refused() -> std::io::Result<()> {
        let small = POLICY.with_max_bytes(4);
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("f");
        std::fs::write(&p, b"12345")?;
        let err = read_file(&p, &small).err().map(|e| e.kind());
        assert_eq!(err, Some(std::io::ErrorKind::FileTooLarge));
        std::fs::write(&p, b"1234")?;
        assert_eq!(read_file(&p, &small)?, b"1234");
        Ok(())
    }

    /// serde_json's recursion limit is what [`JSON_DEPTH`] documents: 127 levels parse, 128 are
    /// refused — with an error, not a stack overflow, even for a megabyte of brackets.
    #[test]
    fn serde_json_depth_limit_is_json_depth() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(serde_json::from_str::<serde_json::Value>(&nested(JSON_DEPTH)).is_ok());
        let err = serde_json::from_str::<serde_json::Value>(&nested(JSON_DEPTH + 1)).err();
        assert!(
            err.is_some_and(|e| e.to_string().contains("recursion limit exceeded")),
            "128 levels must be refused"
        );
        assert!(serde_json::from_str::<serde_json::Value>(&"[".repeat(1 << 20)).is_err());
    }
}
