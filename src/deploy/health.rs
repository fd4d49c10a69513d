//! deploy::health
