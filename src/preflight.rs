//! Read-only checks `plan` makes before anything is created, each failure one line naming the
//! thing and the fix: the image's architecture is one kcluster pins downloads for, every instance
//! type is offered in its nodes' zones and runs the image's architecture, and EC2's DryRun allows the calls apply makes. A fixed number of requests,
//! whatever the cluster's size.

use std::collections::BTreeSet;

use crate::desired::Desired;
use crate::ec2::{DryRun, Ec2, Ec2Result, Image};

/// Every problem found; empty when apply can go ahead.
pub async fn check(ec2: &dyn Ec2, desired: &Desired, image: &Image) -> Ec2Result<Vec<String>> {
    let needed: BTreeSet<(&str, &str)> = desired
        .nodes
        .iter()
        .map(|n| (n.instance_type.as_str(), n.node.zone.as_str()))
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
    if !crate::exporters::ARCHITECTURES.contains(&image.architecture.as_str()) {
        problems.push(format!(
            "the image {} is {}, but kcluster pins node_exporter, Prometheus and Alertmanager for {} only: choose an x86_64 or arm64 image",
            image.id,
            image.architecture,
            crate::exporters::ARCHITECTURES.join(" and ")
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
                desired.region
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
    let Some(first) = desired.nodes.first() else {
        return Ok(problems);
    };
    let calls = [
        DryRun::CreateSecurityGroup {
            vpc_id: desired.vpc_id.clone(),
        },
        DryRun::CreateNetworkInterface {
            subnet_id: first.subnet_id.clone(),
        },
        DryRun::RunInstances {
            image_id: image.id.clone(),
            instance_type: first.instance_type.clone(),
            subnet_id: first.subnet_id.clone(),
        },
    ];
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
