//! The policy file: a spanned YAML tree, decoded and validated into `model::Policy` with every problem
//! collected at once.

pub mod base;
pub mod decode;
pub mod gate_io;
pub mod load;
pub mod model;
pub mod workload;
pub mod yaml;

pub use load::{Error, load_file, load_str};
pub use model::Policy;
