//! deploy::triggers
