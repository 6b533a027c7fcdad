//! Live rack-awareness findings: what runs in EC2 compared with the topology. Each broker's
//! `broker.rack` is read back from the user-data EC2 holds for its instance, not from kcluster's
//! memory, and compared with the zone the instance really runs in (its AZ ID, read from EC2, when
//! the topology racks by AZ ID).

use std::collections::BTreeMap;

use futures::StreamExt;

use crate::check::Finding;
use crate::cluster::{Cluster, Role};
use crate::ec2::{Ec2, Ec2Error, Instance, tags};
use crate::provision::plan::Observed;
use crate::render::user_data_text;

/// `server.properties` keys as launched, from a node's cloud-init user-data.
pub fn launched_properties(user_data: &[u8]) -> Result<BTreeMap<String, String>, String> {
    let text = user_data_text(user_data).map_err(|e| format!("unreadable user-data: {e}"))?;
    let doc: serde_yaml::Value = serde_yaml::from_str(&text)
        .map_err(|e| format!("user-data is not cloud-config YAML: {e}"))?;
    let files = doc
        .get("write_files")
        .and_then(|f| f.as_sequence())
        .ok_or("user-data has no write_files")?;
    let content = files
        .iter()
        .find(|f| {
            f.get("path")
                .and_then(|p| p.as_str())
                .is_some_and(|p| p.ends_with("/server.properties"))
        })
        .and_then(|f| f.get("content"))
        .and_then(|c| c.as_str())
        .ok_or("user-data writes no server.properties")?;
    Ok(parse_properties(content))
}

/// A minimal Java properties reader: `key=value` lines, `#`/`!` comments, no continuations
/// (kcluster never writes any).
pub fn parse_properties(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        .filter_map(|l| {
            let (k, v) = l.split_once(['=', ':'])?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

/// Compares the live cluster with the topology. Makes one DescribeInstanceAttribute call per
/// broker (at most `parallelism` at once); everything else comes from `observed`.
pub async fn findings(
    ec2: &dyn Ec2,
    cluster: &Cluster,
    observed: &Observed,
    parallelism: usize,
) -> Result<Vec<Finding>, Ec2Error> {
    let mut out = Vec::new();
    let live: Vec<&Instance> = observed.live_instances().collect();
    let mut by_node: BTreeMap<&str, Vec<&Instance>> = BTreeMap::new();
    for i in &live {
        match i.tag(tags::NODE) {
            Some(n) if cluster.node(n).is_some() => by_node.entry(n).or_default().push(i),
            other => out.push(Finding::error(
                "live-unknown-instance",
                format!(
                    "instance {} ({}, {}) carries the cluster's tag but the topology has no node {}",
                    i.id,
                    i.state.as_str(),
                    i.zone,
                    other.unwrap_or("(no kcluster:node tag)")
                ),
                "run `kcluster apply` to remove it, or add the node to the topology",
            )),
        }
    }
    for node in &cluster.nodes {
        let instances = by_node.get(node.name.as_str()).cloned().unwrap_or_default();
        match instances.as_slice() {
            [] => out.push(Finding::error(
                "live-node-missing",
                format!("{} has no running instance", node.name),
                "run `kcluster apply`",
            )),
            [i] => {
                if i.state != crate::ec2::InstanceState::Running {
                    out.push(Finding::error(
                        "live-node-not-running",
                        format!(
                            "{} ({}) is {}, not running",
                            node.name,
                            i.id,
                            i.state.as_str()
                        ),
                        "start it (`aws ec2 start-instances`), or wait until it has started",
                    ));
                }
                if i.zone != node.zone {
                    out.push(Finding::error(
                        "live-zone",
                        format!(
                            "{} runs in {} but the topology places it in {}",
                            node.name, i.zone, node.zone
                        ),
                        "run `kcluster apply` to replace it in its zone",
                    ));
                }
            }
            many => out.push(Finding::error(
                "live-one-instance-per-node",
                format!(
                    "{} has {} instances: {}",
                    node.name,
                    many.len(),
                    many.iter()
                        .map(|i| i.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                "run `kcluster apply` to terminate the duplicates",
            )),
        }
    }

    // Each broker's launched configuration, read back from EC2.
    let brokers: Vec<(&str, &Instance)> = cluster
        .brokers()
        .flat_map(|n| {
            by_node
                .get(n.name.as_str())
                .into_iter()
                .flatten()
                .map(move |i| (n.name.as_str(), *i))
        })
        .collect();
    type Fetched<'a> = (&'a str, &'a Instance, Result<Option<Vec<u8>>, Ec2Error>);
    let fetched: Vec<Fetched> = futures::stream::iter(brokers)
        .map(|(name, i)| async move { (name, i, ec2.user_data(&i.id).await) })
        .buffered(parallelism.max(1))
        .collect()
        .await;
    for (name, i, data) in fetched {
        let Some(bytes) = data? else {
            out.push(Finding::error(
                "live-broker-rack",
                format!(
                    "{name} ({}) has no user-data, so its broker.rack is unknown",
                    i.id
                ),
                "run `kcluster apply` to replace it",
            ));
            continue;
        };
        let props = match launched_properties(&bytes) {
            Ok(p) => p,
            Err(e) => {
                out.push(Finding::error(
                    "live-broker-rack",
                    format!("{name} ({}): {e}", i.id),
                    "run `kcluster apply` to replace it",
                ));
                continue;
            }
        };
        // The rack of where it really runs: the zone's AZ ID in this account when the topology
        // racks by AZ ID, else the zone's name.
        let by_id = cluster.zones.iter().any(|z| z.id.is_some());
        let here = match observed.zone_ids.get(&i.zone) {
            Some(id) if by_id => format!("{} ({id})", i.zone),
            _ => i.zone.clone(),
        };
        let actual = match observed.zone_ids.get(&i.zone) {
            Some(id) if by_id => id.as_str(),
            _ => i.zone.as_str(),
        };
        match props.get("broker.rack") {
            Some(rack) if rack == actual => {}
            Some(rack) => out.push(Finding::error(
                "live-broker-rack",
                format!(
                    "{name} ({}) runs in {here} but was launched with broker.rack={rack}: its replicas are not where Kafka thinks",
                    i.id
                ),
                "replace it in its zone with `kcluster apply` (it plans the replacement), or fix the topology",
            )),
            None => out.push(Finding::error(
                "live-broker-rack",
                format!("{name} ({}) was launched without broker.rack", i.id),
                "run `kcluster apply` to replace it with a rendered configuration",
            )),
        }
        // A broker's id is `broker.id` in ZooKeeper mode and `node.id` in KRaft mode.
        let id_key = match cluster.metadata {
            crate::cluster::Metadata::Kraft => "node.id",
            crate::cluster::Metadata::Zookeeper => "broker.id",
        };
        let id = cluster.node(name).map(|n| n.id.to_string());
        if props.get(id_key) != id.as_ref() {
            out.push(Finding::error(
                "live-broker-id",
                format!(
                    "{name} ({}) was launched with {id_key}={}, not {}",
                    i.id,
                    props.get(id_key).map_or("(none)", String::as_str),
                    id.unwrap_or_default()
                ),
                "run `kcluster apply` to replace it",
            ));
        }
    }

    // The metadata quorum (ZooKeeper members or KRaft controllers) where the design put it:
    // no zone running a majority.
    let quorum_role = cluster.metadata.quorum_role();
    let mut quorum_zones: BTreeMap<&str, usize> = BTreeMap::new();
    for n in cluster.nodes_of(quorum_role) {
        if let Some([i]) = by_node.get(n.name.as_str()).map(Vec::as_slice) {
            *quorum_zones.entry(i.zone.as_str()).or_default() += 1;
        }
    }
    let members = cluster.nodes_of(quorum_role).count();
    let (rule, who, fix) = match quorum_role {
        Role::Controller => (
            "live-controller-zones",
            "KRaft controllers",
            "spread the controllers over the zones and run `kcluster apply`",
        ),
        _ => (
            "live-zookeeper-zones",
            "ZooKeeper members",
            "spread the ensemble over the zones and run `kcluster apply`",
        ),
    };
    for (zone, count) in &quorum_zones {
        if *count > (members.saturating_sub(1)) / 2 && members >= 3 {
            out.push(Finding::error(
                rule,
                format!("{count} of {members} {who} run in {zone}: losing it loses the quorum"),
                fix,
            ));
        }
    }
    Ok(out)
}
