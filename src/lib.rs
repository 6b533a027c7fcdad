//! kcluster: a YAML topology of an Apache Kafka cluster → validated cluster → rendered configs →
//! EC2 resources found and managed by their `kcluster:*` tags → a rack-awareness check.

pub mod apply;
pub mod assign;
pub mod check;
pub mod cli;
pub mod client_config;
pub mod cluster;
pub mod commands;
pub mod desired;
pub mod destroy;
pub mod diagnostic;
pub mod ec2;
pub mod egress;
pub mod error;
pub mod exporter_health;
pub mod exporters;
pub mod health;
pub mod kafka_config;
pub mod lease;
pub mod live;
pub mod metadata;
pub mod monitoring;
pub mod network;
pub mod output;
pub mod ownership;
pub mod plan;
pub mod preflight;
pub mod progress;
pub mod reassign;
pub mod render;
pub mod role;
pub mod roll;
pub mod suggest;
pub mod terminal;
pub mod topology;
pub mod workflow;
