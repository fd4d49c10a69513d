//! Test support for the blue-green scenarios: a private Prometheus, and the scenario harness on the
//! Kubernetes testbed (`tests/support_k8s`).
#![allow(
    dead_code,
    reason = "shared by several test crates; each uses a different part"
)]

pub mod faults;
pub mod flow;
pub mod prometheus;
pub mod scenario;
