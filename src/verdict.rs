//! Verdict: pure (findings, policy, overrides) → per-gate verdict and decision.
