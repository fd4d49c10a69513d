//! fm-deploy: quality gates, check runs and Kubernetes deploys for GitHub Actions, from one policy file.
//!
//! The binary (`src/main.rs`) only wires adapters; everything here is a library so that tests drive the
//! same code paths with fakes and with the real testbed.

pub mod app;
pub mod budget;
pub mod deploy;
pub mod error;
pub mod gates;
pub mod github;
pub mod image_ref;
pub mod inputs;
pub mod matrix;
pub mod notify;
pub mod plan;
pub mod policy;
pub mod report;
pub mod runtime;
pub mod setup;
pub mod verdict;

pub use app::run;
