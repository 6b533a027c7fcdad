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
    /// A Kafka Connect worker in distributed mode (optional).
    Connect,
    /// Prometheus and Alertmanager watching the cluster (optional).
    Monitoring,
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

/// A file every node of a role gets whose content kcluster generates from the whole cluster
/// rather than from a template (the monitoring node's Prometheus files, the very ones
/// `kcluster monitoring` writes).
#[derive(Debug, Clone, Copy)]
pub struct GeneratedFile {
    pub name: &'static str,
    pub path: &'static str,
    pub content: fn(&crate::cluster::Cluster) -> String,
}

/// Two generated files are the same file when they have the same name and place.
impl PartialEq for GeneratedFile {
    fn eq(&self, other: &Self) -> bool {
        (self.name, self.path) == (other.name, other.path)
    }
}

impl Eq for GeneratedFile {}

/// Everything kcluster knows about one role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleInfo {
    pub role: Role,
    /// The role's name in node names (`zookeeper-1`), tags and labels.
    pub name: &'static str,
    /// The role's name in sentences: `ZooKeeper`, `broker`.
    pub title: &'static str,
    /// One node of the role in a count (`3 brokers`, `1 monitoring node`); the plural adds `s`.
    pub noun: &'static str,
    /// The topology section that describes the role.
    pub section: &'static str,
    /// Nodes when the section names no `count` and no `nodes`.
    pub default_count: u32,
    /// The largest node id the role's software accepts.
    pub max_id: u32,
    /// What the node id is called in the role's own configuration.
    pub id_meaning: &'static str,
    pub default_instance_type: &'static str,
    /// The JVM heap; unused by a role that runs no JVM.
    pub default_heap: &'static str,
    /// The data volume's default size; `None`: the role keeps nothing on its node that must
    /// outlive the instance, so it gets no data volume (and its section takes no `volume`).
    pub default_volume_gib: Option<u32>,
    /// A node's address is this offset plus its id inside its zone's subnet, unless pinned.
    pub address_base: u32,
    /// The systemd service that runs the role's main process.
    pub service: &'static str,
    /// The role's main configuration file (its template is `<name>.j2`), installed in `/etc/kafka`.
    pub config_file: &'static str,
    /// Role-specific files besides the main configuration, the unit and the exporter rules.
    pub extra_files: &'static [RoleFile],
    /// Role-specific files kcluster generates from the whole cluster.
    pub generated_files: &'static [GeneratedFile],
    /// Ports the role serves to the cluster's own members only (the client listener, the JMX
    /// port and the exporters are added for every node elsewhere).
    pub member_ports: &'static [u16],
    /// UDP ports the role serves to the cluster's own members only.
    pub member_udp_ports: &'static [u16],
    /// Ports the role serves to the cluster's members and the monitoring CIDRs. Every node
    /// shares one security group, so these ports must be ones no other role listens on.
    pub monitoring_ports: &'static [u16],
    /// Ports the role serves to the cluster's members and `network.admin_cidrs` (operators),
    /// under the same rule as `monitoring_ports`.
    pub admin_ports: &'static [u16],
    pub spread: Spread,
    /// Added to the node's id to make its Kafka `node.id` (KRaft mode): controllers take their own
    /// range so that they never share a `node.id` with a broker.
    pub node_id_base: u32,
    /// The role runs a Kafka, Kafka Connect or ZooKeeper JVM: the main configuration comes from
    /// `<config_file>.j2` into `/etc/kafka`, and the JVM carries the JMX exporter agent.
    pub jvm: bool,
    /// A topology without the role's section has no such nodes (`default_count` applies when
    /// the section is there).
    pub optional: bool,
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
/// The Kafka Connect REST API: workers forward requests to the group's leader over it, so it is
/// open within the group, and to `network.admin_cidrs` for operators (never to the monitoring
/// CIDRs: it is unauthenticated and runs any connector it is given).
pub const CONNECT_REST_PORT: u16 = 8083;
/// Prometheus on the monitoring node.
pub const PROMETHEUS_PORT: u16 = 9090;
/// Alertmanager's web and API port on the monitoring node: not its usual 9093, which is the
/// brokers' inter-broker listener. All nodes share one security group, so opening 9093 to the
/// monitoring CIDRs would open every broker's unauthenticated replication listener to them.
pub const ALERTMANAGER_PORT: u16 = 9095;
/// Alertmanager's cluster (gossip) port, TCP and UDP, between two monitoring nodes.
pub const ALERTMANAGER_CLUSTER_PORT: u16 = 9096;

const ZOOKEEPER: RoleInfo = RoleInfo {
    role: Role::Zookeeper,
    name: "zookeeper",
    title: "ZooKeeper",
    noun: "ZooKeeper node",
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
    generated_files: &[],
    member_ports: &[ZK_CLIENT_PORT, ZK_PEER_PORT, ZK_ELECTION_PORT],
    member_udp_ports: &[],
    monitoring_ports: &[],
    admin_ports: &[],
    spread: Spread::Quorum,
    node_id_base: 0,
    jvm: true,
    optional: false,
};

const CONTROLLER: RoleInfo = RoleInfo {
    role: Role::Controller,
    name: "controller",
    title: "controller",
    noun: "KRaft controller",
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
    generated_files: &[],
    member_ports: &[CONTROLLER_PORT],
    member_udp_ports: &[],
    monitoring_ports: &[],
    admin_ports: &[],
    spread: Spread::Quorum,
    node_id_base: CONTROLLER_NODE_ID_BASE,
    jvm: true,
    optional: false,
};

const BROKER: RoleInfo = RoleInfo {
    role: Role::Broker,
    name: "broker",
    title: "broker",
    noun: "broker",
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
    generated_files: &[],
    member_ports: &[INTERNAL_PORT],
    member_udp_ports: &[],
    monitoring_ports: &[],
    admin_ports: &[],
    spread: Spread::RoundRobin,
    node_id_base: 0,
    jvm: true,
    optional: false,
};

/// Kafka Connect workers in distributed mode. No data volume: a distributed worker keeps
/// connector configurations, source offsets and task status in Kafka's own (replicated) internal
/// topics, and its plugins are fetched again at boot, so nothing on the node must outlive it.
const CONNECT: RoleInfo = RoleInfo {
    role: Role::Connect,
    name: "connect",
    title: "Connect worker",
    noun: "Connect worker",
    section: "connect",
    // Two workers in two zones keep every connector running when one zone is lost.
    default_count: 2,
    max_id: u32::MAX,
    id_meaning: "the worker's number",
    default_instance_type: "m5.large",
    default_heap: "2g",
    default_volume_gib: None,
    address_base: 60,
    service: "kafka-connect",
    config_file: "connect-distributed.properties",
    extra_files: &[],
    generated_files: &[],
    member_ports: &[],
    member_udp_ports: &[],
    monitoring_ports: &[],
    admin_ports: &[CONNECT_REST_PORT],
    spread: Spread::RoundRobin,
    node_id_base: 0,
    jvm: true,
    optional: true,
};

/// Prometheus and Alertmanager with kcluster's scrape configuration, alert rules and dashboard.
/// Optional; two nodes (in two zones) keep alerting alive when the zone of one is lost: each
/// Prometheus scrapes every node and sends to both Alertmanagers, which gossip to notify once.
const MONITORING: RoleInfo = RoleInfo {
    role: Role::Monitoring,
    name: "monitoring",
    title: "monitoring",
    noun: "monitoring node",
    section: "monitoring",
    default_count: 1,
    max_id: 2,
    id_meaning: "the monitoring node's number",
    default_instance_type: "m5.large",
    default_heap: "1g",
    default_volume_gib: Some(50),
    address_base: 40,
    service: "prometheus",
    config_file: crate::render::monitoring::PROMETHEUS_FILE,
    extra_files: &[
        RoleFile {
            name: "alertmanager.yml",
            template: "alertmanager.yml.j2",
            path: "/etc/alertmanager/alertmanager.yml",
        },
        RoleFile {
            name: "alertmanager.service",
            template: "alertmanager.service.j2",
            path: "/etc/systemd/system/alertmanager.service",
        },
    ],
    generated_files: &[
        GeneratedFile {
            name: crate::render::monitoring::PROMETHEUS_FILE,
            path: "/etc/prometheus/prometheus.yml",
            content: crate::render::monitoring::prometheus_config,
        },
        GeneratedFile {
            name: crate::render::monitoring::ALERTS_FILE,
            path: "/etc/prometheus/kcluster-alerts.yml",
            content: crate::render::monitoring::alerts,
        },
        GeneratedFile {
            name: crate::render::monitoring::DASHBOARD_FILE,
            path: "/etc/prometheus/grafana-dashboard.json",
            content: crate::render::monitoring::dashboard,
        },
    ],
    member_ports: &[ALERTMANAGER_CLUSTER_PORT],
    member_udp_ports: &[ALERTMANAGER_CLUSTER_PORT],
    monitoring_ports: &[PROMETHEUS_PORT, ALERTMANAGER_PORT],
    admin_ports: &[],
    spread: Spread::RoundRobin,
    node_id_base: 0,
    jvm: false,
    optional: true,
};

impl Role {
    /// Every role, in launch order.
    pub const ALL: [Role; 5] = [
        Role::Zookeeper,
        Role::Controller,
        Role::Broker,
        Role::Connect,
        Role::Monitoring,
    ];

    pub fn info(self) -> &'static RoleInfo {
        match self {
            Role::Zookeeper => &ZOOKEEPER,
            Role::Controller => &CONTROLLER,
            Role::Broker => &BROKER,
            Role::Connect => &CONNECT,
            Role::Monitoring => &MONITORING,
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
            for id in 1..=i.default_count.max(i.max_id.min(7)) {
                assert!(taken.insert(i.address_base + id), "{r} node {id}");
            }
        }
    }

    #[test]
    fn ports_served_beyond_the_group_are_no_other_roles_ports() {
        // One security group holds every node: a port opened to the monitoring or admin CIDRs
        // is open on every node, so no role may listen on another role's such port.
        let mut inside: Vec<u16> = vec![INTERNAL_PORT, crate::render::JMX_PORT, 9092];
        for r in Role::ALL {
            inside.extend(r.info().member_ports);
        }
        let mut beyond = Vec::new();
        for r in Role::ALL {
            for p in r.info().monitoring_ports.iter().chain(r.info().admin_ports) {
                assert!(!inside.contains(p), "{r} serves {p} beyond the group");
                assert!(
                    !beyond.contains(p),
                    "{r} serves {p}, which another role serves"
                );
                beyond.push(*p);
            }
        }
    }
}
