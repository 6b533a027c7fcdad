//! Operating a running cluster: its health read from Kafka, ZooKeeper and the exporters, rolls
//! gated on that health, and replicas drained or rebalanced through Kafka's reassignment.

pub mod drain;
pub mod exporter_health;
pub mod health;
pub mod roll;
