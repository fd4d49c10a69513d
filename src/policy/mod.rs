//! The policy file: a spanned YAML tree, decoded and validated into `model::Policy` with every problem
//! collected at once.

pub mod model;
