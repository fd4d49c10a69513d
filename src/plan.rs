//! Plan: pure (inputs, context, policy) → Plan.
