//! Deploys: pure strategy state machines and trigger evaluation, thin adapters for the cluster, metrics
//! and health probes.

pub mod bluegreen;
pub mod cluster;
pub mod health;
pub mod manifests;
pub mod metrics;
pub mod predeploy;
pub mod run;
pub mod strategy;
pub mod triggers;
