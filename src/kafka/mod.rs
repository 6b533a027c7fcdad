//! What kcluster knows of Kafka itself: its configuration tables, Kafka Connect's keys and
//! defaults, its replica placement, ported so plans can say where partitions go and move, and the
//! replication throttle kcluster puts on its own moves.

pub mod assign;
pub mod config;
pub mod connect;
pub mod reassign;
pub mod throttle;
