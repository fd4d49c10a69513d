//! The test matrix of a tier as GitHub `strategy.matrix` JSON.
