//! Where a cluster keeps its metadata: a ZooKeeper ensemble (Kafka 3.9, the last release with
//! it) or a KRaft controller quorum (Kafka 4, also possible on 3.9). The mode decides which quorum
//! role a cluster has, which broker settings belong to it, and gives a KRaft cluster its id.

use base64::Engine;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::cluster::role::Role;

/// The metadata mode of a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metadata {
    /// A ZooKeeper ensemble holds the metadata; one broker is the controller (Kafka 3.9 only).
    Zookeeper,
    /// A quorum of dedicated KRaft controllers holds the metadata log (Kafka 3.9 and 4.x).
    Kraft,
}

impl Metadata {
    pub fn as_str(self) -> &'static str {
        match self {
            Metadata::Zookeeper => "zookeeper",
            Metadata::Kraft => "kraft",
        }
    }

    /// The mode in sentences.
    pub fn title(self) -> &'static str {
        match self {
            Metadata::Zookeeper => "ZooKeeper mode",
            Metadata::Kraft => "KRaft mode",
        }
    }

    /// The quorum in sentences: `ZooKeeper`, `the controller quorum`.
    pub fn quorum_name(self) -> &'static str {
        match self {
            Metadata::Zookeeper => "ZooKeeper",
            Metadata::Kraft => "the controller quorum",
        }
    }

    /// One member of the quorum in sentences.
    pub fn quorum_member(self) -> &'static str {
        match self {
            Metadata::Zookeeper => "ZooKeeper member",
            Metadata::Kraft => "controller",
        }
    }

    /// The role whose majority keeps the metadata writable.
    pub fn quorum_role(self) -> Role {
        match self {
            Metadata::Zookeeper => Role::Zookeeper,
            Metadata::Kraft => Role::Controller,
        }
    }

    /// Whether a cluster in this mode has nodes of `role`: each mode has its own quorum role and
    /// not the other's; every other role is the same in both.
    pub fn has(self, role: Role) -> bool {
        match role {
            Role::Zookeeper | Role::Controller => role == self.quorum_role(),
            _ => true,
        }
    }

    /// Whether `key` is a broker setting of the other mode, which Kafka ignores or refuses in
    /// this one: ZooKeeper's connection and ids in KRaft mode, the KRaft quorum in ZooKeeper mode.
    pub fn foreign_key(self, key: &str) -> bool {
        match self {
            Metadata::Kraft => key.starts_with("zookeeper.") || ZOOKEEPER_ONLY_KEYS.contains(&key),
            Metadata::Zookeeper => {
                key.starts_with("controller.quorum.")
                    || key.starts_with("metadata.log.")
                    || KRAFT_ONLY_KEYS.contains(&key)
            }
        }
    }
}

/// Broker settings that exist only in ZooKeeper mode (besides every `zookeeper.*` key).
const ZOOKEEPER_ONLY_KEYS: &[&str] = &[
    "broker.id.generation.enable",
    "reserved.broker.max.id",
    "inter.broker.protocol.version",
    "control.plane.listener.name",
];

/// Broker settings that exist only in KRaft mode (besides every `controller.quorum.*` and
/// `metadata.log.*` key).
const KRAFT_ONLY_KEYS: &[&str] = &[
    "process.roles",
    "node.id",
    "controller.listener.names",
    "broker.heartbeat.interval.ms",
    "broker.session.timeout.ms",
    "initial.broker.registration.timeout.ms",
    "metadata.max.retention.bytes",
    "metadata.max.retention.ms",
    "metadata.max.idle.interval.ms",
    "early.start.listeners",
    "sasl.mechanism.controller.protocol",
];

/// The KRaft cluster id of the cluster `name` in `region`: the same on every render and every
/// node, so that a volume formatted with it is recognised after a re-apply, and different for
/// every cluster. A name-based UUID (RFC 9562 version 8: SHA-256 of a kcluster namespace, the
/// region and the name, with the version and variant bits set) written as Kafka writes a `Uuid`:
/// URL-safe base64 of its 16 bytes without padding (22 characters). Kafka's own random ids never
/// start with `-` (a command line would read it as an option); neither does this one.
pub fn cluster_id(name: &str, region: &str) -> String {
    let mut round = 0u32;
    loop {
        let digest = Sha256::new()
            .chain_update(b"kcluster KRaft cluster id\0")
            .chain_update(region.as_bytes())
            .chain_update([0])
            .chain_update(name.as_bytes())
            .chain_update(round.to_be_bytes())
            .finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        bytes[6] = (bytes[6] & 0x0f) | 0x80;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        if !id.starts_with('-') {
            return id;
        }
        round += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_id_is_stable_distinct_and_a_kafka_uuid() {
        let id = cluster_id("orders", "eu-west-1");
        assert_eq!(id, cluster_id("orders", "eu-west-1"), "stable");
        assert_ne!(id, cluster_id("orders", "eu-west-2"));
        assert_ne!(id, cluster_id("orders2", "eu-west-1"));
        assert_eq!(id.len(), 22, "{id}");
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&id)
            .expect("base64url");
        assert_eq!(bytes.len(), 16);
        assert_eq!(bytes[6] >> 4, 8, "version 8");
        assert_eq!(bytes[8] >> 6, 2, "RFC variant");
        // Kafka reserves the all-zero id and the metadata topic's id (…01).
        assert!(bytes[..15].iter().any(|&b| b != 0));
    }

    #[test]
    fn cluster_id_never_starts_with_a_dash() {
        for i in 0..2000 {
            let id = cluster_id(&format!("c{i}"), "us-east-1");
            assert!(!id.starts_with('-'), "{id}");
        }
    }

    #[test]
    fn each_mode_has_its_own_quorum_role() {
        assert!(Metadata::Kraft.has(Role::Controller) && !Metadata::Kraft.has(Role::Zookeeper));
        assert!(
            Metadata::Zookeeper.has(Role::Zookeeper) && !Metadata::Zookeeper.has(Role::Controller)
        );
        assert!(Metadata::Kraft.has(Role::Broker) && Metadata::Zookeeper.has(Role::Broker));
    }

    #[test]
    fn foreign_keys_follow_the_mode() {
        assert!(Metadata::Kraft.foreign_key("zookeeper.session.timeout.ms"));
        assert!(Metadata::Kraft.foreign_key("reserved.broker.max.id"));
        assert!(!Metadata::Kraft.foreign_key("controller.quorum.election.timeout.ms"));
        assert!(Metadata::Zookeeper.foreign_key("controller.quorum.election.timeout.ms"));
        assert!(Metadata::Zookeeper.foreign_key("process.roles"));
        assert!(!Metadata::Zookeeper.foreign_key("zookeeper.session.timeout.ms"));
        assert!(!Metadata::Kraft.foreign_key("num.partitions"));
    }
}
