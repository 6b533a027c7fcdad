//! kcluster: a YAML topology of an Apache Kafka cluster → validated cluster → rendered configs →
//! EC2 resources found and managed by their `kcluster:*` tags → a rack-awareness check.

pub mod assign;
pub mod check;
pub mod cli;
pub mod cluster;
pub mod diagnostic;
pub mod error;
pub mod kafka_config;
pub mod render;
pub mod suggest;
pub mod topology;
