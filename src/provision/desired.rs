//! Cluster + rendered node files + the subnets and route tables found in EC2 → the resources that
//! should exist: one security group, and per node a network interface holding its address, an EBS
//! data volume of its own (it outlives instances), an instance, and an Elastic IP where the zone
//! reaches the internet through an internet gateway.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::cluster::role::RoleInfo;
use crate::cluster::{Cluster, Node};
use crate::ec2::{Image, RouteTable, Rule, Source, Subnet, Tags, VolumeSpec, tags};
use crate::provision::egress::{self, ZoneEgress};
use crate::render::exporters::{JMX_EXPORTER_PORT, NODE_EXPORTER_PORT};
use crate::render::{JMX_PORT, NodeRender};

/// The root volume of every instance; the image's own root is replaced by an encrypted gp3 one.
pub const ROOT_SIZE_GIB: u32 = 20;
/// The device name the data volume is attached as; the bootstrap finds it by its volume id.
pub const DATA_DEVICE: &str = "/dev/sdf";
/// The value of the `kcluster:volume` tag on a node's data volume.
pub const DATA_VOLUME_TAG: &str = "data";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredGroup {
    pub name: String,
    pub description: String,
    pub vpc_id: String,
    pub rules: Vec<Rule>,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredNode {
    pub node: Node,
    pub subnet_id: String,
    pub interface_tags: Tags,
    /// Whether the node needs an Elastic IP to reach the internet (its zone's subnet routes
    /// 0.0.0.0/0 to an internet gateway); the address carries the interface's tags.
    pub public_address: bool,
    pub instance_type: String,
    /// The AMI to launch.
    pub image: String,
    /// Where the AMI comes from, as the topology says (kept in the `kcluster:image` tag, so a
    /// newly published AMI behind an SSM parameter does not replace running nodes).
    pub image_source: String,
    pub user_data: Vec<u8>,
    /// The user-data document with the data volume's placeholder (see `render::with_data_volume`).
    pub document: String,
    /// Short hash of the user-data (before its volume id is put in), kept in the `kcluster:config`
    /// tag.
    pub config_hash: String,
    /// Volumes created with each instance (the root volume only).
    pub volumes: Vec<VolumeSpec>,
    /// The node's own data volume, created apart from any instance; `None` for a role that
    /// keeps no data on the node (Connect workers).
    pub data_volume: Option<DesiredVolume>,
    pub key_name: Option<String>,
    /// Instance tags without the generation, which the plan adds.
    pub instance_tags: Tags,
}

/// A node's data volume: encrypted gp3 in the node's zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredVolume {
    pub size_gib: u32,
    pub iops: u32,
    pub throughput_mibps: u32,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub cluster: String,
    pub region: String,
    pub vpc_id: String,
    /// Each zone's way to the internet, in the topology's zone order.
    pub egress: Vec<ZoneEgress>,
    /// Each zone's name and rack (its AZ ID when the topology gives one), in topology order.
    pub racks: Vec<(String, String)>,
    pub group: DesiredGroup,
    pub nodes: Vec<DesiredNode>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DesiredError {
    #[error("zone {zone}: no subnet found ({hint})")]
    NoSubnet { zone: String, hint: String },
    #[error(
        "zone {zone}: the topology says CIDR {expected} but subnet {subnet} has {actual}; node addresses are allocated from the CIDR, so fix `zones[].cidr`"
    )]
    CidrMismatch {
        zone: String,
        subnet: String,
        expected: String,
        actual: String,
    },
    #[error("subnet {subnet} is in zone {actual}, not {zone}")]
    ZoneMismatch {
        zone: String,
        subnet: String,
        actual: String,
    },
    #[error("the zones' subnets are in different VPCs ({0})")]
    MixedVpcs(String),
    #[error(
        "zone {zone}: subnet {subnet} is in {actual}, but `network.vpc` is {expected}; the security group would be made in another VPC than the nodes, so fix `network.vpc` or the zone's subnet"
    )]
    VpcMismatch {
        zone: String,
        subnet: String,
        actual: String,
        expected: String,
    },
    /// A zone whose subnet has no way to the internet: the whole sentence, fix included.
    #[error("{0}")]
    NoEgress(String),
    #[error("no rendered files for {0}")]
    NotRendered(String),
    #[error("no instance settings for {0}'s role")]
    NoRoleSpec(String),
}

/// Tags every resource of the cluster carries.
pub fn base_tags(cluster: &Cluster, name: &str) -> Tags {
    let mut t: Tags = cluster.tags.clone();
    t.insert(tags::CLUSTER.into(), cluster.name.clone());
    t.insert(tags::NAME.into(), name.to_string());
    t
}

fn node_tags(cluster: &Cluster, node: &Node) -> Tags {
    let mut t = base_tags(cluster, &format!("{}-{}", cluster.name, node.name));
    t.insert(tags::ROLE.into(), node.role.as_str().into());
    t.insert(tags::NODE.into(), node.name.clone());
    t
}

/// The security group's ingress: each present role's member ports (ZooKeeper's, the inter-broker
/// listener, the Alertmanagers' gossip) and JMX only within the group; the ports a role serves
/// beyond the group (Prometheus and Alertmanager, Connect's REST API) to the group and the
/// monitoring or admin CIDRs; the client listener to the group and the client CIDRs; the
/// exporters to the group and the monitoring CIDRs; SSH only to the CIDRs the topology names.
pub fn group_rules(cluster: &Cluster) -> Vec<Rule> {
    let within = |port: u16| Rule::tcp(port, Source::Group);
    let present: Vec<&RoleInfo> = cluster
        .roles
        .keys()
        .filter(|r| cluster.nodes_of(**r).next().is_some())
        .map(|r| r.info())
        .collect();
    let mut rules: Vec<Rule> = Vec::new();
    for info in &present {
        rules.extend(info.member_ports.iter().map(|p| within(*p)));
        rules.extend(
            info.member_udp_ports
                .iter()
                .map(|p| Rule::udp(*p, Source::Group)),
        );
        for (ports, cidrs) in [
            (info.monitoring_ports, &cluster.network.monitoring_cidrs),
            (info.admin_ports, &cluster.network.admin_cidrs),
        ] {
            for p in ports {
                rules.push(within(*p));
                rules.extend(cidrs.iter().map(|c| Rule::tcp(*p, Source::Cidr(*c))));
            }
        }
    }
    rules.extend([
        within(JMX_PORT),
        within(JMX_EXPORTER_PORT),
        within(NODE_EXPORTER_PORT),
        within(cluster.network.client_port),
    ]);
    for c in &cluster.network.client_cidrs {
        rules.push(Rule::tcp(cluster.network.client_port, Source::Cidr(*c)));
    }
    for c in &cluster.network.monitoring_cidrs {
        rules.push(Rule::tcp(JMX_EXPORTER_PORT, Source::Cidr(*c)));
        rules.push(Rule::tcp(NODE_EXPORTER_PORT, Source::Cidr(*c)));
    }
    if let Some(ssh) = &cluster.network.ssh {
        for c in &ssh.cidrs {
            rules.push(Rule::tcp(22, Source::Cidr(*c)));
        }
    }
    rules.sort();
    rules.dedup();
    rules
}

/// Short, stable hash of a node's user-data.
pub fn config_hash(user_data: &[u8]) -> String {
    hex::encode(&Sha256::digest(user_data)[..8])
}

/// The RunInstances idempotency token of one launch: cluster, node, interface and generation.
/// Real EC2 never launches twice for the same token (at most 64 ASCII characters).
pub fn client_token(cluster: &str, node: &str, interface_id: &str, generation: u32) -> String {
    let digest = Sha256::digest(format!("{cluster}/{node}/{interface_id}/{generation}"));
    format!("kcluster-{}", &hex::encode(digest)[..40])
}

/// The CreateVolume idempotency token of a node's data volume: cluster, node, zone and the
/// interface it is created for (a new interface after `destroy`, or in another zone, is a new
/// volume; a retry of the same creation is the same one).
pub fn volume_token(cluster: &str, node: &str, zone: &str, interface_id: &str) -> String {
    let digest = Sha256::digest(format!("{cluster}/{node}/{zone}/{interface_id}/data"));
    format!("kcluster-{}", &hex::encode(digest)[..40])
}

/// Matches the topology's zones with the subnets found in EC2.
pub fn zone_subnets(
    cluster: &Cluster,
    subnets: &[Subnet],
) -> Result<(String, BTreeMap<String, String>), Vec<DesiredError>> {
    let mut errors = Vec::new();
    let mut out = BTreeMap::new();
    let mut vpcs: Vec<String> = Vec::new();
    for zone in &cluster.zones {
        let found = match &zone.subnet_id {
            Some(id) => subnets.iter().find(|s| &s.id == id),
            None => subnets.iter().find(|s| s.zone == zone.name),
        };
        let Some(s) = found else {
            let hint = match &zone.subnet_id {
                Some(id) => format!("subnet {id} does not exist in {}", cluster.region),
                None => format!(
                    "the default VPC of {} has no default subnet in this zone; create one with `aws ec2 create-default-subnet --availability-zone {}` or name a subnet",
                    cluster.region, zone.name
                ),
            };
            errors.push(DesiredError::NoSubnet {
                zone: zone.name.clone(),
                hint,
            });
            continue;
        };
        if s.zone != zone.name {
            errors.push(DesiredError::ZoneMismatch {
                zone: zone.name.clone(),
                subnet: s.id.clone(),
                actual: s.zone.clone(),
            });
        }
        if s.cidr != zone.cidr {
            errors.push(DesiredError::CidrMismatch {
                zone: zone.name.clone(),
                subnet: s.id.clone(),
                expected: zone.cidr.to_string(),
                actual: s.cidr.to_string(),
            });
        }
        if let Some(vpc) = &cluster.network.vpc_id
            && &s.vpc_id != vpc
        {
            errors.push(DesiredError::VpcMismatch {
                zone: zone.name.clone(),
                subnet: s.id.clone(),
                actual: s.vpc_id.clone(),
                expected: vpc.clone(),
            });
        }
        if !vpcs.contains(&s.vpc_id) {
            vpcs.push(s.vpc_id.clone());
        }
        out.insert(zone.name.clone(), s.id.clone());
    }
    if vpcs.len() > 1 {
        errors.push(DesiredError::MixedVpcs(vpcs.join(", ")));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let vpc = cluster
        .network
        .vpc_id
        .clone()
        .or_else(|| vpcs.first().cloned())
        .unwrap_or_default();
    Ok((vpc, out))
}

/// Each zone's egress, from the route tables of the zones' VPC.
pub fn zone_egress(
    cluster: &Cluster,
    zone_subnet: &BTreeMap<String, String>,
    tables: &[RouteTable],
) -> Result<Vec<ZoneEgress>, Vec<DesiredError>> {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for zone in &cluster.zones {
        let Some(subnet) = zone_subnet.get(&zone.name) else {
            continue;
        };
        match egress::of_subnet(&zone.name, subnet, tables) {
            Ok(e) => found.push(e),
            Err(e) => errors.push(DesiredError::NoEgress(e)),
        }
    }
    if errors.is_empty() {
        Ok(found)
    } else {
        Err(errors)
    }
}

/// Where the nodes go: the VPC, each zone's subnet and each zone's way to the internet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub vpc_id: String,
    pub zone_subnet: BTreeMap<String, String>,
    pub egress: Vec<ZoneEgress>,
}

/// The placement in subnets kcluster does not own: those the topology names, or the default
/// VPC's, with their VPC's route tables (a network kcluster creates has its own:
/// `network::plan::NetworkPlan::placement`).
pub fn placement(
    cluster: &Cluster,
    subnets: &[Subnet],
    tables: &[RouteTable],
) -> Result<Placement, Vec<DesiredError>> {
    let (vpc_id, zone_subnet) = zone_subnets(cluster, subnets)?;
    let egress = zone_egress(cluster, &zone_subnet, tables)?;
    Ok(Placement {
        vpc_id,
        zone_subnet,
        egress,
    })
}

/// Everything that should exist for `cluster`, given its rendered files and where its nodes go.
pub fn desired(
    cluster: &Cluster,
    renders: &[NodeRender],
    placement: &Placement,
    image: &Image,
) -> Result<Desired, Vec<DesiredError>> {
    let Placement {
        vpc_id,
        zone_subnet,
        egress,
    } = placement.clone();
    let group = DesiredGroup {
        name: crate::provision::ownership::group_name(&cluster.name),
        description: format!("kcluster {}: ZooKeeper and Kafka", cluster.name),
        vpc_id: vpc_id.clone(),
        rules: group_rules(cluster),
        tags: base_tags(
            cluster,
            &crate::provision::ownership::group_name(&cluster.name),
        ),
    };
    let mut nodes = Vec::new();
    let mut errors = Vec::new();
    for node in &cluster.nodes {
        let Some(render) = renders.iter().find(|r| r.node == node.name) else {
            errors.push(DesiredError::NotRendered(node.name.clone()));
            continue;
        };
        let Some(spec) = cluster.role_spec(node.role) else {
            errors.push(DesiredError::NoRoleSpec(node.name.clone()));
            continue;
        };
        let config_hash = config_hash(render.document.as_bytes());
        let mut instance_tags = node_tags(cluster, node);
        instance_tags.insert(tags::CONFIG.into(), config_hash.clone());
        instance_tags.insert(tags::IMAGE.into(), cluster.ami.image_id());
        nodes.push(DesiredNode {
            node: node.clone(),
            subnet_id: zone_subnet.get(&node.zone).cloned().unwrap_or_default(),
            interface_tags: node_tags(cluster, node),
            public_address: egress
                .iter()
                .any(|e| e.zone == node.zone && e.egress.needs_public_address()),
            instance_type: spec.instance_type.clone(),
            image: image.id.clone(),
            image_source: cluster.ami.image_id(),
            user_data: render.user_data.clone(),
            document: render.document.clone(),
            config_hash,
            volumes: vec![VolumeSpec {
                device: image.root_device.clone(),
                size_gib: ROOT_SIZE_GIB,
                iops: 3000,
                throughput_mibps: 125,
            }],
            // A role without a data volume (Connect workers) gets none: nothing to create or attach.
            data_volume: spec.volume.as_ref().map(|v| DesiredVolume {
                size_gib: v.size_gib,
                iops: v.iops,
                throughput_mibps: v.throughput_mibps,
                tags: {
                    let mut t = node_tags(cluster, node);
                    t.insert(
                        tags::NAME.into(),
                        format!("{}-{}-data", cluster.name, node.name),
                    );
                    t.insert(tags::VOLUME.into(), DATA_VOLUME_TAG.into());
                    t
                },
            }),
            key_name: cluster
                .network
                .ssh
                .as_ref()
                .and_then(|s| s.key_name.clone()),
            instance_tags,
        });
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    // By role in launch order (ZooKeeper before brokers), then id: the order replacements roll in.
    nodes.sort_by_key(|n| (n.node.role, n.node.id));
    Ok(Desired {
        cluster: cluster.name.clone(),
        region: cluster.region.clone(),
        vpc_id,
        egress,
        racks: cluster
            .zones
            .iter()
            .map(|z| (z.name.clone(), z.rack().to_string()))
            .collect(),
        group,
        nodes,
    })
}
