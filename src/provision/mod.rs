//! EC2 provisioning: the resources a cluster should have, found in EC2 by their tags, diffed into
//! a plan, preflighted, applied in dependency waves under a lease, and destroyed; the network
//! kcluster creates, and how each zone's nodes reach the internet.

pub mod apply;
pub mod desired;
pub mod destroy;
pub mod egress;
pub mod lease;
pub mod network;
pub mod ownership;
pub mod plan;
pub mod preflight;
pub mod workflow;
