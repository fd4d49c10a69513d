//! deploy::metrics
