//! Kafka's replica assignment for new topics, ported from `AdminUtils.assignReplicasToBrokers`
//! (the ZooKeeper-mode path behind `kafka-topics --create`), so kcluster can predict replica placement.
//!
//! The port keeps Kafka's arithmetic, iteration order and error messages. Where Kafka draws a random
//! start index, callers pass one ([`StartIndex`]); Kafka's `fixedStartIndex` is [`StartIndex::fixed`].
//! Kafka's own caller (`AdminZkClient.getBrokerMetadatas`) hands brokers over sorted by id; the
//! rack-unaware path depends on that order, so callers should do the same.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use thiserror::Error;

/// Kafka partition ids are Java `int`s.
const MAX_PARTITION_ID: u32 = i32::MAX as u32;

/// A broker as the assignment sees it: `broker.id` and `broker.rack`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerMetadata {
    pub id: u32,
    pub rack: Option<String>,
}

impl BrokerMetadata {
    pub fn new(id: u32, rack: Option<&str>) -> BrokerMetadata {
        BrokerMetadata {
            id,
            rack: rack.map(str::to_owned),
        }
    }
}

/// Partition id → replica broker ids; the first replica is the preferred leader.
pub type Assignment = BTreeMap<u32, Vec<u32>>;

/// Where the round-robin starts. With `fixedStartIndex = -1` Kafka draws these two numbers
/// independently at random in `0..brokers`; with `fixedStartIndex >= 0` both equal it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StartIndex {
    /// Position in the broker list of partition `startPartitionId`'s first replica.
    pub first_replica: u32,
    /// Initial shift of the followers relative to the first replica.
    pub replica_shift: u32,
}

impl StartIndex {
    /// Kafka's `fixedStartIndex`: both the first-replica position and the follower shift.
    pub const fn fixed(index: u32) -> StartIndex {
        StartIndex {
            first_replica: index,
            replica_shift: index,
        }
    }
}

/// Why Kafka would refuse to assign replicas. Messages are Kafka's, word for word,
/// except for the two conditions Kafka does not check.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AssignError {
    /// Kafka: `InvalidPartitionsException`.
    #[error("Number of partitions must be larger than 0.")]
    InvalidPartitions,
    /// Kafka: `InvalidReplicationFactorException`.
    #[error("Replication factor must be larger than 0.")]
    ReplicationFactorNotPositive,
    /// Kafka: `InvalidReplicationFactorException`.
    #[error("Replication factor: {replication_factor} larger than available brokers: {brokers}.")]
    ReplicationFactorTooLarge {
        replication_factor: u32,
        brokers: usize,
    },
    /// Kafka: `AdminOperationException`.
    #[error("Not all brokers have rack information for replica rack aware assignment.")]
    IncompleteRackInfo,
    /// Not checked by Kafka (its rack-aware path silently keeps the last entry).
    #[error("Broker id {0} is listed more than once.")]
    DuplicateBroker(u32),
    /// Not checked by Kafka (its `int` partition ids would overflow).
    #[error(
        "Partition ids would pass {MAX_PARTITION_ID}: {partitions} partitions from partition id {start_partition_id}."
    )]
    PartitionIdOverflow {
        partitions: u32,
        start_partition_id: u32,
    },
}

/// Kafka's `assignReplicasToBrokers(brokerMetadatas, nPartitions, replicationFactor, fixedStartIndex,
/// startPartitionId)`: rack-aware when every broker has a rack, rack-unaware when none has,
/// an error when only some have. `start_partition_id` is Kafka's `max(0, startPartitionId)`.
pub fn assign_replicas_to_brokers(
    brokers: &[BrokerMetadata],
    partitions: u32,
    replication_factor: u32,
    start: StartIndex,
    start_partition_id: u32,
) -> Result<Assignment, AssignError> {
    if partitions == 0 {
        return Err(AssignError::InvalidPartitions);
    }
    if replication_factor == 0 {
        return Err(AssignError::ReplicationFactorNotPositive);
    }
    if replication_factor as usize > brokers.len() {
        return Err(AssignError::ReplicationFactorTooLarge {
            replication_factor,
            brokers: brokers.len(),
        });
    }
    let mut seen = BTreeSet::new();
    if let Some(dup) = brokers.iter().find(|b| !seen.insert(b.id)) {
        return Err(AssignError::DuplicateBroker(dup.id));
    }
    if start_partition_id
        .checked_add(partitions - 1)
        .is_none_or(|last| last > MAX_PARTITION_ID)
    {
        return Err(AssignError::PartitionIdOverflow {
            partitions,
            start_partition_id,
        });
    }
    let params = Params {
        partitions,
        replication_factor,
        start,
        start_partition_id,
    };
    if brokers.iter().all(|b| b.rack.is_none()) {
        let ids: Vec<u32> = brokers.iter().map(|b| b.id).collect();
        Ok(assign_replicas_to_brokers_rack_unaware(&params, &ids))
    } else {
        let racks = brokers
            .iter()
            .map(|b| b.rack.clone().map(|rack| (b.id, rack)))
            .collect::<Option<BTreeMap<u32, String>>>()
            .ok_or(AssignError::IncompleteRackInfo)?;
        Ok(assign_replicas_to_brokers_rack_aware(&params, &racks))
    }
}

/// The validated arguments both strategies share.
struct Params {
    partitions: u32,
    replication_factor: u32,
    start: StartIndex,
    start_partition_id: u32,
}

/// Kafka's `assignReplicasToBrokersRackUnaware`: first replicas round-robin from the start index,
/// followers at an increasing shift that grows by one after every `brokers` partitions.
fn assign_replicas_to_brokers_rack_unaware(params: &Params, broker_list: &[u32]) -> Assignment {
    let n = broker_list.len() as u64;
    let start_index = u64::from(params.start.first_replica);
    let mut next_replica_shift = u64::from(params.start.replica_shift);
    let mut ret = Assignment::new();
    // Validated: the last id fits in an `i32`, so the end of the range fits in a `u32`.
    for current_partition_id in
        params.start_partition_id..params.start_partition_id + params.partitions
    {
        if current_partition_id > 0 && u64::from(current_partition_id) % n == 0 {
            next_replica_shift += 1;
        }
        let first_replica_index = ((u64::from(current_partition_id) + start_index) % n) as usize;
        let mut replicas = vec![broker_list[first_replica_index]];
        for j in 0..params.replication_factor - 1 {
            let index = replica_index(
                first_replica_index,
                u128::from(next_replica_shift),
                j,
                broker_list.len(),
            );
            replicas.push(broker_list[index]);
        }
        ret.insert(current_partition_id, replicas);
    }
    ret
}

/// Kafka's `assignReplicasToBrokersRackAware`: leaders round-robin over the rack-alternated list;
/// each follower is the next broker along the shifted walk, skipping racks that already hold a replica
/// while some rack holds none, and brokers that already hold one while some broker holds none.
fn assign_replicas_to_brokers_rack_aware(
    params: &Params,
    broker_rack_map: &BTreeMap<u32, String>,
) -> Assignment {
    let num_racks = broker_rack_map.values().collect::<BTreeSet<_>>().len();
    let arranged = rack_alternated(broker_rack_map);
    let num_brokers = arranged.len();
    let n = num_brokers as u64;
    let start_index = u64::from(params.start.first_replica);
    let mut next_replica_shift = u64::from(params.start.replica_shift);
    let mut ret = Assignment::new();
    // Validated: the last id fits in an `i32`, so the end of the range fits in a `u32`.
    for current_partition_id in
        params.start_partition_id..params.start_partition_id + params.partitions
    {
        if current_partition_id > 0 && u64::from(current_partition_id) % n == 0 {
            next_replica_shift += 1;
        }
        let first_replica_index = ((u64::from(current_partition_id) + start_index) % n) as usize;
        let (leader, leader_rack) = arranged[first_replica_index];
        let mut replicas = vec![leader];
        let mut racks_with_replicas = BTreeSet::from([leader_rack]);
        let mut brokers_with_replicas = BTreeSet::from([leader]);
        let mut k = 0;
        for _ in 0..params.replication_factor - 1 {
            // Terminates: the walk visits every other position within `num_brokers - 1` steps,
            // and while fewer than `replication_factor <= num_brokers` replicas are placed some
            // broker (in an empty rack, if there is one) is still free.
            loop {
                let index = replica_index(
                    first_replica_index,
                    u128::from(next_replica_shift) * num_racks as u128,
                    k,
                    num_brokers,
                );
                let (broker, rack) = arranged[index];
                k += 1;
                if (!racks_with_replicas.contains(rack) || racks_with_replicas.len() == num_racks)
                    && (!brokers_with_replicas.contains(&broker)
                        || brokers_with_replicas.len() == num_brokers)
                {
                    replicas.push(broker);
                    racks_with_replicas.insert(rack);
                    brokers_with_replicas.insert(broker);
                    break;
                }
            }
        }
        ret.insert(current_partition_id, replicas);
    }
    ret
}

/// Kafka's `getRackAlternatedBrokerList`: racks in sorted order, each contributing its next broker
/// (by ascending id) in turn. Rack 1: 0,1,2; rack 2: 3,4,5; rack 3: 6,7,8 → 0,3,6,1,4,7,2,5,8.
/// (Kafka sorts rack names by UTF-16 unit, Rust by code point: they agree unless a rack name has
/// characters beyond U+FFFF.)
pub fn get_rack_alternated_broker_list(broker_rack_map: &BTreeMap<u32, String>) -> Vec<u32> {
    rack_alternated(broker_rack_map)
        .into_iter()
        .map(|(id, _)| id)
        .collect()
}

/// The rack-alternated list, each broker with its rack.
fn rack_alternated(broker_rack_map: &BTreeMap<u32, String>) -> Vec<(u32, &str)> {
    // Kafka's `getInverseMap`: rack → ids ascending (a BTreeMap iterates ids in order).
    let mut by_rack: BTreeMap<&str, std::vec::IntoIter<u32>> = BTreeMap::new();
    let mut inverse: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for (&id, rack) in broker_rack_map {
        inverse.entry(rack.as_str()).or_default().push(id);
    }
    for (rack, ids) in inverse {
        by_rack.insert(rack, ids.into_iter());
    }
    let mut result = Vec::with_capacity(broker_rack_map.len());
    while result.len() < broker_rack_map.len() {
        for (rack, ids) in by_rack.iter_mut() {
            if let Some(id) = ids.next() {
                result.push((id, *rack));
            }
        }
    }
    result
}

/// Kafka's `replicaIndex`: the position of follower `replica_index` of a partition whose first
/// replica sits at `first_replica_index`, never the first replica's own position.
fn replica_index(
    first_replica_index: usize,
    second_replica_shift: u128,
    replica_index: u32,
    n_brokers: usize,
) -> usize {
    if n_brokers <= 1 {
        // Kafka divides by zero here; it never asks for a follower with one broker.
        return first_replica_index;
    }
    let n = n_brokers as u128;
    let shift = 1 + (second_replica_shift + u128::from(replica_index)) % (n - 1);
    ((first_replica_index as u128 + shift) % n) as usize
}

#[cfg(test)]
mod tests {
    use super::{
        AssignError, Assignment, BrokerMetadata, StartIndex, assign_replicas_to_brokers,
        get_rack_alternated_broker_list, replica_index,
    };
    use std::collections::{BTreeMap, BTreeSet};

    /// `toBrokerMetadata` of Kafka's tests: brokers sorted by id, each with its rack.
    fn racked(map: &[(u32, &str)]) -> Vec<BrokerMetadata> {
        let mut brokers: Vec<BrokerMetadata> = map
            .iter()
            .map(|&(id, rack)| BrokerMetadata::new(id, Some(rack)))
            .collect();
        brokers.sort_by_key(|b| b.id);
        brokers
    }

    fn rack_map(map: &[(u32, &str)]) -> BTreeMap<u32, String> {
        map.iter().map(|&(id, r)| (id, r.to_owned())).collect()
    }

    fn expected(rows: &[(u32, &[u32])]) -> Assignment {
        rows.iter().map(|&(p, r)| (p, r.to_vec())).collect()
    }

    /// Every start Kafka could draw at random (`fixedStartIndex = -1`): both numbers in `0..n`.
    fn every_random_start(n: u32) -> impl Iterator<Item = StartIndex> {
        (0..n).flat_map(move |first_replica| {
            (0..n).map(move |replica_shift| StartIndex {
                first_replica,
                replica_shift,
            })
        })
    }

    /// Kafka's `assertReplicaDistribution` (`checkReplicaDistribution` in the Scala version).
    fn assert_distribution(
        assignment: &Assignment,
        racks: &BTreeMap<u32, String>,
        partitions: u32,
        rf: u32,
        verify_rack_aware: bool,
        verify_leaders: bool,
        verify_replicas: bool,
    ) {
        assert_eq!(assignment.len(), partitions as usize);
        let mut leaders: BTreeMap<u32, u32> = BTreeMap::new();
        let mut replicas: BTreeMap<u32, u32> = BTreeMap::new();
        for (p, list) in assignment {
            assert_eq!(list.len(), rf as usize, "partition {p}: {list:?}");
            let distinct: BTreeSet<_> = list.iter().collect();
            assert_eq!(distinct.len(), list.len(), "partition {p} repeats a broker");
            *leaders.entry(list[0]).or_default() += 1;
            for b in list {
                *replicas.entry(*b).or_default() += 1;
            }
            if verify_rack_aware {
                let rs: BTreeSet<_> = list.iter().map(|b| &racks[b]).collect();
                assert_eq!(
                    rs.len(),
                    rf as usize,
                    "partition {p} shares a rack: {list:?}"
                );
            }
        }
        let n = racks.len() as u32;
        if verify_leaders {
            assert_eq!(leaders.len(), racks.len(), "some broker leads nothing");
            assert!(
                leaders.values().all(|&c| c == partitions / n),
                "{leaders:?}"
            );
        }
        if verify_replicas {
            assert_eq!(replicas.len(), racks.len(), "some broker holds nothing");
            assert!(
                replicas.values().all(|&c| c == partitions * rf / n),
                "{replicas:?}"
            );
        }
    }

    fn partition_rack_counts(
        assignment: &Assignment,
        racks: &BTreeMap<u32, String>,
    ) -> Vec<BTreeMap<String, u32>> {
        assignment
            .values()
            .map(|list| {
                let mut counts = BTreeMap::new();
                for b in list {
                    *counts.entry(racks[b].clone()).or_default() += 1;
                }
                counts
            })
            .collect()
    }

    const SIX_IN_THREE: &[(u32, &str)] = &[
        (0, "rack1"),
        (1, "rack2"),
        (2, "rack2"),
        (3, "rack3"),
        (4, "rack3"),
        (5, "rack1"),
    ];

    // --- Ported from apache/kafka AdminRackAwareTest (server-common, formerly core AdminRackAwareTest.scala).

    #[test]
    fn kafka_get_rack_alternated_broker_list_and_assign_replicas_to_brokers() {
        let map = [
            (0, "rack1"),
            (1, "rack3"),
            (2, "rack3"),
            (3, "rack2"),
            (4, "rack2"),
            (5, "rack1"),
        ];
        assert_eq!(
            get_rack_alternated_broker_list(&rack_map(&map)),
            vec![0, 3, 1, 5, 4, 2]
        );
        assert_eq!(
            get_rack_alternated_broker_list(&rack_map(&map[..5])),
            vec![0, 3, 1, 4, 2]
        );
        let got = assign_replicas_to_brokers(&racked(&map), 7, 3, StartIndex::fixed(0), 0);
        let want = expected(&[
            (0, &[0, 3, 1]),
            (1, &[3, 1, 5]),
            (2, &[1, 5, 4]),
            (3, &[5, 4, 2]),
            (4, &[4, 2, 0]),
            (5, &[2, 0, 3]),
            (6, &[0, 4, 2]),
        ]);
        assert_eq!(got, Ok(want));
    }

    #[test]
    fn kafka_assignment_with_rack_aware() {
        let got = assign_replicas_to_brokers(&racked(SIX_IN_THREE), 6, 3, StartIndex::fixed(2), 0)
            .unwrap();
        assert_distribution(&got, &rack_map(SIX_IN_THREE), 6, 3, true, true, true);
    }

    #[test]
    fn kafka_assignment_with_rack_aware_with_random_start_index() {
        for start in every_random_start(6) {
            let got = assign_replicas_to_brokers(&racked(SIX_IN_THREE), 6, 3, start, 0).unwrap();
            assert_distribution(&got, &rack_map(SIX_IN_THREE), 6, 3, true, true, true);
        }
    }

    #[test]
    fn kafka_assignment_with_rack_aware_with_uneven_replicas() {
        let got = assign_replicas_to_brokers(&racked(SIX_IN_THREE), 13, 3, StartIndex::fixed(0), 0)
            .unwrap();
        assert_distribution(&got, &rack_map(SIX_IN_THREE), 13, 3, true, false, false);
    }

    #[test]
    fn kafka_assignment_with_rack_aware_with_uneven_racks() {
        let map = [
            (0, "rack1"),
            (1, "rack1"),
            (2, "rack2"),
            (3, "rack3"),
            (4, "rack3"),
            (5, "rack1"),
        ];
        for start in every_random_start(6) {
            let got = assign_replicas_to_brokers(&racked(&map), 12, 3, start, 0).unwrap();
            assert_distribution(&got, &rack_map(&map), 12, 3, true, true, false);
        }
    }

    #[test]
    fn kafka_assignment_with_2_replicas_rack_aware() {
        for start in every_random_start(6) {
            let got = assign_replicas_to_brokers(&racked(SIX_IN_THREE), 12, 2, start, 0).unwrap();
            assert_distribution(&got, &rack_map(SIX_IN_THREE), 12, 2, true, true, true);
        }
    }

    #[test]
    fn kafka_rack_aware_expansion() {
        let map = [
            (6, "rack1"),
            (7, "rack2"),
            (8, "rack2"),
            (9, "rack3"),
            (10, "rack3"),
            (11, "rack1"),
        ];
        for start in every_random_start(6) {
            let got = assign_replicas_to_brokers(&racked(&map), 12, 2, start, 12).unwrap();
            assert_eq!(
                got.keys().copied().collect::<Vec<_>>(),
                (12..24).collect::<Vec<_>>()
            );
            assert_distribution(&got, &rack_map(&map), 12, 2, true, true, true);
        }
    }

    #[test]
    fn kafka_assignment_with_2_replicas_rack_aware_with_6_partitions() {
        let map = [
            (6, "rack1"),
            (7, "rack2"),
            (8, "rack2"),
            (9, "rack3"),
            (10, "rack3"),
            (11, "rack1"),
        ];
        for start in every_random_start(6) {
            let got = assign_replicas_to_brokers(&racked(&map), 6, 2, start, 0).unwrap();
            assert_distribution(&got, &rack_map(&map), 6, 2, true, true, true);
        }
    }

    #[test]
    fn kafka_assignment_with_2_replicas_rack_aware_with_6_partitions_and_3_brokers() {
        let map = [(0, "rack1"), (1, "rack2"), (4, "rack3")];
        for start in every_random_start(3) {
            let got = assign_replicas_to_brokers(&racked(&map), 3, 2, start, 0).unwrap();
            assert_distribution(&got, &rack_map(&map), 3, 2, true, true, true);
        }
    }

    #[test]
    fn kafka_large_number_partitions_assignment() {
        let map = [
            (0, "rack1"),
            (1, "rack2"),
            (2, "rack2"),
            (3, "rack3"),
            (4, "rack3"),
            (5, "rack1"),
            (6, "rack1"),
            (7, "rack2"),
            (8, "rack2"),
            (9, "rack3"),
            (10, "rack1"),
            (11, "rack3"),
        ];
        for start in every_random_start(12) {
            let got = assign_replicas_to_brokers(&racked(&map), 96, 3, start, 0).unwrap();
            assert_distribution(&got, &rack_map(&map), 96, 3, true, true, true);
        }
    }

    #[test]
    fn kafka_more_replicas_than_racks() {
        let map = [
            (0, "rack1"),
            (1, "rack2"),
            (2, "rack2"),
            (3, "rack3"),
            (4, "rack3"),
            (5, "rack2"),
        ];
        for start in every_random_start(6) {
            let got = assign_replicas_to_brokers(&racked(&map), 6, 5, start, 0).unwrap();
            assert_distribution(&got, &rack_map(&map), 6, 5, false, false, false);
            for counts in partition_rack_counts(&got, &rack_map(&map)) {
                assert_eq!(counts.len(), 3, "{counts:?}");
            }
        }
    }

    #[test]
    fn kafka_less_replicas_than_racks() {
        let map = [
            (0, "rack1"),
            (1, "rack2"),
            (2, "rack2"),
            (3, "rack3"),
            (4, "rack3"),
            (5, "rack2"),
        ];
        for start in every_random_start(6) {
            let got = assign_replicas_to_brokers(&racked(&map), 6, 2, start, 0).unwrap();
            assert_distribution(&got, &rack_map(&map), 6, 2, true, false, false);
        }
    }

    #[test]
    fn kafka_single_rack() {
        let map: Vec<(u32, &str)> = (0..6).map(|id| (id, "rack1")).collect();
        for start in every_random_start(6) {
            let got = assign_replicas_to_brokers(&racked(&map), 6, 3, start, 0).unwrap();
            assert_distribution(&got, &rack_map(&map), 6, 3, false, true, false);
        }
    }

    #[test]
    fn kafka_skip_broker_with_replica_already_assigned() {
        let map = [(0, "a"), (1, "b"), (2, "c"), (3, "a"), (4, "a")];
        let brokers = racked(&map);
        assert_eq!(
            brokers.iter().map(|b| b.id).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4]
        );
        let got = assign_replicas_to_brokers(&brokers, 6, 4, StartIndex::fixed(2), 0).unwrap();
        assert_distribution(&got, &rack_map(&map), 6, 4, false, false, false);
    }

    #[test]
    fn kafka_replica_assignment_rack_unaware() {
        let brokers: Vec<BrokerMetadata> = (0..5).map(|id| BrokerMetadata::new(id, None)).collect();
        assert_eq!(
            assign_replicas_to_brokers(&brokers, 10, 0, StartIndex::fixed(0), 0),
            Err(AssignError::ReplicationFactorNotPositive)
        );
        assert_eq!(
            assign_replicas_to_brokers(&brokers, 10, 6, StartIndex::fixed(0), 0),
            Err(AssignError::ReplicationFactorTooLarge {
                replication_factor: 6,
                brokers: 5
            })
        );
        let want = expected(&[
            (0, &[0, 1, 2]),
            (1, &[1, 2, 3]),
            (2, &[2, 3, 4]),
            (3, &[3, 4, 0]),
            (4, &[4, 0, 1]),
            (5, &[0, 2, 3]),
            (6, &[1, 3, 4]),
            (7, &[2, 4, 0]),
            (8, &[3, 0, 1]),
            (9, &[4, 1, 2]),
        ]);
        assert_eq!(
            assign_replicas_to_brokers(&brokers, 10, 3, StartIndex::fixed(0), 0),
            Ok(want)
        );
    }

    #[test]
    fn kafka_assign_replicas_to_brokers_with_invalid_parameters() {
        let mut brokers = racked(&[(0, "rack1"), (1, "rack3"), (2, "rack3"), (3, "rack2")]);
        brokers.push(BrokerMetadata::new(4, None));
        let start = StartIndex::fixed(0);
        assert_eq!(
            assign_replicas_to_brokers(&brokers, 0, 0, start, 0),
            Err(AssignError::InvalidPartitions)
        );
        assert_eq!(
            assign_replicas_to_brokers(&brokers, 10, 0, start, 0),
            Err(AssignError::ReplicationFactorNotPositive)
        );
        assert_eq!(
            assign_replicas_to_brokers(&brokers, 10, 6, start, 0),
            Err(AssignError::ReplicationFactorTooLarge {
                replication_factor: 6,
                brokers: 5
            })
        );
        assert_eq!(
            assign_replicas_to_brokers(&brokers, 10, 5, start, 0),
            Err(AssignError::IncompleteRackInfo)
        );
    }

    // --- Kafka's Javadoc example and error texts.

    #[test]
    fn javadoc_rack_unaware_table() {
        // AdminUtils' Javadoc: 5 brokers, 10 partitions, 3 replicas, start index 0.
        let brokers: Vec<BrokerMetadata> = (0..5).map(|id| BrokerMetadata::new(id, None)).collect();
        let got = assign_replicas_to_brokers(&brokers, 10, 3, StartIndex::fixed(0), 0).unwrap();
        let second: Vec<u32> = got.values().map(|r| r[1]).collect();
        assert_eq!(second, [1, 2, 3, 4, 0, 2, 3, 4, 0, 1]);
    }

    #[test]
    fn error_messages_are_kafkas() {
        assert_eq!(
            AssignError::InvalidPartitions.to_string(),
            "Number of partitions must be larger than 0."
        );
        assert_eq!(
            AssignError::ReplicationFactorNotPositive.to_string(),
            "Replication factor must be larger than 0."
        );
        assert_eq!(
            AssignError::ReplicationFactorTooLarge {
                replication_factor: 3,
                brokers: 2
            }
            .to_string(),
            "Replication factor: 3 larger than available brokers: 2."
        );
        assert_eq!(
            AssignError::IncompleteRackInfo.to_string(),
            "Not all brokers have rack information for replica rack aware assignment."
        );
    }

    // --- Our own vectors and properties.

    #[test]
    fn replica_index_never_returns_the_first_replica() {
        for n in 2..8 {
            for first in 0..n {
                for shift in 0..20u128 {
                    for j in 0..(n as u32 - 1) {
                        let i = replica_index(first, shift, j, n);
                        assert!(i < n && i != first);
                    }
                }
            }
        }
        assert_eq!(replica_index(0, 0, 0, 1), 0);
    }

    #[test]
    fn rack_unaware_follows_broker_order_not_id_order() {
        let brokers: Vec<BrokerMetadata> = [2, 0, 1]
            .into_iter()
            .map(|id| BrokerMetadata::new(id, None))
            .collect();
        let got = assign_replicas_to_brokers(&brokers, 3, 2, StartIndex::fixed(0), 0).unwrap();
        assert_eq!(got, expected(&[(0, &[2, 0]), (1, &[0, 1]), (2, &[1, 2])]));
    }

    #[test]
    fn rack_unaware_start_partition_id_continues_the_pattern() {
        // Adding partitions 5..10 to a 10-partition topic's first half yields the same rows.
        let brokers: Vec<BrokerMetadata> = (0..5).map(|id| BrokerMetadata::new(id, None)).collect();
        let whole = assign_replicas_to_brokers(&brokers, 10, 3, StartIndex::fixed(0), 0).unwrap();
        let tail = assign_replicas_to_brokers(&brokers, 5, 3, StartIndex::fixed(0), 5).unwrap();
        assert_eq!(
            tail,
            whole.range(5..).map(|(p, r)| (*p, r.clone())).collect()
        );
    }

    #[test]
    fn three_azs_one_broker_each() {
        let map = [(1, "us-east-1a"), (2, "us-east-1b"), (3, "us-east-1c")];
        let got = assign_replicas_to_brokers(&racked(&map), 6, 3, StartIndex::fixed(0), 0).unwrap();
        let want = expected(&[
            (0, &[1, 2, 3]),
            (1, &[2, 3, 1]),
            (2, &[3, 1, 2]),
            (3, &[1, 3, 2]),
            (4, &[2, 1, 3]),
            (5, &[3, 2, 1]),
        ]);
        assert_eq!(got, want);
    }

    #[test]
    fn unequal_racks_keep_one_replica_per_rack() {
        // One AZ with four brokers, two with one: each partition still spans all three racks,
        // so the lone brokers each carry a replica of every partition.
        let map = [(1, "a"), (2, "a"), (3, "a"), (4, "a"), (5, "b"), (6, "c")];
        assert_eq!(
            get_rack_alternated_broker_list(&rack_map(&map)),
            [1, 5, 6, 2, 3, 4]
        );
        for start in every_random_start(6) {
            let got = assign_replicas_to_brokers(&racked(&map), 12, 3, start, 0).unwrap();
            assert_distribution(&got, &rack_map(&map), 12, 3, true, true, false);
            for list in got.values() {
                assert!(list.contains(&5) && list.contains(&6), "{list:?}");
            }
        }
    }

    #[test]
    fn more_replicas_than_racks_fills_every_rack_first() {
        // RF 4 over racks of 3, 2 and 1 brokers: each rack gets one replica before any gets a second.
        let map = [(1, "a"), (2, "a"), (3, "a"), (4, "b"), (5, "b"), (6, "c")];
        for start in every_random_start(6) {
            let got = assign_replicas_to_brokers(&racked(&map), 18, 4, start, 0).unwrap();
            assert_distribution(&got, &rack_map(&map), 18, 4, false, true, false);
            for list in got.values() {
                let first_three: BTreeSet<_> = list[..3]
                    .iter()
                    .map(|b| rack_map(&map)[b].clone())
                    .collect();
                assert_eq!(first_three.len(), 3, "{list:?}");
            }
        }
    }

    #[test]
    fn two_racks_rf_three_puts_two_replicas_in_one_rack() {
        let map = [(1, "a"), (2, "b"), (3, "a"), (4, "b")];
        let got = assign_replicas_to_brokers(&racked(&map), 8, 3, StartIndex::fixed(0), 0).unwrap();
        for counts in partition_rack_counts(&got, &rack_map(&map)) {
            let mut c: Vec<u32> = counts.into_values().collect();
            c.sort_unstable();
            assert_eq!(c, [1, 2]);
        }
    }

    #[test]
    fn properties_hold_for_many_shapes() {
        // Every partition: RF distinct brokers; min(RF, racks) distinct racks; leaders balanced.
        let shapes: &[&[u32]] = &[
            &[1],
            &[1, 1],
            &[2, 2],
            &[1, 1, 1],
            &[2, 2, 2],
            &[3, 2, 1],
            &[4, 1, 1],
            &[2, 2, 1],
            &[3, 3, 3, 2],
        ];
        for shape in shapes {
            let mut map = Vec::new();
            let mut id = 0;
            for (r, &count) in shape.iter().enumerate() {
                for _ in 0..count {
                    map.push((id, ["a", "b", "c", "d"][r]));
                    id += 1;
                }
            }
            let racks = rack_map(&map);
            let n = map.len() as u32;
            for rf in 1..=n {
                for start in every_random_start(n) {
                    let partitions = n * 3;
                    let got = assign_replicas_to_brokers(&racked(&map), partitions, rf, start, 0)
                        .unwrap();
                    let want_racks = (rf as usize).min(shape.len());
                    assert_distribution(&got, &racks, partitions, rf, false, true, false);
                    for counts in partition_rack_counts(&got, &racks) {
                        assert!(counts.len() >= want_racks, "{shape:?} rf {rf}: {counts:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn duplicate_broker_is_an_error() {
        let brokers = racked(&[(1, "a"), (1, "b")]);
        assert_eq!(
            assign_replicas_to_brokers(&brokers, 1, 1, StartIndex::fixed(0), 0),
            Err(AssignError::DuplicateBroker(1))
        );
    }

    #[test]
    fn partition_ids_past_i32_are_an_error() {
        let brokers = racked(&[(1, "a")]);
        let start = StartIndex::fixed(0);
        assert!(assign_replicas_to_brokers(&brokers, 1, 1, start, i32::MAX as u32).is_ok());
        assert_eq!(
            assign_replicas_to_brokers(&brokers, 2, 1, start, i32::MAX as u32),
            Err(AssignError::PartitionIdOverflow {
                partitions: 2,
                start_partition_id: i32::MAX as u32
            })
        );
    }

    #[test]
    fn large_start_index_wraps_like_kafka() {
        let map = [(0, "a"), (1, "b"), (2, "c")];
        let a = assign_replicas_to_brokers(&racked(&map), 6, 2, StartIndex::fixed(1), 0);
        let b = assign_replicas_to_brokers(&racked(&map), 6, 2, StartIndex::fixed(4), 0);
        // Kafka takes the fixed start index modulo the broker count for the leader.
        let leaders = |x: &Assignment| x.values().map(|r| r[0]).collect::<Vec<_>>();
        assert_eq!(leaders(&a.unwrap()), leaders(&b.unwrap()));
    }
}
