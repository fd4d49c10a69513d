//! deploy::strategy
