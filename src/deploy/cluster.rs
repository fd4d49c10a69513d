//! deploy::cluster
