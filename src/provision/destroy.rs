//! Removes a cluster: exactly the resources that carry its `kcluster:cluster` tag (filtered by
//! EC2 and checked again here), instances first, then the nodes' data volumes (the only command
//! that deletes them) and Elastic IPs (disassociated, released), then network interfaces, then
//! security groups, then the network kcluster created (`network.create`, see
//! `network/apply.rs` for its order).

use std::fmt::Write as _;

use serde::Serialize;

use crate::ec2::{
    Address, Ec2, Ec2Result, Instance, InstanceState, NetworkInterface, SecurityGroup, Volume, tags,
};
use crate::progress::Reporter;
use crate::provision::apply::{
    ApplyError, Failure, Settings, delete_interface, delete_when_free, in_parallel,
    release_address, wait_for, wait_until_detached,
};

/// What destroy would remove.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Inventory {
    pub cluster: String,
    pub instances: Vec<Instance>,
    pub interfaces: Vec<NetworkInterface>,
    /// The nodes' data volumes (kcluster's own: `kcluster:volume` with the node tags).
    pub volumes: Vec<Volume>,
    pub addresses: Vec<Address>,
    pub groups: Vec<SecurityGroup>,
    /// The network kcluster created for the cluster (only what carries its network tags).
    pub network: crate::provision::network::observe::ObservedNetwork,
    /// Resources of the network with the cluster's tag that kcluster did not make.
    #[serde(skip)]
    pub foreign_network: Vec<String>,
    /// The cluster's instances already terminated (an interface may still name one briefly).
    #[serde(skip)]
    pub terminated: Vec<String>,
}

impl Inventory {
    /// Finds the cluster's resources: one Describe call per kind. Anything whose tag does not
    /// match exactly is dropped, whatever the server-side filter returned.
    pub async fn read(ec2: &dyn Ec2, cluster: &str) -> Ec2Result<Inventory> {
        let (groups, interfaces, instances, volumes, addresses) = futures::try_join!(
            ec2.find_security_groups(cluster),
            ec2.find_network_interfaces(cluster),
            ec2.find_instances(cluster),
            ec2.find_volumes(cluster),
            ec2.find_addresses(cluster),
        )?;
        let ours = |t: &crate::ec2::Tags| t.get(tags::CLUSTER).is_some_and(|c| c == cluster);
        let (network_addresses, addresses): (Vec<Address>, Vec<Address>) = addresses
            .into_iter()
            .partition(crate::provision::network::observe::is_network_address);
        let network = crate::provision::network::observe::ObservedNetwork::read(
            ec2,
            cluster,
            &network_addresses,
            false,
        )
        .await?;
        let key = |t: &crate::ec2::Tags, id: &str| (t.get(tags::NODE).cloned(), id.to_string());
        let terminated = instances
            .iter()
            .filter(|i| ours(&i.tags) && i.state == InstanceState::Terminated)
            .map(|i| i.id.clone())
            .collect();
        let mut inv = Inventory {
            cluster: cluster.to_string(),
            terminated,
            instances: instances
                .into_iter()
                .filter(|i| ours(&i.tags) && i.state != InstanceState::Terminated)
                .collect(),
            interfaces: interfaces.into_iter().filter(|n| ours(&n.tags)).collect(),
            volumes: volumes
                .into_iter()
                .filter(|v| ours(&v.tags) && crate::provision::ownership::own_volume(&v.tags))
                .collect(),
            addresses: addresses.into_iter().filter(|a| ours(&a.tags)).collect(),
            groups: groups.into_iter().filter(|g| ours(&g.tags)).collect(),
            foreign_network: network.foreign(cluster),
            network: network.own(),
        };
        inv.instances.sort_by_key(|i| key(&i.tags, &i.id));
        inv.interfaces.sort_by_key(|n| key(&n.tags, &n.id));
        inv.volumes.sort_by_key(|v| key(&v.tags, &v.id));
        inv.addresses
            .sort_by_key(|a| key(&a.tags, &a.allocation_id));
        inv.groups.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(inv)
    }

    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }

    pub fn count(&self) -> usize {
        self.instances.len()
            + self.interfaces.len()
            + self.volumes.len()
            + self.addresses.len()
            + self.groups.len()
            + self.network.count()
    }

    /// Every resource that will go, one per line.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let node = |t: &crate::ec2::Tags| t.get(tags::NODE).cloned().unwrap_or_else(|| "-".into());
        for i in &self.instances {
            let _ = writeln!(
                out,
                "  - instance           {:<22} {:<14} {} {}",
                i.id,
                node(&i.tags),
                i.zone,
                i.state.as_str()
            );
        }
        for n in &self.interfaces {
            let _ = writeln!(
                out,
                "  - network_interface  {:<22} {:<14} {} {}",
                n.id,
                node(&n.tags),
                n.zone,
                n.address
            );
        }
        for v in &self.volumes {
            let _ = writeln!(
                out,
                "  - volume             {:<22} {:<14} {} {} GiB: the node's data, deleted for good",
                v.id,
                node(&v.tags),
                v.zone,
                v.size_gib
            );
        }
        for a in &self.addresses {
            let _ = writeln!(
                out,
                "  - elastic_ip         {:<22} {:<14} {}",
                a.allocation_id,
                node(&a.tags),
                a.public_ip
            );
        }
        for g in &self.groups {
            let _ = writeln!(out, "  - security_group     {:<22} {}", g.id, g.name);
        }
        out.push_str(&self.network.render_text());
        let n = |count: usize, what: &str| {
            format!("{count} {what}{}", if count == 1 { "" } else { "s" })
        };
        let network = match self.network.count() {
            0 => String::new(),
            c => format!(", {}", n(c, "resource")) + " of the network kcluster created",
        };
        let _ = writeln!(
            out,
            "Destroy: {}, {} (their data is lost), {}, {}, {}{network} of cluster {}.",
            n(self.instances.len(), "instance"),
            n(self.volumes.len(), "data volume"),
            n(self.interfaces.len(), "network interface"),
            n(self.addresses.len(), "Elastic IP"),
            n(self.groups.len(), "security group"),
            self.cluster
        );
        out
    }
}

/// Removes everything in `inventory`. Safe to re-run: what is already gone is skipped.
pub async fn destroy(
    ec2: &dyn Ec2,
    inventory: &Inventory,
    settings: &Settings,
    reporter: &dyn Reporter,
) -> Result<(), ApplyError> {
    let ids: Vec<String> = inventory
        .instances
        .iter()
        .filter(|i| i.state.is_live() || i.state == InstanceState::ShuttingDown)
        .map(|i| i.id.clone())
        .collect();
    if !ids.is_empty() {
        reporter.phase("terminate instances", ids.len());
        ec2.terminate_instances(&ids)
            .await
            .map_err(|e| ApplyError::one("terminating instances", ids.join(", "), e))?;
        wait_for(
            ec2,
            &inventory.cluster,
            &ids,
            InstanceState::Terminated,
            settings,
        )
        .await?;
        for id in &ids {
            reporter.step(id);
        }
        reporter.finish();
        // Wait with one Describe per poll for EC2 to detach the interfaces of the instances
        // just terminated, rather than spend a delete request per interface and poll.
        let detaching: Vec<String> = inventory
            .interfaces
            .iter()
            .filter(|n| n.instance_id.as_ref().is_some_and(|i| ids.contains(i)))
            .map(|n| n.id.clone())
            .collect();
        wait_until_detached(ec2, &inventory.cluster, &detaching, settings).await?;
    }
    // The nodes' data volumes, once EC2 has detached them from the terminated instances.
    if !inventory.volumes.is_empty() {
        let (_, failures) = in_parallel(
            "delete data volumes",
            inventory
                .volumes
                .iter()
                .map(|v| (v.id.clone(), v.id.clone()))
                .collect(),
            settings.parallelism,
            reporter,
            |id| async move {
                delete_when_free(settings, "InvalidVolume.NotFound", "VolumeInUse", || {
                    ec2.delete_volume(&id)
                })
                .await
            },
        )
        .await;
        if !failures.is_empty() {
            return Err(ApplyError {
                stage: "deleting data volumes",
                failures,
            });
        }
    }
    // Elastic IPs go before the interfaces they sit on: disassociated, then released.
    if !inventory.addresses.is_empty() {
        let (_, failures) =
            in_parallel(
                "release Elastic IPs",
                inventory
                    .addresses
                    .iter()
                    .map(|a| (a.allocation_id.clone(), a))
                    .collect(),
                settings.parallelism,
                reporter,
                |a| async move {
                    release_address(ec2, &a.allocation_id, a.association_id.as_deref()).await
                },
            )
            .await;
        if !failures.is_empty() {
            return Err(ApplyError {
                stage: "releasing Elastic IPs",
                failures,
            });
        }
    }
    // An interface held by an instance that is not the cluster's stays held: kcluster does not
    // terminate what it does not own, so waiting for it would only end at the timeout.
    let (held, free): (Vec<_>, Vec<_>) = inventory.interfaces.iter().partition(|n| {
        n.instance_id.as_ref().is_some_and(|i| {
            !inventory.instances.iter().any(|own| &own.id == i) && !inventory.terminated.contains(i)
        })
    });
    let held: Vec<Failure> = held
        .into_iter()
        .map(|n| Failure {
            resource: n.id.clone(),
            error: format!(
                "attached to instance {}, which is not cluster {}'s, so kcluster will not terminate it; detach the interface or terminate that instance, then run `kcluster destroy` again",
                n.instance_id.as_deref().unwrap_or("?"),
                inventory.cluster
            ),
        })
        .collect();
    if !free.is_empty() || !held.is_empty() {
        let (_, mut failures) = in_parallel(
            "delete network interfaces",
            free.iter().map(|n| (n.id.clone(), n.id.clone())).collect(),
            settings.parallelism,
            reporter,
            |id| async move { delete_interface(ec2, &id, settings).await },
        )
        .await;
        failures.extend(held);
        if !failures.is_empty() {
            return Err(ApplyError {
                stage: "deleting network interfaces",
                failures,
            });
        }
    }
    for g in &inventory.groups {
        reporter.phase("delete security group", 1);
        delete_group(ec2, &g.id, settings)
            .await
            .map_err(|e| ApplyError::one("deleting the security group", g.id.clone(), e))?;
        reporter.step(&g.id);
        reporter.finish();
    }
    if !inventory.network.is_empty() {
        crate::provision::network::apply::remove(
            ec2,
            &inventory.cluster,
            &inventory.network,
            settings,
            reporter,
        )
        .await?;
    }
    Ok(())
}

/// Deletes a group, waiting while EC2 still releases interfaces that used it.
async fn delete_group(
    ec2: &dyn Ec2,
    id: &str,
    settings: &Settings,
) -> Result<(), crate::ec2::Ec2Error> {
    delete_when_free(settings, "InvalidGroup.NotFound", "DependencyViolation", || {
        ec2.delete_security_group(id)
    })
    .await
    .map_err(|e| {
        if e.code != "DependencyViolation" {
            return e;
        }
        let message = format!(
            "{}; something without the cluster's tag (an instance or interface made by hand) still uses group {id}: remove it and run destroy again",
            e.message
        );
        crate::ec2::Ec2Error { message, ..e }
    })
}
