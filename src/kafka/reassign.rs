//! Which replicas move when brokers leave or join, computed as a value from the partitions'
//! placement and the brokers' racks (no I/O: `drain.rs` reads the cluster and asks Kafka to move
//! them). A drain replaces every replica on a leaving broker, in its position, by a remaining
//! broker: a rack the partition does not use yet first, the least loaded next. A rebalance then
//! moves single replicas from the most to the least loaded broker until every broker's replica
//! count is within one of even, or no move is left that keeps the partition's rack spread. No
//! partition ever ends in fewer distinct racks than it started in, and none changes its
//! replication factor; a preferred leader that stays keeps its place.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

/// A partition's replicas, the first the preferred leader.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Placement {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
}

/// A reassignment Kafka is carrying out (ListPartitionReassignments).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ongoing {
    pub topic: String,
    pub partition: i32,
    /// Every replica while it moves: the target and those still being removed.
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

impl Ongoing {
    /// Where the partition ends once the reassignment finishes.
    pub fn target(&self) -> Vec<i32> {
        self.replicas
            .iter()
            .copied()
            .filter(|b| !self.removing.contains(b))
            .collect()
    }
}

/// The brokers a reassignment may place replicas on, and the rack of every broker it may meet
/// (leaving ones included). A broker without a rack adds no rack to a partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Brokers {
    pub targets: BTreeSet<i32>,
    pub racks: BTreeMap<i32, Option<String>>,
}

impl Brokers {
    fn rack(&self, broker: i32) -> Option<&str> {
        self.racks.get(&broker).and_then(|r| r.as_deref())
    }

    /// How many distinct racks `replicas` span.
    pub fn spread(&self, replicas: &[i32]) -> usize {
        replicas
            .iter()
            .filter_map(|b| self.rack(*b))
            .collect::<BTreeSet<_>>()
            .len()
    }
}

/// One partition that moves: its replicas before and after, position by position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Move {
    pub topic: String,
    pub partition: i32,
    pub from: Vec<i32>,
    pub to: Vec<i32>,
}

/// What a reassignment does: the partitions that move, and each target broker's replica count
/// once they have.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Proposal {
    pub moves: Vec<Move>,
    /// Replicas per broker afterwards (every target broker, leaving ones hold none).
    pub counts: BTreeMap<i32, usize>,
    /// Set when a rebalance could not bring every count within one of even without lowering a
    /// partition's rack spread: why.
    pub uneven: Option<String>,
}

/// Why no reassignment can do what was asked, naming the topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("topic {topic}: {reason}")]
pub struct Refusal {
    pub topic: String,
    pub reason: String,
}

/// The replicas moved out of each broker and into each broker, counted position by position.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flows {
    /// (from, to) → replicas.
    pub pairs: BTreeMap<(i32, i32), usize>,
}

impl Flows {
    /// Where the replicas of `broker` go: destination → replicas.
    pub fn out_of(&self, broker: i32) -> BTreeMap<i32, usize> {
        self.pairs
            .iter()
            .filter(|((f, _), _)| *f == broker)
            .map(|((_, t), n)| (*t, *n))
            .collect()
    }

    /// Where the replicas `broker` receives come from: source → replicas.
    pub fn into_broker(&self, broker: i32) -> BTreeMap<i32, usize> {
        self.pairs
            .iter()
            .filter(|((_, t), _)| *t == broker)
            .map(|((f, _), n)| (*f, *n))
            .collect()
    }
}

impl Proposal {
    /// Replicas placed on a broker that did not hold them.
    pub fn replicas_moved(&self) -> usize {
        self.flows().pairs.values().sum()
    }

    pub fn flows(&self) -> Flows {
        let mut pairs = BTreeMap::new();
        for m in &self.moves {
            for (f, t) in m.from.iter().zip(&m.to) {
                if f != t {
                    *pairs.entry((*f, *t)).or_default() += 1;
                }
            }
        }
        Flows { pairs }
    }

    /// The reassignment in the JSON format of Kafka's `kafka-reassign-partitions.sh
    /// --reassignment-json-file`.
    pub fn kafka_json(&self) -> serde_json::Value {
        let partitions: Vec<serde_json::Value> = self
            .moves
            .iter()
            .map(|m| {
                serde_json::json!({
                    "topic": m.topic,
                    "partition": m.partition,
                    "replicas": m.to,
                })
            })
            .collect();
        serde_json::json!({ "version": 1, "partitions": partitions })
    }
}

/// Moves every replica off brokers that are not targets, then (with `balance`) evens out the
/// targets' replica counts. `placements` are the partitions as they will be once ongoing
/// reassignments finish.
pub fn propose(
    placements: &[Placement],
    brokers: &Brokers,
    balance: bool,
) -> Result<Proposal, Refusal> {
    let mut sorted: Vec<&Placement> = placements.iter().collect();
    sorted.sort();
    let mut load: BTreeMap<i32, usize> = brokers.targets.iter().map(|b| (*b, 0)).collect();
    for p in &sorted {
        for b in &p.replicas {
            if let Some(n) = load.get_mut(b) {
                *n += 1;
            }
        }
    }
    let mut after: Vec<Vec<i32>> = Vec::with_capacity(sorted.len());
    for p in &sorted {
        after.push(drain_one(p, brokers, &mut load)?);
    }
    let mut uneven = None;
    if balance {
        uneven = even_out(&sorted, &mut after, brokers, &mut load);
    }
    let moves = sorted
        .iter()
        .zip(&after)
        .filter(|(p, to)| &p.replicas != *to)
        .map(|(p, to)| Move {
            topic: p.topic.clone(),
            partition: p.partition,
            from: p.replicas.clone(),
            to: to.clone(),
        })
        .collect();
    Ok(Proposal {
        moves,
        counts: load,
        uneven,
    })
}

/// The partition's replicas with every one on a leaving broker replaced, in its position.
fn drain_one(
    p: &Placement,
    brokers: &Brokers,
    load: &mut BTreeMap<i32, usize>,
) -> Result<Vec<i32>, Refusal> {
    let leaving: Vec<usize> = (0..p.replicas.len())
        .filter(|i| !brokers.targets.contains(&p.replicas[*i]))
        .collect();
    if leaving.is_empty() {
        return Ok(p.replicas.clone());
    }
    let rf = p.replicas.len();
    if brokers.targets.len() < rf {
        return Err(Refusal {
            topic: p.topic.clone(),
            reason: format!(
                "replication factor {rf} (partition {}), but only {} brokers would remain ({}); lower the topic's replication factor first or keep more brokers",
                p.partition,
                brokers.targets.len(),
                names(brokers.targets.iter().copied())
            ),
        });
    }
    let mut replicas = p.replicas.clone();
    for i in leaving {
        let racks: BTreeSet<&str> = replicas
            .iter()
            .filter(|b| brokers.targets.contains(b))
            .filter_map(|b| brokers.rack(*b))
            .collect();
        let pick = brokers
            .targets
            .iter()
            .copied()
            .filter(|b| !replicas.contains(b))
            .min_by_key(|b| {
                let new_rack = brokers.rack(*b).is_some_and(|r| !racks.contains(r));
                (!new_rack, load.get(b).copied().unwrap_or(0), *b)
            });
        let Some(pick) = pick else {
            // Unreachable with at least `rf` targets; refused rather than assumed.
            return Err(Refusal {
                topic: p.topic.clone(),
                reason: format!("no remaining broker can take partition {}", p.partition),
            });
        };
        replicas[i] = pick;
        *load.entry(pick).or_default() += 1;
    }
    let (before, now) = (brokers.spread(&p.replicas), brokers.spread(&replicas));
    if now < before {
        return Err(Refusal {
            topic: p.topic.clone(),
            reason: format!(
                "partition {} spans {before} racks ({}), but the remaining brokers would leave it in {now}: removing these brokers empties a rack it needs; keep a broker in every rack or lower the topic's replication factor first",
                p.partition,
                racks_of(brokers, &p.replicas)
            ),
        });
    }
    Ok(replicas)
}

/// Moves one replica at a time from the most to the least loaded target broker that can take
/// it without lowering its partition's rack spread below what it was, until every count is
/// within one of even or no such move is left; returns why it stayed uneven, if it did.
fn even_out(
    placements: &[&Placement],
    after: &mut [Vec<i32>],
    brokers: &Brokers,
    load: &mut BTreeMap<i32, usize>,
) -> Option<String> {
    let floor: Vec<usize> = placements
        .iter()
        .map(|p| brokers.spread(&p.replicas))
        .collect();
    let mut leaders: BTreeMap<i32, usize> = load.keys().map(|b| (*b, 0)).collect();
    for r in after.iter() {
        if let Some(n) = r.first().and_then(|l| leaders.get_mut(l)) {
            *n += 1;
        }
    }
    loop {
        let mut by_load: Vec<(usize, i32)> = load.iter().map(|(b, n)| (*n, *b)).collect();
        by_load.sort();
        let (Some(low), Some(high)) = (by_load.first(), by_load.last()) else {
            return None;
        };
        if high.0 <= low.0 + 1 {
            return None;
        }
        let mut moved = false;
        'pairs: for &(high_n, s) in by_load.iter().rev() {
            for &(low_n, d) in &by_load {
                if high_n < low_n + 2 {
                    break;
                }
                if let Some(i) = best_move(placements, after, &floor, brokers, &leaders, s, d) {
                    let pos = after[i].iter().position(|b| *b == s).unwrap_or_default();
                    if pos == 0 {
                        *leaders.entry(s).or_default() -= 1;
                        *leaders.entry(d).or_default() += 1;
                    }
                    after[i][pos] = d;
                    *load.entry(s).or_default() -= 1;
                    *load.entry(d).or_default() += 1;
                    moved = true;
                    break 'pairs;
                }
            }
        }
        if !moved {
            return Some(format!(
                "replicas per broker stay between {} and {}: no further move keeps every partition's rack spread (a rack with fewer brokers holds more replicas per broker)",
                low.0, high.0
            ));
        }
    }
}

/// The partition (index) whose replica on `s` moves best to `d`: one that keeps its racks as
/// they are first, then a preferred leader when `s` leads two more partitions than `d`,
/// otherwise a follower; then by topic and partition.
fn best_move(
    placements: &[&Placement],
    after: &[Vec<i32>],
    floor: &[usize],
    brokers: &Brokers,
    leaders: &BTreeMap<i32, usize>,
    s: i32,
    d: i32,
) -> Option<usize> {
    let lead = leaders.get(&s).copied().unwrap_or(0) >= leaders.get(&d).copied().unwrap_or(0) + 2;
    let same_rack = brokers.rack(s) == brokers.rack(d);
    (0..placements.len())
        .filter(|i| after[*i].contains(&s) && !after[*i].contains(&d))
        .filter(|i| {
            let mut r = after[*i].clone();
            if let Some(pos) = r.iter().position(|b| *b == s) {
                r[pos] = d;
            }
            brokers.spread(&r) >= floor[*i]
        })
        .min_by_key(|i| {
            let leads = after[*i].first() == Some(&s);
            (!same_rack, leads != lead, *i)
        })
}

/// `broker-1, broker-2`.
pub fn names(ids: impl IntoIterator<Item = i32>) -> String {
    ids.into_iter()
        .map(|b| format!("broker-{b}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn racks_of(brokers: &Brokers, replicas: &[i32]) -> String {
    replicas
        .iter()
        .map(|b| format!("broker-{b} in {}", brokers.rack(*b).unwrap_or("no rack")))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator, so the property tests see many placements.
    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, n: usize) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((self.0 >> 33) as usize) % n
        }
    }

    /// Brokers `1..=n`, broker b in rack `r{(b - 1) % racks}`.
    fn brokers(n: i32, racks: i32, targets: &[i32]) -> Brokers {
        Brokers {
            targets: targets.iter().copied().collect(),
            racks: (1..=n)
                .map(|b| (b, Some(format!("r{}", (b - 1) % racks))))
                .collect(),
        }
    }

    fn place(topic: &str, partition: i32, replicas: &[i32]) -> Placement {
        Placement {
            topic: topic.into(),
            partition,
            replicas: replicas.to_vec(),
        }
    }

    /// Rack-aware placements as Kafka makes them: each partition's replicas on distinct
    /// brokers, in as many racks as it can, started at a random broker.
    fn random_topic(
        rng: &mut Lcg,
        topic: &str,
        partitions: i32,
        rf: usize,
        b: &Brokers,
        on: &[i32],
    ) -> Vec<Placement> {
        (0..partitions)
            .map(|p| {
                let mut replicas: Vec<i32> = Vec::new();
                while replicas.len() < rf {
                    let used: BTreeSet<Option<&str>> =
                        replicas.iter().map(|r| b.rack(*r)).collect();
                    let fresh: Vec<i32> = on
                        .iter()
                        .copied()
                        .filter(|x| !replicas.contains(x) && !used.contains(&b.rack(*x)))
                        .collect();
                    let any: Vec<i32> = on
                        .iter()
                        .copied()
                        .filter(|x| !replicas.contains(x))
                        .collect();
                    let from = if fresh.is_empty() { &any } else { &fresh };
                    replicas.push(from[rng.below(from.len())]);
                }
                place(topic, p, &replicas)
            })
            .collect()
    }

    /// Applies the proposal to the placements.
    fn result(placements: &[Placement], p: &Proposal) -> Vec<Placement> {
        placements
            .iter()
            .map(|x| {
                let m = p
                    .moves
                    .iter()
                    .find(|m| m.topic == x.topic && m.partition == x.partition);
                match m {
                    Some(m) => {
                        assert_eq!(m.from, x.replicas, "a move starts where the partition is");
                        place(&x.topic, x.partition, &m.to)
                    }
                    None => x.clone(),
                }
            })
            .collect()
    }

    fn counts(placements: &[Placement], targets: &BTreeSet<i32>) -> BTreeMap<i32, usize> {
        let mut c: BTreeMap<i32, usize> = targets.iter().map(|b| (*b, 0)).collect();
        for p in placements {
            for r in &p.replicas {
                *c.entry(*r).or_default() += 1;
            }
        }
        c
    }

    /// The fewest single-replica moves that bring `counts` within one of even: the largest
    /// counts keep the `total % n` extra replicas, and every excess above its share moves.
    fn fewest_moves(counts: &BTreeMap<i32, usize>) -> usize {
        let n = counts.len();
        let total: usize = counts.values().sum();
        let (share, extra) = (total / n, total % n);
        let mut c: Vec<usize> = counts.values().copied().collect();
        c.sort_unstable_by(|a, b| b.cmp(a));
        c.iter()
            .enumerate()
            .map(|(i, n)| n.saturating_sub(share + usize::from(i < extra)))
            .sum()
    }

    /// What must hold of every drain and rebalance.
    fn assert_sound(before: &[Placement], after: &[Placement], b: &Brokers) {
        for (x, y) in before.iter().zip(after) {
            assert_eq!(x.replicas.len(), y.replicas.len(), "RF kept: {x:?} → {y:?}");
            let distinct: BTreeSet<i32> = y.replicas.iter().copied().collect();
            assert_eq!(distinct.len(), y.replicas.len(), "distinct: {y:?}");
            assert!(
                y.replicas.iter().all(|r| b.targets.contains(r)),
                "only targets: {y:?}"
            );
            assert!(
                b.spread(&y.replicas) >= b.spread(&x.replicas),
                "rack spread never reduced: {x:?} → {y:?}"
            );
            if b.targets.contains(&x.replicas[0]) {
                assert_eq!(
                    x.replicas[0], y.replicas[0],
                    "a preferred leader that stays keeps its place unless balancing moved it"
                );
            }
        }
    }

    #[test]
    fn a_drain_moves_every_replica_off_the_leaving_broker_keeping_rf_racks_and_leaders() {
        let mut rng = Lcg(7);
        for round in 0..200 {
            // 6 brokers in 3 racks, broker 1 + rng leaves (its rack keeps its other broker).
            let all = [1, 2, 3, 4, 5, 6];
            let leaving = 1 + rng.below(6) as i32;
            let targets: Vec<i32> = all.iter().copied().filter(|b| *b != leaving).collect();
            let b = brokers(6, 3, &targets);
            let mut placements = random_topic(&mut rng, "a", 12, 3, &b, &all);
            placements.extend(random_topic(&mut rng, "b", 5, 2, &b, &all));
            let p = propose(&placements, &b, false).expect("a drain that can keep the racks");
            let after = result(&placements, &p);
            assert_sound(&placements, &after, &b);
            let held = placements
                .iter()
                .filter(|x| x.replicas.contains(&leaving))
                .count();
            assert_eq!(
                p.moves.len(),
                held,
                "round {round}: only its partitions move"
            );
            assert_eq!(p.replicas_moved(), held, "one replica each");
            assert_eq!(p.flows().out_of(leaving).values().sum::<usize>(), held);
            assert_eq!(counts(&after, &b.targets), p.counts);
            // Where a preferred leader stays, it stays first.
            for (x, y) in placements.iter().zip(&after) {
                if x.replicas[0] != leaving {
                    assert_eq!(x.replicas[0], y.replicas[0]);
                }
            }
        }
    }

    #[test]
    fn a_drain_spreads_the_leaving_brokers_replicas_over_the_least_loaded_brokers() {
        // No racks: broker 4's 6 replicas go 2, 2, 2 to brokers 1-3.
        let b = Brokers {
            targets: [1, 2, 3].into(),
            racks: (1..=4).map(|x| (x, None)).collect(),
        };
        let placements: Vec<Placement> = (0..6)
            .map(|p| {
                let others = [1, 2, 3];
                place("t", p, &[4, others[p as usize % 3]])
            })
            .collect();
        let p = propose(&placements, &b, false).expect("drain");
        let after = result(&placements, &p);
        assert_eq!(p.replicas_moved(), 6);
        let c = counts(&after, &b.targets);
        assert_eq!(
            c.values().copied().collect::<Vec<_>>(),
            vec![4, 4, 4],
            "{c:?}"
        );
    }

    #[test]
    fn a_drain_the_racks_cannot_keep_or_the_replication_factor_cannot_survive_is_refused() {
        // Brokers 3 and 6 are rack r2's only brokers: an RF 3 partition over 3 racks would
        // end in 2.
        let b = brokers(6, 3, &[1, 2, 4, 5]);
        let placements = vec![place("calm", 0, &[1, 5]), place("orders", 3, &[1, 2, 3])];
        let r = propose(&placements, &b, false).expect_err("rack r2 empties");
        assert_eq!(r.topic, "orders");
        assert!(r.reason.contains("partition 3 spans 3 racks"), "{r}");
        assert!(r.reason.contains("would leave it in 2"), "{r}");
        // An RF 2 topic spanning racks r0 and r2 can go to r0 and r1: two racks kept.
        let ok = propose(&[place("pairs", 0, &[1, 3])], &b, false).expect("two racks remain");
        assert_eq!(ok.moves[0].to[0], 1);
        assert_eq!(b.spread(&ok.moves[0].to), 2);

        // Three brokers left for an RF 4 topic.
        let b = brokers(4, 2, &[1, 2, 3]);
        let r = propose(&[place("wide", 0, &[1, 2, 3, 4])], &b, false).expect_err("RF 4");
        assert_eq!(r.topic, "wide");
        assert!(
            r.to_string()
                .starts_with("topic wide: replication factor 4 (partition 0), but only 3 brokers would remain (broker-1, broker-2, broker-3)"),
            "{r}"
        );
    }

    #[test]
    fn a_rebalance_onto_new_brokers_moves_the_fewest_replicas_to_within_one_of_even() {
        let mut rng = Lcg(11);
        for round in 0..100 {
            // 4 brokers in 2 racks hold everything; 2 new brokers join (one per rack).
            let old = [1, 2, 3, 4];
            let b = brokers(6, 2, &[1, 2, 3, 4, 5, 6]);
            let partitions = 7 + rng.below(9) as i32;
            let mut placements = random_topic(&mut rng, "a", partitions, 2, &b, &old);
            placements.extend(random_topic(&mut rng, "b", 3, 2, &b, &old));
            let p = propose(&placements, &b, true).expect("rebalance");
            let after = result(&placements, &p);
            assert_sound_rebalance(&placements, &after, &b);
            let c = counts(&after, &b.targets);
            let (min, max) = (c.values().min(), c.values().max());
            assert!(
                max.zip(min).is_some_and(|(a, z)| a - z <= 1),
                "round {round}: within one of even: {c:?}"
            );
            assert_eq!(p.uneven, None);
            assert_eq!(
                p.replicas_moved(),
                fewest_moves(&counts(&placements, &b.targets)),
                "round {round}: the fewest moves"
            );
            assert!(
                p.counts[&5] > 0 && p.counts[&6] > 0,
                "the new brokers hold replicas"
            );
            // Proposing again on the result moves nothing: the same answer on every poll.
            assert_eq!(propose(&after, &b, true).expect("again").moves, vec![]);
        }
    }

    /// A rebalance may move preferred leaders, but never lowers a rack spread or the RF.
    fn assert_sound_rebalance(before: &[Placement], after: &[Placement], b: &Brokers) {
        for (x, y) in before.iter().zip(after) {
            assert_eq!(x.replicas.len(), y.replicas.len());
            assert!(
                b.spread(&y.replicas) >= b.spread(&x.replicas),
                "{x:?} → {y:?}"
            );
            let distinct: BTreeSet<i32> = y.replicas.iter().copied().collect();
            assert_eq!(distinct.len(), y.replicas.len());
        }
    }

    #[test]
    fn a_new_broker_in_a_rack_with_another_takes_half_of_that_racks_share_and_no_more() {
        // Kafka's 4-broker, 3-zone layout: brokers 1 and 4 in r0, 2 in r1, 3 in r2. Every RF 3
        // partition has one replica per rack, so only broker 1's replicas may go to broker 4.
        let b = brokers(4, 3, &[1, 2, 3, 4]);
        let placements: Vec<Placement> = (0..8)
            .map(|p| {
                let mut r = vec![1, 2, 3];
                r.rotate_left(p as usize % 3);
                place("rolled", p, &r)
            })
            .collect();
        let p = propose(&placements, &b, true).expect("rebalance");
        let after = result(&placements, &p);
        assert_sound_rebalance(&placements, &after, &b);
        assert_eq!(p.counts, [(1, 4), (2, 8), (3, 8), (4, 4)].into());
        assert_eq!(p.replicas_moved(), 4);
        assert_eq!(p.flows().into_broker(4), [(1, 4)].into());
        assert!(
            p.uneven
                .as_deref()
                .is_some_and(|u| u.starts_with("replicas per broker stay between 4 and 8")),
            "{:?}",
            p.uneven
        );
        // Broker 1 led 3 of the 8; broker 4 takes some leadership with its replicas.
        let leaders4 = after.iter().filter(|x| x.replicas[0] == 4).count();
        assert!(leaders4 >= 1, "{after:?}");
        // Without `balance`, a scale-out moves nothing.
        assert_eq!(
            propose(&placements, &b, false).expect("drain").moves,
            vec![]
        );
    }

    #[test]
    fn the_proposal_is_kafkas_reassignment_json() {
        let b = brokers(3, 3, &[1, 2]);
        let p = propose(&[place("t", 0, &[3, 1])], &b, false).expect("drain");
        assert_eq!(
            p.kafka_json(),
            serde_json::json!({"version": 1, "partitions": [{"topic": "t", "partition": 0, "replicas": [2, 1]}]})
        );
    }

    #[test]
    fn an_ongoing_reassignment_ends_on_its_replicas_without_those_it_removes() {
        let o = Ongoing {
            topic: "t".into(),
            partition: 1,
            replicas: vec![1, 2, 4, 3],
            adding: vec![3],
            removing: vec![4],
        };
        assert_eq!(o.target(), vec![1, 2, 3]);
    }
}
