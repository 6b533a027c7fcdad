//! What losing each AZ in turn would do to a topic placed by Kafka's rack-aware assignment
//! (broker id → rack = the broker's AZ) and to the metadata quorum (the ZooKeeper ensemble, or the
//! KRaft controllers).
//!
//! Model: every replica is in sync when the AZ goes, `unclean.leader.election.enable` is off, and
//! the topic uses the brokers' `min.insync.replicas`. While the metadata quorum holds, the
//! controller moves leaders out of the lost AZ and shrinks ISRs. Without quorum it can do neither
//! (both are metadata writes: to ZooKeeper, or to the KRaft metadata log): partitions led from the
//! lost AZ go offline, and partitions with any replica there stop taking `acks=all` writes.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{zone_order, zookeeper_quorum};
use crate::cluster::{Cluster, Role};
use crate::kafka::assign::{AssignError, BrokerMetadata, StartIndex, assign_replicas_to_brokers};

/// A simulated topic and its fate under the loss of each AZ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Simulation {
    pub partitions: u32,
    pub replication_factor: u32,
    pub min_insync_replicas: u32,
    /// Kafka's `fixedStartIndex` used for the assignment.
    pub start_index: u32,
    /// The role whose majority keeps the metadata writable: `zookeeper` or `controller`.
    pub quorum_role: Role,
    pub quorum_members: u32,
    /// Members the quorum needs up to serve: a strict majority.
    pub quorum: u32,
    /// Load per AZ, in [`Cluster::zones`] order.
    pub zones: Vec<ZoneLoad>,
    /// One scenario per AZ, same order as `zones`.
    pub scenarios: Vec<ZoneLoss>,
    /// The assignment itself, by partition id.
    pub assignment: Vec<PartitionReplicas>,
}

/// What one AZ holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ZoneLoad {
    pub zone: String,
    pub brokers: u32,
    /// Members of the metadata quorum (ZooKeeper or controllers) in the AZ.
    pub quorum_members: u32,
    /// Replicas of the simulated topic on the AZ's brokers.
    pub replicas: u32,
    /// Partitions whose preferred leader (first replica) is in the AZ.
    pub leaders: u32,
}

/// The effect of losing one AZ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ZoneLoss {
    pub zone: String,
    pub brokers_lost: u32,
    pub quorum_survivors: u32,
    /// Whether the surviving members still form a majority of the quorum: metadata stays
    /// writable.
    pub quorum_kept: bool,
    /// Partitions that still have a leader.
    pub partitions_online: u32,
    /// Partitions that still accept `acks=all` writes.
    pub partitions_writable: u32,
    /// Partitions whose preferred leader was in the lost AZ.
    pub leaders_to_move: u32,
    pub verdict: Verdict,
}

/// The worst thing that happens in a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every partition stays online and writable with `acks=all`; the metadata quorum holds.
    Ok,
    /// Every partition stays online, some refuse `acks=all` writes (too few in-sync replicas).
    WritesBlocked,
    /// Some partitions have no leader.
    PartitionsOffline,
    /// The metadata quorum (ZooKeeper or the controllers) is lost: no leader election, ISR change
    /// or metadata change until it is back.
    QuorumLost,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::WritesBlocked => "writes blocked",
            Verdict::PartitionsOffline => "partitions offline",
            Verdict::QuorumLost => "metadata quorum lost",
        }
    }
}

impl Simulation {
    /// A verdict in words, naming the quorum that was lost.
    pub fn verdict_text(&self, verdict: Verdict) -> &'static str {
        match (verdict, self.quorum_role) {
            (Verdict::QuorumLost, Role::Controller) => "controller quorum lost",
            (Verdict::QuorumLost, _) => "ZooKeeper quorum lost",
            (v, _) => v.as_str(),
        }
    }
}

/// One partition's replicas (preferred leader first) and the AZ of each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionReplicas {
    pub partition: u32,
    pub replicas: Vec<u32>,
    pub zones: Vec<String>,
}

/// Places a topic of `partitions` × `replication_factor` replicas with Kafka's rack-aware
/// assignment (brokers sorted by id, each broker's rack its AZ, fixed start index `start_index`)
/// and works out what losing each AZ would do.
pub fn simulate(
    cluster: &Cluster,
    partitions: u32,
    replication_factor: u32,
    start_index: u32,
) -> Result<Simulation, AssignError> {
    let mut brokers: Vec<BrokerMetadata> = cluster
        .brokers()
        .map(|n| BrokerMetadata::new(n.id, Some(&n.zone)))
        .collect();
    brokers.sort_by_key(|b| b.id);
    let assignment = assign_replicas_to_brokers(
        &brokers,
        partitions,
        replication_factor,
        StartIndex::fixed(start_index),
        0,
    )?;
    let zone_of: BTreeMap<u32, &str> = cluster.brokers().map(|n| (n.id, n.zone.as_str())).collect();
    let assignment: Vec<PartitionReplicas> = assignment
        .into_iter()
        .map(|(partition, replicas)| PartitionReplicas {
            partition,
            zones: replicas
                .iter()
                .map(|b| zone_of.get(b).copied().unwrap_or_default().to_owned())
                .collect(),
            replicas,
        })
        .collect();

    let min_insync_replicas = cluster.min_insync_replicas();
    let quorum_role = cluster.metadata.quorum_role();
    let quorum_members = count(cluster.nodes_of(quorum_role));
    let quorum = zookeeper_quorum(quorum_members);
    let zones = zone_order(cluster);

    let loads = zones
        .iter()
        .map(|zone| ZoneLoad {
            zone: zone.clone(),
            brokers: count(cluster.brokers().filter(|n| &n.zone == zone)),
            quorum_members: count(cluster.nodes_of(quorum_role).filter(|n| &n.zone == zone)),
            replicas: count(
                assignment
                    .iter()
                    .flat_map(|p| &p.zones)
                    .filter(|z| *z == zone),
            ),
            leaders: count(assignment.iter().filter(|p| p.zones.first() == Some(zone))),
        })
        .collect::<Vec<_>>();

    let scenarios = loads
        .iter()
        .map(|load| {
            let quorum_survivors = quorum_members - load.quorum_members;
            let has_quorum = quorum_survivors >= quorum;
            let mut online = 0;
            let mut writable = 0;
            let mut leaders_to_move = 0;
            for p in &assignment {
                let lost = count(p.zones.iter().filter(|z| **z == load.zone));
                let surviving = replication_factor - lost;
                let leader_lost = p.zones.first() == Some(&load.zone);
                let is_online = if has_quorum {
                    surviving >= 1
                } else {
                    !leader_lost
                };
                let is_writable =
                    is_online && surviving >= min_insync_replicas && (has_quorum || lost == 0);
                online += u32::from(is_online);
                writable += u32::from(is_writable);
                leaders_to_move += u32::from(leader_lost);
            }
            let verdict = if !has_quorum {
                Verdict::QuorumLost
            } else if online < partitions {
                Verdict::PartitionsOffline
            } else if writable < partitions {
                Verdict::WritesBlocked
            } else {
                Verdict::Ok
            };
            ZoneLoss {
                zone: load.zone.clone(),
                brokers_lost: load.brokers,
                quorum_survivors,
                quorum_kept: has_quorum,
                partitions_online: online,
                partitions_writable: writable,
                leaders_to_move,
                verdict,
            }
        })
        .collect();

    Ok(Simulation {
        partitions,
        replication_factor,
        min_insync_replicas,
        start_index,
        quorum_role,
        quorum_members,
        quorum,
        zones: loads,
        scenarios,
        assignment,
    })
}

fn count<T>(items: impl Iterator<Item = T>) -> u32 {
    u32::try_from(items.count()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{A, B, C, test_cluster};
    use super::{Simulation, Verdict, ZoneLoss, simulate};
    use crate::kafka::assign::AssignError;

    fn scenario<'a>(sim: &'a Simulation, zone: &str) -> &'a ZoneLoss {
        sim.scenarios
            .iter()
            .find(|s| s.zone == zone)
            .expect("scenario for zone")
    }

    #[test]
    fn three_azs_three_brokers_rf3_survive_any_az() {
        let cluster = test_cluster(&[A, B, C], &[A, B, C], &[A, B, C], 3, 2);
        let sim = simulate(&cluster, 12, 3, 0).expect("simulate");
        assert_eq!(sim.quorum, 2);
        for (load, loss) in sim.zones.iter().zip(&sim.scenarios) {
            assert_eq!(
                (
                    load.brokers,
                    load.quorum_members,
                    load.replicas,
                    load.leaders
                ),
                (1, 1, 12, 4)
            );
            assert_eq!(loss.partitions_online, 12);
            assert_eq!(loss.partitions_writable, 12);
            assert_eq!(loss.leaders_to_move, 4);
            assert_eq!(loss.quorum_survivors, 2);
            assert!(loss.quorum_kept);
            assert_eq!(loss.verdict, Verdict::Ok);
        }
        // Broker ids count from 1: partition 0 is Kafka's 0 -> [1, 2, 3].
        assert_eq!(sim.assignment[0].replicas, [1, 2, 3]);
        assert_eq!(sim.assignment[0].zones, [A, B, C]);
    }

    #[test]
    fn two_azs_losing_the_zookeeper_majority_az_loses_quorum() {
        let cluster = test_cluster(&[A, B], &[A, A, B], &[A, B], 2, 1);
        let sim = simulate(&cluster, 4, 2, 0).expect("simulate");
        let a = scenario(&sim, A);
        assert_eq!(a.quorum_survivors, 1);
        assert!(!a.quorum_kept);
        assert_eq!(a.verdict, Verdict::QuorumLost);
        // Without quorum nothing moves: partitions led from A are offline, the rest keep a
        // follower in A in their ISR and so refuse acks=all writes.
        assert_eq!(a.leaders_to_move, 2);
        assert_eq!(a.partitions_online, 2);
        assert_eq!(a.partitions_writable, 0);
        let b = scenario(&sim, B);
        assert!(b.quorum_kept);
        assert_eq!(b.verdict, Verdict::Ok);
        assert_eq!((b.partitions_online, b.partitions_writable), (4, 4));
    }

    #[test]
    fn six_brokers_with_four_in_one_az() {
        // RF 3 over 3 racks still puts one replica in each AZ, so any AZ can go; the lone
        // brokers in B and C each hold a replica of every partition.
        let cluster = test_cluster(&[A, B, C], &[A, B, C], &[A, A, A, A, B, C], 3, 2);
        let sim = simulate(&cluster, 12, 3, 0).expect("simulate");
        let replicas: Vec<u32> = sim.zones.iter().map(|z| z.replicas).collect();
        assert_eq!(replicas, [12, 12, 12]);
        let leaders: Vec<u32> = sim.zones.iter().map(|z| z.leaders).collect();
        assert_eq!(leaders, [8, 2, 2]);
        assert!(sim.scenarios.iter().all(|s| s.verdict == Verdict::Ok));
        assert_eq!(scenario(&sim, A).leaders_to_move, 8);
    }

    #[test]
    fn two_azs_rf3_min_isr2_blocks_writes_when_the_double_az_goes() {
        let cluster = test_cluster(&[A, B, C], &[A, B, C], &[A, B, A, B], 3, 2);
        let sim = simulate(&cluster, 8, 3, 0).expect("simulate");
        for zone in [A, B] {
            let s = scenario(&sim, zone);
            assert_eq!(s.verdict, Verdict::WritesBlocked, "{zone}");
            assert_eq!(s.partitions_online, 8);
            assert!(s.partitions_writable < 8);
        }
        // Partitions with two replicas in A are exactly those that stay writable when B goes.
        let two_in_a = sim
            .assignment
            .iter()
            .filter(|p| p.zones.iter().filter(|z| *z == A).count() == 2)
            .count() as u32;
        assert_eq!(scenario(&sim, A).partitions_writable, 8 - two_in_a);
        assert_eq!(scenario(&sim, B).partitions_writable, two_in_a);
        // C holds only a ZooKeeper member.
        let c = scenario(&sim, C);
        assert_eq!((c.brokers_lost, c.verdict), (0, Verdict::Ok));
    }

    #[test]
    fn single_az_brokers_go_offline_together() {
        let cluster = test_cluster(&[A, B, C], &[A, B, C], &[A, A, A], 3, 2);
        let sim = simulate(&cluster, 3, 3, 0).expect("simulate");
        let a = scenario(&sim, A);
        assert_eq!((a.partitions_online, a.partitions_writable), (0, 0));
        assert_eq!(a.verdict, Verdict::PartitionsOffline);
        assert_eq!(scenario(&sim, B).verdict, Verdict::Ok);
    }

    #[test]
    fn rf1_loses_partitions_with_any_az() {
        let cluster = test_cluster(&[A, B, C], &[A, B, C], &[A, B, C], 1, 1);
        let sim = simulate(&cluster, 6, 1, 0).expect("simulate");
        for s in &sim.scenarios {
            assert_eq!(s.partitions_online, 4, "{}", s.zone);
            assert_eq!(s.verdict, Verdict::PartitionsOffline);
        }
    }

    #[test]
    fn min_isr_equal_to_rf_blocks_writes_on_any_az_loss() {
        let cluster = test_cluster(&[A, B, C], &[A, B, C], &[A, B, C], 3, 3);
        let sim = simulate(&cluster, 3, 3, 0).expect("simulate");
        assert!(
            sim.scenarios
                .iter()
                .all(|s| s.verdict == Verdict::WritesBlocked
                    && s.partitions_online == 3
                    && s.partitions_writable == 0)
        );
    }

    #[test]
    fn five_zookeepers_over_three_azs_survive_any_az() {
        let cluster = test_cluster(&[A, B, C], &[A, A, B, B, C], &[A, B, C], 3, 2);
        let sim = simulate(&cluster, 3, 3, 0).expect("simulate");
        assert_eq!(sim.quorum, 3);
        let survivors: Vec<u32> = sim.scenarios.iter().map(|s| s.quorum_survivors).collect();
        assert_eq!(survivors, [3, 3, 4]);
        assert!(sim.scenarios.iter().all(|s| s.quorum_kept));
    }

    #[test]
    fn four_zookeepers_split_two_two_lose_quorum_either_way() {
        let cluster = test_cluster(&[A, B], &[A, A, B, B], &[A, B], 2, 1);
        let sim = simulate(&cluster, 2, 2, 0).expect("simulate");
        assert!(
            sim.scenarios
                .iter()
                .all(|s| s.verdict == Verdict::QuorumLost)
        );
    }

    #[test]
    fn unknown_zone_is_reported_after_the_known_ones() {
        let cluster = test_cluster(&[A, B], &[A, B, C], &[A, B], 2, 1);
        let sim = simulate(&cluster, 2, 2, 0).expect("simulate");
        let zones: Vec<&str> = sim.zones.iter().map(|z| z.zone.as_str()).collect();
        assert_eq!(zones, [A, B, C]);
    }

    #[test]
    fn kafka_errors_come_back_as_values() {
        let cluster = test_cluster(&[A, B, C], &[A, B, C], &[A, B], 3, 2);
        assert_eq!(
            simulate(&cluster, 3, 3, 0),
            Err(AssignError::ReplicationFactorTooLarge {
                replication_factor: 3,
                brokers: 2
            })
        );
        assert_eq!(
            simulate(&cluster, 0, 2, 0),
            Err(AssignError::InvalidPartitions)
        );
    }

    #[test]
    fn deterministic() {
        let cluster = test_cluster(&[A, B, C], &[A, B, C], &[C, B, A, C, B, A], 3, 2);
        assert_eq!(simulate(&cluster, 30, 3, 1), simulate(&cluster, 30, 3, 1));
    }
}
