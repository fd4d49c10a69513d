//! deploy::bluegreen
