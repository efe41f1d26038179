//! clustersim: a discrete-event simulator of large GPU training clusters.
//!
//! Data flows one way: [`config`] → ([`model`], [`hardware`], [`plan`]) → [`schedule`]
//! (op graph) → [`engine`] (replay over a [`network`]) → [`report`]. See ARCHITECTURE.md.

pub mod cli;
pub mod config;
pub mod cost;
pub mod engine;
pub mod faults;
#[doc(hidden)]
pub mod fixtures;
pub mod hardware;
pub mod model;
pub mod network;
pub mod plan;
pub mod pricing;
pub mod report;
pub mod run;
pub mod schedule;
pub mod sim;
pub mod sweep;
pub mod units;
pub mod validate;
pub mod vocab;
