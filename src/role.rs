//! Node roles as data: each kind of node kcluster runs is one small description — where the
//! topology describes it, its defaults, its address block, its service, files and ports, and the
//! spread rule its zones must follow. Code downstream asks the description instead of branching.

use std::fmt;

use serde::Serialize;

/// The kind of server a node is. The order is the launch order: what others depend on first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Zookeeper,
    /// A KRaft controller: a voter of the metadata quorum (KRaft mode only).
    Controller,
    Broker,
    Connect,
}

/// How a role's nodes must spread over the zones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spread {
    /// A majority quorum (ZooKeeper, KRaft controllers): odd, at least 3, and no zone holds a
    /// majority, so losing any one zone keeps the quorum.
    Quorum,
    /// Round-robin over the zones; placement rules live with the role's own checks.
    RoundRobin,
}

/// A file every node of a role gets, rendered from a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleFile {
    /// The file's name in `render --out` and in messages.
    pub name: &'static str,
    pub template: &'static str,
    /// Where the bootstrap installs it on the node.
    pub path: &'static str,
}

/// Everything kcluster knows about one role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleInfo {
    pub role: Role,
    /// The role's name in node names (`zookeeper-1`), tags and labels.
    pub name: &'static str,
    /// The role's name in sentences: `ZooKeeper`, `broker`.
    pub title: &'static str,
    /// The topology section that describes the role.
    pub section: &'static str,
    /// Nodes when the section names no `count` and no `nodes`. 0: the role is optional and a
    /// topology without its section has none of these nodes.
    pub default_count: u32,
    /// The largest node id the role's software accepts.
    pub max_id: u32,
    /// What the node id is called in the role's own configuration.
    pub id_meaning: &'static str,
    pub default_instance_type: &'static str,
    pub default_heap: &'static str,
    /// The data volume's default size; `None`: the role keeps nothing on its node that must
    /// outlive the instance, so it gets no data volume (and its section takes no `volume`).
    pub default_volume_gib: Option<u32>,
    /// A node's address is this offset plus its id inside its zone's subnet, unless pinned.
    pub address_base: u32,
    /// The systemd service that runs the role's JVM.
    pub service: &'static str,
    /// The role's main configuration file (its template is `<name>.j2`), installed in `/etc/kafka`.
    pub config_file: &'static str,
    /// Role-specific files besides the main configuration, the unit and the exporter rules.
    pub extra_files: &'static [RoleFile],
    /// Ports the role serves to the cluster's own members only (the client listener, the JMX
    /// port and the exporters are added for every node elsewhere).
    pub member_ports: &'static [u16],
    pub spread: Spread,
    /// Added to the node's id to make its Kafka `node.id` (KRaft mode): controllers take their own
    /// range so that they never share a `node.id` with a broker.
    pub node_id_base: u32,
}

/// ZooKeeper's client, peer and leader-election ports.
pub const ZK_CLIENT_PORT: u16 = 2181;
pub const ZK_PEER_PORT: u16 = 2888;
pub const ZK_ELECTION_PORT: u16 = 3888;
/// The inter-broker listener; only reachable inside the cluster's security group.
pub const INTERNAL_PORT: u16 = 9093;
/// The KRaft controllers' listener (Raft between controllers, brokers' heartbeats and metadata
/// fetches); only reachable inside the cluster's security group.
pub const CONTROLLER_PORT: u16 = 9094;
/// A controller's `node.id` is this plus its id (`controller-1` is node 9001): broker ids stay
/// below it, so the two never collide, and a node id says which role it is.
pub const CONTROLLER_NODE_ID_BASE: u32 = 9000;

const ZOOKEEPER: RoleInfo = RoleInfo {
    role: Role::Zookeeper,
    name: "zookeeper",
    title: "ZooKeeper",
    section: "zookeeper",
    default_count: 3,
    max_id: 255,
    id_meaning: "ZooKeeper's myid",
    default_instance_type: "m5.large",
    default_heap: "1g",
    default_volume_gib: Some(20),
    address_base: 10,
    service: "zookeeper",
    config_file: "zookeeper.properties",
    extra_files: &[RoleFile {
        name: "myid",
        template: "myid.j2",
        path: "/etc/kafka/myid",
    }],
    member_ports: &[ZK_CLIENT_PORT, ZK_PEER_PORT, ZK_ELECTION_PORT],
    spread: Spread::Quorum,
    node_id_base: 0,
};

const CONTROLLER: RoleInfo = RoleInfo {
    role: Role::Controller,
    name: "controller",
    title: "controller",
    section: "controllers",
    default_count: 3,
    max_id: 999,
    id_meaning: "node.id 9001 to 9999",
    default_instance_type: "m5.large",
    default_heap: "1g",
    default_volume_gib: Some(20),
    address_base: 20,
    service: "kafka",
    config_file: "controller.properties",
    extra_files: &[],
    member_ports: &[CONTROLLER_PORT],
    spread: Spread::Quorum,
    node_id_base: CONTROLLER_NODE_ID_BASE,
};

const BROKER: RoleInfo = RoleInfo {
    role: Role::Broker,
    name: "broker",
    title: "broker",
    section: "brokers",
    default_count: 3,
    max_id: u32::MAX,
    id_meaning: "broker.id",
    default_instance_type: "m5.xlarge",
    default_heap: "4g",
    default_volume_gib: Some(100),
    address_base: 100,
    service: "kafka",
    config_file: "server.properties",
    extra_files: &[],
    member_ports: &[INTERNAL_PORT],
    spread: Spread::RoundRobin,
    node_id_base: 0,
};

/// The Kafka Connect REST API: workers forward requests to the group's leader over it, so it is
/// open within the group, and to `network.admin_cidrs` for operators.
pub const CONNECT_REST_PORT: u16 = 8083;

/// Kafka Connect workers in distributed mode. No data volume: a distributed worker keeps
/// connector configurations, source offsets and task status in Kafka's own (replicated) internal
/// topics, and its plugins are fetched again at boot, so nothing on the node must outlive it.
const CONNECT: RoleInfo = RoleInfo {
    role: Role::Connect,
    name: "connect",
    title: "Connect worker",
    section: "connect",
    default_count: 0,
    max_id: u32::MAX,
    id_meaning: "the worker's number",
    default_instance_type: "m5.large",
    default_heap: "2g",
    default_volume_gib: None,
    address_base: 60,
    service: "kafka-connect",
    config_file: "connect-distributed.properties",
    extra_files: &[],
    member_ports: &[CONNECT_REST_PORT],
    spread: Spread::RoundRobin,
    node_id_base: 0,
};

impl Role {
    /// Every role, in launch order.
    pub const ALL: [Role; 4] = [
        Role::Zookeeper,
        Role::Controller,
        Role::Broker,
        Role::Connect,
    ];

    pub fn info(self) -> &'static RoleInfo {
        match self {
            Role::Zookeeper => &ZOOKEEPER,
            Role::Controller => &CONTROLLER,
            Role::Broker => &BROKER,
            Role::Connect => &CONNECT,
        }
    }

    pub fn as_str(self) -> &'static str {
        self.info().name
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
            assert_eq!(r.info().role, r);
        }
        assert_eq!(Role::parse("kafka"), None);
    }

    #[test]
    fn all_is_in_launch_order() {
        let mut sorted = Role::ALL;
        sorted.sort();
        assert_eq!(sorted, Role::ALL);
    }

    #[test]
    fn address_blocks_do_not_overlap_for_default_counts() {
        // Each role's default nodes sit in their own block of the subnet.
        let mut taken = std::collections::BTreeSet::new();
        for r in Role::ALL {
            let i = r.info();
            // An optional role's block is checked for a typical size.
            let count = if i.default_count == 0 {
                6
            } else {
                i.default_count
            };
            for id in 1..=count {
                assert!(taken.insert(i.address_base + id), "{r} node {id}");
            }
        }
    }
}
