//! CONTRACT PLACEHOLDER: the worker service engineer owns this file.
pub mod engine;
