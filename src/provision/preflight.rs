//! Read-only checks `plan` makes before anything is created, each failure one line naming the
//! thing and the fix: the image's architecture is one kcluster pins downloads for; the AZ IDs the
//! topology gives are those of its zones here; every instance type is offered in its nodes' zones
//! and runs the image's architecture; each subnet has room for the interfaces apply creates in
//! it, and no one else holds a node's fixed address; EC2's DryRun allows every kind of call apply
//! makes, the calls that create the network of `network.create` included. (That the subnets
//! exist, sit in the topology's VPC and reach the internet is checked as the plan is made:
//! desired.rs, egress.rs, network/plan.rs.) A fixed number of requests, whatever the cluster's
//! size.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use crate::ec2::{DryRun, Ec2, Ec2Result, Image};
use crate::provision::plan::{Action, Observed, OrphanKind, Plan};

/// Placeholder ids for DryRuns of calls on resources apply has not made yet (or may never
/// touch): destructive calls always name one, so a DryRun can never act on a real resource.
const NO_GROUP: &str = "sg-00000000000000000";
const NO_INTERFACE: &str = "eni-00000000000000000";
const NO_INSTANCE: &str = "i-00000000000000000";
const NO_ALLOCATION: &str = "eipalloc-00000000000000000";
const NO_ASSOCIATION: &str = "eipassoc-00000000000000000";
const NO_VOLUME: &str = "vol-00000000000000000";
const NO_VPC: &str = "vpc-00000000000000000";
const NO_SUBNET: &str = "subnet-00000000000000000";

/// `id`, or `placeholder` when it names something the plan has not made yet.
fn made_or(id: &str, placeholder: &str) -> String {
    if crate::provision::network::is_pending(id) {
        placeholder.to_string()
    } else {
        id.to_string()
    }
}

/// Every problem found; empty when apply can go ahead.
pub async fn check(
    ec2: &dyn Ec2,
    plan: &Plan,
    observed: &Observed,
    image: &Image,
) -> Ec2Result<Vec<String>> {
    let mut problems = zone_ids(plan);
    problems.extend(instance_types(ec2, plan, image).await?);
    problems.extend(room(plan, observed));
    problems.extend(held_addresses(ec2, plan, observed).await?);
    problems.extend(denied(ec2, plan, image).await?);
    Ok(problems)
}

async fn instance_types(ec2: &dyn Ec2, plan: &Plan, image: &Image) -> Ec2Result<Vec<String>> {
    let needed: BTreeSet<(&str, &str)> = plan
        .nodes
        .iter()
        .map(|n| (n.desired.instance_type.as_str(), n.zone.as_str()))
        .collect();
    let types: Vec<String> = needed
        .iter()
        .map(|(t, _)| t.to_string())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let zones: Vec<String> = needed
        .iter()
        .map(|(_, z)| z.to_string())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut problems = Vec::new();
    if !crate::render::exporters::ARCHITECTURES.contains(&image.architecture.as_str()) {
        problems.push(format!(
            "the image {} is {}, but kcluster pins node_exporter, Prometheus and Alertmanager for {} only: choose an x86_64 or arm64 image",
            image.id,
            image.architecture,
            crate::render::exporters::ARCHITECTURES.join(" and ")
        ));
    }
    if types.is_empty() {
        return Ok(problems);
    }
    let (offered, architectures) = futures::try_join!(
        ec2.instance_type_offerings(&types, &zones),
        ec2.instance_type_architectures(&types),
    )?;
    for t in &types {
        match architectures.get(t) {
            None => problems.push(format!(
                "instance type {t} does not exist in {}: choose another (`aws ec2 describe-instance-types`)",
                plan.region
            )),
            Some(archs) if !archs.contains(&image.architecture) => problems.push(format!(
                "instance type {t} runs {}, but the image {} is {}: choose a {} instance type or an image for {}",
                archs.join("/"),
                image.id,
                image.architecture,
                image.architecture,
                archs.join("/")
            )),
            Some(_) => {
                for (_, z) in needed.iter().filter(|(nt, _)| nt == t) {
                    if !offered.iter().any(|(ot, oz)| ot == t && oz == z) {
                        problems.push(format!(
                            "instance type {t} is not offered in {z}: choose another type, or move its nodes to a zone that offers it"
                        ));
                    }
                }
            }
        }
    }
    Ok(problems)
}

/// Zones whose AZ ID in the topology is not the one EC2 gives the zone's name in this account.
fn zone_ids(plan: &Plan) -> Vec<String> {
    let mut problems = Vec::new();
    for (i, r) in plan.racks.iter().enumerate() {
        if r.rack == r.zone || Some(&r.rack) == r.az_id.as_ref() {
            continue;
        }
        let actual = r.az_id.as_deref().unwrap_or("unknown to EC2");
        let named = plan
            .racks
            .iter()
            .find(|o| o.az_id.as_ref() == Some(&r.rack))
            .map(|o| format!(" ({} is {})", r.rack, o.zone))
            .unwrap_or_default();
        problems.push(format!(
            "zones[{i}].id: zone {} is {actual} in this account, not {}{named}; AZ names map to different physical zones in each account: set `id: {actual}`, or name the zone whose ID is {}",
            r.zone, r.rack, r.rack
        ));
    }
    problems
}

/// Subnets with fewer free addresses than the interfaces apply creates in them.
fn room(plan: &Plan, observed: &Observed) -> Vec<String> {
    let mut new: BTreeMap<&str, (usize, &str)> = BTreeMap::new();
    for n in plan
        .nodes
        .iter()
        .filter(|n| matches!(n.interface, Action::Create | Action::Replace))
    {
        new.entry(n.desired.subnet_id.as_str())
            .or_insert((0, n.zone.as_str()))
            .0 += 1;
    }
    let mut problems = Vec::new();
    for (subnet, (count, zone)) in new {
        let Some(s) = observed.subnets.iter().find(|s| s.id == subnet) else {
            continue;
        };
        if (s.available_addresses as usize) < count {
            problems.push(format!(
                "zone {zone}: subnet {subnet} has {} free addresses, and apply needs {count} for new nodes' interfaces: free addresses in it, name a larger subnet under `zones[].subnet`, or place fewer nodes in {zone}",
                s.available_addresses
            ));
        }
    }
    problems
}

/// Nodes whose fixed address an interface that is not the cluster's holds. One request for
/// every node's address (kept or new), so the count does not depend on what exists.
async fn held_addresses(ec2: &dyn Ec2, plan: &Plan, observed: &Observed) -> Ec2Result<Vec<String>> {
    // A subnet apply has yet to create holds nothing.
    let subnets: Vec<String> = plan
        .nodes
        .iter()
        .map(|n| n.desired.subnet_id.clone())
        .filter(|s| !crate::provision::network::is_pending(s))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let addresses: Vec<Ipv4Addr> = plan
        .nodes
        .iter()
        .filter(|n| subnets.contains(&n.desired.subnet_id))
        .map(|n| n.desired.node.address)
        .collect();
    if addresses.is_empty() {
        return Ok(Vec::new());
    }
    let holders = ec2.interfaces_holding(&subnets, &addresses).await?;
    let ours: BTreeSet<&str> = observed.interfaces.iter().map(|n| n.id.as_str()).collect();
    let mut problems = Vec::new();
    for n in &plan.nodes {
        let d = &n.desired;
        for h in holders.iter().filter(|h| {
            h.address == d.node.address
                && h.subnet_id == d.subnet_id
                && !ours.contains(h.id.as_str())
        }) {
            problems.push(format!(
                "zone {}: {}'s address {} is held by network interface {} in subnet {}, which is not the cluster's: pin another address for {} in the topology, or free this one",
                n.zone, n.node, d.node.address, h.id, h.subnet_id, n.node
            ));
        }
    }
    Ok(problems)
}

/// Every kind of call apply makes, asked with DryRun; each denied one is a line.
async fn denied(ec2: &dyn Ec2, plan: &Plan, image: &Image) -> Ec2Result<Vec<String>> {
    let Some(first) = plan.nodes.first() else {
        return Ok(Vec::new());
    };
    let subnet_id = made_or(&first.desired.subnet_id, NO_SUBNET);
    let mut calls = vec![
        DryRun::CreateSecurityGroup {
            vpc_id: made_or(&plan.vpc_id, NO_VPC),
        },
        DryRun::AuthorizeSecurityGroupIngress {
            group_id: plan.group.id.clone().unwrap_or_else(|| NO_GROUP.into()),
        },
        DryRun::RevokeSecurityGroupIngress {
            group_id: NO_GROUP.into(),
        },
        DryRun::CreateNetworkInterface {
            subnet_id: subnet_id.clone(),
        },
        DryRun::CreateTags {
            resource_id: first
                .interface_id
                .clone()
                .unwrap_or_else(|| NO_INTERFACE.into()),
        },
        DryRun::RunInstances {
            image_id: image.id.clone(),
            instance_type: first.desired.instance_type.clone(),
            subnet_id,
        },
        DryRun::TerminateInstances {
            instance_id: NO_INSTANCE.into(),
        },
        DryRun::DeleteNetworkInterface {
            interface_id: NO_INTERFACE.into(),
        },
    ];
    // Elastic IPs: asked where a zone needs them (apply may also move or release them), or
    // where the plan releases some.
    let releases = plan.orphans.iter().any(|o| o.kind == OrphanKind::ElasticIp);
    if plan.egress.iter().any(|e| e.egress.needs_public_address()) {
        calls.push(DryRun::AllocateAddress);
        calls.push(DryRun::AssociateAddress {
            allocation_id: NO_ALLOCATION.into(),
            interface_id: NO_INTERFACE.into(),
        });
    }
    if releases || plan.egress.iter().any(|e| e.egress.needs_public_address()) {
        calls.push(DryRun::DisassociateAddress {
            association_id: NO_ASSOCIATION.into(),
        });
        calls.push(DryRun::ReleaseAddress {
            allocation_id: NO_ALLOCATION.into(),
        });
    }
    calls.extend(volume_and_in_place_calls(plan));
    // The network's calls (`network.create`), then one of each kind.
    calls.extend(plan.network.iter().flat_map(|n| n.dry_runs()));
    let mut seen = BTreeSet::new();
    calls.retain(|c| seen.insert(c.operation()));
    let mut problems = Vec::new();
    for call in &calls {
        if !ec2.dry_run(call).await? {
            let op = call.operation();
            problems.push(format!(
                "ec2:{op} is denied to these credentials (DryRun answered UnauthorizedOperation): allow it in their IAM policy"
            ));
        }
    }
    Ok(problems)
}

/// The calls on data volumes and on instances changed in place, asked where the plan makes them:
/// a volume created (in its zone) and attached, a volume attached to a new instance, a volume
/// grown, an instance stopped, modified and started.
fn volume_and_in_place_calls(plan: &Plan) -> Vec<DryRun> {
    let mut calls = Vec::new();
    if let Some(n) = plan.nodes.iter().find(|n| n.volume == Action::Create) {
        calls.push(DryRun::CreateVolume {
            zone: n.zone.clone(),
        });
    }
    let attaches = plan.nodes.iter().any(|n| {
        matches!(n.instance, Action::Create | Action::Replace)
            && (n.volume == Action::Create || n.volume_id.is_some())
    });
    if attaches {
        calls.push(DryRun::AttachVolume {
            volume_id: NO_VOLUME.into(),
            instance_id: NO_INSTANCE.into(),
        });
    }
    if plan.nodes.iter().any(|n| n.volume == Action::Update) {
        calls.push(DryRun::ModifyVolume {
            volume_id: NO_VOLUME.into(),
        });
    }
    if plan.nodes.iter().any(|n| n.in_place.is_some()) {
        let instance_id = NO_INSTANCE.to_string();
        calls.push(DryRun::StopInstances {
            instance_id: instance_id.clone(),
        });
        calls.push(DryRun::ModifyInstanceAttribute {
            instance_id: instance_id.clone(),
        });
        calls.push(DryRun::StartInstances { instance_id });
    }
    calls
}
