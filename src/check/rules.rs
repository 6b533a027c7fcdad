//! The static rack-awareness rules: what the topology alone says about surviving the loss of an AZ.
//! Each rule has a stable id; each finding says what to change.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Finding, Severity, zone_order, zookeeper_quorum};
use crate::cluster::{Cluster, Node, Role};
use crate::kafka::assign::{AssignError, BrokerMetadata, StartIndex, assign_replicas_to_brokers};

pub const BROKER_RACK_ZONE: &str = "broker-rack-zone";
pub const ZOOKEEPER_ZONE: &str = "zookeeper-zone";
pub const BROKER_RACK_BALANCE: &str = "broker-rack-balance";
pub const REPLICATION_FACTOR_BROKERS: &str = "replication-factor-brokers";
pub const REPLICATION_FACTOR_ZONES: &str = "replication-factor-zones";
pub const ZOOKEEPER_ENSEMBLE_SIZE: &str = "zookeeper-ensemble-size";
pub const ZOOKEEPER_QUORUM_ZONES: &str = "zookeeper-quorum-zones";
pub const CONTROLLER_ZONE: &str = "controller-zone";
pub const CONTROLLER_QUORUM_SIZE: &str = "controller-quorum-size";
pub const CONTROLLER_QUORUM_ZONES: &str = "controller-quorum-zones";
pub const MIN_INSYNC_REPLICAS: &str = "min-insync-replicas";
pub const PARTITIONS_SURVIVE_AZ_LOSS: &str = "partitions-survive-az-loss";
pub const WRITES_SURVIVE_AZ_LOSS: &str = "writes-survive-az-loss";
pub const CONNECT_WORKERS_ZONES: &str = "connect-workers-zones";
pub const MONITORING_ZONE: &str = "monitoring-zone";

/// Every rule, in the order their findings come out.
pub fn static_findings(cluster: &Cluster) -> Vec<Finding> {
    let mut findings = Vec::new();
    findings.extend(node_zones(cluster));
    findings.extend(broker_rack_balance(cluster));
    findings.extend(quorum(cluster));
    findings.extend(replication(cluster));
    findings.extend(connect_workers(cluster));
    if cluster.accept_zone_loss {
        for f in findings
            .iter_mut()
            .filter(|f| ZONE_LOSS_RULES.contains(&f.rule))
        {
            f.severity = Severity::Warning;
            f.message.push_str(" (accepted: `accept_zone_loss: true`)");
        }
    }
    findings
}

/// The rules that say a single zone's loss is not survived: errors, unless the topology accepts
/// that (`accept_zone_loss`), as a region with two zones must.
pub const ZONE_LOSS_RULES: [&str; 4] = [
    ZOOKEEPER_QUORUM_ZONES,
    CONTROLLER_QUORUM_ZONES,
    PARTITIONS_SURVIVE_AZ_LOSS,
    WRITES_SURVIVE_AZ_LOSS,
];

/// `broker-rack-zone`, `zookeeper-zone`, `controller-zone`, `connect-workers-zones`,
/// `monitoring-zone`: each node, of whatever role, sits in one of the cluster's AZs
/// (a broker's `broker.rack` is its AZ, so this is also "every rack is a known AZ").
fn node_zones(cluster: &Cluster) -> Vec<Finding> {
    let zones = cluster.zone_names();
    let list = zones.join(", ");
    cluster
        .nodes
        .iter()
        .filter(|n| !zones.contains(&n.zone.as_str()))
        .map(|n| {
            let located = format!("{} is in {}", n.name, n.zone);
            let (rule, what) = match n.role {
                Role::Broker => (
                    BROKER_RACK_ZONE,
                    format!("{} has broker.rack={}", n.name, n.zone),
                ),
                Role::Zookeeper => (ZOOKEEPER_ZONE, located),
                Role::Controller => (CONTROLLER_ZONE, located),
                Role::Connect => (CONNECT_WORKERS_ZONES, located),
                Role::Monitoring => (MONITORING_ZONE, located),
            };
            Finding::error(
                rule,
                format!("{what}, which is not one of the cluster's AZs ({list})"),
                format!(
                    "put {} in one of {list}, or add {} to zones",
                    n.name, n.zone
                ),
            )
        })
        .collect()
}

/// `broker-rack-balance`: brokers per AZ differ by at most one, counting AZs with no broker.
/// Kafka's rack-aware assignment spreads each partition across racks before brokers, so a broker
/// in a small AZ carries more replicas than one in a big AZ.
fn broker_rack_balance(cluster: &Cluster) -> Option<Finding> {
    let zones = cluster.zone_names();
    let counts: Vec<(&str, Vec<&Node>)> = zones
        .iter()
        .map(|z| (*z, cluster.brokers().filter(|n| n.zone == *z).collect()))
        .collect();
    let total: usize = counts.iter().map(|(_, b)| b.len()).sum();
    let max = counts.iter().map(|(_, b)| b.len()).max()?;
    let min = counts.iter().map(|(_, b)| b.len()).min()?;
    if total == 0 || max - min <= 1 {
        return None;
    }
    let shown = counts
        .iter()
        .map(|(z, b)| format!("{z} {}", b.len()))
        .collect::<Vec<_>>()
        .join(", ");
    let empty: Vec<&str> = counts
        .iter()
        .filter(|(_, b)| b.is_empty())
        .map(|(z, _)| *z)
        .collect();
    let mut message = format!(
        "brokers per AZ are unbalanced ({shown}): Kafka's rack-aware assignment spreads each \
         partition's replicas across AZs before brokers, so brokers in the smaller AZs carry \
         more replicas than those in the larger ones"
    );
    if !empty.is_empty() {
        let racks = zones.len() - empty.len();
        message.push_str(&format!(
            "; {} no broker, so Kafka sees only {racks} rack{}",
            match empty.as_slice() {
                [one] => format!("{one} has"),
                many => format!("{} have", many.join(", ")),
            },
            if racks == 1 { "" } else { "s" }
        ));
    }

    // Target: `total / zones` each, the remainder going to the AZs that already have the most.
    let n = zones.len();
    let (q, r) = (total / n, total % n);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(counts[i].1.len()));
    let mut target = vec![q; n];
    for &i in order.iter().take(r) {
        target[i] += 1;
    }
    let mut surplus: Vec<&Node> = Vec::new();
    for (i, (_, brokers)) in counts.iter().enumerate() {
        let extra = brokers.len().saturating_sub(target[i]);
        surplus.extend(brokers.iter().rev().take(extra));
    }
    let deficit = counts
        .iter()
        .enumerate()
        .flat_map(|(i, (z, b))| std::iter::repeat_n(*z, target[i].saturating_sub(b.len())));
    let moves: Vec<String> = surplus
        .iter()
        .zip(deficit)
        .map(|(node, to)| format!("{} from {} to {to}", node.name, node.zone))
        .collect();
    let per_zone = if r == 0 {
        format!("{q}")
    } else {
        format!("{q} or {}", q + 1)
    };
    let fix = format!(
        "spread the {total} brokers {per_zone} per AZ: move {}",
        moves.join(", ")
    );
    Some(Finding::warning(BROKER_RACK_BALANCE, message, fix))
}

/// How the quorum rules speak of the cluster's metadata quorum.
struct QuorumWords {
    size_rule: &'static str,
    zones_rule: &'static str,
    /// `ZooKeeper loses` / `the controllers lose`.
    loses: &'static str,
    /// `the ZooKeeper ensemble` / `the controller quorum`.
    group: &'static str,
    /// `ensemble` / `controllers`.
    short: &'static str,
    member: &'static str,
    members: &'static str,
    missing: &'static str,
    /// What stops without quorum.
    stops: &'static str,
    /// What a third AZ needs.
    third: &'static str,
}

const ZOOKEEPER_WORDS: QuorumWords = QuorumWords {
    size_rule: ZOOKEEPER_ENSEMBLE_SIZE,
    zones_rule: ZOOKEEPER_QUORUM_ZONES,
    loses: "ZooKeeper loses",
    group: "the ZooKeeper ensemble",
    short: "ensemble",
    member: "member",
    members: "members",
    missing: "the cluster has no ZooKeeper members: Kafka in ZooKeeper mode cannot start",
    stops: "without quorum Kafka cannot elect leaders, shrink ISRs or change metadata",
    third: "it needs only a ZooKeeper member, no broker",
};

const CONTROLLER_WORDS: QuorumWords = QuorumWords {
    size_rule: CONTROLLER_QUORUM_SIZE,
    zones_rule: CONTROLLER_QUORUM_ZONES,
    loses: "the controllers lose",
    group: "the controller quorum",
    short: "controllers",
    member: "controller",
    members: "controllers",
    missing: "the cluster has no KRaft controllers: Kafka in KRaft mode cannot start",
    stops: "without quorum the metadata log takes no writes: Kafka cannot elect leaders, shrink \
            ISRs, register brokers or change metadata",
    third: "it needs only a controller, no broker",
};

/// `zookeeper-ensemble-size`, `zookeeper-quorum-zones` (ZooKeeper mode) and
/// `controller-quorum-size`, `controller-quorum-zones` (KRaft mode): the metadata quorum keeps a
/// majority after losing any one AZ.
///
/// With `n` members the quorum is `n/2 + 1`, so losing an AZ that holds `k` members is survivable
/// only when `n - k >= n/2 + 1`, i.e. `k <= (n - 1) / 2`: for odd `n` no AZ may hold a majority,
/// for even `n` no AZ may hold even half. With two AZs one of them always holds at least half.
fn quorum(cluster: &Cluster) -> Vec<Finding> {
    let role = cluster.metadata.quorum_role();
    let w = match role {
        Role::Controller => &CONTROLLER_WORDS,
        _ => &ZOOKEEPER_WORDS,
    };
    let n = cluster.nodes_of(role).count() as u32;
    if n == 0 {
        return vec![Finding::error(
            w.size_rule,
            w.missing,
            format!("add 3 {}, one in each of 3 AZs", w.members),
        )];
    }
    let mut findings = Vec::new();
    let quorum = zookeeper_quorum(n);
    let tolerated = n - quorum;
    if n.is_multiple_of(2) {
        findings.push(Finding::warning(
            w.size_rule,
            format!(
                "{} has {n} {} (quorum {quorum}): it survives \
                 {tolerated} failure{}, the same as {} {} would, and needs one more {} \
                 up to keep quorum",
                w.group,
                w.members,
                plural(tolerated),
                n - 1,
                w.members,
                w.member
            ),
            format!("use {} or {} {}", n - 1, n + 1, w.members),
        ));
    }

    let losing: Vec<(String, u32)> = zone_order(cluster)
        .into_iter()
        .map(|z| {
            let k = cluster.nodes_of(role).filter(|m| m.zone == z).count() as u32;
            (z, k)
        })
        .filter(|&(_, k)| k > tolerated)
        .collect();
    if losing.is_empty() {
        return findings;
    }
    let what = losing
        .iter()
        .map(|(z, k)| format!("losing {z} ({k} of {n} {}) leaves {}", w.members, n - k))
        .collect::<Vec<_>>()
        .join("; ");
    let zones = cluster.zones.len() as u32;
    let mut message = format!(
        "{} quorum if one AZ goes: {what}, below the quorum of {quorum}; {}",
        capitalize(w.loses),
        w.stops
    );
    if zones <= 2 {
        message.push_str(&format!(
            ". With only {zones} AZ{} this holds for every layout: some AZ always has at least \
             half of the {}",
            plural(zones),
            w.short
        ));
    }
    let fix = if zones <= 2 {
        format!(
            "add a third AZ to zones ({}) and spread the {} 1+1+1 (3 {}) or 2+2+1 (5 {})",
            w.third, w.short, w.members, w.members
        )
    } else if let Some(layout) = feasible_layout(n, zones) {
        format!(
            "place at most {tolerated} {} in any AZ, e.g. {}",
            if tolerated == 1 { w.member } else { w.members },
            join_layout(&layout)
        )
    } else {
        // Only even quorums (and a lone member) fail over 3+ AZs; odd ones always fit.
        let odd = if n > 3 { n - 1 } else { 3 };
        format!(
            "{} of {n} cannot survive an AZ loss over {zones} AZs; use {odd} {} \
             spread {}",
            if role == Role::Controller {
                "a quorum"
            } else {
                "an ensemble"
            },
            w.members,
            join_layout(&feasible_layout(odd, zones).unwrap_or_default())
        )
    };
    findings.push(Finding::error(w.zones_rule, message, fix));
    findings
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// `connect-workers-zones`: Connect workers keep running connectors after one worker or one AZ
/// is lost. The group hands a lost worker's connectors and tasks to the others, so what matters
/// is that others exist, outside the lost AZ. A warning: Connect is a door into the cluster,
/// not the cluster, and its state survives in Kafka's topics whatever happens to the workers.
fn connect_workers(cluster: &Cluster) -> Option<Finding> {
    let workers: Vec<&Node> = cluster.nodes_of(Role::Connect).collect();
    let first = workers.first()?;
    if workers.len() == 1 {
        return Some(Finding::warning(
            CONNECT_WORKERS_ZONES,
            format!(
                "one Connect worker ({}): when it or {} is lost, every connector stops until it is replaced",
                first.name, first.zone
            ),
            "run 2 or more workers, in different AZs",
        ));
    }
    let zones = cluster.zones.len();
    if zones >= 2 && workers.iter().all(|w| w.zone == first.zone) {
        return Some(Finding::warning(
            CONNECT_WORKERS_ZONES,
            format!(
                "all {} Connect workers are in {}: losing that AZ stops every connector until it returns",
                workers.len(),
                first.zone
            ),
            "spread the workers over the AZs (drop their `zone` pins: they go round-robin)",
        ));
    }
    None
}

fn join_layout(layout: &[u32]) -> String {
    layout
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join("+")
}

/// The most even spread of `n` members over `zones` AZs, if it survives losing any one AZ.
fn feasible_layout(n: u32, zones: u32) -> Option<Vec<u32>> {
    if zones == 0 {
        return None;
    }
    let (q, r) = (n / zones, n % zones);
    let layout: Vec<u32> = (0..zones).map(|i| q + u32::from(i < r)).collect();
    let worst = layout.iter().copied().max().unwrap_or(0);
    (n - worst >= zookeeper_quorum(n)).then(|| layout.into_iter().filter(|&k| k > 0).collect())
}

/// The most replicas of one partition that losing an AZ can take, over every placement Kafka's
/// rack-aware assignment can produce on this cluster (every start index and follower shift).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorstCaseLoss {
    pub zone: String,
    pub replicas: u32,
}

/// Derives [`WorstCaseLoss`] for every AZ by running the assignment from every state it can be in:
/// a partition's placement depends only on its first replica's position (`0..n`) and the follower
/// shift modulo `n - 1`, so `n - 1` topics of `n` partitions cover them all. This is exact where
/// `ceil(RF / racks)` is only a lower bound (with racks of unequal size a big rack can take more).
pub fn worst_case_loss(
    cluster: &Cluster,
    replication_factor: u32,
) -> Result<Vec<WorstCaseLoss>, AssignError> {
    let mut brokers: Vec<BrokerMetadata> = cluster
        .brokers()
        .map(|n| BrokerMetadata::new(n.id, Some(&n.zone)))
        .collect();
    brokers.sort_by_key(|b| b.id);
    let zone_of: BTreeMap<u32, &str> = cluster.brokers().map(|n| (n.id, n.zone.as_str())).collect();
    let n = u32::try_from(brokers.len()).unwrap_or(u32::MAX);
    let mut worst: BTreeMap<&str, u32> = BTreeMap::new();
    for shift in 0..n.saturating_sub(1).max(1) {
        let start = StartIndex {
            first_replica: 0,
            replica_shift: shift,
        };
        let assignment =
            assign_replicas_to_brokers(&brokers, n.max(1), replication_factor, start, 0)?;
        for replicas in assignment.values() {
            let mut per_zone: BTreeMap<&str, u32> = BTreeMap::new();
            for b in replicas {
                if let Some(z) = zone_of.get(b) {
                    *per_zone.entry(z).or_default() += 1;
                }
            }
            for (z, k) in per_zone {
                let w = worst.entry(z).or_default();
                *w = (*w).max(k);
            }
        }
    }
    Ok(zone_order(cluster)
        .into_iter()
        .map(|zone| WorstCaseLoss {
            replicas: worst.get(zone.as_str()).copied().unwrap_or(0),
            zone,
        })
        .collect())
}

/// `replication-factor-brokers`, `replication-factor-zones`, `min-insync-replicas`,
/// `partitions-survive-az-loss`, `writes-survive-az-loss`: topics created with the broker defaults
/// stay online, and writable with `acks=all`, after losing any one AZ.
fn replication(cluster: &Cluster) -> Vec<Finding> {
    let rf = cluster.replication_factor();
    let min_isr = cluster.min_insync_replicas();
    let brokers = cluster.brokers().count();
    let mut findings = Vec::new();

    let worst = match worst_case_loss(cluster, rf) {
        Ok(worst) => worst,
        Err(e) => {
            let fix = if rf == 0 {
                "set default.replication.factor to 3 (with min.insync.replicas 2)".to_owned()
            } else {
                format!(
                    "add {} broker{}, or lower default.replication.factor to {brokers}",
                    rf as usize - brokers,
                    plural((rf as usize - brokers) as u32)
                )
            };
            findings.push(Finding::error(
                REPLICATION_FACTOR_BROKERS,
                format!(
                    "default.replication.factor={rf} with {brokers} broker{}: Kafka refuses to \
                     create topics with the default replication factor (\"{e}\")",
                    plural(brokers as u32)
                ),
                fix,
            ));
            return findings;
        }
    };

    let order = zone_order(cluster);
    let racks: Vec<&str> = order
        .iter()
        .map(String::as_str)
        .filter(|z| cluster.brokers().any(|b| b.zone == *z))
        .collect();
    let rack_count = racks.len() as u32;
    if rack_count < rf {
        let most = rf.div_ceil(rack_count.max(1));
        let empty: Vec<&str> = cluster
            .zone_names()
            .into_iter()
            .filter(|z| !racks.contains(z))
            .collect();
        let grow = if empty.is_empty() {
            format!(
                "add brokers in {} more AZ{}",
                rf - rack_count,
                plural(rf - rack_count)
            )
        } else {
            format!(
                "add brokers in {}",
                empty
                    .iter()
                    .take((rf - rack_count) as usize)
                    .copied()
                    .collect::<Vec<_>>()
                    .join(" and ")
            )
        };
        let fix = if rack_count >= 2 {
            format!("{grow}, or lower default.replication.factor to {rack_count}")
        } else {
            grow
        };
        findings.push(Finding::warning(
            REPLICATION_FACTOR_ZONES,
            format!(
                "default.replication.factor={rf} but brokers sit in only {rack_count} AZ{} ({}): \
                 every partition keeps at least {most} of its {rf} replicas in one AZ, and losing \
                 that AZ takes them together",
                plural(rack_count),
                racks.join(", ")
            ),
            fix,
        ));
    }

    if min_isr >= rf {
        let message = if min_isr > rf {
            format!(
                "min.insync.replicas={min_isr} is above default.replication.factor={rf}: no \
                 acks=all write can ever succeed (NotEnoughReplicas)"
            )
        } else {
            format!(
                "min.insync.replicas={min_isr} equals default.replication.factor={rf}: acks=all \
                 writes to a partition stop as soon as any one of its brokers is down, let alone \
                 an AZ"
            )
        };
        let fix = if rf >= 2 {
            format!(
                "set min.insync.replicas to {} (or raise default.replication.factor to {})",
                rf - 1,
                min_isr + 1
            )
        } else {
            "raise default.replication.factor to 3 and set min.insync.replicas to 2".to_owned()
        };
        findings.push(Finding::error(MIN_INSYNC_REPLICAS, message, fix));
    }

    let offline: Vec<&WorstCaseLoss> = worst.iter().filter(|w| w.replicas >= rf).collect();
    if !offline.is_empty() {
        let zones = offline
            .iter()
            .map(|w| w.zone.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let (message, fix) = if rf == 1 {
            (
                format!(
                    "default.replication.factor=1: each partition lives on one broker, so \
                     losing its AZ ({zones}) takes it offline"
                ),
                "raise default.replication.factor to 3 (with min.insync.replicas 2) and spread \
                 brokers over 3 AZs"
                    .to_owned(),
            )
        } else {
            (
                format!(
                    "every broker is in {zones}: losing it takes all {rf} replicas of every \
                     partition, so every partition goes offline"
                ),
                format!("spread brokers over {rf} AZs so each partition keeps one replica per AZ"),
            )
        };
        findings.push(Finding::error(PARTITIONS_SURVIVE_AZ_LOSS, message, fix));
    }

    if min_isr < rf {
        // Zones grouped by how many replicas of one partition they can take, most first.
        let mut blocking: BTreeMap<std::cmp::Reverse<u32>, Vec<&str>> = BTreeMap::new();
        for w in worst
            .iter()
            .filter(|w| w.replicas < rf && rf - w.replicas < min_isr)
        {
            blocking
                .entry(std::cmp::Reverse(w.replicas))
                .or_default()
                .push(&w.zone);
        }
        if let Some(std::cmp::Reverse(worst_max)) = blocking.keys().next().copied() {
            let what = blocking
                .iter()
                .map(|(std::cmp::Reverse(k), zones)| {
                    format!(
                        "losing {} can take {k} of a partition's {rf} replicas, leaving {}",
                        zones.join(" or "),
                        rf - k
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
            let needed = rf.div_ceil(rf - min_isr);
            findings.push(Finding::error(
                WRITES_SURVIVE_AZ_LOSS,
                format!(
                    "{what}, below min.insync.replicas={min_isr}: acks=all producers to such a \
                     partition get NotEnoughReplicas until the AZ is back"
                ),
                format!(
                    "spread brokers evenly over at least {needed} AZs so no AZ holds more than {} \
                     replica{} of a partition, or lower min.insync.replicas to {} (fewer copies \
                     guaranteed per write)",
                    rf - min_isr,
                    plural(rf - min_isr),
                    rf - worst_max
                ),
            ));
        }
    }
    findings
}

fn plural(n: u32) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{A, B, C, test_cluster};
    use super::{
        BROKER_RACK_BALANCE, BROKER_RACK_ZONE, CONNECT_WORKERS_ZONES, MIN_INSYNC_REPLICAS,
        MONITORING_ZONE, PARTITIONS_SURVIVE_AZ_LOSS, REPLICATION_FACTOR_BROKERS,
        REPLICATION_FACTOR_ZONES, WRITES_SURVIVE_AZ_LOSS, ZOOKEEPER_ENSEMBLE_SIZE,
        ZOOKEEPER_QUORUM_ZONES, ZOOKEEPER_ZONE, static_findings, worst_case_loss,
    };
    use crate::check::{Finding, Severity};

    const D: &str = "us-east-1d";

    fn only(findings: &[Finding], rule: &str) -> Vec<Finding> {
        findings
            .iter()
            .filter(|f| f.rule == rule)
            .cloned()
            .collect()
    }

    fn one(findings: &[Finding], rule: &str) -> Finding {
        let hits = only(findings, rule);
        assert_eq!(hits.len(), 1, "{rule}: {findings:#?}");
        hits[0].clone()
    }

    fn healthy() -> crate::cluster::Cluster {
        test_cluster(&[A, B, C], &[A, B, C], &[A, B, C, A, B, C], 3, 2)
    }

    #[test]
    fn healthy_cluster_has_no_findings() {
        assert_eq!(static_findings(&healthy()), vec![]);
    }

    fn with_workers(zones: &[&str]) -> crate::cluster::Cluster {
        let mut c = healthy();
        for (i, z) in zones.iter().enumerate() {
            let id = i as u32 + 1;
            c.nodes.push(crate::cluster::Node {
                role: crate::cluster::Role::Connect,
                id,
                name: crate::cluster::Node::node_name(crate::cluster::Role::Connect, id),
                zone: (*z).to_string(),
                address: std::net::Ipv4Addr::new(10, 0, 0, 60 + id as u8),
            });
        }
        c
    }

    #[test]
    fn connect_workers_zones_warns_on_one_zone_or_one_worker() {
        assert_eq!(static_findings(&with_workers(&[A, B, C])), vec![]);
        let f = one(
            &static_findings(&with_workers(&[B, B])),
            CONNECT_WORKERS_ZONES,
        );
        assert_eq!(f.severity, Severity::Warning);
        assert!(
            f.message
                .starts_with("all 2 Connect workers are in us-east-1b"),
            "{f:?}"
        );
        let f = one(&static_findings(&with_workers(&[A])), CONNECT_WORKERS_ZONES);
        assert!(
            f.message.starts_with("one Connect worker (connect-1)"),
            "{f:?}"
        );
        let f = one(
            &static_findings(&with_workers(&[A, D])),
            CONNECT_WORKERS_ZONES,
        );
        assert_eq!(
            f.severity,
            Severity::Error,
            "a worker outside the AZs: {f:?}"
        );
    }

    #[test]
    fn broker_rack_zone_triggers_on_unknown_az() {
        let cluster = test_cluster(&[A, B, C], &[A, B, C], &[A, B, D], 3, 2);
        let f = one(&static_findings(&cluster), BROKER_RACK_ZONE);
        assert_eq!(f.severity, Severity::Error);
        assert_eq!(
            f.message,
            "broker-3 has broker.rack=us-east-1d, which is not one of the cluster's AZs \
             (us-east-1a, us-east-1b, us-east-1c)"
        );
        assert_eq!(
            f.fix,
            "put broker-3 in one of us-east-1a, us-east-1b, us-east-1c, or add us-east-1d to zones"
        );
    }

    #[test]
    fn zookeeper_zone_triggers_on_unknown_az() {
        let cluster = test_cluster(&[A, B, C], &[A, B, D], &[A, B, C], 3, 2);
        let findings = static_findings(&cluster);
        let f = one(&findings, ZOOKEEPER_ZONE);
        assert!(
            f.message
                .starts_with("zookeeper-3 is in us-east-1d, which is not")
        );
        assert!(only(&findings, BROKER_RACK_ZONE).is_empty());
    }

    #[test]
    fn a_monitoring_node_in_an_unknown_az_is_named_under_its_own_rule() {
        let mut cluster = test_cluster(&[A, B, C], &[A, B, C], &[A, B, C], 3, 2);
        let id = 1;
        cluster.nodes.push(crate::cluster::Node {
            role: crate::cluster::Role::Monitoring,
            id,
            name: crate::cluster::Node::node_name(crate::cluster::Role::Monitoring, id),
            zone: D.to_string(),
            address: std::net::Ipv4Addr::new(10, 0, 0, 41),
        });
        let findings = static_findings(&cluster);
        let f = one(&findings, MONITORING_ZONE);
        assert!(
            f.message
                .starts_with("monitoring-1 is in us-east-1d, which is not"),
            "{}",
            f.message
        );
        assert!(only(&findings, ZOOKEEPER_ZONE).is_empty());
    }

    #[test]
    fn broker_rack_balance_holds_within_one() {
        let cluster = test_cluster(&[A, B, C], &[A, B, C], &[A, B, C, A], 3, 2);
        assert!(only(&static_findings(&cluster), BROKER_RACK_BALANCE).is_empty());
    }

    #[test]
    fn broker_rack_balance_triggers_on_four_one_one() {
        let cluster = test_cluster(&[A, B, C], &[A, B, C], &[A, A, A, A, B, C], 3, 2);
        let f = one(&static_findings(&cluster), BROKER_RACK_BALANCE);
        assert_eq!(f.severity, Severity::Warning);
        assert_eq!(
            f.message,
            "brokers per AZ are unbalanced (us-east-1a 4, us-east-1b 1, us-east-1c 1): Kafka's \
             rack-aware assignment spreads each partition's replicas across AZs before brokers, \
             so brokers in the smaller AZs carry more replicas than those in the larger ones"
        );
        assert_eq!(
            f.fix,
            "spread the 6 brokers 2 per AZ: move broker-4 from us-east-1a to us-east-1b, \
             broker-3 from us-east-1a to us-east-1c"
        );
    }

    #[test]
    fn broker_rack_balance_counts_empty_azs() {
        let cluster = test_cluster(&[A, B, C], &[A, B, C], &[A, A, B, B], 2, 1);
        let f = one(&static_findings(&cluster), BROKER_RACK_BALANCE);
        assert!(
            f.message
                .ends_with("; us-east-1c has no broker, so Kafka sees only 2 racks"),
            "{}",
            f.message
        );
        assert_eq!(
            f.fix,
            "spread the 4 brokers 1 or 2 per AZ: move broker-4 from us-east-1b to us-east-1c"
        );
    }

    #[test]
    fn replication_factor_brokers_triggers_when_rf_exceeds_brokers() {
        let cluster = test_cluster(&[A, B, C], &[A, B, C], &[A, B], 3, 2);
        let findings = static_findings(&cluster);
        let f = one(&findings, REPLICATION_FACTOR_BROKERS);
        assert_eq!(f.severity, Severity::Error);
        assert_eq!(
            f.message,
            "default.replication.factor=3 with 2 brokers: Kafka refuses to create topics with \
             the default replication factor (\"Replication factor: 3 larger than available \
             brokers: 2.\")"
        );
        assert_eq!(
            f.fix,
            "add 1 broker, or lower default.replication.factor to 2"
        );
        // The AZ-loss rules need an assignment, so they stay quiet.
        assert!(only(&findings, WRITES_SURVIVE_AZ_LOSS).is_empty());
    }

    #[test]
    fn replication_factor_zero_is_an_error() {
        let cluster = test_cluster(&[A, B, C], &[A, B, C], &[A, B, C], 0, 1);
        let f = one(&static_findings(&cluster), REPLICATION_FACTOR_BROKERS);
        assert!(
            f.message
                .contains("Replication factor must be larger than 0.")
        );
        assert_eq!(
            f.fix,
            "set default.replication.factor to 3 (with min.insync.replicas 2)"
        );
    }

    #[test]
    fn replication_factor_zones_triggers_with_fewer_azs_than_rf() {
        let cluster = test_cluster(&[A, B, C], &[A, B, C], &[A, B, A, B], 3, 1);
        let findings = static_findings(&cluster);
        let f = one(&findings, REPLICATION_FACTOR_ZONES);
        assert_eq!(f.severity, Severity::Warning);
        assert_eq!(
            f.message,
            "default.replication.factor=3 but brokers sit in only 2 AZs (us-east-1a, \
             us-east-1b): every partition keeps at least 2 of its 3 replicas in one AZ, and \
             losing that AZ takes them together"
        );
        assert_eq!(
            f.fix,
            "add brokers in us-east-1c, or lower default.replication.factor to 2"
        );
        // min.insync.replicas 1 still leaves writes possible.
        assert!(only(&findings, WRITES_SURVIVE_AZ_LOSS).is_empty());
    }

    #[test]
    fn replication_factor_zones_holds_with_enough_azs() {
        assert!(only(&static_findings(&healthy()), REPLICATION_FACTOR_ZONES).is_empty());
    }

    #[test]
    fn zookeeper_quorum_zones_triggers_on_majority_az() {
        let cluster = test_cluster(&[A, B, C], &[A, A, B], &[A, B, C], 3, 2);
        let f = one(&static_findings(&cluster), ZOOKEEPER_QUORUM_ZONES);
        assert_eq!(f.severity, Severity::Error);
        assert_eq!(
            f.message,
            "ZooKeeper loses quorum if one AZ goes: losing us-east-1a (2 of 3 members) leaves 1, \
             below the quorum of 2; without quorum Kafka cannot elect leaders, shrink ISRs or \
             change metadata"
        );
        assert_eq!(f.fix, "place at most 1 member in any AZ, e.g. 1+1+1");
    }

    #[test]
    fn zookeeper_quorum_zones_with_two_azs_says_no_layout_works() {
        let cluster = test_cluster(&[A, B], &[A, B, A], &[A, B], 2, 1);
        let f = one(&static_findings(&cluster), ZOOKEEPER_QUORUM_ZONES);
        assert!(
            f.message.ends_with(
                ". With only 2 AZs this holds for every layout: some AZ always has at least \
                 half of the ensemble"
            ),
            "{}",
            f.message
        );
        assert_eq!(
            f.fix,
            "add a third AZ to zones (it needs only a ZooKeeper member, no broker) and spread \
             the ensemble 1+1+1 (3 members) or 2+2+1 (5 members)"
        );
    }

    #[test]
    fn zookeeper_even_ensemble_half_in_one_az_is_already_fatal() {
        // 4 members as 2+1+1: no AZ holds a majority (3), yet losing the 2 leaves 2 < 3.
        let cluster = test_cluster(&[A, B, C], &[A, A, B, C], &[A, B, C], 3, 2);
        let findings = static_findings(&cluster);
        let size = one(&findings, ZOOKEEPER_ENSEMBLE_SIZE);
        assert_eq!(size.severity, Severity::Warning);
        assert_eq!(
            size.message,
            "the ZooKeeper ensemble has 4 members (quorum 3): it survives 1 failure, the same \
             as 3 members would, and needs one more member up to keep quorum"
        );
        assert_eq!(size.fix, "use 3 or 5 members");
        let q = one(&findings, ZOOKEEPER_QUORUM_ZONES);
        assert!(
            q.message
                .contains("losing us-east-1a (2 of 4 members) leaves 2, below the quorum of 3")
        );
        assert_eq!(
            q.fix,
            "an ensemble of 4 cannot survive an AZ loss over 3 AZs; use 3 members spread 1+1+1"
        );
    }

    #[test]
    fn zookeeper_lone_member_needs_an_ensemble() {
        let cluster = test_cluster(&[A, B, C], &[B], &[A, B, C], 3, 2);
        let f = one(&static_findings(&cluster), ZOOKEEPER_QUORUM_ZONES);
        assert!(
            f.message
                .contains("losing us-east-1b (1 of 1 members) leaves 0, below the quorum of 1")
        );
        assert_eq!(
            f.fix,
            "an ensemble of 1 cannot survive an AZ loss over 3 AZs; use 3 members spread 1+1+1"
        );
    }

    #[test]
    fn zookeeper_holds_with_five_over_three() {
        let cluster = test_cluster(&[A, B, C], &[A, A, B, B, C], &[A, B, C], 3, 2);
        let findings = static_findings(&cluster);
        assert!(only(&findings, ZOOKEEPER_QUORUM_ZONES).is_empty());
        assert!(only(&findings, ZOOKEEPER_ENSEMBLE_SIZE).is_empty());
    }

    #[test]
    fn zookeeper_missing_is_an_error() {
        let cluster = test_cluster(&[A, B, C], &[], &[A, B, C], 3, 2);
        let f = one(&static_findings(&cluster), ZOOKEEPER_ENSEMBLE_SIZE);
        assert_eq!(f.severity, Severity::Error);
    }

    #[test]
    fn min_insync_replicas_equal_to_rf_is_an_error() {
        let cluster = test_cluster(&[A, B, C], &[A, B, C], &[A, B, C], 3, 3);
        let findings = static_findings(&cluster);
        let f = one(&findings, MIN_INSYNC_REPLICAS);
        assert_eq!(
            f.message,
            "min.insync.replicas=3 equals default.replication.factor=3: acks=all writes to a \
             partition stop as soon as any one of its brokers is down, let alone an AZ"
        );
        assert_eq!(
            f.fix,
            "set min.insync.replicas to 2 (or raise default.replication.factor to 4)"
        );
        assert!(only(&findings, WRITES_SURVIVE_AZ_LOSS).is_empty());
    }

    #[test]
    fn min_insync_replicas_above_rf_is_an_error() {
        let cluster = test_cluster(&[A, B, C], &[A, B, C], &[A, B, C], 2, 3);
        let f = one(&static_findings(&cluster), MIN_INSYNC_REPLICAS);
        assert!(f.message.contains("no acks=all write can ever succeed"));
    }

    #[test]
    fn min_insync_replicas_below_rf_holds() {
        assert!(only(&static_findings(&healthy()), MIN_INSYNC_REPLICAS).is_empty());
    }

    #[test]
    fn partitions_survive_az_loss_triggers_on_rf1() {
        let cluster = test_cluster(&[A, B, C], &[A, B, C], &[A, B, C], 1, 1);
        let findings = static_findings(&cluster);
        let f = one(&findings, PARTITIONS_SURVIVE_AZ_LOSS);
        assert_eq!(
            f.message,
            "default.replication.factor=1: each partition lives on one broker, so losing its AZ \
             (us-east-1a, us-east-1b, us-east-1c) takes it offline"
        );
        assert_eq!(
            f.fix,
            "raise default.replication.factor to 3 (with min.insync.replicas 2) and spread \
             brokers over 3 AZs"
        );
    }

    #[test]
    fn partitions_survive_az_loss_triggers_on_single_az_brokers() {
        let cluster = test_cluster(&[A, B, C], &[A, B, C], &[A, A, A], 3, 2);
        let findings = static_findings(&cluster);
        let f = one(&findings, PARTITIONS_SURVIVE_AZ_LOSS);
        assert_eq!(
            f.message,
            "every broker is in us-east-1a: losing it takes all 3 replicas of every partition, \
             so every partition goes offline"
        );
        assert_eq!(
            f.fix,
            "spread brokers over 3 AZs so each partition keeps one replica per AZ"
        );
        let zones = one(&findings, REPLICATION_FACTOR_ZONES);
        assert_eq!(zones.fix, "add brokers in us-east-1b and us-east-1c");
    }

    #[test]
    fn partitions_survive_az_loss_holds_with_rf2_over_two_azs() {
        let cluster = test_cluster(&[A, B, C], &[A, B, C], &[A, B], 2, 1);
        assert!(only(&static_findings(&cluster), PARTITIONS_SURVIVE_AZ_LOSS).is_empty());
    }

    #[test]
    fn writes_survive_az_loss_triggers_with_two_azs_rf3_min_isr2() {
        let cluster = test_cluster(&[A, B, C], &[A, B, C], &[A, B, A, B], 3, 2);
        let f = one(&static_findings(&cluster), WRITES_SURVIVE_AZ_LOSS);
        assert_eq!(f.severity, Severity::Error);
        assert_eq!(
            f.message,
            "losing us-east-1a or us-east-1b can take 2 of a partition's 3 replicas, leaving 1, \
             below min.insync.replicas=2: acks=all producers to such a partition get \
             NotEnoughReplicas until the AZ is back"
        );
        assert_eq!(
            f.fix,
            "spread brokers evenly over at least 3 AZs so no AZ holds more than 1 replica of a \
             partition, or lower min.insync.replicas to 1 (fewer copies guaranteed per write)"
        );
    }

    #[test]
    fn writes_survive_az_loss_groups_zones_by_loss() {
        // RF 5, min ISR 3 over racks of 3, 1, 1 brokers: A can take 3 (leaving 2 < 3).
        let cluster = test_cluster(&[A, B, C], &[A, B, C], &[A, A, A, B, C], 5, 3);
        let f = one(&static_findings(&cluster), WRITES_SURVIVE_AZ_LOSS);
        assert!(
            f.message.starts_with(
                "losing us-east-1a can take 3 of a partition's 5 replicas, leaving 2, below"
            ),
            "{}",
            f.message
        );
        assert!(
            f.fix
                .ends_with("lower min.insync.replicas to 2 (fewer copies guaranteed per write)")
        );
    }

    #[test]
    fn writes_survive_az_loss_holds_with_one_replica_per_az() {
        // Even a lopsided 4/1/1 layout keeps one replica per AZ when RF equals the AZ count.
        let cluster = test_cluster(&[A, B, C], &[A, B, C], &[A, A, A, A, B, C], 3, 2);
        assert!(only(&static_findings(&cluster), WRITES_SURVIVE_AZ_LOSS).is_empty());
    }

    #[test]
    fn worst_case_loss_is_exact_for_uneven_racks() {
        // Racks of 3, 1 and 1 brokers: after one replica per rack, further replicas can only go
        // to A (B and C have one broker each). RF 5 puts 3 in A, where ceil(5 / 3) would say 2.
        let cluster = test_cluster(&[A, B, C], &[A, B, C], &[A, A, A, B, C], 5, 1);
        let worst = worst_case_loss(&cluster, 5).expect("worst");
        let got: Vec<u32> = worst.iter().map(|w| w.replicas).collect();
        assert_eq!(got, [3, 1, 1]);
        let worst4 = worst_case_loss(&cluster, 4).expect("worst");
        assert_eq!(
            worst4.iter().map(|w| w.replicas).collect::<Vec<_>>(),
            [2, 1, 1]
        );
    }

    #[test]
    fn worst_case_loss_balanced_is_ceil() {
        // Balanced racks: ceil(RF / racks).
        let cluster = test_cluster(&[A, B], &[A, B, C], &[A, B, A, B, A, B], 3, 1);
        let worst = worst_case_loss(&cluster, 3).expect("worst");
        assert_eq!(
            worst.iter().map(|w| w.replicas).collect::<Vec<_>>(),
            [2, 2, 0]
        );
    }

    #[test]
    fn worst_case_loss_matches_every_simulated_topic() {
        // The derived bound is reached, and never exceeded, by real assignments.
        let cluster = test_cluster(&[A, B, C], &[A, B, C], &[A, A, A, B, B, C, A], 4, 1);
        let worst = worst_case_loss(&cluster, 4).expect("worst");
        let mut seen = vec![0u32; 3];
        for start in 0..7 {
            let sim = crate::check::simulate(&cluster, 70, 4, start).expect("simulate");
            for p in &sim.assignment {
                for (i, zone) in [A, B, C].iter().enumerate() {
                    let k = p.zones.iter().filter(|z| z == zone).count() as u32;
                    assert!(
                        k <= worst[i].replicas,
                        "{zone}: {k} > {}",
                        worst[i].replicas
                    );
                    seen[i] = seen[i].max(k);
                }
            }
        }
        assert_eq!(seen, worst.iter().map(|w| w.replicas).collect::<Vec<_>>());
    }
}
