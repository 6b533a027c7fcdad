//! The validated cluster: the one type everything downstream of the topology file sees.
//! Built only by `topology::load`; it never re-reads YAML and knows nothing about EC2.

pub mod metadata;
pub mod role;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::Serialize;

pub use metadata::Metadata;
pub use role::{
    ALERTMANAGER_CLUSTER_PORT, ALERTMANAGER_PORT, CONNECT_REST_PORT, CONTROLLER_PORT,
    INTERNAL_PORT, PROMETHEUS_PORT, Role, ZK_CLIENT_PORT, ZK_ELECTION_PORT, ZK_PEER_PORT,
};

/// A whole Kafka cluster as kcluster will build it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cluster {
    /// Cluster name; goes into resource names, tags and the ZooKeeper chroot.
    pub name: String,
    pub region: String,
    /// Availability zones in file order; each is a Kafka rack.
    pub zones: Vec<Zone>,
    pub kafka: KafkaDist,
    /// Where the metadata lives: a ZooKeeper ensemble or a KRaft controller quorum.
    pub metadata: Metadata,
    pub ami: Ami,
    pub network: Network,
    /// Extra tags put on every resource.
    pub tags: BTreeMap<String, String>,
    /// What the nodes of each role run on; a role without an entry has no nodes.
    pub roles: BTreeMap<Role, RoleSpec>,
    /// Every node, by role in launch order (`Role::ALL`), then by id.
    pub nodes: Vec<Node>,
    /// The user accepted a layout that does not survive the loss of one zone
    /// (`accept_zone_loss`): the rules that say so are warnings instead of errors.
    pub accept_zone_loss: bool,
    /// What the monitoring nodes' Prometheus and Alertmanager do (used only when there are some).
    pub monitoring: MonitoringSettings,
    /// Broker settings for `server.properties` (kcluster's defaults with the user's overrides on top),
    /// excluding the per-node identity keys that kcluster manages.
    pub broker_settings: BTreeMap<String, String>,
    /// The Kafka Connect worker group, when the topology has a `connect` section with workers.
    pub connect: Option<ConnectGroup>,
}

/// What every Kafka Connect worker of the cluster shares.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConnectGroup {
    /// Worker settings for `connect-distributed.properties` (kcluster's defaults with the user's
    /// overrides on top), excluding the per-node keys kcluster manages.
    pub settings: BTreeMap<String, String>,
    /// Connector plugins the bootstrap fetches, verifies and unpacks under `plugin.path`.
    pub plugins: Vec<Plugin>,
}

/// One connector plugin archive (`.tar.gz`, `.tgz`, `.zip`) or jar, fetched by URL at boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plugin {
    /// A directory name under `plugin.path`, unique per plugin (from the URL's file name).
    pub name: String,
    pub url: String,
    /// `sha256` or `sha512`: the checksum tool the bootstrap runs.
    pub algorithm: String,
    pub checksum: String,
}

/// The monitoring nodes' settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MonitoringSettings {
    /// Prometheus's `--storage.tsdb.retention.time`, e.g. `15d`.
    pub retention: String,
    /// Where Alertmanager posts alerts; `None` for nowhere.
    pub webhook_url: Option<String>,
}

impl Default for MonitoringSettings {
    fn default() -> Self {
        MonitoringSettings {
            retention: DEFAULT_RETENTION.to_string(),
            webhook_url: None,
        }
    }
}

/// How long the monitoring node's Prometheus keeps samples by default.
pub const DEFAULT_RETENTION: &str = "15d";

/// One availability zone and the subnet kcluster places its nodes in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Zone {
    pub name: String,
    /// Subnet id; `None` means "the default VPC's default subnet for this zone" (or, with
    /// `network.create`, the private subnet kcluster creates), found at plan time.
    pub subnet_id: Option<String>,
    pub cidr: Ipv4Net,
    /// The AZ ID (`euw1-az2`) the topology gives, checked against EC2 by plan; the zone's rack.
    pub id: Option<String>,
}

impl Zone {
    /// The zone's Kafka rack: its AZ ID when the topology gives one, else its name.
    pub fn rack(&self) -> &str {
        self.id.as_deref().unwrap_or(&self.name)
    }
}

/// The Kafka distribution every node installs (ZooKeeper nodes run the ZooKeeper bundled with Kafka).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KafkaDist {
    pub version: String,
    pub scala_version: String,
    pub url: String,
    pub sha512: String,
}

/// Where the machine image comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ami {
    Id(String),
    SsmParameter(String),
}

impl Ami {
    /// The value EC2's RunInstances takes as `ImageId` (it resolves `resolve:ssm:` itself).
    pub fn image_id(&self) -> String {
        match self {
            Ami::Id(id) => id.clone(),
            Ami::SsmParameter(p) => format!("resolve:ssm:{p}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Network {
    /// VPC id; `None` means the region's default VPC.
    pub vpc_id: Option<String>,
    /// CIDRs allowed to reach the brokers' client listener.
    pub client_cidrs: Vec<Ipv4Net>,
    pub client_port: u16,
    /// CIDRs allowed to reach the exporters (JMX exporter and node_exporter) besides the
    /// cluster's own members.
    pub monitoring_cidrs: Vec<Ipv4Net>,
    /// CIDRs allowed to reach the Kafka Connect REST API besides the cluster's own members.
    pub admin_cidrs: Vec<Ipv4Net>,
    pub ssh: Option<Ssh>,
    /// The network kcluster creates and owns (`network.create`); `None`: the default VPC or
    /// the subnets the zones name.
    pub create: Option<crate::provision::network::ManagedNetwork>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ssh {
    pub key_name: Option<String>,
    /// CIDRs allowed to reach port 22; empty means no SSH ingress rule.
    pub cidrs: Vec<Ipv4Net>,
}

/// What every node of one role runs on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoleSpec {
    pub instance_type: String,
    /// The data volume; `None` for a role that keeps no data on its node (Connect workers).
    pub volume: Option<Volume>,
    /// Java heap for the role's JVM, e.g. "1g".
    pub heap: String,
}

/// An encrypted gp3 EBS data volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Volume {
    pub size_gib: u32,
    pub iops: u32,
    pub throughput_mibps: u32,
}

/// One server of one role (a ZooKeeper member, a Kafka broker …), each on its own instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    pub role: Role,
    /// The id within the role (`RoleInfo::id_meaning`: `myid` for ZooKeeper, `broker.id` for brokers).
    pub id: u32,
    /// Stable name, `zookeeper-1`, `broker-3`.
    pub name: String,
    /// Availability zone; the broker's `broker.rack` is its rack (`Cluster::rack_of`).
    pub zone: String,
    /// Fixed private address, held by the node's own network interface.
    pub address: Ipv4Addr,
}

impl Node {
    pub fn node_name(role: Role, id: u32) -> String {
        format!("{}-{id}", role.as_str())
    }

    /// Kafka's `node.id` of the node in KRaft mode (a broker's is its `broker.id`).
    pub fn node_id(&self) -> u32 {
        self.role.info().node_id_base + self.id
    }
}

/// Where the data volume is mounted on every node.
pub const DATA_DIR: &str = "/var/lib/kcluster";

impl Cluster {
    pub fn zookeepers(&self) -> impl Iterator<Item = &Node> {
        self.nodes_of(Role::Zookeeper)
    }

    pub fn brokers(&self) -> impl Iterator<Item = &Node> {
        self.nodes_of(Role::Broker)
    }

    pub fn controllers(&self) -> impl Iterator<Item = &Node> {
        self.nodes_of(Role::Controller)
    }

    /// The members of the metadata quorum: ZooKeeper's ensemble or the KRaft controllers.
    pub fn quorum_members(&self) -> impl Iterator<Item = &Node> {
        self.nodes_of(self.metadata.quorum_role())
    }

    /// The KRaft cluster id every node's storage is formatted with (derived from the name and
    /// region, so the same on every render).
    pub fn kraft_cluster_id(&self) -> String {
        metadata::cluster_id(&self.name, &self.region)
    }

    /// `controller.quorum.voters`: every controller as `node.id@address:port`, by id.
    pub fn quorum_voters(&self) -> String {
        let voters: Vec<String> = self
            .controllers()
            .map(|n| format!("{}@{}:{CONTROLLER_PORT}", n.node_id(), n.address))
            .collect();
        voters.join(",")
    }

    /// `bootstrap.servers` for a client inside the cluster's network: every broker's client
    /// listener at its fixed address.
    pub fn bootstrap_servers(&self) -> String {
        self.brokers()
            .map(|n| format!("{}:{}", n.address, self.network.client_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn monitoring_nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes_of(Role::Monitoring)
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The nodes of one role.
    pub fn nodes_of(&self, role: Role) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(move |n| n.role == role)
    }

    /// What the nodes of `role` run on; `None` when the cluster has no such role.
    pub fn role_spec(&self, role: Role) -> Option<&RoleSpec> {
        self.roles.get(&role)
    }

    /// The rack of the zone named `zone` (`broker.rack`, `client.rack`): its AZ ID when the
    /// topology gives one, else the name itself.
    pub fn rack_of<'a>(&'a self, zone: &'a str) -> &'a str {
        self.zones
            .iter()
            .find(|z| z.name == zone)
            .map_or(zone, Zone::rack)
    }

    pub fn zone_names(&self) -> Vec<&str> {
        self.zones.iter().map(|z| z.name.as_str()).collect()
    }

    /// `default.replication.factor` as configured (kcluster always sets it).
    pub fn replication_factor(&self) -> u32 {
        self.setting_u32("default.replication.factor").unwrap_or(1)
    }

    /// `min.insync.replicas` as configured (kcluster always sets it).
    pub fn min_insync_replicas(&self) -> u32 {
        self.setting_u32("min.insync.replicas").unwrap_or(1)
    }

    /// The ZooKeeper connection string, with the cluster's chroot.
    pub fn zookeeper_connect(&self) -> String {
        let hosts: Vec<String> = self
            .zookeepers()
            .map(|n| format!("{}:{ZK_CLIENT_PORT}", n.address))
            .collect();
        format!("{}/kafka/{}", hosts.join(","), self.name)
    }

    fn setting_u32(&self, key: &str) -> Option<u32> {
        self.broker_settings.get(key)?.trim().parse().ok()
    }
}
