//! kcluster's defaults: what a careful Kafka operator would pick when the topology says nothing.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::cluster::metadata::Metadata;

/// The newest release of the 3.9 line, the last with ZooKeeper (2026-02-21): the default in
/// ZooKeeper mode.
pub const KAFKA_VERSION: &str = "3.9.2";
/// The default in KRaft mode: the newest Kafka release whose tarball SHA-512 is published and
/// pinned below.
pub const KAFKA_VERSION_KRAFT: &str = "4.3.1";

/// The default Kafka version of a metadata mode.
pub fn kafka_version(metadata: Metadata) -> &'static str {
    match metadata {
        Metadata::Zookeeper => KAFKA_VERSION,
        Metadata::Kraft => KAFKA_VERSION_KRAFT,
    }
}
pub const SCALA_VERSION: &str = "2.13";

/// SHA-512 of each release's `kafka_2.13-<version>.tgz` as Apache publishes it beside the
/// tarball (`.sha512`); the 3.9 values are the ones Strimzi's `kafka-versions.yaml` pins, each
/// cross-checked against an independent install script; 4.3.1's is the one Strimzi's
/// `kafka-versions.yaml` pins on its main branch, found identical in several independent install
/// scripts and Terraform modules that verify the tarball.
/// A topology that names one of these versions with the default Scala and URL needs no `sha512`
/// of its own.
pub const KAFKA_SHA512: [(&str, &str); 4] = [
    (
        "3.9.0",
        "5324c1f44d4c84ea469712c2cc3d2d15545c3716edbb5353722df9c661fcc78b031fcf07d1c4f0309c5fdb32686665dfb0cffe55210cd3a1fe2a370538cb4e6d",
    ),
    (
        "3.9.1",
        "1ea204ba73411737a275429ca976d440f007ff0957b90b19be41dc5a4bae52617267769be9f0b5791714d0b3c4c760605bd426faea39edd90763585523fa2cfe",
    ),
    (
        "3.9.2",
        "01186a5086b5ae753811ee71808a797baec1303d4e0d4b1c0acf42c489654a7b8988136f8469d0b66f0be439f8e3e9b816171ea0b0d7a36462b07aa2d3ef0023",
    ),
    (
        "4.3.1",
        "c7d7b2318cb51aa0c61d3246a51c349210073c5c9b754947ef965a439f2f939e8600f204e134a75ac31faf3829c9370960ef7c6a9886c8a1dbf0339a21f4c54c",
    ),
];

/// The published SHA-512 of Kafka `version`'s Scala 2.13 tarball, if kcluster knows it.
pub fn known_sha512(version: &str) -> Option<&'static str> {
    KAFKA_SHA512
        .iter()
        .find(|(v, _)| *v == version)
        .map(|(_, sha)| *sha)
}
pub const AMI_SSM_PARAMETER: &str =
    "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64";

pub const CLIENT_PORT: u16 = 9092;

pub const VOLUME_IOPS: u32 = 3000;
pub const VOLUME_THROUGHPUT_MIBPS: u32 = 125;

pub fn kafka_url(version: &str, scala: &str) -> String {
    format!("https://archive.apache.org/dist/kafka/{version}/kafka_{scala}-{version}.tgz")
}

/// Broker settings before the user's overrides: durable, rack-aware, nothing created by accident.
pub fn broker_settings(brokers: u32) -> BTreeMap<String, String> {
    let rf = brokers.clamp(1, 3);
    let min_isr = if rf >= 3 { 2 } else { 1 };
    let mut s = BTreeMap::new();
    let mut set = |k: &str, v: String| {
        s.insert(k.to_string(), v);
    };
    set("default.replication.factor", rf.to_string());
    set("min.insync.replicas", min_isr.to_string());
    set("offsets.topic.replication.factor", rf.to_string());
    set("transaction.state.log.replication.factor", rf.to_string());
    set("transaction.state.log.min.isr", min_isr.to_string());
    set("unclean.leader.election.enable", "false".into());
    set("auto.create.topics.enable", "false".into());
    // Consumers may fetch from a replica in their own zone (KIP-392) when they set client.rack.
    set(
        "replica.selector.class",
        "org.apache.kafka.common.replica.RackAwareReplicaSelector".into(),
    );
    set("num.partitions", "6".into());
    s
}

/// Keys kcluster sets per node in both modes; overriding them would break identity or placement.
const MANAGED_KEYS: &[&str] = &[
    "advertised.listeners",
    "broker.id",
    "broker.rack",
    "inter.broker.listener.name",
    "listener.security.protocol.map",
    "listeners",
    "log.dir",
    "log.dirs",
    "zookeeper.connect",
];

/// Keys kcluster sets per node in KRaft mode besides those: the node's roles and id, and the
/// controller quorum.
const KRAFT_MANAGED_KEYS: &[&str] = &[
    "controller.listener.names",
    "controller.quorum.bootstrap.servers",
    "controller.quorum.voters",
    "metadata.log.dir",
    "node.id",
    "process.roles",
];

/// Every key kcluster sets itself in `metadata` mode.
pub fn managed_keys(metadata: Metadata) -> Vec<&'static str> {
    let mut keys = MANAGED_KEYS.to_vec();
    if metadata == Metadata::Kraft {
        keys.extend(KRAFT_MANAGED_KEYS);
    }
    keys
}

/// The address at `offset` in `net`, if it is one EC2 lets an instance use (AWS keeps the first
/// four addresses of every subnet and the last one).
pub fn allocate(net: Ipv4Net, offset: u32) -> Option<Ipv4Addr> {
    let base = u32::from(net.network());
    let addr = Ipv4Addr::from(base.checked_add(offset)?);
    usable(net, addr).then_some(addr)
}

/// Whether EC2 lets an instance hold `addr` in a subnet with this CIDR.
pub fn usable(net: Ipv4Net, addr: Ipv4Addr) -> bool {
    let a = u32::from(addr);
    let first = u32::from(net.network());
    let last = u32::from(net.broadcast());
    net.contains(&addr) && a >= first + 4 && a < last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation_skips_reserved_addresses() {
        let net: Ipv4Net = "10.0.1.0/24".parse().unwrap();
        assert_eq!(allocate(net, 11), Some(Ipv4Addr::new(10, 0, 1, 11)));
        assert_eq!(allocate(net, 3), None, "x.x.x.3 is reserved by AWS");
        assert_eq!(allocate(net, 255), None, "broadcast");
        assert_eq!(allocate(net, 254), Some(Ipv4Addr::new(10, 0, 1, 254)));
        assert_eq!(allocate(net, 300), None);
    }

    #[test]
    fn replication_defaults_follow_broker_count() {
        assert_eq!(broker_settings(6)["default.replication.factor"], "3");
        assert_eq!(broker_settings(6)["min.insync.replicas"], "2");
        assert_eq!(broker_settings(2)["default.replication.factor"], "2");
        assert_eq!(broker_settings(2)["min.insync.replicas"], "1");
    }
}
