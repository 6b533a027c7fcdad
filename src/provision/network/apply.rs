//! Creates the managed network in dependency waves (VPC → internet gateway, subnets and the NAT
//! gateways' Elastic IPs → NAT gateways, waited on until available → route tables with their
//! routes and subnets → the S3 endpoint), and removes it in the reverse order (endpoint, NAT
//! gateways, waited on until deleted, their Elastic IPs, the internet gateway, subnets, route
//! tables, VPC). Every creation is tagged at creation; those EC2 takes a ClientToken for carry
//! one, and those it does not (VPC, subnet, internet gateway, Elastic IP) look for their resource
//! by tag after any failure before reporting it, so a lost answer never makes a second one.

use std::collections::BTreeMap;

use super::observe::{ObservedNetwork, key_of};
use super::plan::{NetChange, NetworkPlan, Work};
use super::{Key, Kind};
use crate::ec2::network::{EndpointSpec, NatGatewaySpec, NatState, SubnetSpec};
use crate::ec2::{Ec2, Ec2Error, Ec2Result, Tags};
use crate::progress::Reporter;
use crate::provision::apply::{ApplyError, Failure, Settings, delete_when_free, in_parallel};

/// The network's ids after apply: by key, and by the id the plan showed for what it made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Made {
    pub ids: BTreeMap<Key, String>,
    pending: BTreeMap<String, String>,
}

impl Made {
    /// The real id behind `id` when the plan showed a pending one; `id` itself otherwise.
    pub fn resolve(&self, id: &str) -> String {
        self.pending
            .get(id)
            .cloned()
            .unwrap_or_else(|| id.to_string())
    }

    fn insert(&mut self, key: &Key, id: String) {
        self.pending.insert(key.pending_id(), id.clone());
        self.ids.insert(key.clone(), id);
    }
}

/// The waves of creation: each needs the ids of the ones before.
const WAVES: [(&str, &[Kind]); 5] = [
    ("create the VPC", &[Kind::Vpc]),
    (
        "create the internet gateway, subnets and NAT addresses",
        &[
            Kind::InternetGateway,
            Kind::PublicSubnet,
            Kind::PrivateSubnet,
            Kind::NatAddress,
        ],
    ),
    ("create NAT gateways", &[Kind::NatGateway]),
    (
        "create route tables",
        &[Kind::PublicRouteTable, Kind::PrivateRouteTable],
    ),
    ("create the S3 gateway endpoint", &[Kind::S3Endpoint]),
];

/// Creates and fixes what `plan` says, wave by wave; returns every id of the network.
pub async fn create(
    ec2: &dyn Ec2,
    cluster: &str,
    plan: &NetworkPlan,
    settings: &Settings,
    reporter: &dyn Reporter,
) -> Result<Made, ApplyError> {
    let mut made = Made::default();
    for c in &plan.changes {
        if let Some(id) = &c.id {
            made.ids.insert(c.key.clone(), id.clone());
        }
    }
    for (phase, kinds) in WAVES {
        let todo: Vec<(String, &NetChange)> = plan
            .changes
            .iter()
            .filter(|c| {
                kinds.contains(&c.key.kind) && c.action != crate::provision::plan::Action::NoOp
            })
            .map(|c| (c.key.address(), c))
            .collect();
        if !todo.is_empty() {
            let ids = made.ids.clone();
            let ids = &ids;
            let (done, failures) = in_parallel(
                phase,
                todo,
                settings.parallelism,
                reporter,
                |c| async move { converge(ec2, cluster, c, ids).await },
            )
            .await;
            for (address, id) in done {
                if let Some(c) = plan.changes.iter().find(|c| c.key.address() == address) {
                    made.insert(&c.key, id);
                }
            }
            if !failures.is_empty() {
                return Err(ApplyError {
                    stage: "creating the network",
                    failures,
                });
            }
        }
        if kinds.contains(&Kind::NatGateway) {
            wait_available(ec2, cluster, plan, &made, settings).await?;
        }
    }
    Ok(made)
}

/// The id of `key` made so far, or an error naming it.
fn id_of(ids: &BTreeMap<Key, String>, key: &Key) -> Ec2Result<String> {
    ids.get(key).cloned().ok_or_else(|| {
        Ec2Error::new(
            "apply",
            "Missing",
            format!("{} does not exist yet", key.address()),
        )
    })
}

/// Runs `create`; after any failure, looks for the resource by its key (the plan found none,
/// so one found now is this call's, whose answer was lost) before reporting the failure.
async fn once<C, F, G>(create: C, find: F) -> Ec2Result<String>
where
    C: std::future::Future<Output = Ec2Result<String>>,
    F: FnOnce() -> G,
    G: std::future::Future<Output = Ec2Result<Option<String>>>,
{
    match create.await {
        Ok(id) => Ok(id),
        Err(e) => match find().await {
            Ok(Some(id)) => Ok(id),
            _ => Err(e),
        },
    }
}

/// The id of the first of `items` whose tags carry `key`.
fn with_key<T>(
    items: Vec<T>,
    key: &Key,
    tags: impl Fn(&T) -> &Tags,
    id: impl Fn(T) -> String,
) -> Option<String> {
    items
        .into_iter()
        .find(|i| key_of(tags(i)).as_ref() == Some(key))
        .map(id)
}

/// Creates or fixes one resource; returns its id.
async fn converge(
    ec2: &dyn Ec2,
    cluster: &str,
    c: &NetChange,
    ids: &BTreeMap<Key, String>,
) -> Ec2Result<String> {
    let key = &c.key;
    match &c.work {
        Work::Vpc { cidr, dns } => {
            let id = match &c.id {
                Some(id) => id.clone(),
                None => {
                    once(ec2.create_vpc(*cidr, &c.tags), || async {
                        Ok(with_key(
                            ec2.find_vpcs(cluster).await?,
                            key,
                            |v| &v.tags,
                            |v| v.id,
                        ))
                    })
                    .await?
                }
            };
            if dns.support || dns.hostnames {
                ec2.enable_vpc_dns(&id, *dns).await?;
            }
            Ok(id)
        }
        Work::InternetGateway { attach } => {
            let id = match &c.id {
                Some(id) => id.clone(),
                None => {
                    once(ec2.create_internet_gateway(&c.tags), || async {
                        Ok(with_key(
                            ec2.find_internet_gateways(cluster).await?,
                            key,
                            |g| &g.tags,
                            |g| g.id,
                        ))
                    })
                    .await?
                }
            };
            if *attach {
                let vpc = id_of(ids, &Key::of(Kind::Vpc))?;
                match ec2.attach_internet_gateway(&id, &vpc).await {
                    // A resend after an answer that was lost.
                    Err(e)
                        if e.code == "Resource.AlreadyAssociated" && e.message.contains(&vpc) => {}
                    r => r?,
                }
            }
            Ok(id)
        }
        Work::Subnet { zone, cidr } => match &c.id {
            Some(id) => Ok(id.clone()),
            None => {
                let spec = SubnetSpec {
                    vpc_id: id_of(ids, &Key::of(Kind::Vpc))?,
                    zone: zone.clone(),
                    cidr: *cidr,
                    tags: c.tags.clone(),
                };
                once(ec2.create_subnet(&spec), || async {
                    Ok(with_key(
                        ec2.find_subnets(cluster).await?,
                        key,
                        |s| &s.tags,
                        |s| s.id,
                    ))
                })
                .await
            }
        },
        Work::NatAddress => match &c.id {
            Some(id) => Ok(id.clone()),
            None => {
                let allocate = async { Ok(ec2.allocate_address(&c.tags).await?.allocation_id) };
                once(allocate, || async {
                    Ok(with_key(
                        ec2.find_addresses(cluster).await?,
                        key,
                        |a| &a.tags,
                        |a| a.allocation_id,
                    ))
                })
                .await
            }
        },
        Work::NatGateway {
            subnet,
            address,
            dead,
            ..
        } => match &c.id {
            Some(id) => Ok(id.clone()),
            None => {
                let subnet_id = id_of(ids, subnet)?;
                let allocation_id = id_of(ids, address)?;
                let client_token =
                    key.token(cluster, &[&subnet_id, &allocation_id, &dead.to_string()]);
                ec2.create_nat_gateway(&NatGatewaySpec {
                    subnet_id,
                    allocation_id,
                    client_token,
                    tags: c.tags.clone(),
                })
                .await
            }
        },
        Work::RouteTable {
            target,
            route,
            associate,
        } => {
            let id = match &c.id {
                Some(id) => id.clone(),
                None => {
                    let vpc = id_of(ids, &Key::of(Kind::Vpc))?;
                    ec2.create_route_table(&vpc, &key.token(cluster, &[&vpc]), &c.tags)
                        .await?
                }
            };
            if let Some(replace) = route {
                let target = id_of(ids, target)?;
                match ec2.set_default_route(&id, &target, *replace).await {
                    // The table made by an earlier try of this creation already has one.
                    Err(e) if e.code == "RouteAlreadyExists" => {
                        ec2.set_default_route(&id, &target, true).await?
                    }
                    r => r?,
                }
            }
            for s in associate {
                ec2.associate_route_table(&id, &id_of(ids, s)?).await?;
            }
            Ok(id)
        }
        Work::Endpoint {
            service,
            route_tables,
            add,
            drop,
        } => {
            let tables = |keys: &[Key]| -> Ec2Result<Vec<String>> {
                keys.iter().map(|k| id_of(ids, k)).collect()
            };
            match &c.id {
                Some(id) => {
                    if !add.is_empty() || !drop.is_empty() {
                        ec2.change_endpoint_route_tables(id, &tables(add)?, drop)
                            .await?;
                    }
                    Ok(id.clone())
                }
                None => {
                    let vpc = id_of(ids, &Key::of(Kind::Vpc))?;
                    ec2.create_vpc_endpoint(&EndpointSpec {
                        client_token: key.token(cluster, &[&vpc]),
                        vpc_id: vpc,
                        service: service.clone(),
                        route_tables: tables(route_tables)?,
                        tags: c.tags.clone(),
                    })
                    .await
                }
            }
        }
    }
}

/// Polls the cluster's NAT gateways (one Describe per poll) until every one the plan needs is
/// available: routes to them are made next, and nodes boot behind them.
async fn wait_available(
    ec2: &dyn Ec2,
    cluster: &str,
    plan: &NetworkPlan,
    made: &Made,
    settings: &Settings,
) -> Result<(), ApplyError> {
    const STAGE: &str = "waiting for NAT gateways";
    let wanted: Vec<(String, String)> = plan
        .changes
        .iter()
        .filter(|c| c.key.kind == Kind::NatGateway)
        .filter(|c| {
            !matches!(
                c.work,
                Work::NatGateway {
                    available: true,
                    ..
                }
            )
        })
        .filter_map(|c| Some((c.key.address(), made.ids.get(&c.key)?.clone())))
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let deadline = tokio::time::Instant::now() + settings.timeout;
    loop {
        let found = ec2
            .find_nat_gateways(cluster)
            .await
            .map_err(|e| ApplyError::one(STAGE, "network", e))?;
        let mut pending = Vec::new();
        let mut failures = Vec::new();
        for (address, id) in &wanted {
            match found.iter().find(|n| &n.id == id) {
                Some(n) if n.state == NatState::Available => {}
                Some(n) if !n.state.is_live() => failures.push(Failure {
                    resource: address.clone(),
                    error: format!(
                        "NAT gateway {id} is {}{}; `kcluster apply` makes a new one",
                        n.state.as_str(),
                        n.failure
                            .as_ref()
                            .map(|f| format!(" ({f})"))
                            .unwrap_or_default()
                    ),
                }),
                Some(n) => pending.push(format!("{address} ({id}, {})", n.state.as_str())),
                None => pending.push(format!("{address} ({id}, not listed yet)")),
            }
        }
        if !failures.is_empty() {
            return Err(ApplyError {
                stage: STAGE,
                failures,
            });
        }
        if pending.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ApplyError::one(
                STAGE,
                pending.join(", "),
                format!(
                    "not available after {:?} (--wait-seconds or KCLUSTER_WAIT_SECONDS sets the wait)",
                    settings.timeout
                ),
            ));
        }
        tokio::time::sleep(settings.poll).await;
    }
}

/// Removes `net` (the whole network for `destroy`, or what a plan no longer needs), in an order
/// EC2 accepts: endpoints, NAT gateways (waited on until deleted, when EC2 lets their Elastic IPs
/// go), the Elastic IPs, the internet gateway (detached), the route tables' subnet associations,
/// the subnets, the route tables, the VPC. What is already gone is skipped; what EC2 still holds
/// is waited for, up to the settings' timeout.
pub async fn remove(
    ec2: &dyn Ec2,
    cluster: &str,
    net: &ObservedNetwork,
    settings: &Settings,
    reporter: &dyn Reporter,
) -> Result<(), ApplyError> {
    let each = |items: Vec<String>| -> Vec<(String, String)> {
        items.into_iter().map(|id| (id.clone(), id)).collect()
    };
    let endpoints = each(net.endpoints.iter().map(|e| e.id.clone()).collect());
    delete_each(
        "delete the S3 gateway endpoint",
        endpoints,
        settings,
        reporter,
        |id| async move {
            delete_when_free(settings, "InvalidVpcEndpointId.NotFound", "", || {
                ec2.delete_vpc_endpoint(&id)
            })
            .await
        },
    )
    .await?;
    let nats: Vec<String> = net
        .nats
        .iter()
        .filter(|n| n.state != NatState::Deleted)
        .map(|n| n.id.clone())
        .collect();
    delete_each(
        "delete NAT gateways",
        each(nats.clone()),
        settings,
        reporter,
        |id| async move {
            delete_when_free(settings, "NatGatewayNotFound", "", || {
                ec2.delete_nat_gateway(&id)
            })
            .await
        },
    )
    .await?;
    if !nats.is_empty() && !settings.skip_detach_wait {
        wait_deleted(ec2, cluster, &nats, settings).await?;
    }
    let addresses = each(
        net.addresses
            .iter()
            .map(|a| a.allocation_id.clone())
            .collect(),
    );
    delete_each(
        "release the NAT gateways' Elastic IPs",
        addresses,
        settings,
        reporter,
        |id| async move {
            delete_when_free(
                settings,
                "InvalidAllocationID.NotFound",
                "InvalidIPAddress.InUse",
                || ec2.release_address(&id),
            )
            .await
        },
    )
    .await?;
    let attached: Vec<(String, (String, String))> = net
        .gateways
        .iter()
        .flat_map(|g| {
            g.attached_to
                .iter()
                .map(|v| (format!("{} from {v}", g.id), (g.id.clone(), v.clone())))
        })
        .collect();
    delete_each(
        "detach the internet gateway",
        attached,
        settings,
        reporter,
        |(g, v)| async move {
            delete_when_free(
                settings,
                "Gateway.NotAttached",
                "DependencyViolation",
                || ec2.detach_internet_gateway(&g, &v),
            )
            .await
        },
    )
    .await?;
    let gateways = each(net.gateways.iter().map(|g| g.id.clone()).collect());
    delete_each(
        "delete the internet gateway",
        gateways,
        settings,
        reporter,
        |id| async move {
            delete_when_free(
                settings,
                "InvalidInternetGatewayID.NotFound",
                "DependencyViolation",
                || ec2.delete_internet_gateway(&id),
            )
            .await
        },
    )
    .await?;
    let associations: Vec<(String, String)> = net
        .tables
        .iter()
        .flat_map(|t| {
            t.associations
                .iter()
                .map(|(a, _)| (format!("{a} of {}", t.id), a.clone()))
        })
        .collect();
    delete_each(
        "disassociate route tables",
        associations,
        settings,
        reporter,
        |a| async move {
            delete_when_free(settings, "InvalidAssociationID.NotFound", "", || {
                ec2.disassociate_route_table(&a)
            })
            .await
        },
    )
    .await?;
    let subnets = each(net.subnets.iter().map(|s| s.id.clone()).collect());
    delete_each(
        "delete subnets",
        subnets,
        settings,
        reporter,
        |id| async move {
            delete_when_free(
                settings,
                "InvalidSubnetID.NotFound",
                "DependencyViolation",
                || ec2.delete_subnet(&id),
            )
            .await
            .map_err(|e| still_used(e, "subnet", &id))
        },
    )
    .await?;
    let tables = each(net.tables.iter().map(|t| t.id.clone()).collect());
    delete_each(
        "delete route tables",
        tables,
        settings,
        reporter,
        |id| async move {
            delete_when_free(
                settings,
                "InvalidRouteTableID.NotFound",
                "DependencyViolation",
                || ec2.delete_route_table(&id),
            )
            .await
        },
    )
    .await?;
    let vpcs = each(net.vpcs.iter().map(|v| v.id.clone()).collect());
    delete_each(
        "delete the VPC",
        vpcs,
        settings,
        reporter,
        |id| async move {
            delete_when_free(
                settings,
                "InvalidVpcID.NotFound",
                "DependencyViolation",
                || ec2.delete_vpc(&id),
            )
            .await
            .map_err(|e| still_used(e, "VPC", &id))
        },
    )
    .await
}

/// Runs `delete` on each item (in parallel, as one phase); a failure names every item that
/// failed and the phase.
async fn delete_each<T, F, Fut>(
    phase: &'static str,
    items: Vec<(String, T)>,
    settings: &Settings,
    reporter: &dyn Reporter,
    delete: F,
) -> Result<(), ApplyError>
where
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = Result<(), Ec2Error>>,
{
    if items.is_empty() {
        return Ok(());
    }
    let (_, failures) = in_parallel(phase, items, settings.parallelism, reporter, delete).await;
    if failures.is_empty() {
        Ok(())
    } else {
        Err(ApplyError {
            stage: phase,
            failures,
        })
    }
}

/// A `DependencyViolation` that outlived the wait: something kcluster did not make still uses it.
fn still_used(e: Ec2Error, what: &str, id: &str) -> Ec2Error {
    if e.code != "DependencyViolation" {
        return e;
    }
    let message = format!(
        "{}; something without the cluster's tags (an instance, interface, load balancer or endpoint made by hand) still uses {what} {id}: remove it and run `kcluster destroy` again",
        e.message
    );
    Ec2Error { message, ..e }
}

/// Polls the cluster's NAT gateways until each of `ids` is deleted (or no longer listed): EC2
/// frees their Elastic IPs and interfaces only then.
async fn wait_deleted(
    ec2: &dyn Ec2,
    cluster: &str,
    ids: &[String],
    settings: &Settings,
) -> Result<(), ApplyError> {
    const STAGE: &str = "waiting for NAT gateways to be deleted";
    let deadline = tokio::time::Instant::now() + settings.timeout;
    loop {
        let found = ec2
            .find_nat_gateways(cluster)
            .await
            .map_err(|e| ApplyError::one(STAGE, ids.join(", "), e))?;
        let left: Vec<String> = found
            .iter()
            .filter(|n| ids.contains(&n.id) && n.state != NatState::Deleted)
            .map(|n| format!("{} ({})", n.id, n.state.as_str()))
            .collect();
        if left.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ApplyError::one(
                STAGE,
                left.join(", "),
                format!(
                    "not deleted after {:?} (--wait-seconds or KCLUSTER_WAIT_SECONDS sets the wait)",
                    settings.timeout
                ),
            ));
        }
        tokio::time::sleep(settings.poll).await;
    }
}
