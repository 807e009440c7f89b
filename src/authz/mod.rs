//! Stage 6: authorize each JSON-RPC call against the route's policy.
//!
//! `policy.rs` holds the rules compiled at load; `decide.rs` is the pure
//! decision. Nothing here does I/O or reads the request: inputs are the
//! verified scopes and the parsed calls, output is a [`Decision`].

pub mod audit;
pub mod decide;

pub use crate::config::rules::{DenyMode, Policy, Unlisted};
pub use decide::{CallDecision, Decision, decide, decide_call};
