//! What exists (found in EC2 by the cluster tag) diffed with what should exist → a Plan: a
//! self-contained value listing every create, update, replace and delete with its reasons.
//! `plan` prints it; `apply` executes exactly it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;

use crate::cluster::{Cluster, Metadata, Role};
use crate::ec2::{
    Address, Ec2, Ec2Result, Instance, InstanceState, NetworkInterface, RouteTable, Rule,
    SecurityGroup, Subnet, Volume, VolumeState, tags,
};
use crate::provision::desired::{Desired, DesiredNode};
use crate::provision::egress::ZoneEgress;

/// Everything kcluster reads from EC2 for one cluster: a fixed number of Describe calls,
/// whatever its size.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Observed {
    pub subnets: Vec<Subnet>,
    /// The route tables of the subnets' VPC.
    pub route_tables: Vec<RouteTable>,
    pub groups: Vec<SecurityGroup>,
    pub interfaces: Vec<NetworkInterface>,
    /// All instances with the cluster tag, terminated ones included.
    pub instances: Vec<Instance>,
    /// The cluster's data volumes.
    pub volumes: Vec<Volume>,
    /// Elastic IPs with the cluster tag, but those of the network kcluster creates.
    pub addresses: Vec<Address>,
    /// The region's zones: name → AZ ID.
    pub zone_ids: BTreeMap<String, String>,
    /// The Elastic IPs of the network kcluster creates (its NAT gateways').
    pub network_addresses: Vec<Address>,
    /// The network kcluster creates (`network.create`), when the topology has one.
    pub network: Option<crate::provision::network::observe::ObservedNetwork>,
}

impl Observed {
    /// Reads the cluster's resources: the subnets `subnet_ids` names, plus the default VPC's
    /// default subnets when `default_subnets` (some zone names no subnet).
    pub async fn read(
        ec2: &dyn Ec2,
        cluster: &str,
        subnet_ids: &[String],
        default_subnets: bool,
    ) -> Ec2Result<Observed> {
        let subnets = async {
            let (mut named, defaults) = futures::try_join!(
                async {
                    match subnet_ids.is_empty() {
                        true => Ok(Vec::new()),
                        false => ec2.describe_subnets(subnet_ids).await,
                    }
                },
                async {
                    match default_subnets {
                        true => ec2.describe_subnets(&[]).await,
                        false => Ok(Vec::new()),
                    }
                },
            )?;
            named.extend(defaults.into_iter().filter(|d| !subnet_ids.contains(&d.id)));
            // The route tables of the subnets' VPC (one, unless the topology mixes VPCs, which
            // desired.rs refuses).
            let vpcs: BTreeSet<&str> = named.iter().map(|s| s.vpc_id.as_str()).collect();
            let mut tables = Vec::new();
            for vpc in vpcs {
                tables.extend(ec2.describe_route_tables(vpc).await?);
            }
            Ok((named, tables))
        };
        let ((subnets, route_tables), groups, interfaces, instances, volumes, addresses, zones) = futures::try_join!(
            subnets,
            ec2.find_security_groups(cluster),
            ec2.find_network_interfaces(cluster),
            ec2.find_instances(cluster),
            ec2.find_volumes(cluster),
            ec2.find_addresses(cluster),
            ec2.availability_zones(),
        )?;
        // Only kcluster's own volumes: anything else is never looked at, let alone changed.
        let volumes = volumes
            .into_iter()
            .filter(|v| crate::provision::ownership::own_volume(&v.tags))
            .collect();
        // The NAT gateways' addresses are the network's, not any node's.
        let (network_addresses, addresses) = addresses
            .into_iter()
            .partition(crate::provision::network::observe::is_network_address);
        Ok(Observed {
            subnets,
            route_tables,
            groups,
            interfaces,
            instances,
            volumes,
            addresses,
            zone_ids: zones.into_iter().collect(),
            network_addresses,
            network: None,
        })
    }

    pub fn live_instances(&self) -> impl Iterator<Item = &Instance> {
        self.instances.iter().filter(|i| i.state.is_live())
    }

    /// The nodes of `role` that stand in EC2: a live instance or a data volume tagged with it.
    fn nodes_of(&self, role: Role) -> BTreeSet<String> {
        let of_role = |tags: &crate::ec2::Tags| {
            (tags.get(tags::ROLE).map(String::as_str) == Some(role.as_str()))
                .then(|| tags.get(tags::NODE).cloned())
                .flatten()
        };
        self.live_instances()
            .filter_map(|i| of_role(&i.tags))
            .chain(
                self.volumes
                    .iter()
                    .filter(|v| v.tags.contains_key(tags::VOLUME))
                    .filter_map(|v| of_role(&v.tags)),
            )
            .collect()
    }
}

/// Why a cluster that stands in EC2 may not change its metadata mode as the topology asks, or
/// `None`. Nodes of the other mode's quorum (ZooKeeper members of a cluster now asked for KRaft,
/// controllers of one now asked for ZooKeeper) mean the brokers' data was written under that
/// metadata: planning the change would launch new, empty quorum members and remove the old
/// ones — a new cluster's metadata over the old cluster's logs, not Kafka's ZooKeeper-to-KRaft
/// migration (controllers in migration mode, brokers rolled twice), which kcluster does not run.
pub fn metadata_change(cluster: &Cluster, observed: &Observed) -> Option<String> {
    let wanted = cluster.metadata;
    let other = [Metadata::Zookeeper, Metadata::Kraft]
        .into_iter()
        .find(|m| *m != wanted)?;
    let standing = observed.nodes_of(other.quorum_role());
    if standing.is_empty() {
        return None;
    }
    Some(format!(
        "cluster {} runs in {} (EC2 holds {}) and the topology asks for {}: that is not a change kcluster makes — it would start new, empty {}s beside brokers whose data was written under the old metadata, and remove the old quorum. Keep `metadata: {}` (and a Kafka version that has it), migrate the running cluster by hand (Kafka's ZooKeeper-to-KRaft migration), or destroy the cluster, its data with it, and apply anew. Nothing was changed.",
        cluster.name,
        other.title(),
        standing.into_iter().collect::<Vec<_>>().join(", "),
        wanted.title(),
        wanted.quorum_member(),
        other.as_str(),
    ))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    NoOp,
    Create,
    Update,
    Replace,
    Delete,
}

impl Action {
    pub fn symbol(self) -> &'static str {
        match self {
            Action::NoOp => " ",
            Action::Create => "+",
            Action::Update => "~",
            Action::Replace => "-/+",
            Action::Delete => "-",
        }
    }
}

/// The security group's part of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupChange {
    pub action: Action,
    pub id: Option<String>,
    pub name: String,
    pub vpc_id: String,
    pub authorize: Vec<Rule>,
    pub revoke: Vec<Rule>,
    #[serde(skip)]
    pub tags: crate::ec2::Tags,
    #[serde(skip)]
    pub description: String,
}

/// How an instance that stays is changed: every one a stop, a change while stopped, and a start,
/// one node at a time behind the health gates. The volume and the address stay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InPlace {
    /// The new instance type, if it changes.
    pub instance_type: Option<String>,
    /// Whether the node's files change (the new user-data is set while it is stopped, and the
    /// bootstrap writes it at boot).
    pub files: bool,
}

/// One node's part of the plan: its network interface, its Elastic IP, its data volume and its
/// instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeChange {
    pub node: String,
    pub role: Role,
    pub zone: String,
    pub address: String,
    pub interface: Action,
    pub interface_id: Option<String>,
    pub interface_reasons: Vec<String>,
    /// The node's Elastic IP (zones behind an internet gateway only): `Create` allocates and
    /// associates one, `Update` associates the one it has with its interface.
    pub public_address: Action,
    /// The allocation id of the node's Elastic IP, if it has one.
    pub address_id: Option<String>,
    pub public_ip: Option<String>,
    /// Its current association, undone before it moves to the node's (new) interface.
    #[serde(skip)]
    pub address_association: Option<String>,
    /// The data volume: created, changed (grown, retuned, or attached to the node's instance),
    /// or kept as it is.
    pub volume: Action,
    pub volume_id: Option<String>,
    pub volume_reasons: Vec<String>,
    /// The instance: created, replaced (a new instance on the same volume and address), updated
    /// in place (`in_place`: stopped, changed, started), or kept.
    pub instance: Action,
    pub in_place: Option<InPlace>,
    /// The live instance that stands for the node now, if any.
    pub instance_id: Option<String>,
    pub instance_reasons: Vec<String>,
    /// Launch generation of the instance that will stand for the node after apply.
    pub generation: u32,
    /// Further live instances tagged as this node: duplicates, terminated by apply.
    pub duplicates: Vec<String>,
    #[serde(skip)]
    pub desired: DesiredNode,
}

/// A resource with the cluster's tag that the topology does not know: deleted by apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Orphan {
    pub kind: OrphanKind,
    pub id: String,
    pub node: Option<String>,
    pub reason: String,
    /// An Elastic IP's association, undone before the address is released.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub association: Option<String>,
}

/// A data volume no node uses: kept, since only `kcluster destroy` deletes data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeptVolume {
    pub id: String,
    pub node: Option<String>,
    pub zone: String,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OrphanKind {
    Instance,
    NetworkInterface,
    ElasticIp,
}

impl OrphanKind {
    /// The resource kind as plan addresses name it.
    pub fn as_str(self) -> &'static str {
        match self {
            OrphanKind::Instance => "instance",
            OrphanKind::NetworkInterface => "network_interface",
            OrphanKind::ElasticIp => "public_address",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub cluster: String,
    pub region: String,
    pub vpc_id: String,
    /// Each zone's way to the internet.
    pub egress: Vec<ZoneEgress>,
    /// Each zone's rack (`broker.rack`) and its AZ ID in this account, in topology order.
    pub racks: Vec<ZoneRack>,
    pub group: GroupChange,
    pub nodes: Vec<NodeChange>,
    pub orphans: Vec<Orphan>,
    /// Data volumes that no node of the topology uses; never deleted by apply.
    pub kept_volumes: Vec<KeptVolume>,
    /// The network kcluster creates (`network.create`), when the topology has one.
    pub network: Option<crate::provision::network::plan::NetworkPlan>,
    /// What moves between brokers when brokers leave or join, as far as the running cluster was
    /// read (`drain::outlook`); `None` when nothing read it.
    pub replicas: Option<crate::operations::drain::Outlook>,
    /// The replication throttle of those moves, as far as the running cluster was read
    /// (`drain::throttling`); `None` when nothing read it.
    pub throttle: Option<crate::operations::drain::Throttling>,
}

/// A zone's Kafka rack, and the AZ ID EC2 gives its name in this account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ZoneRack {
    pub zone: String,
    pub rack: String,
    pub az_id: Option<String>,
}

/// Totals in Terraform's sense: a replacement adds one and destroys one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub add: usize,
    pub change: usize,
    pub destroy: usize,
}

impl Summary {
    fn count(&mut self, a: Action) {
        match a {
            Action::NoOp => {}
            Action::Create => self.add += 1,
            Action::Update => self.change += 1,
            Action::Replace => {
                self.add += 1;
                self.destroy += 1;
            }
            Action::Delete => self.destroy += 1,
        }
    }
}

fn generation_of(tags: &crate::ec2::Tags) -> u32 {
    tags.get(tags::GENERATION)
        .and_then(|g| g.parse().ok())
        .unwrap_or(1)
}

/// Diffs what should exist with what does.
pub fn plan(desired: &Desired, observed: &Observed) -> Plan {
    let group = plan_group(desired, observed);
    let wanted: BTreeSet<&str> = desired.nodes.iter().map(|n| n.node.name.as_str()).collect();
    let nodes = desired
        .nodes
        .iter()
        .map(|d| plan_node(d, observed))
        .collect::<Vec<_>>();

    let mut orphans = Vec::new();
    for i in observed.live_instances() {
        let node = i.tag(tags::NODE);
        if node.is_none_or(|n| !wanted.contains(n)) {
            orphans.push(Orphan {
                kind: OrphanKind::Instance,
                id: i.id.clone(),
                node: node.map(String::from),
                reason: match node {
                    Some(n) => format!("{n} is not in the topology"),
                    None => "tagged with the cluster but names no node".into(),
                },
                association: None,
            });
        }
    }
    for n in &observed.interfaces {
        let node = n.tags.get(tags::NODE);
        let keep = node.is_some_and(|x| wanted.contains(x.as_str()));
        if !keep {
            orphans.push(Orphan {
                kind: OrphanKind::NetworkInterface,
                id: n.id.clone(),
                node: node.cloned(),
                reason: match node {
                    Some(x) => format!("{x} is not in the topology"),
                    None => "tagged with the cluster but names no node".into(),
                },
                association: None,
            });
        }
    }
    // Interfaces of kept nodes that are not the one the node uses (e.g. left by a replacement).
    for nc in &nodes {
        for n in observed
            .interfaces
            .iter()
            .filter(|n| n.tags.get(tags::NODE) == Some(&nc.node))
        {
            if nc.interface_id.as_deref() != Some(n.id.as_str()) {
                orphans.push(Orphan {
                    kind: OrphanKind::NetworkInterface,
                    id: n.id.clone(),
                    node: Some(nc.node.clone()),
                    reason: format!("a second network interface for {}", nc.node),
                    association: None,
                });
            }
        }
    }
    // Elastic IPs: of nodes the topology no longer has, of nodes whose zone now needs none
    // (its subnet routes through a NAT gateway), and a node's second one.
    for a in &observed.addresses {
        let node = a.tags.get(tags::NODE);
        let kept = nodes.iter().find(|nc| Some(&nc.node) == node);
        let reason = match (node, kept) {
            (None, _) => "tagged with the cluster but names no node".to_string(),
            (Some(x), None) => format!("{x} is not in the topology"),
            (Some(_), Some(nc)) if !nc.desired.public_address => format!(
                "{} reaches the internet without a public address now",
                nc.zone
            ),
            (Some(_), Some(nc)) if nc.address_id.as_deref() != Some(a.allocation_id.as_str()) => {
                format!("a second Elastic IP for {}", nc.node)
            }
            _ => continue,
        };
        orphans.push(Orphan {
            kind: OrphanKind::ElasticIp,
            id: a.allocation_id.clone(),
            node: node.cloned(),
            reason,
            association: a.association_id.clone(),
        });
    }
    orphans.sort_by(|a, b| (a.kind, &a.node, &a.id).cmp(&(b.kind, &b.node, &b.id)));

    let used: BTreeSet<&str> = nodes
        .iter()
        .filter_map(|n| n.volume_id.as_deref())
        .collect();
    let kept_volumes = observed
        .volumes
        .iter()
        .filter(|v| !matches!(v.state, VolumeState::Deleting | VolumeState::Deleted))
        .filter(|v| !used.contains(v.id.as_str()))
        .map(|v| {
            let node = v.tags.get(tags::NODE).cloned();
            let reason = match &node {
                Some(n) if wanted.contains(n.as_str()) => format!(
                    "{n}'s earlier volume in {}; {n} now has its own in its zone",
                    v.zone
                ),
                Some(n) => format!("{n} is not in the topology"),
                None => "names no node".to_string(),
            };
            KeptVolume {
                id: v.id.clone(),
                node,
                zone: v.zone.clone(),
                reason,
            }
        })
        .collect();

    Plan {
        cluster: desired.cluster.clone(),
        region: desired.region.clone(),
        vpc_id: desired.vpc_id.clone(),
        egress: desired.egress.clone(),
        racks: desired
            .racks
            .iter()
            .map(|(zone, rack)| ZoneRack {
                zone: zone.clone(),
                rack: rack.clone(),
                az_id: observed.zone_ids.get(zone).cloned(),
            })
            .collect(),
        group,
        nodes,
        orphans,
        kept_volumes,
        network: None,
        replicas: None,
        throttle: None,
    }
}

fn plan_group(desired: &Desired, observed: &Observed) -> GroupChange {
    let d = &desired.group;
    // Only the group kcluster named: another group with the cluster's tag is never adopted
    // (make_plan refuses it before planning; see ownership.rs).
    let existing = observed.groups.iter().find(|g| g.name == d.name);
    let (action, id, authorize, revoke) = match existing {
        None => (Action::Create, None, d.rules.clone(), Vec::new()),
        Some(g) => {
            let have: BTreeSet<&Rule> = g.rules.iter().collect();
            let want: BTreeSet<&Rule> = d.rules.iter().collect();
            let authorize: Vec<Rule> = want.difference(&have).map(|r| (*r).clone()).collect();
            let revoke: Vec<Rule> = have.difference(&want).map(|r| (*r).clone()).collect();
            let action = if authorize.is_empty() && revoke.is_empty() {
                Action::NoOp
            } else {
                Action::Update
            };
            (action, Some(g.id.clone()), authorize, revoke)
        }
    };
    GroupChange {
        action,
        id,
        name: d.name.clone(),
        vpc_id: d.vpc_id.clone(),
        authorize,
        revoke,
        tags: d.tags.clone(),
        description: d.description.clone(),
    }
}

fn plan_node(d: &DesiredNode, observed: &Observed) -> NodeChange {
    let name = &d.node.name;
    let address = d.node.address;

    // The node's interface: the one tagged with its name, preferring one with the right address,
    // then the one the node's live instance uses (two can share an address on some mocks, and
    // the attached one must never be the one planned away).
    let in_use: BTreeSet<&str> = observed
        .live_instances()
        .filter(|i| i.tag(tags::NODE) == Some(name.as_str()))
        .filter_map(|i| i.primary_interface.as_deref())
        .collect();
    let mut candidates: Vec<&NetworkInterface> = observed
        .interfaces
        .iter()
        .filter(|n| n.tags.get(tags::NODE) == Some(name))
        .collect();
    candidates.sort_by_key(|n| {
        (
            n.address != address || n.subnet_id != d.subnet_id,
            !in_use.contains(n.id.as_str()),
            &n.id,
        )
    });
    let eni = candidates.first().copied();
    let (interface, interface_reasons) = match eni {
        None => (Action::Create, vec![]),
        Some(n) => {
            let mut reasons = Vec::new();
            if n.address != address {
                reasons.push(format!("address {} → {}", n.address, address));
            }
            if n.subnet_id != d.subnet_id {
                reasons.push(format!(
                    "subnet {} → {} ({})",
                    n.subnet_id, d.subnet_id, d.node.zone
                ));
            }
            if reasons.is_empty() {
                (Action::NoOp, reasons)
            } else {
                (Action::Replace, reasons)
            }
        }
    };
    let eni_generation = eni.map(|n| generation_of(&n.tags)).unwrap_or(1);

    // The node's Elastic IP: the one tagged with its name, preferring one on its interface.
    let mut eips: Vec<&crate::ec2::Address> = observed
        .addresses
        .iter()
        .filter(|a| d.public_address && a.tags.get(tags::NODE) == Some(name))
        .collect();
    eips.sort_by_key(|a| {
        (
            eni.is_none_or(|n| a.interface_id.as_deref() != Some(n.id.as_str())),
            &a.allocation_id,
        )
    });
    let eip = eips.first().copied();
    let public_address = match eip {
        _ if !d.public_address => Action::NoOp,
        None => Action::Create,
        Some(a) if interface == Action::NoOp && a.interface_id == eni.map(|n| n.id.clone()) => {
            Action::NoOp
        }
        Some(_) => Action::Update,
    };

    // The node's live instances: the one on its interface stands for it; others are duplicates.
    let mut live: Vec<&Instance> = observed
        .live_instances()
        .filter(|i| i.tag(tags::NODE) == Some(name.as_str()))
        .collect();
    live.sort_by_key(|i| {
        (
            eni.is_none_or(|n| i.primary_interface.as_deref() != Some(n.id.as_str())),
            &i.id,
        )
    });
    let current = live.first().copied();
    let duplicates: Vec<String> = live.iter().skip(1).map(|i| i.id.clone()).collect();

    let (instance, instance_reasons, generation, in_place) = match current {
        // A kept interface may have carried instances before (terminated outside kcluster, or
        // by an interrupted replacement). EC2 answers a ClientToken it has seen with that launch
        // for 24 hours, terminated or not, so the launch is a generation no instance has had.
        None if interface == Action::NoOp => {
            let seen = observed
                .instances
                .iter()
                .filter(|i| i.tag(tags::NODE) == Some(name.as_str()))
                .map(|i| generation_of(&i.tags))
                .max()
                .unwrap_or(0);
            (Action::Create, vec![], eni_generation.max(seen) + 1, None)
        }
        None => (Action::Create, vec![], eni_generation, None),
        Some(i) => {
            let mut reasons = Vec::new();
            let mut replace = false;
            if i.instance_type != d.instance_type {
                reasons.push(format!(
                    "instance type {} → {}",
                    i.instance_type, d.instance_type
                ));
            }
            if i.tag(tags::CONFIG) != Some(d.config_hash.as_str()) {
                reasons.push("its files changed".to_string());
            }
            if matches!(i.state, InstanceState::Stopped | InstanceState::Stopping) {
                reasons.push(format!("it is {}", i.state.as_str()));
            }
            let in_place = !reasons.is_empty();
            if i.tag(tags::IMAGE) != Some(d.image_source.as_str()) {
                replace = true;
                reasons.push(format!(
                    "image {} → {}",
                    i.tag(tags::IMAGE).unwrap_or("unknown"),
                    d.image_source
                ));
            }
            if i.zone != d.node.zone {
                replace = true;
                reasons.push(format!("zone {} → {}", i.zone, d.node.zone));
            }
            if interface == Action::Replace {
                replace = true;
                reasons.push("its network interface is replaced".to_string());
            }
            if !replace && in_place {
                let change = InPlace {
                    instance_type: (i.instance_type != d.instance_type)
                        .then(|| d.instance_type.clone()),
                    files: i.tag(tags::CONFIG) != Some(d.config_hash.as_str()),
                };
                (
                    Action::Update,
                    reasons,
                    generation_of(&i.tags),
                    Some(change),
                )
            } else if reasons.is_empty() {
                (Action::NoOp, reasons, generation_of(&i.tags), None)
            } else {
                // The next generation, unless an interrupted replacement already bumped it.
                let g = generation_of(&i.tags);
                let next = if eni_generation > g {
                    eni_generation
                } else {
                    g + 1
                };
                (Action::Replace, reasons, next, None)
            }
        }
    };
    let (volume, volume_id, volume_reasons) = plan_volume(d, observed, current, instance);
    NodeChange {
        node: name.clone(),
        role: d.node.role,
        zone: d.node.zone.clone(),
        address: address.to_string(),
        interface,
        interface_id: eni.map(|n| n.id.clone()),
        interface_reasons,
        public_address,
        address_id: eip.map(|a| a.allocation_id.clone()),
        public_ip: eip.map(|a| a.public_ip.clone()),
        address_association: eip.and_then(|a| a.association_id.clone()),
        volume,
        volume_id,
        volume_reasons,
        instance,
        in_place,
        instance_id: current.map(|i| i.id.clone()),
        instance_reasons,
        generation,
        duplicates,
        desired: d.clone(),
    }
}

/// The node's data volume: the one tagged with its name in its zone (the one attached to its
/// instance first), created when there is none, changed when its size or performance differ
/// (EBS grows, never shrinks), attached when the instance that stays does not hold it.
fn plan_volume(
    d: &DesiredNode,
    observed: &Observed,
    current: Option<&Instance>,
    instance: Action,
) -> (Action, Option<String>, Vec<String>) {
    let name = d.node.name.as_str();
    let mut candidates: Vec<&Volume> = observed
        .volumes
        .iter()
        .filter(|v| v.tags.get(tags::NODE).map(String::as_str) == Some(name))
        .filter(|v| v.zone == d.node.zone)
        .filter(|v| !matches!(v.state, VolumeState::Deleting | VolumeState::Deleted))
        .collect();
    let on = |v: &Volume| {
        current.is_some_and(|i| v.attachment.as_ref().is_some_and(|a| a.instance_id == i.id))
    };
    candidates.sort_by_key(|v| (!on(v), v.attachment.is_some(), &v.id));
    let Some(want) = &d.data_volume else {
        // A role without a data volume (Connect workers): nothing to create or attach.
        return (Action::NoOp, None, Vec::new());
    };
    let Some(v) = candidates.first().copied() else {
        let mut reasons = vec![format!(
            "{} GiB gp3, encrypted, in {}",
            want.size_gib, d.node.zone
        )];
        if let Some(old) = observed.volumes.iter().find(|v| {
            v.tags.get(tags::NODE).map(String::as_str) == Some(name) && v.zone != d.node.zone
        }) {
            reasons.push(format!(
                "{} stays in {} (EBS volumes do not move between zones): {name} starts empty and Kafka or ZooKeeper copies its data back",
                old.id, old.zone
            ));
        }
        return (Action::Create, None, reasons);
    };
    let mut reasons = Vec::new();
    if want.size_gib > v.size_gib {
        reasons.push(format!("size {} → {} GiB", v.size_gib, want.size_gib));
    }
    if want.iops != v.iops {
        reasons.push(format!("iops {} → {}", v.iops, want.iops));
    }
    if want.throughput_mibps != v.throughput_mibps {
        reasons.push(format!(
            "throughput {} → {} MiB/s",
            v.throughput_mibps, want.throughput_mibps
        ));
    }
    // An instance that stays (or is changed in place) must hold its volume; a new or replacing
    // one gets it attached anyway.
    if matches!(instance, Action::NoOp | Action::Update)
        && let Some(i) = current
        && !on(v)
    {
        reasons.push(format!("attach to {}", i.id));
    }
    let action = if reasons.is_empty() {
        Action::NoOp
    } else {
        Action::Update
    };
    (action, Some(v.id.clone()), reasons)
}

/// Why a node's Elastic IP changes, for the plan's text and JSON.
fn address_reason(n: &NodeChange) -> String {
    match (n.public_address, &n.public_ip) {
        (Action::Create, _) => format!(
            "Elastic IP on its interface: {} routes 0.0.0.0/0 to an internet gateway",
            n.zone
        ),
        (_, Some(ip)) => format!("associate {ip} with its network interface"),
        _ => String::new(),
    }
}

impl Plan {
    pub fn summary(&self) -> Summary {
        let mut s = self
            .network
            .as_ref()
            .map(crate::provision::network::plan::NetworkPlan::summary)
            .unwrap_or_default();
        s.count(self.group.action);
        for n in &self.nodes {
            s.count(n.volume);
            s.count(n.interface);
            s.count(n.public_address);
            s.count(n.instance);
            for _ in &n.duplicates {
                s.count(Action::Delete);
            }
        }
        for _ in &self.orphans {
            s.count(Action::Delete);
        }
        s
    }

    pub fn has_changes(&self) -> bool {
        self.summary() != Summary::default()
    }

    /// The plan as text: one line per resource that changes, then the totals.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Cluster {} in {} (VPC {}):",
            self.cluster, self.region, self.vpc_id
        );
        for e in &self.egress {
            let _ = writeln!(out, "  egress {e}");
        }
        if !self.racks.is_empty() {
            let ids: Vec<String> = self
                .racks
                .iter()
                .map(|r| format!("{}={}", r.zone, r.az_id.as_deref().unwrap_or("?")))
                .collect();
            let by_id = self.racks.iter().all(|r| Some(&r.rack) == r.az_id.as_ref());
            let _ = if by_id {
                writeln!(out, "  racks are AZ IDs: {}", ids.join(", "))
            } else {
                writeln!(
                    out,
                    "  racks are zone names, whose AZ IDs in this account are {}: set zones[].id to rack by AZ ID, the same physical zone in every account",
                    ids.join(", ")
                )
            };
        }
        let mut line = |a: Action, address: String, detail: String| {
            if a != Action::NoOp {
                let _ = writeln!(out, "  {:<3} {address:<40} {detail}", a.symbol());
            }
        };
        for (a, address, id, reasons) in self.network.iter().flat_map(|n| n.lines()) {
            let address = match id {
                Some(id) if a != Action::Create => format!("{address} ({id})"),
                _ => address,
            };
            line(a, address, reasons.join("; "));
        }
        let g = &self.group;
        let group_detail = match g.action {
            Action::Create => format!("{} ingress rules", g.authorize.len()),
            _ => {
                let mut parts: Vec<String> =
                    g.authorize.iter().map(|r| format!("allow {r}")).collect();
                parts.extend(g.revoke.iter().map(|r| format!("revoke {r}")));
                parts.join("; ")
            }
        };
        let group_id =
            g.id.as_ref()
                .map(|id| format!(" ({id})"))
                .unwrap_or_default();
        line(
            g.action,
            format!("security_group.{}{group_id}", g.name),
            group_detail,
        );
        for n in &self.nodes {
            let d = &n.desired;
            let eni_detail = match n.interface {
                Action::Create => format!("{} in {}", n.address, n.zone),
                _ => n.interface_reasons.join("; "),
            };
            line(
                n.interface,
                format!("network_interface.{}", n.node),
                eni_detail,
            );
            line(
                n.public_address,
                format!("public_address.{}", n.node),
                address_reason(n),
            );
            let volume = match &n.volume_id {
                Some(id) => format!("volume.{} ({id})", n.node),
                None => format!("volume.{}", n.node),
            };
            line(n.volume, volume, n.volume_reasons.join("; "));
            let inst_detail = match n.instance {
                Action::Create => format!(
                    "{} {} in {}, generation {}",
                    d.instance_type, d.image, n.zone, n.generation
                ),
                _ => n.instance_reasons.join("; "),
            };
            line(n.instance, format!("instance.{}", n.node), inst_detail);
            for dup in &n.duplicates {
                line(
                    Action::Delete,
                    format!("instance.{} ({dup})", n.node),
                    "duplicate instance for this node".into(),
                );
            }
        }
        for o in &self.orphans {
            let name = o.node.clone().unwrap_or_else(|| o.id.clone());
            line(
                Action::Delete,
                format!("{}.{name} ({})", o.kind.as_str(), o.id),
                o.reason.clone(),
            );
        }
        for k in &self.kept_volumes {
            let _ = writeln!(
                out,
                "  kept volume {} ({}, {}): {}; only `kcluster destroy` deletes data volumes",
                k.id,
                k.node.as_deref().unwrap_or("-"),
                k.zone,
                k.reason
            );
        }
        let impacts = self.impacts();
        if !impacts.is_empty() {
            let _ = writeln!(out, "Availability:");
            for i in impacts {
                let _ = writeln!(out, "  {i}");
            }
        }
        let s = self.summary();
        if self.has_changes() {
            let _ = writeln!(
                out,
                "Plan: {} to add, {} to change, {} to destroy.",
                s.add, s.change, s.destroy
            );
        } else {
            let _ = writeln!(
                out,
                "No changes. {} nodes match the topology.",
                self.nodes.len()
            );
        }
        out
    }

    /// The plan as a stable JSON document.
    pub fn to_json(&self) -> serde_json::Value {
        let mut changes = Vec::new();
        let mut push =
            |address: String, action: Action, id: Option<&String>, reasons: Vec<String>| {
                if action != Action::NoOp {
                    changes.push(serde_json::json!({
                        "address": address,
                        "action": action,
                        "id": id,
                        "reasons": reasons,
                    }));
                }
            };
        for (a, address, id, reasons) in self.network.iter().flat_map(|n| n.lines()) {
            push(address, a, id.as_ref(), reasons);
        }
        let g = &self.group;
        let mut greasons: Vec<String> = g.authorize.iter().map(|r| format!("allow {r}")).collect();
        greasons.extend(g.revoke.iter().map(|r| format!("revoke {r}")));
        push(
            format!("security_group.{}", g.name),
            g.action,
            g.id.as_ref(),
            greasons,
        );
        for n in &self.nodes {
            push(
                format!("network_interface.{}", n.node),
                n.interface,
                n.interface_id.as_ref(),
                n.interface_reasons.clone(),
            );
            push(
                format!("public_address.{}", n.node),
                n.public_address,
                n.address_id.as_ref(),
                vec![address_reason(n)],
            );
            push(
                format!("volume.{}", n.node),
                n.volume,
                n.volume_id.as_ref(),
                n.volume_reasons.clone(),
            );
            push(
                format!("instance.{}", n.node),
                n.instance,
                n.instance_id.as_ref(),
                n.instance_reasons.clone(),
            );
            for dup in &n.duplicates {
                push(
                    format!("instance.{}", n.node),
                    Action::Delete,
                    Some(dup),
                    vec!["duplicate instance for this node".into()],
                );
            }
        }
        for o in &self.orphans {
            push(
                format!(
                    "{}.{}",
                    o.kind.as_str(),
                    o.node.clone().unwrap_or_else(|| o.id.clone())
                ),
                Action::Delete,
                Some(&o.id),
                vec![o.reason.clone()],
            );
        }
        let s = self.summary();
        serde_json::json!({
            "format_version": 1,
            "cluster": self.cluster,
            "region": self.region,
            "vpc_id": self.vpc_id,
            "egress": self.egress,
            "racks": self.racks,
            "changes": changes,
            "availability": self.impacts(),
            "replicas": self.replicas,
            "kept_volumes": self.kept_volumes,
            "network": self.network.as_ref().map(|n| serde_json::json!({"cidr": n.cidr, "nat": n.nat})),
            "summary": s,
        })
    }

    /// What each change does to the running cluster, one line per node in the order apply takes
    /// them: new nodes together, then rolls one node at a time (ZooKeeper first) behind health
    /// gates, then removals.
    pub fn impacts(&self) -> Vec<String> {
        let gate = |role: Role| match role {
            Role::Zookeeper => {
                "rolling: followers first, the leader last; gated on the ensemble serving with every follower synced"
            }
            Role::Broker => {
                "rolling: the active controller last; gated on no partition it hosts falling below min.insync.replicas, then 0 under-replicated partitions"
            }
            Role::Controller => {
                "rolling: followers first, the quorum's leader last; gated on a leader and every voter caught up with it (DescribeQuorum)"
            }
            Role::Connect => {
                "rolling: one worker at a time; gated on every worker's REST API answering (GET / and GET /connectors, the same connectors on each) before it stops and after it is back"
            }
            Role::Monitoring => {
                "rolling, ungated: it holds no Kafka data; alerts pause while it restarts"
            }
        };
        let keeping = |n: &NodeChange| match &n.volume_id {
            _ if n.desired.data_volume.is_none() => "with no data volume".to_string(),
            Some(id) if n.volume != Action::Create => format!("keeping {id}"),
            _ => "on a new empty volume".to_string(),
        };
        let mut out = Vec::new();
        for n in &self.nodes {
            let line = match (n.instance, &n.in_place) {
                (Action::Create, _) if n.instance_id.is_none() => {
                    format!(
                        "launch {} ({}; no running node is touched)",
                        n.node,
                        keeping(n)
                    )
                }
                (Action::Update, Some(p)) => {
                    let what = match (&p.instance_type, p.files) {
                        (Some(t), true) => format!("resize to {t} and restart with its new files"),
                        (Some(t), false) => format!("resize to {t}"),
                        (None, _) => "restart with its new files".to_string(),
                    };
                    let stay = if n.desired.data_volume.is_some() {
                        "its volume and address stay"
                    } else {
                        "its address stays"
                    };
                    format!(
                        "{what}: {} (stop, change, start; {stay}; {})",
                        n.node,
                        gate(n.role)
                    )
                }
                (Action::Replace, _) => format!(
                    "replace {} {} ({}: {})",
                    n.node,
                    keeping(n),
                    n.instance_reasons.join("; "),
                    gate(n.role)
                ),
                _ => continue,
            };
            out.push(line);
        }
        // Brokers that leave are drained first, and brokers that join may take replicas.
        let brokers = crate::operations::drain::impacts(self);
        let leaving: Vec<String> = crate::operations::drain::leaving(self)
            .into_iter()
            .map(|l| l.instance)
            .collect();
        for o in self
            .orphans
            .iter()
            .filter(|o| o.kind == OrphanKind::Instance && !leaving.contains(&o.id))
        {
            let node = o.node.as_deref().unwrap_or("-");
            // Said only of a volume there is: a Connect worker has none.
            let volume = self
                .kept_volumes
                .iter()
                .find(|k| k.node.as_deref() == Some(node))
                .map(|k| format!("; its data volume {} is kept", k.id))
                .unwrap_or_default();
            out.push(format!("terminate {node} ({}): {}{volume}", o.id, o.reason));
        }
        out.extend(brokers);
        out
    }

    /// One node's part of the plan, by node name.
    pub fn node(&self, name: &str) -> Option<&NodeChange> {
        self.nodes.iter().find(|n| n.node == name)
    }

    /// Each resource's address (`instance.broker-1` …) and its action, sorted by address.
    pub fn actions(&self) -> BTreeMap<String, Action> {
        let mut m = BTreeMap::new();
        for c in self.network.iter().flat_map(|n| &n.changes) {
            m.insert(c.key.address(), c.action);
        }
        m.insert(
            format!("security_group.{}", self.group.name),
            self.group.action,
        );
        for n in &self.nodes {
            m.insert(format!("network_interface.{}", n.node), n.interface);
            if n.desired.public_address {
                m.insert(format!("public_address.{}", n.node), n.public_address);
            }
            if n.desired.data_volume.is_some() {
                m.insert(format!("volume.{}", n.node), n.volume);
            }
            m.insert(format!("instance.{}", n.node), n.instance);
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::{Observed, metadata_change};
    use crate::ec2::{Instance, InstanceState, Tags, Volume, VolumeState, tags};

    fn tagged(role: &str, node: &str) -> Tags {
        [(tags::ROLE, role), (tags::NODE, node)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn instance(role: &str, node: &str, state: InstanceState) -> Instance {
        Instance {
            id: format!("i-{node}"),
            state,
            instance_type: "m5.large".into(),
            zone: "eu-west-1a".into(),
            subnet_id: None,
            private_address: None,
            primary_interface: None,
            image_id: "ami-1".into(),
            tags: tagged(role, node),
        }
    }

    fn cluster(metadata: &str) -> crate::cluster::Cluster {
        let yaml = format!(
            "name: t\nregion: eu-west-1\nmetadata: {metadata}\nzones:\n  - {{name: eu-west-1a, cidr: 10.0.0.0/20}}\n  - {{name: eu-west-1b, cidr: 10.0.16.0/20}}\n  - {{name: eu-west-1c, cidr: 10.0.32.0/20}}\n"
        );
        crate::topology::load("t.yaml", yaml.as_bytes())
            .expect("valid")
            .cluster
    }

    #[test]
    fn a_running_cluster_keeps_its_metadata_mode() {
        let kraft = cluster("kraft");
        let zookeeper = cluster("zookeeper");
        let mut observed = Observed::default();
        assert_eq!(metadata_change(&kraft, &observed), None, "nothing stands");
        observed.instances = vec![
            instance("zookeeper", "zookeeper-1", InstanceState::Running),
            instance("zookeeper", "zookeeper-2", InstanceState::Terminated),
            instance("broker", "broker-1", InstanceState::Running),
        ];
        let why = metadata_change(&kraft, &observed).expect("refused");
        assert!(
            why.starts_with("cluster t runs in ZooKeeper mode (EC2 holds zookeeper-1) and the topology asks for KRaft mode"),
            "{why}"
        );
        assert!(why.contains("Keep `metadata: zookeeper`"), "{why}");
        assert_eq!(
            metadata_change(&zookeeper, &observed),
            None,
            "the same mode"
        );

        // A controller gone but for its data volume still holds the quorum's log.
        observed.instances.clear();
        observed.volumes = vec![Volume {
            id: "vol-1".into(),
            zone: "eu-west-1a".into(),
            state: VolumeState::Available,
            size_gib: 20,
            iops: 3000,
            throughput_mibps: 125,
            attachment: None,
            tags: {
                let mut t = tagged("controller", "controller-2");
                t.insert(tags::VOLUME.into(), "data".into());
                t
            },
        }];
        let why = metadata_change(&zookeeper, &observed).expect("refused");
        assert!(
            why.contains("runs in KRaft mode (EC2 holds controller-2)"),
            "{why}"
        );
        assert_eq!(metadata_change(&kraft, &observed), None);
    }
}
