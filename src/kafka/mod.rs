//! What kcluster knows of Kafka itself: its configuration tables, Kafka Connect's keys and
//! defaults, and its replica placement, ported so plans can say where partitions go and move.

pub mod assign;
pub mod config;
pub mod connect;
pub mod reassign;
