//! Test-only builder of small clusters (there is no topology parser to lean on in unit tests).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::cluster::{Ami, Cluster, KafkaDist, Network, Node, Role, RoleSpec, Volume, Zone};

pub const A: &str = "us-east-1a";
pub const B: &str = "us-east-1b";
pub const C: &str = "us-east-1c";

/// A cluster with the given AZs (file order), one ZooKeeper member per entry of `zk` and one broker
/// per entry of `brokers` (each entry is the node's AZ; ids count from 1), and the given
/// `default.replication.factor` and `min.insync.replicas`. Everything else is plausible filler.
pub fn test_cluster(
    zones: &[&str],
    zk: &[&str],
    brokers: &[&str],
    replication_factor: u32,
    min_insync_replicas: u32,
) -> Cluster {
    let zone_index = |zone: &str| zones.iter().position(|z| *z == zone).unwrap_or(99) as u8;
    let node = |role: Role, i: usize, zone: &str| {
        let id = i as u32 + 1;
        let host = role.info().address_base as u8 + i as u8;
        Node {
            role,
            id,
            name: Node::node_name(role, id),
            zone: zone.to_owned(),
            address: Ipv4Addr::new(10, 0, zone_index(zone), host),
        }
    };
    let mut nodes: Vec<Node> = zk
        .iter()
        .enumerate()
        .map(|(i, z)| node(Role::Zookeeper, i, z))
        .collect();
    nodes.extend(
        brokers
            .iter()
            .enumerate()
            .map(|(i, z)| node(Role::Broker, i, z)),
    );
    let role = RoleSpec {
        instance_type: "m7i.large".to_owned(),
        volume: Some(Volume {
            size_gib: 100,
            iops: 3000,
            throughput_mibps: 125,
        }),
        heap: "1g".to_owned(),
    };
    Cluster {
        name: "test".to_owned(),
        region: "us-east-1".to_owned(),
        zones: zones
            .iter()
            .enumerate()
            .map(|(i, z)| Zone {
                name: (*z).to_owned(),
                subnet_id: None,
                cidr: Ipv4Net::new(Ipv4Addr::new(10, 0, i as u8, 0), 24).expect("valid prefix"),
                id: None,
            })
            .collect(),
        kafka: KafkaDist {
            version: "3.9.0".to_owned(),
            scala_version: "2.13".to_owned(),
            url: "https://archive.apache.org/dist/kafka/3.9.0/kafka_2.13-3.9.0.tgz".to_owned(),
            sha512: "0".repeat(128),
        },
        metadata: crate::cluster::Metadata::Zookeeper,
        ami: Ami::SsmParameter(
            "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64".to_owned(),
        ),
        network: Network {
            vpc_id: None,
            client_cidrs: vec![],
            client_port: 9092,
            monitoring_cidrs: vec![],
            admin_cidrs: vec![],
            ssh: None,
            create: None,
        },
        tags: BTreeMap::new(),
        roles: BTreeMap::from([(Role::Zookeeper, role.clone()), (Role::Broker, role)]),
        nodes,
        accept_zone_loss: false,
        connect: None,
        monitoring: Default::default(),
        broker_settings: BTreeMap::from([
            (
                "default.replication.factor".to_owned(),
                replication_factor.to_string(),
            ),
            (
                "min.insync.replicas".to_owned(),
                min_insync_replicas.to_string(),
            ),
        ]),
    }
}
