//! kcluster: a YAML topology of an Apache Kafka cluster → validated cluster → rendered configs →
//! EC2 resources found and managed by their `kcluster:*` tags → a rack-awareness check.
//!
//! The modules follow that flow:
//! - [`topology`]: the file → parsed, defaulted, validated (every problem at once, with its line);
//! - [`cluster`]: the validated cluster, its node roles as data and its metadata mode — the only
//!   types downstream sees;
//! - [`kafka`]: what kcluster knows of Kafka itself (config tables, Connect, replica placement);
//! - [`render`]: cluster → each node's files, the monitoring files, client settings;
//! - [`provision`]: desired resources, EC2 observed by tags, the plan, preflight, apply, destroy,
//!   the network kcluster creates;
//! - [`ec2`]: EC2 behind a narrow trait (the SDK, a stateful fake, client-side pacing);
//! - [`operations`]: a running cluster's health, gated rolls, drains and rebalances;
//! - [`check`]: the rack-awareness report, static and live;
//! - [`cli`]: arguments, commands and printing; `main` only calls it.

pub mod check;
pub mod cli;
pub mod cluster;
pub mod ec2;
pub mod error;
pub mod kafka;
pub mod operations;
pub mod progress;
pub mod provision;
pub mod render;
pub mod topology;
