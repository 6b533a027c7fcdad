//! The managed network's part of a plan: each resource the topology's network needs (created,
//! fixed or kept), what kcluster made that it no longer needs (deleted), and what the nodes see
//! of it: the VPC, each zone's private subnet, and each zone's egress, read by the egress
//! analysis from the route tables as they will be after apply.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::Ipv4Net;
use serde::Serialize;

use super::observe::{ObservedNetwork, key_of};
use super::{Key, Kind, ManagedNetwork, NatMode, carve, s3_service, zone_index};
use crate::cluster::Cluster;
use crate::ec2::network::{NatState, NetworkDryRun, VpcDns};
use crate::ec2::{DefaultRoute, DryRun, RouteTable, Tags};
use crate::provision::desired::{DesiredError, Placement};
use crate::provision::plan::{Action, Summary};

/// What apply does for one resource, beyond creating it when it is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Work {
    /// The VPC; `dns`: the attributes to turn on.
    Vpc {
        cidr: Ipv4Net,
        dns: VpcDns,
    },
    /// The internet gateway; `attach`: attach it to the VPC.
    InternetGateway {
        attach: bool,
    },
    Subnet {
        zone: String,
        cidr: Ipv4Net,
    },
    NatAddress,
    /// A NAT gateway in the `subnet` (a public subnet's key), sending from `address`. `dead`:
    /// how many of its predecessors EC2 still lists (deleted or failed), part of its token so
    /// that a new one is never answered with a deleted one. `available`: it exists and is.
    NatGateway {
        subnet: Key,
        address: Key,
        dead: usize,
        available: bool,
    },
    /// A route table whose `0.0.0.0/0` goes to `target`; `route`: none to fix (`None`), to
    /// create (`Some(false)`) or to replace (`Some(true)`); `associate`: subnets to associate.
    RouteTable {
        target: Key,
        route: Option<bool>,
        associate: Vec<Key>,
    },
    /// The S3 gateway endpoint on `route_tables`; `add`: those it is not on yet; `drop`: the
    /// ids of tables it is on that the network no longer has (they are deleted later).
    Endpoint {
        service: String,
        route_tables: Vec<Key>,
        add: Vec<Key>,
        drop: Vec<String>,
    },
}

/// One resource of the network in the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetChange {
    pub key: Key,
    pub action: Action,
    pub id: Option<String>,
    pub reasons: Vec<String>,
    #[serde(skip)]
    pub tags: Tags,
    #[serde(skip)]
    pub work: Work,
}

/// A resource of the network kcluster made that the topology no longer needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetOrphan {
    pub kind: Kind,
    pub key: Option<String>,
    pub id: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkPlan {
    pub cidr: Ipv4Net,
    pub nat: NatMode,
    /// Every resource the network needs, in the order apply creates them.
    pub changes: Vec<NetChange>,
    pub orphans: Vec<NetOrphan>,
    /// The orphans as EC2 has them, for their removal.
    #[serde(skip)]
    pub remove: ObservedNetwork,
}

/// The first of `items` with `key` by `rank`, and the others with it.
fn pick<'a, T, R: Ord>(
    items: &'a [T],
    key: &Key,
    tags: impl Fn(&T) -> &Tags,
    rank: impl Fn(&T) -> R,
) -> (Option<&'a T>, Vec<&'a T>) {
    let mut found: Vec<&T> = items
        .iter()
        .filter(|i| key_of(tags(i)).as_ref() == Some(key))
        .collect();
    found.sort_by_key(|i| rank(i));
    let first = (!found.is_empty()).then(|| found.remove(0));
    (first, found)
}

/// The zone whose NAT gateway carries `zone`'s traffic.
fn nat_zone<'a>(m: &ManagedNetwork, cluster: &'a Cluster, zone: &'a str) -> &'a str {
    match m.nat {
        NatMode::PerZone => zone,
        NatMode::One => cluster.zones.first().map_or(zone, |z| z.name.as_str()),
    }
}

struct Builder<'a> {
    cluster: &'a Cluster,
    changes: Vec<NetChange>,
    /// Observed ids kept, by key.
    kept: BTreeSet<String>,
    errors: Vec<String>,
}

impl Builder<'_> {
    fn id(&self, key: &Key) -> Option<String> {
        self.changes
            .iter()
            .find(|c| &c.key == key)
            .and_then(|c| c.id.clone())
    }

    /// The id of `key`, or the one the plan shows until apply makes it.
    fn id_or_pending(&self, key: &Key) -> String {
        self.id(key).unwrap_or_else(|| key.pending_id())
    }

    fn push(
        &mut self,
        key: Key,
        id: Option<String>,
        reasons: Vec<String>,
        fixes: bool,
        work: Work,
    ) {
        let action = match (&id, fixes) {
            (None, _) => Action::Create,
            (Some(_), true) => Action::Update,
            (Some(_), false) => Action::NoOp,
        };
        if let Some(id) = &id {
            self.kept.insert(id.clone());
        }
        let tags = key.tags(self.cluster);
        self.changes.push(NetChange {
            key,
            action,
            id,
            reasons,
            tags,
            work,
        });
    }
}

/// Diffs the topology's network with what EC2 has. Refuses a network kcluster would have to
/// renumber (another VPC or subnet CIDR than the topology's).
pub fn plan(
    cluster: &Cluster,
    m: &ManagedNetwork,
    net: &ObservedNetwork,
) -> Result<NetworkPlan, Vec<String>> {
    let own = net.own();
    let mut b = Builder {
        cluster,
        changes: Vec::new(),
        kept: BTreeSet::new(),
        errors: Vec::new(),
    };

    let key = Key::of(Kind::Vpc);
    let (vpc, _) = pick(&own.vpcs, &key, |v| &v.tags, |v| v.id.clone());
    let vpc_id = vpc.map(|v| v.id.clone());
    match vpc {
        None => b.push(
            key,
            None,
            vec![format!("{}, DNS resolution and hostnames on", m.cidr)],
            false,
            Work::Vpc {
                cidr: m.cidr,
                dns: VpcDns {
                    support: true,
                    hostnames: true,
                },
            },
        ),
        Some(v) => {
            if v.cidr != m.cidr {
                b.errors.push(format!(
                    "network.create.cidr: the cluster's VPC {} is {}, not {}; kcluster does not renumber a network: set `cidr: {}` again, or `kcluster destroy` the cluster and apply the new CIDR",
                    v.id, v.cidr, m.cidr, v.cidr
                ));
            }
            let dns = own.dns.unwrap_or(VpcDns {
                support: true,
                hostnames: true,
            });
            let on = VpcDns {
                support: !dns.support,
                hostnames: !dns.hostnames,
            };
            let mut reasons = Vec::new();
            if on.support {
                reasons.push("DNS resolution off → on".to_string());
            }
            if on.hostnames {
                reasons.push("DNS hostnames off → on".to_string());
            }
            let fixes = !reasons.is_empty();
            b.push(
                key,
                Some(v.id.clone()),
                reasons,
                fixes,
                Work::Vpc {
                    cidr: m.cidr,
                    dns: on,
                },
            );
        }
    }
    let vpc_shown = b.id_or_pending(&Key::of(Kind::Vpc));

    let key = Key::of(Kind::InternetGateway);
    let (igw, _) = pick(&own.gateways, &key, |g| &g.tags, |g| g.id.clone());
    let attach = igw.is_none_or(|g| vpc_id.as_ref().is_none_or(|v| !g.attached_to.contains(v)));
    b.push(
        key,
        igw.map(|g| g.id.clone()),
        if attach {
            vec![format!("attached to {vpc_shown}")]
        } else {
            Vec::new()
        },
        attach,
        Work::InternetGateway { attach },
    );

    for zone in &cluster.zones {
        let Some(cidrs) = zone_index(&cluster.region, &zone.name).and_then(|i| carve(m.cidr, i))
        else {
            b.errors.push(format!(
                "zone {}: kcluster places a zone's subnets by the letter ending its name, and this one has none it can use",
                zone.name
            ));
            continue;
        };
        for (kind, cidr) in [
            (Kind::PublicSubnet, cidrs.public),
            (Kind::PrivateSubnet, cidrs.private),
        ] {
            let key = Key::zoned(kind, &zone.name);
            let (found, _) = pick(&own.subnets, &key, |s| &s.tags, |s| s.id.clone());
            if let Some(s) = found
                && (s.cidr != cidr || s.zone != zone.name || Some(&s.vpc_id) != vpc_id.as_ref())
            {
                b.errors.push(format!(
                    "{}: subnet {} is {} in {} ({}), but the topology's network has {cidr} in {} ({}); kcluster does not renumber a network: `kcluster destroy` the cluster and apply again",
                    key.address(),
                    s.id,
                    s.cidr,
                    s.zone,
                    s.vpc_id,
                    zone.name,
                    vpc_shown
                ));
            }
            b.push(
                key,
                found.map(|s| s.id.clone()),
                vec![format!("{cidr} in {}", zone.name)],
                false,
                Work::Subnet {
                    zone: zone.name.clone(),
                    cidr,
                },
            );
        }
    }

    let nat_zones: Vec<&str> = match m.nat {
        NatMode::PerZone => cluster.zones.iter().map(|z| z.name.as_str()).collect(),
        NatMode::One => cluster
            .zones
            .iter()
            .take(1)
            .map(|z| z.name.as_str())
            .collect(),
    };
    for zone in &nat_zones {
        let key = Key::zoned(Kind::NatAddress, zone);
        let (found, _) = pick(
            &own.addresses,
            &key,
            |a| &a.tags,
            |a| a.allocation_id.clone(),
        );
        b.push(
            key,
            found.map(|a| a.allocation_id.clone()),
            vec![format!("the Elastic IP of the NAT gateway in {zone}")],
            false,
            Work::NatAddress,
        );
    }
    for zone in &nat_zones {
        let key = Key::zoned(Kind::NatGateway, zone);
        let (found, _) = pick(
            &own.nats,
            &key,
            |n| &n.tags,
            |n| {
                (
                    !n.state.is_live(),
                    n.state != NatState::Available,
                    n.id.clone(),
                )
            },
        );
        let found = found.filter(|n| n.state.is_live());
        let dead = net
            .nats
            .iter()
            .filter(|n| key_of(&n.tags).as_ref() == Some(&key) && !n.state.is_live())
            .count();
        let served: Vec<&str> = cluster
            .zones
            .iter()
            .map(|z| z.name.as_str())
            .filter(|z| nat_zone(m, cluster, z) == *zone)
            .collect();
        let subnet = Key::zoned(Kind::PublicSubnet, zone);
        let mut reasons = vec![format!(
            "in {} with {}, the way out of {}",
            b.id_or_pending(&subnet),
            b.id_or_pending(&Key::zoned(Kind::NatAddress, zone)),
            served.join(", ")
        )];
        if found.is_none() && dead > 0 {
            reasons.push(format!(
                "{dead} earlier one{} deleted or failed",
                if dead == 1 { "" } else { "s" }
            ));
        }
        b.push(
            key,
            found.map(|n| n.id.clone()),
            if found.is_some() { Vec::new() } else { reasons },
            false,
            Work::NatGateway {
                subnet,
                address: Key::zoned(Kind::NatAddress, zone),
                dead,
                available: found.is_some_and(|n| n.state == NatState::Available),
            },
        );
    }

    let mut tables = vec![(
        Key::of(Kind::PublicRouteTable),
        Key::of(Kind::InternetGateway),
        cluster
            .zones
            .iter()
            .map(|z| Key::zoned(Kind::PublicSubnet, &z.name))
            .collect::<Vec<_>>(),
    )];
    for z in &cluster.zones {
        tables.push((
            Key::zoned(Kind::PrivateRouteTable, &z.name),
            Key::zoned(Kind::NatGateway, nat_zone(m, cluster, &z.name)),
            vec![Key::zoned(Kind::PrivateSubnet, &z.name)],
        ));
    }
    for (key, target, subnets) in tables {
        let (found, _) = pick(&own.tables, &key, |t| &t.tags, |t| t.id.clone());
        let target_id = b.id(&target);
        let target_shown = b.id_or_pending(&target);
        let route = match found.and_then(|t| t.default_route.as_ref()) {
            None => Some(false),
            Some(r) if !r.active || Some(&r.target) != target_id.as_ref() => Some(true),
            Some(_) => None,
        };
        let associate: Vec<Key> = subnets
            .iter()
            .filter(|s| {
                let id = b.id(s);
                found.is_none_or(|t| {
                    id.is_none_or(|id| !t.associations.iter().any(|(_, x)| *x == id))
                })
            })
            .cloned()
            .collect();
        let mut reasons = Vec::new();
        match (found.and_then(|t| t.default_route.as_ref()), route) {
            (Some(r), Some(true)) => reasons.push(format!(
                "0.0.0.0/0 → {target_shown} (was {}{})",
                r.target,
                if r.active { "" } else { ", a blackhole" }
            )),
            (_, Some(_)) => reasons.push(format!("0.0.0.0/0 → {target_shown}")),
            _ => {}
        }
        if !associate.is_empty() {
            let ids: Vec<String> = associate.iter().map(|s| b.id_or_pending(s)).collect();
            reasons.push(format!("associated with {}", ids.join(", ")));
        }
        let fixes = !reasons.is_empty();
        b.push(
            key,
            found.map(|t| t.id.clone()),
            reasons,
            fixes,
            Work::RouteTable {
                target,
                route,
                associate,
            },
        );
    }

    let key = Key::of(Kind::S3Endpoint);
    let (endpoint, _) = pick(&own.endpoints, &key, |e| &e.tags, |e| e.id.clone());
    let private: Vec<Key> = cluster
        .zones
        .iter()
        .map(|z| Key::zoned(Kind::PrivateRouteTable, &z.name))
        .collect();
    let add: Vec<Key> = private
        .iter()
        .filter(|k| endpoint.is_none_or(|e| b.id(k).is_none_or(|id| !e.route_tables.contains(&id))))
        .cloned()
        .collect();
    let service = s3_service(&cluster.region);
    let wanted: Vec<String> = private.iter().filter_map(|k| b.id(k)).collect();
    let drop: Vec<String> = endpoint
        .map(|e| {
            e.route_tables
                .iter()
                .filter(|r| !wanted.contains(r))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let mut reasons = Vec::new();
    if !add.is_empty() {
        let ids: Vec<String> = add.iter().map(|k| b.id_or_pending(k)).collect();
        reasons.push(format!("{service} on {}", ids.join(", ")));
    }
    if !drop.is_empty() {
        reasons.push(format!("off {}", drop.join(", ")));
    }
    let fixes = endpoint.is_some() && !reasons.is_empty();
    b.push(
        key,
        endpoint.map(|e| e.id.clone()),
        reasons,
        fixes,
        Work::Endpoint {
            service,
            route_tables: private,
            add,
            drop,
        },
    );

    if !b.errors.is_empty() {
        return Err(b.errors);
    }
    let (orphans, remove) = orphans(&own, &b.kept);
    Ok(NetworkPlan {
        cidr: m.cidr,
        nat: m.nat,
        changes: b.changes,
        orphans,
        remove,
    })
}

/// What kcluster made and the plan keeps not: another zone's, a NAT gateway `nat: one` no
/// longer needs, a second one of a kind.
fn orphans(own: &ObservedNetwork, kept: &BTreeSet<String>) -> (Vec<NetOrphan>, ObservedNetwork) {
    let mut out = Vec::new();
    let mut remove = ObservedNetwork::default();
    let mut note = |kind: Kind, id: &str, t: &Tags| {
        let key = key_of(t);
        let reason = match &key {
            Some(k) if k.kind != kind => format!("tagged {} but is a {}", k.tag(), kind.title()),
            Some(_) => "not part of the topology's network any more".to_string(),
            None => "names no part of the network".to_string(),
        };
        out.push(NetOrphan {
            kind,
            key: key.map(|k| k.tag()),
            id: id.to_string(),
            reason,
        });
    };
    // A second one with a key the plan keeps is a duplicate.
    for v in own.vpcs.iter().filter(|v| !kept.contains(&v.id)) {
        note(Kind::Vpc, &v.id, &v.tags);
        remove.vpcs.push(v.clone());
    }
    for g in own.gateways.iter().filter(|g| !kept.contains(&g.id)) {
        note(Kind::InternetGateway, &g.id, &g.tags);
        remove.gateways.push(g.clone());
    }
    for s in own.subnets.iter().filter(|s| !kept.contains(&s.id)) {
        let kind = key_of(&s.tags).map_or(Kind::PrivateSubnet, |k| k.kind);
        note(kind, &s.id, &s.tags);
        remove.subnets.push(s.clone());
    }
    for n in own
        .nats
        .iter()
        .filter(|n| n.state.is_live() && !kept.contains(&n.id))
    {
        note(Kind::NatGateway, &n.id, &n.tags);
        remove.nats.push(n.clone());
    }
    for a in own
        .addresses
        .iter()
        .filter(|a| !kept.contains(&a.allocation_id))
    {
        note(Kind::NatAddress, &a.allocation_id, &a.tags);
        remove.addresses.push(a.clone());
    }
    for t in own.tables.iter().filter(|t| !kept.contains(&t.id)) {
        let kind = key_of(&t.tags).map_or(Kind::PrivateRouteTable, |k| k.kind);
        note(kind, &t.id, &t.tags);
        remove.tables.push(t.clone());
    }
    for e in own.endpoints.iter().filter(|e| !kept.contains(&e.id)) {
        note(Kind::S3Endpoint, &e.id, &e.tags);
        remove.endpoints.push(e.clone());
    }
    for o in &mut out {
        let duplicate = o.key.as_ref().is_some_and(|k| own_key_kept(own, kept, k));
        if duplicate {
            o.reason = format!(
                "a second {} for {}",
                o.kind.title(),
                o.key.as_deref().unwrap_or("-")
            );
        }
    }
    out.sort_by(|a, b| (a.kind, &a.key, &a.id).cmp(&(b.kind, &b.key, &b.id)));
    (out, remove)
}

/// Whether a resource with tag `key` is kept (so another with it is a duplicate).
fn own_key_kept(own: &ObservedNetwork, kept: &BTreeSet<String>, key: &str) -> bool {
    let has = |t: &Tags, id: &str| key_of(t).is_some_and(|k| k.tag() == key) && kept.contains(id);
    own.vpcs.iter().any(|v| has(&v.tags, &v.id))
        || own.gateways.iter().any(|g| has(&g.tags, &g.id))
        || own.subnets.iter().any(|s| has(&s.tags, &s.id))
        || own.nats.iter().any(|n| has(&n.tags, &n.id))
        || own.addresses.iter().any(|a| has(&a.tags, &a.allocation_id))
        || own.tables.iter().any(|t| has(&t.tags, &t.id))
        || own.endpoints.iter().any(|e| has(&e.tags, &e.id))
}

impl NetworkPlan {
    pub fn change(&self, key: &Key) -> Option<&NetChange> {
        self.changes.iter().find(|c| &c.key == key)
    }

    /// The id of `key`, or the one the plan shows until apply makes it.
    pub fn id_or_pending(&self, key: &Key) -> String {
        self.change(key)
            .and_then(|c| c.id.clone())
            .unwrap_or_else(|| key.pending_id())
    }

    /// Where the nodes go: the VPC, each zone's private subnet, and each zone's egress as the
    /// egress analysis reads it from the private route tables as apply leaves them.
    pub fn placement(&self, cluster: &Cluster) -> Result<Placement, Vec<DesiredError>> {
        let vpc_id = self.id_or_pending(&Key::of(Kind::Vpc));
        let mut zone_subnet = BTreeMap::new();
        let mut tables = Vec::new();
        for z in &cluster.zones {
            let subnet = self.id_or_pending(&Key::zoned(Kind::PrivateSubnet, &z.name));
            let table = Key::zoned(Kind::PrivateRouteTable, &z.name);
            let target = match self.change(&table).map(|c| &c.work) {
                Some(Work::RouteTable { target, .. }) => self.id_or_pending(target),
                _ => String::new(),
            };
            tables.push(RouteTable {
                id: self.id_or_pending(&table),
                vpc_id: vpc_id.clone(),
                main: false,
                subnets: vec![subnet.clone()],
                default_route: (!target.is_empty()).then_some(DefaultRoute {
                    target,
                    active: true,
                }),
            });
            zone_subnet.insert(z.name.clone(), subnet);
        }
        let egress = crate::provision::desired::zone_egress(cluster, &zone_subnet, &tables)?;
        Ok(Placement {
            vpc_id,
            zone_subnet,
            egress,
        })
    }

    /// Creations and changes, and deletions, in Terraform's sense.
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for c in &self.changes {
            match c.action {
                Action::Create => s.add += 1,
                Action::Update => s.change += 1,
                _ => {}
            }
        }
        s.destroy += self.orphans.len();
        s
    }

    /// (action, address, detail) of each change, for the plan's text and JSON.
    pub fn lines(&self) -> Vec<(Action, String, Option<String>, Vec<String>)> {
        let mut out: Vec<(Action, String, Option<String>, Vec<String>)> = self
            .changes
            .iter()
            .map(|c| (c.action, c.key.address(), c.id.clone(), c.reasons.clone()))
            .collect();
        for o in &self.orphans {
            let address = match &o.key {
                Some(k) => format!("network.{k}"),
                None => format!("network.{}", o.kind.as_str()),
            };
            out.push((
                Action::Delete,
                address,
                Some(o.id.clone()),
                vec![o.reason.clone()],
            ));
        }
        out
    }

    /// The network calls apply makes, asked with DryRun; ids not made yet are placeholders of
    /// the right shape.
    pub fn dry_runs(&self) -> Vec<DryRun> {
        const NO_VPC: &str = "vpc-00000000000000000";
        const NO_IGW: &str = "igw-00000000000000000";
        const NO_SUBNET: &str = "subnet-00000000000000000";
        const NO_RTB: &str = "rtb-00000000000000000";
        const NO_NAT: &str = "nat-00000000000000000";
        const NO_ALLOCATION: &str = "eipalloc-00000000000000000";
        let real = |key: &Key, placeholder: &str| {
            self.change(key)
                .and_then(|c| c.id.clone())
                .unwrap_or_else(|| placeholder.to_string())
        };
        let vpc = real(&Key::of(Kind::Vpc), NO_VPC);
        let mut calls: Vec<NetworkDryRun> = Vec::new();
        let mut allocate = false;
        for c in self.changes.iter().filter(|c| c.action != Action::NoOp) {
            let create = c.action == Action::Create;
            match &c.work {
                Work::Vpc { cidr, .. } if create => {
                    calls.push(NetworkDryRun::CreateVpc { cidr: *cidr })
                }
                Work::Vpc { .. } => {}
                Work::InternetGateway { attach } => {
                    if create {
                        calls.push(NetworkDryRun::CreateInternetGateway);
                    }
                    if *attach {
                        calls.push(NetworkDryRun::AttachInternetGateway {
                            gateway_id: real(&c.key, NO_IGW),
                            vpc_id: vpc.clone(),
                        });
                    }
                }
                Work::Subnet { zone, cidr } => calls.push(NetworkDryRun::CreateSubnet {
                    vpc_id: vpc.clone(),
                    zone: zone.clone(),
                    cidr: *cidr,
                }),
                Work::NatAddress => allocate = true,
                Work::NatGateway {
                    subnet, address, ..
                } => calls.push(NetworkDryRun::CreateNatGateway {
                    subnet_id: real(subnet, NO_SUBNET),
                    allocation_id: real(address, NO_ALLOCATION),
                }),
                Work::RouteTable {
                    target,
                    route,
                    associate,
                } => {
                    let table = real(&c.key, NO_RTB);
                    if create {
                        calls.push(NetworkDryRun::CreateRouteTable {
                            vpc_id: vpc.clone(),
                        });
                    }
                    let placeholder = if target.kind == Kind::NatGateway {
                        NO_NAT
                    } else {
                        NO_IGW
                    };
                    match route {
                        Some(false) => calls.push(NetworkDryRun::CreateRoute {
                            route_table_id: table.clone(),
                            target: real(target, placeholder),
                        }),
                        Some(true) => calls.push(NetworkDryRun::ReplaceRoute {
                            route_table_id: table.clone(),
                            target: real(target, placeholder),
                        }),
                        None => {}
                    }
                    if let Some(s) = associate.first() {
                        calls.push(NetworkDryRun::AssociateRouteTable {
                            route_table_id: table,
                            subnet_id: real(s, NO_SUBNET),
                        });
                    }
                }
                Work::Endpoint { service, .. } if create => {
                    calls.push(NetworkDryRun::CreateVpcEndpoint {
                        vpc_id: vpc.clone(),
                        service: service.clone(),
                    })
                }
                Work::Endpoint { .. } => calls.push(NetworkDryRun::ModifyVpcEndpoint {
                    endpoint_id: real(&c.key, "vpce-00000000000000000"),
                }),
            }
        }
        for o in &self.orphans {
            match o.kind {
                Kind::NatGateway => calls.push(NetworkDryRun::DeleteNatGateway {
                    nat_gateway_id: NO_NAT.into(),
                }),
                Kind::PublicSubnet | Kind::PrivateSubnet => {
                    calls.push(NetworkDryRun::DeleteSubnet {
                        subnet_id: NO_SUBNET.into(),
                    })
                }
                Kind::PublicRouteTable | Kind::PrivateRouteTable => {
                    calls.push(NetworkDryRun::DeleteRouteTable {
                        route_table_id: NO_RTB.into(),
                    })
                }
                _ => {}
            }
        }
        // One of each kind of call is enough to learn whether it is allowed.
        let mut seen = BTreeSet::new();
        let mut out: Vec<DryRun> = calls
            .into_iter()
            .filter(|c| seen.insert(c.operation()))
            .map(DryRun::Network)
            .collect();
        let releases = self.orphans.iter().any(|o| o.kind == Kind::NatAddress);
        if allocate {
            out.push(DryRun::AllocateAddress);
        }
        if releases {
            out.push(DryRun::ReleaseAddress {
                allocation_id: NO_ALLOCATION.into(),
            });
        }
        out
    }
}
