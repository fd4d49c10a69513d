//! Deploys: pure strategy state machines and trigger evaluation, thin adapters for the cluster, metrics
//! and health probes.

pub mod bg_summary;
pub mod bluegreen;
pub mod bluegreen_run;
pub mod cluster;
pub mod colors;
pub mod forbidden;
pub mod health;
pub mod labels;
pub mod lease;
pub mod manifests;
pub mod metrics;
pub mod patches;
pub mod predeploy;
pub mod release;
pub mod run;
pub mod strategy;
pub mod triggers;
