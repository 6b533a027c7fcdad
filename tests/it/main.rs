//! kcluster's integration tests, compiled as one binary. Each module is one area; `support` holds
//! the shared helpers (running the binary, temporary directories, example topologies).

mod alerts;
mod bad_corpus;
mod cli;
mod connect_cluster;
mod drill;
mod examples;
mod kafka;
mod kraft;
mod local;
mod mock_ec2;
mod monitoring;
mod plan_golden;
mod render_golden;
mod roll;
mod scale;
mod support;
mod throttle;
mod validators;
mod zookeeper;
