//! Inputs and GitHub context.
