//! The topology file exactly as written: serde types, every field documented. `kcluster schema`
//! prints these as a JSON Schema. Defaults and rules live in `defaults.rs` and `validate.rs`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::cluster::role::Role;

/// A kcluster topology: one Apache Kafka cluster (ZooKeeper or KRaft mode) on EC2.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawTopology {
    /// Cluster name: lowercase letters, digits and dashes, starting with a letter, at most 32
    /// characters. It goes into every resource name and tag, into the ZooKeeper chroot, and (with
    /// the region) into the KRaft cluster id.
    pub name: Option<String>,
    /// AWS region, e.g. `eu-west-1`.
    pub region: Option<String>,
    /// Availability zones, each a Kafka rack (`broker.rack`). At least 2; 3 or more for a cluster
    /// that survives losing a zone.
    pub zones: Option<Vec<RawZone>>,
    /// Where the cluster keeps its metadata: `zookeeper` (an ensemble, section `zookeeper`; the
    /// default with Kafka 3.9) or `kraft` (a quorum of dedicated controllers, section
    /// `controllers`; required by Kafka 4, which removed ZooKeeper). Default: `kraft` when
    /// `kafka.version` is 4.x, otherwise `zookeeper`.
    pub metadata: Option<RawMetadata>,
    /// The Kafka distribution to install.
    pub kafka: Option<RawKafka>,
    /// The machine image. Default: the public SSM parameter of Amazon Linux 2023 (x86_64).
    pub ami: Option<RawAmi>,
    /// The ZooKeeper ensemble (ZooKeeper mode only).
    pub zookeeper: Option<RawRole>,
    /// The KRaft controller quorum (KRaft mode only): dedicated controllers, each on its own
    /// instance, odd and at least 3, no zone holding a majority. Default 3, `m5.large`, heap `1g`.
    pub controllers: Option<RawRole>,
    /// The Kafka brokers.
    pub brokers: Option<RawBrokers>,
    /// Kafka Connect workers (distributed mode), one group per cluster. Omit for none.
    pub connect: Option<RawConnect>,
    /// An optional monitoring node (or two): Prometheus and Alertmanager watching the cluster.
    pub monitoring: Option<RawMonitoring>,
    /// Network placement and access.
    pub network: Option<RawNetwork>,
    /// Extra tags put on every resource kcluster creates.
    pub tags: Option<BTreeMap<String, String>>,
    /// Accept a layout that does not survive the loss of one availability zone: the metadata
    /// quorum (ZooKeeper's or the KRaft controllers'), `acks=all` writes or whole partitions can
    /// stop until the zone returns (always the
    /// case with only 2 zones). Without it such a layout is refused, by `validate` and every
    /// command that builds, as `check` fails it. Default: false.
    pub accept_zone_loss: Option<bool>,
}

/// One availability zone and the subnet used in it.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawZone {
    /// Zone name, e.g. `eu-west-1a`; must belong to `region`.
    pub name: Option<String>,
    /// The subnet's IPv4 CIDR, e.g. `10.0.1.0/24`. Node addresses are allocated from it before
    /// anything boots, so it is needed even when the subnet is found automatically. With
    /// `network.create` it is the private subnet kcluster carves for the zone: leave it out.
    pub cidr: Option<String>,
    /// Subnet id (`subnet-…`). Omit to use the default VPC's default subnet for this zone.
    pub subnet: Option<String>,
    /// The zone's AZ ID, e.g. `euw1-az2` (`aws ec2 describe-availability-zones`). Zone names map
    /// to different physical zones in different accounts; the AZ ID names the same one
    /// everywhere. Given, it is the brokers' `broker.rack` and clients' `client.rack` (what
    /// clients in other accounts need for follower fetching), and `plan` checks it against EC2.
    /// Omit to rack by zone name.
    pub id: Option<String>,
}

/// Where the cluster keeps its metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RawMetadata {
    Zookeeper,
    Kraft,
}

/// The Kafka distribution.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawKafka {
    /// Kafka version: the 3.9 line (the last with ZooKeeper; ZooKeeper or KRaft mode) or 4.x
    /// (KRaft only). Default `3.9.2` in ZooKeeper mode, `4.3.1` in KRaft mode; these, 3.9.0 and
    /// 3.9.1 need no `sha512`.
    pub version: Option<String>,
    /// Scala build of the tarball. Default `2.13`.
    pub scala: Option<String>,
    /// Tarball URL. Default: the Apache archive URL for `version` and `scala`.
    pub url: Option<String>,
    /// SHA-512 of the tarball (128 hex digits); the bootstrap refuses any other file. Required when
    /// `version`, `scala` or `url` differ from the defaults.
    pub sha512: Option<String>,
}

/// The machine image: give exactly one of `id` or `ssm_parameter`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawAmi {
    /// An AMI id, `ami-…`.
    pub id: Option<String>,
    /// A public SSM parameter that names an AMI, resolved by EC2 at launch, e.g.
    /// `/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64`.
    pub ssm_parameter: Option<String>,
}

/// A quorum role: the ZooKeeper ensemble or the KRaft controllers.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawRole {
    /// Number of nodes: odd, at least 3. Default 3. Ids are 1..=count unless `nodes` lists them.
    pub count: Option<u32>,
    /// EC2 instance type. Default `m5.large`.
    pub instance_type: Option<String>,
    /// JVM heap, e.g. `1g`. Default `1g`.
    pub heap: Option<String>,
    /// The data volume (encrypted gp3).
    pub volume: Option<RawVolume>,
    /// Per-node pins: a node's zone and/or address. Without `count`, this list is the set of nodes.
    pub nodes: Option<Vec<RawNode>>,
}

/// The Kafka brokers.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawBrokers {
    /// Number of brokers. Default 3. Ids are 1..=count unless `nodes` lists them.
    pub count: Option<u32>,
    /// EC2 instance type. Default `m5.xlarge`.
    pub instance_type: Option<String>,
    /// JVM heap, e.g. `6g`. Default `4g`.
    pub heap: Option<String>,
    /// The data volume (encrypted gp3) holding `log.dirs`.
    pub volume: Option<RawVolume>,
    /// Per-node pins: a broker's zone and/or address. Without `count`, this list is the set of brokers.
    pub nodes: Option<Vec<RawNode>>,
    /// `server.properties` settings on top of kcluster's defaults, e.g. `num.partitions: 12`.
    /// Each key must be a broker config of the Kafka version; per-node keys (`broker.id`,
    /// `broker.rack`, `listeners`, `log.dirs`, `zookeeper.connect` …) are kcluster's.
    #[schemars(with = "Option<BTreeMap<String, OverrideValue>>")]
    pub overrides: Option<BTreeMap<String, serde_yaml::Value>>,
}

/// Kafka Connect workers in distributed mode: one worker group, its state in Kafka's own
/// internal topics (so no data volume), spread round-robin over the zones like brokers.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawConnect {
    /// Number of workers. Default 2 when this section is present (0 has none). Two or more, in
    /// different zones, keep connectors running when a worker or a zone is lost. Ids are
    /// 1..=count unless `nodes` lists them.
    pub count: Option<u32>,
    /// EC2 instance type. Default `m5.large`.
    pub instance_type: Option<String>,
    /// JVM heap, e.g. `2g`. Default `2g`.
    pub heap: Option<String>,
    /// Per-node pins: a worker's zone and/or address. Without `count`, this list is the set of workers.
    pub nodes: Option<Vec<RawNode>>,
    /// Connector plugins every worker fetches at boot, each verified against its checksum and
    /// unpacked into its own directory under `plugin.path`. Kafka's own file connectors and
    /// converters ship with Kafka and need no entry.
    pub plugins: Option<Vec<RawPlugin>>,
    /// `connect-distributed.properties` settings on top of kcluster's defaults, e.g.
    /// `offset.flush.interval.ms: 10000`. Each key must be a Connect worker config of Kafka 3.9,
    /// or a `producer.` / `consumer.` key of the producer / consumer configs (checked against
    /// those), or an `admin.` / converter-prefixed key (passed as written). Per-node keys
    /// (`bootstrap.servers`, `group.id`, `listeners`, `plugin.path`, `client.rack` …) are kcluster's.
    #[schemars(with = "Option<BTreeMap<String, OverrideValue>>")]
    pub overrides: Option<BTreeMap<String, serde_yaml::Value>>,
}

/// A connector plugin: a `.tar.gz`/`.tgz`/`.zip` archive or a single `.jar`, with exactly one
/// checksum.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawPlugin {
    /// `https://` URL of the archive or jar.
    pub url: Option<String>,
    /// SHA-256 of the file (64 hex digits).
    pub sha256: Option<String>,
    /// SHA-512 of the file (128 hex digits).
    pub sha512: Option<String>,
}

/// The fields every role's section has, whatever else it holds.
pub struct RoleFields<'a> {
    pub count: Option<u32>,
    pub instance_type: Option<&'a str>,
    pub heap: Option<&'a str>,
    pub volume: Option<&'a RawVolume>,
    pub nodes: Option<&'a [RawNode]>,
}

impl RawTopology {
    /// The section describing `role`, if the file has one.
    pub fn role_fields(&self, role: Role) -> Option<RoleFields<'_>> {
        match role {
            Role::Zookeeper => self.zookeeper.as_ref().map(RawRole::fields),
            Role::Controller => self.controllers.as_ref().map(RawRole::fields),
            Role::Broker => self.brokers.as_ref().map(|b| RoleFields {
                count: b.count,
                instance_type: b.instance_type.as_deref(),
                heap: b.heap.as_deref(),
                volume: b.volume.as_ref(),
                nodes: b.nodes.as_deref(),
            }),
            Role::Connect => self.connect.as_ref().map(|c| RoleFields {
                count: c.count,
                instance_type: c.instance_type.as_deref(),
                heap: c.heap.as_deref(),
                volume: None,
                nodes: c.nodes.as_deref(),
            }),
            Role::Monitoring => self.monitoring.as_ref().map(|m| RoleFields {
                count: m.count,
                instance_type: m.instance_type.as_deref(),
                heap: None,
                volume: m.volume.as_ref(),
                nodes: m.nodes.as_deref(),
            }),
        }
    }
}

/// The monitoring node: Prometheus (port 9090) with kcluster's scrape configuration and alert
/// rules, and Alertmanager (port 9095), both reachable from the cluster and
/// `network.monitoring_cidrs` only. It has no rack duty: Kafka never places data on it.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawMonitoring {
    /// 1, or 2 for alerting that survives the loss of a zone (the two sit in different zones,
    /// each scrapes every node, and their Alertmanagers gossip so each alert is sent once).
    /// 0 has none. Default 1 when this section is present.
    pub count: Option<u32>,
    /// EC2 instance type. Default `m5.large`.
    pub instance_type: Option<String>,
    /// The data volume (encrypted gp3) holding Prometheus's time series. Default 50 GiB.
    pub volume: Option<RawVolume>,
    /// Per-node pins: a monitoring node's zone and/or address.
    pub nodes: Option<Vec<RawNode>>,
    /// How long Prometheus keeps samples, e.g. `15d`, `6w`, `1y`. Default `15d`. Prometheus also
    /// drops the oldest samples before they fill 80 % of the data volume.
    pub retention: Option<String>,
    /// Alertmanager posts every firing and resolved alert to this http(s) URL (its webhook
    /// receiver: an incident tool, a chat bridge …). Omit for none: alerts are then only shown
    /// by Alertmanager (port 9095) and Prometheus (port 9090).
    pub webhook_url: Option<String>,
}

impl RawRole {
    fn fields(&self) -> RoleFields<'_> {
        RoleFields {
            count: self.count,
            instance_type: self.instance_type.as_deref(),
            heap: self.heap.as_deref(),
            volume: self.volume.as_ref(),
            nodes: self.nodes.as_deref(),
        }
    }
}

/// A node pin.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawNode {
    /// The node id (`myid` 1-255 for ZooKeeper, 1-999 for controllers, whose `node.id` is 9000
    /// plus it, `broker.id` or `node.id` for brokers, the worker's number for Connect).
    pub id: Option<u32>,
    /// Zone for this node. Default: round-robin over `zones` by id.
    pub zone: Option<String>,
    /// Private IPv4 address inside the zone's subnet. Default: allocated from the zone's CIDR.
    pub address: Option<String>,
}

/// An encrypted gp3 EBS data volume.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawVolume {
    /// Size in GiB. Default 20 for ZooKeeper, 100 for brokers.
    pub size_gib: Option<u32>,
    /// Volume type; `gp3` is what kcluster provisions.
    #[serde(rename = "type")]
    pub kind: Option<VolumeKind>,
    /// Provisioned IOPS, 3000-80000 and at most 500 per GiB. Default 3000.
    pub iops: Option<u32>,
    /// Throughput in MiB/s, 125-2000 and at most IOPS/4. Default 125.
    pub throughput_mibps: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum VolumeKind {
    Gp3,
}

/// Network placement and access.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawNetwork {
    /// VPC id (`vpc-…`). Omit to use the region's default VPC; then every zone uses its default subnet.
    pub vpc: Option<String>,
    /// CIDRs allowed to reach the brokers' client listener. Default: the zones' subnets only.
    pub client_cidrs: Option<Vec<String>>,
    /// The client listener's port. Default 9092.
    pub client_port: Option<u16>,
    /// CIDRs allowed to scrape every node's Prometheus exporters (the JMX exporter on port 11001,
    /// node_exporter on 11002), e.g. your Prometheus server's subnet. The cluster's own members
    /// can always reach them. Default: none.
    pub monitoring_cidrs: Option<Vec<String>>,
    /// CIDRs allowed to reach the Kafka Connect REST API (port 8083), e.g. your operators' VPN or
    /// your deployment pipeline's subnet. The cluster's own members can always reach it (workers
    /// forward requests to the group's leader). Never `0.0.0.0/0`: the API is unauthenticated and
    /// runs whatever connector it is given. Default: none.
    pub admin_cidrs: Option<Vec<String>>,
    /// SSH access; omit for none (use SSM Session Manager).
    pub ssh: Option<RawSsh>,
    /// A network kcluster creates and owns (a VPC, per zone a private and a public subnet, an
    /// internet gateway, NAT gateways, route tables and an S3 gateway endpoint), deleted by
    /// `destroy`. The nodes live in the private subnets. Refused with `vpc` and `zones[].subnet`.
    /// Omit to use the default VPC or the subnets the zones name.
    pub create: Option<RawCreate>,
}

/// The network kcluster creates.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawCreate {
    /// The VPC's IPv4 CIDR: a private range (RFC 1918), /16 to /20. Default `10.42.0.0/16`.
    /// Cut in 16 blocks: zone `…a` gets the first as its private subnet, `…b` the second …; the
    /// last block holds the public subnets, a sixteenth of it each (a /16 gives /20 private and
    /// /24 public subnets).
    pub cidr: Option<String>,
    /// NAT gateways: `per-zone` (default), one in each zone, so each zone's way out survives the
    /// loss of any other; or `one`, in the first zone, for every zone: cheaper, but while that
    /// zone is down no node elsewhere can install packages or download Kafka (a replacement
    /// fails to boot) and a monitoring node there cannot post its alerts.
    pub nat: Option<RawNat>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RawNat {
    One,
    PerZone,
}

/// SSH access.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawSsh {
    /// EC2 key pair name to install.
    pub key_name: Option<String>,
    /// CIDRs allowed to reach port 22; never `0.0.0.0/0`.
    pub cidrs: Option<Vec<String>>,
}

/// What an override may be in the schema: a scalar, or a list of scalars (joined with commas).
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum OverrideValue {
    Bool(bool),
    Number(f64),
    Text(String),
    List(Vec<OverrideScalar>),
}

#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum OverrideScalar {
    Bool(bool),
    Number(f64),
    Text(String),
}
