//! The steps behind the AWS commands, shared by the CLI and the tests: render → observe → refuse
//! what is not kcluster's (ownership.rs) → desired → plan; the live check.

use crate::check;
use crate::cluster::{Ami, Cluster};
use crate::ec2::Ec2;
use crate::error::Error;
use crate::provision::desired;
use crate::provision::network::observe::ObservedNetwork;
use crate::provision::ownership;
use crate::provision::plan::{self, Observed, Plan};
use crate::render::Renderer;

/// The subnet ids the topology names.
pub fn subnet_ids(cluster: &Cluster) -> Vec<String> {
    cluster
        .zones
        .iter()
        .filter_map(|z| z.subnet_id.clone())
        .collect()
}

/// Reads the cluster from EC2, with the subnets of every zone: those named, and the default
/// subnets for the zones that name none; or, with `network.create`, the network kcluster made.
pub async fn observe(ec2: &dyn Ec2, cluster: &Cluster) -> Result<Observed, Error> {
    let aws = |e: crate::ec2::Ec2Error| Error::Aws(e.to_string());
    if cluster.network.create.is_some() {
        let mut observed = Observed::read(ec2, &cluster.name, &[], false)
            .await
            .map_err(aws)?;
        let net = ObservedNetwork::read(ec2, &cluster.name, &observed.network_addresses, true)
            .await
            .map_err(aws)?;
        observed.subnets = net.private_subnets();
        observed.network = Some(net);
        return Ok(observed);
    }
    let defaults = cluster.zones.iter().any(|z| z.subnet_id.is_none());
    Observed::read(ec2, &cluster.name, &subnet_ids(cluster), defaults)
        .await
        .map_err(aws)
}

/// Reads the cluster from EC2 and diffs it with the topology.
pub async fn make_plan(
    ec2: &dyn Ec2,
    cluster: &Cluster,
    renderer: &Renderer,
) -> Result<(Plan, Observed), Error> {
    let renders = renderer.render_all(cluster)?;
    let observed = observe(ec2, cluster).await?;
    let image = match &cluster.ami {
        Ami::Id(id) => id.clone(),
        Ami::SsmParameter(p) => ec2
            .resolve_parameter(p)
            .await
            .map_err(|e| Error::Aws(format!("cannot resolve the AMI parameter {p}: {e}")))?,
    };
    let image = ec2
        .describe_image(&image)
        .await
        .map_err(|e| Error::Aws(e.to_string()))?
        .ok_or_else(|| {
            Error::Usage(format!(
                "the image {image} does not exist in {} or this account may not use it: fix `ami`",
                cluster.region
            ))
        })?;
    let mut foreign = ownership::foreign(
        &cluster.name,
        &observed.groups,
        &observed.interfaces,
        &observed.instances,
        &observed.addresses,
    );
    if let Some(net) = &observed.network {
        foreign.extend(net.foreign(&cluster.name));
    }
    if let Some(refusal) = ownership::refuse_foreign(&cluster.name, &foreign) {
        return Err(Error::Usage(refusal));
    }
    if let Some(refusal) = plan::metadata_change(cluster, &observed) {
        return Err(Error::Usage(refusal));
    }
    let lines = |errs: Vec<String>| Error::Usage(errs.join("\n"));
    let network = match (&cluster.network.create, &observed.network) {
        (Some(m), Some(net)) => {
            Some(crate::provision::network::plan::plan(cluster, m, net).map_err(lines)?)
        }
        _ => None,
    };
    let to_lines =
        |errs: Vec<desired::DesiredError>| errs.iter().map(ToString::to_string).collect();
    let placement = match &network {
        Some(n) => n.placement(cluster),
        None => desired::placement(cluster, &observed.subnets, &observed.route_tables),
    }
    .map_err(|e| lines(to_lines(e)))?;
    let desired =
        desired::desired(cluster, &renders, &placement, &image).map_err(|e| lines(to_lines(e)))?;
    let elsewhere =
        ownership::in_other_vpcs(&desired.vpc_id, &observed.groups, &observed.interfaces);
    if let Some(refusal) =
        ownership::refuse_other_vpcs(&cluster.name, &cluster.region, &desired.vpc_id, &elsewhere)
    {
        return Err(Error::Usage(refusal));
    }
    let mut plan = plan::plan(&desired, &observed);
    plan.network = network;
    let problems = crate::provision::preflight::check(ec2, &plan, &observed, &image)
        .await
        .map_err(|e| Error::Aws(e.to_string()))?;
    if !problems.is_empty() {
        return Err(Error::Usage(problems.join("\n")));
    }
    Ok((plan, observed))
}

/// The full rack-awareness report: static rules, the AZ-loss simulation, and (with `ec2`) the
/// live cluster compared with the topology. `observed` saves reading EC2 again when the caller
/// just did.
pub async fn check_report(
    cluster: &Cluster,
    partitions: u32,
    replication_factor: u32,
    live: Option<&dyn Ec2>,
    observed: Option<Observed>,
) -> Result<check::Report, Error> {
    let mut report = check::Report::build(cluster, partitions, replication_factor, 0);
    if let Some(ec2) = live {
        let observed = match observed {
            Some(o) => o,
            None => observe(ec2, cluster).await?,
        };
        if observed.live_instances().next().is_none() {
            report.add_live([check::Finding::warning(
                "live-cluster-missing",
                format!(
                    "no running instance carries the tag kcluster:cluster={} in {}",
                    cluster.name, cluster.region
                ),
                "run `kcluster apply` to create the cluster; the live checks run once it exists",
            )]);
        } else {
            let findings = crate::check::live::findings(ec2, cluster, &observed, 16)
                .await
                .map_err(|e| Error::Aws(e.to_string()))?;
            report.add_live(findings);
            report.live_checked = Some(format!(
                "{} instances carrying the cluster's tag; broker.rack read back from the user-data of {} brokers",
                observed.live_instances().count(),
                cluster.brokers().count()
            ));
        }
    }
    Ok(report)
}
