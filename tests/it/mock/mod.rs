//! The harness of the moto tests (`mock_ec2.rs`): a moto_server per test, the kcluster binary
//! pointed at it, EC2 as seen through the AWS SDK (to count outcomes and act "by hand"), a proxy
//! that swallows EC2's answers to stop kcluster at a chosen call, and topology files.

mod account;
mod gate;
pub mod iam;
mod kc;
mod server;
mod topology;

pub use account::{AMI, Account, Launch, tag};
pub use gate::Gate;
pub use kc::{Kc, Run};
pub use server::{MockEc2, Strictness};
pub use topology::Topology;
