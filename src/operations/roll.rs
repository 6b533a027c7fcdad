//! A roll is an availability decision: which node goes next, and whether it may go now, computed
//! as values from the cluster's observed health (the model is Strimzi's KafkaAvailability and
//! KafkaRoller). ZooKeeper followers first, the leader last, each only while the ensemble serves
//! with every follower synced; brokers with the active controller last, none stopped while a
//! partition it holds in sync would fall below `min.insync.replicas`, and the next one only once
//! no partition is under-replicated; KRaft controllers with the quorum's leader last, each only
//! while the quorum has a leader and every voter is caught up with it; Kafka Connect workers one
//! at a time, each only while every worker of the group answers its REST API. Nothing here does
//! I/O: `health.rs` observes, `apply.rs` acts.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::cluster::role::Role;

/// What one ZooKeeper member answered to `mntr`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum ZkState {
    Leader {
        /// `zk_synced_followers`: followers up to date with the leader.
        synced_followers: u32,
    },
    Follower,
    /// Reachable but not serving (no quorum), or not reachable at all: why.
    Down(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ZkMember {
    pub node: String,
    pub state: ZkState,
}

/// One partition as Kafka's metadata describes it, with its topic's `min.insync.replicas`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Partition {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub min_isr: Option<i32>,
}

/// The brokers' view of the cluster: who is registered, who is the controller, every partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct KafkaView {
    pub brokers: BTreeSet<i32>,
    pub controller: Option<i32>,
    pub partitions: Vec<Partition>,
    /// Each registered broker's `broker.rack`, if it has one.
    pub racks: BTreeMap<i32, String>,
}

/// One voter of a KRaft controller quorum as DescribeQuorum reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Voter {
    /// The controller's `node.id`.
    pub id: i32,
    pub log_end_offset: i64,
    /// When the voter last had the leader's whole log (the leader's clock, ms); -1 if never.
    pub last_caught_up_ms: i64,
}

/// The KRaft controller quorum as its leader describes it (DescribeQuorum).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuorumView {
    /// `None` while no leader is elected.
    pub leader: Option<i32>,
    pub high_watermark: i64,
    pub voters: Vec<Voter>,
}

impl QuorumView {
    /// The leader and its own clock when it answered (the leader reports itself caught up at
    /// that moment): the reference for the voters' caught-up times.
    pub fn leader_clock(&self) -> Option<(i32, i64)> {
        let leader = self.leader?;
        let own = self.voters.iter().find(|v| v.id == leader)?;
        Some((leader, own.last_caught_up_ms))
    }
}

/// A gate's verdict: go on, or wait because of `check`, with what was seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Decision {
    Go,
    Wait { check: String, seen: String },
}

impl Decision {
    fn wait(check: &str, seen: impl Into<String>) -> Decision {
        Decision::Wait {
            check: check.to_string(),
            seen: seen.into(),
        }
    }
}

/// The check every ZooKeeper gate makes: every member of the ensemble serves, exactly one leads,
/// and the leader counts every other member as a synced follower.
pub const ZK_SYNCED: &str = "the ZooKeeper ensemble serves with every follower synced (mntr)";
/// Before a broker stops.
pub const BROKER_MIN_ISR: &str =
    "no partition the broker holds in sync would fall below min.insync.replicas";
/// After a broker is back.
pub const BROKER_REPLICATED: &str =
    "the broker is registered and no partition is under-replicated (ISR = replicas everywhere)";

/// The check every KRaft controller gate makes.
pub const KRAFT_CAUGHT_UP: &str =
    "the KRaft controller quorum has a leader and every voter caught up with it (DescribeQuorum)";
/// A follower counts as caught up when it had the leader's whole log this recently (Kafka's
/// default `controller.quorum.fetch.timeout.ms`, the bound Strimzi's quorum check uses too).
pub const CAUGHT_UP_WITHIN_MS: i64 = 2_000;

/// Whether the controller quorum is whole: a leader among `voters`, every one of `voters` in
/// the quorum, and each caught up with the leader (its last caught-up time within
/// [`CAUGHT_UP_WITHIN_MS`] of the leader's own). Asked before a controller stops and after it is
/// back — stricter than Strimzi's rule (a majority caught up without the one to stop), as
/// ZooKeeper's gate is: a roll never starts on a quorum that is already short.
pub fn kraft_whole(view: &QuorumView, voters: &[i32]) -> Decision {
    let seen = || {
        let each = view
            .voters
            .iter()
            .map(|v| {
                format!(
                    "{}: log end {}, caught up at {}",
                    v.id, v.log_end_offset, v.last_caught_up_ms
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        format!(
            "leader {:?}, high watermark {}; {each}",
            view.leader, view.high_watermark
        )
    };
    let Some((leader, reference)) = view.leader_clock().filter(|(l, _)| voters.contains(l)) else {
        return Decision::wait(KRAFT_CAUGHT_UP, seen());
    };
    let caught_up = |id: i32| {
        view.voters.iter().any(|v| {
            v.id == id
                && (v.id == leader
                    || (v.last_caught_up_ms >= 0
                        && reference - v.last_caught_up_ms <= CAUGHT_UP_WITHIN_MS))
        })
    };
    if voters.iter().all(|id| caught_up(*id)) {
        Decision::Go
    } else {
        Decision::wait(KRAFT_CAUGHT_UP, seen())
    }
}

/// Controller `id` is back: the quorum is whole ([`kraft_whole`]) and `id`'s last caught-up time
/// moved on since the `earlier` reading by the same leader. A restarted voter's old time stays
/// "recent" for a moment after it stopped, so recency alone cannot tell a voter that came back
/// from one that has not yet; one that advances is fetching now.
pub fn kraft_rejoined(earlier: Option<&QuorumView>, now: &QuorumView, id: i32) -> Decision {
    let decision = kraft_whole(now, &now.voters.iter().map(|v| v.id).collect::<Vec<_>>());
    if decision != Decision::Go {
        return decision;
    }
    let caught_up = |q: &QuorumView| {
        q.voters
            .iter()
            .find(|v| v.id == id)
            .map(|v| v.last_caught_up_ms)
    };
    match earlier {
        Some(e) if e.leader == now.leader && caught_up(e) < caught_up(now) => Decision::Go,
        _ => Decision::wait(
            KRAFT_CAUGHT_UP,
            format!(
                "voter {id} has not caught up again since it restarted (caught up at {:?})",
                caught_up(now)
            ),
        ),
    }
}

/// Why the members of a running quorum (ZooKeeper's ensemble, KRaft's controllers) may not change
/// as planned, or `None`. kcluster renders static membership (`server.N` lines,
/// `controller.quorum.voters`), and changing it by restarts is not safe: ZooKeeper members with
/// the new list and members with the old one do not form one ensemble (the roll stalls, or new
/// empty members holding a majority elect a leader over an empty tree), and a removed member is
/// a planned reconfiguration, not a termination; Kafka cannot change a static KRaft quorum's
/// voters at all. `running` are the members that exist, `added` and `removed` the change.
pub fn membership_change(
    role: Role,
    running: &[String],
    added: &[String],
    removed: &[String],
) -> Option<String> {
    if running.is_empty() || (added.is_empty() && removed.is_empty()) {
        return None;
    }
    let what = match (added.is_empty(), removed.is_empty()) {
        (false, true) => format!("adds {}", added.join(", ")),
        (true, false) => format!("removes {}", removed.join(", ")),
        _ => format!(
            "adds {} and removes {}",
            added.join(", "),
            removed.join(", ")
        ),
    };
    let how = match role {
        Role::Controller => {
            "the KRaft quorum is static (controller.quorum.voters) and Kafka cannot change a running static quorum's voters; keep the controllers' count (a dynamic quorum, KIP-853, is not run by kcluster)"
        }
        _ => {
            "ZooKeeper's membership is static (server.N lines); changing it by rolling restarts can stall the ensemble or let new empty members elect a leader over an empty tree, and removing a member is a planned reconfiguration kcluster does not run. Change it by hand (ZooKeeper's `reconfig`, or a maintenance window), then apply the new count"
        }
    };
    Some(format!(
        "the plan {what} while {} run: {how}",
        running.join(", ")
    ))
}

/// The order controllers roll in: by id, the quorum's leader last (so leadership moves once).
pub fn controller_order(nodes: &[(String, i32)], leader: Option<i32>) -> Vec<String> {
    broker_order(nodes, leader)
}

/// Whether the ensemble of `size` members is whole: one leader with `size - 1` synced followers,
/// every other member a follower.
pub fn zookeeper_whole(members: &[ZkMember], size: usize) -> Decision {
    let seen = members
        .iter()
        .map(|m| match &m.state {
            ZkState::Leader { synced_followers } => {
                format!("{}: leader, {synced_followers} synced followers", m.node)
            }
            ZkState::Follower => format!("{}: follower", m.node),
            ZkState::Down(why) => format!("{}: {why}", m.node),
        })
        .collect::<Vec<_>>()
        .join("; ");
    let leaders: Vec<u32> = members
        .iter()
        .filter_map(|m| match m.state {
            ZkState::Leader { synced_followers } => Some(synced_followers),
            _ => None,
        })
        .collect();
    let followers = members
        .iter()
        .filter(|m| m.state == ZkState::Follower)
        .count();
    let want = u32::try_from(size.saturating_sub(1)).unwrap_or(u32::MAX);
    match leaders.as_slice() {
        [synced] if *synced >= want && followers + 1 == size && members.len() == size => {
            Decision::Go
        }
        _ => Decision::wait(ZK_SYNCED, seen),
    }
}

/// The order ZooKeeper members roll in: followers first (by name), the leader last.
pub fn zookeeper_order(nodes: &[String], members: &[ZkMember]) -> Vec<String> {
    let leader = members
        .iter()
        .find(|m| matches!(m.state, ZkState::Leader { .. }))
        .map(|m| m.node.as_str());
    let mut out: Vec<String> = nodes.to_vec();
    out.sort_by_key(|n| (Some(n.as_str()) == leader, n.clone()));
    out
}

/// The order brokers roll in: by id, the active controller last (so the controller moves once).
pub fn broker_order(nodes: &[(String, i32)], controller: Option<i32>) -> Vec<String> {
    let mut out: Vec<(String, i32)> = nodes.to_vec();
    out.sort_by_key(|(_, id)| (Some(*id) == controller, *id));
    out.into_iter().map(|(n, _)| n).collect()
}

/// Strimzi's rule: broker `id` may stop unless a partition it holds in sync has no spare in-sync
/// replica above `min.insync.replicas` (or is already below it). A partition with no more
/// replicas than its minimum can never keep it through a restart, so it does not block (as in
/// Strimzi); a topic without the setting does not either.
pub fn broker_can_stop(view: &KafkaView, id: i32) -> Decision {
    let mut blocking = Vec::new();
    for p in view.partitions.iter().filter(|p| p.replicas.contains(&id)) {
        let Some(min) = p.min_isr else { continue };
        if p.replicas.len() as i32 <= min {
            continue;
        }
        let spare = p.isr.len() as i32 - min;
        if spare < 0 || (spare == 0 && p.isr.contains(&id)) {
            blocking.push(format!(
                "{}-{} ISR {:?} of replicas {:?}, min.insync.replicas {min}",
                p.topic, p.partition, p.isr, p.replicas
            ));
        }
    }
    if blocking.is_empty() {
        Decision::Go
    } else {
        let more = blocking.len().saturating_sub(5);
        blocking.truncate(5);
        let mut seen = blocking.join("; ");
        if more > 0 {
            seen.push_str(&format!(" and {more} more"));
        }
        Decision::wait(BROKER_MIN_ISR, seen)
    }
}

/// Broker `id` is back: registered, and every partition of the cluster has its whole replica set
/// in sync again.
pub fn broker_back(view: &KafkaView, id: i32) -> Decision {
    if !view.brokers.contains(&id) {
        return Decision::wait(
            BROKER_REPLICATED,
            format!(
                "broker {id} is not registered (registered: {:?})",
                view.brokers
            ),
        );
    }
    let under: Vec<String> = view
        .partitions
        .iter()
        .filter(|p| p.isr.len() < p.replicas.len())
        .map(|p| {
            format!(
                "{}-{} ISR {:?} of {:?}",
                p.topic, p.partition, p.isr, p.replicas
            )
        })
        .collect();
    if under.is_empty() {
        Decision::Go
    } else {
        let count = under.len();
        Decision::wait(
            BROKER_REPLICATED,
            format!(
                "{count} under-replicated partitions, e.g. {}",
                under[..count.min(3)].join("; ")
            ),
        )
    }
}

/// What one Kafka Connect worker's REST API answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectWorker {
    pub node: String,
    pub state: ConnectState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum ConnectState {
    /// `GET /` gave the worker's Kafka version and `GET /connectors` the group's connectors: a
    /// worker answers the latter only once it has joined the group and read its configs (during
    /// a rebalance or its start it answers 409 or 503).
    Up {
        version: String,
        connectors: Vec<String>,
    },
    /// Not answering, or not yet serving: why.
    Down(String),
}

/// The check every Connect gate makes, before a worker stops and after it is back.
pub const CONNECT_WHOLE: &str = "every Connect worker answers its REST API (GET / with its version, GET /connectors with the same connectors as the others)";

/// Whether the worker group of `size` is whole: every worker answers `/` and `/connectors`, and
/// all list the same connectors (each has read the group's configs). A worker holds no data, so
/// this is all a restart needs: the group moves its tasks while it is away, and takes them back
/// once it rejoins.
pub fn connect_group_whole(workers: &[ConnectWorker], size: usize) -> Decision {
    let seen = workers
        .iter()
        .map(|w| match &w.state {
            ConnectState::Up {
                version,
                connectors,
            } => format!(
                "{}: up (Kafka {version}), connectors {connectors:?}",
                w.node
            ),
            ConnectState::Down(why) => format!("{}: {why}", w.node),
        })
        .collect::<Vec<_>>()
        .join("; ");
    let lists: BTreeSet<&Vec<String>> = workers
        .iter()
        .filter_map(|w| match &w.state {
            ConnectState::Up { connectors, .. } => Some(connectors),
            ConnectState::Down(_) => None,
        })
        .collect();
    let up = workers
        .iter()
        .filter(|w| matches!(w.state, ConnectState::Up { .. }))
        .count();
    if workers.len() == size && up == size && lists.len() <= 1 {
        Decision::Go
    } else {
        Decision::wait(CONNECT_WHOLE, seen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quorum(leader: Option<i32>, voters: &[(i32, i64)]) -> QuorumView {
        QuorumView {
            leader,
            high_watermark: 100,
            voters: voters
                .iter()
                .map(|(id, t)| Voter {
                    id: *id,
                    log_end_offset: 100,
                    last_caught_up_ms: *t,
                })
                .collect(),
        }
    }

    #[test]
    fn a_kraft_quorum_is_whole_with_a_leader_and_every_voter_caught_up_with_it() {
        let ids = [9001, 9002, 9003];
        let whole = quorum(Some(9002), &[(9001, 9_000), (9002, 10_000), (9003, 8_500)]);
        assert_eq!(kraft_whole(&whole, &ids), Decision::Go);
        // A follower that last caught up 2.5 s before the leader's clock: not yet.
        let lagging = quorum(Some(9002), &[(9001, 9_000), (9002, 10_000), (9003, 7_500)]);
        assert!(
            matches!(kraft_whole(&lagging, &ids), Decision::Wait { check, .. } if check == KRAFT_CAUGHT_UP)
        );
        // One that never caught up (just restarted), one missing, no leader, a leader outside.
        for view in [
            quorum(Some(9002), &[(9001, -1), (9002, 10_000), (9003, 9_900)]),
            quorum(Some(9002), &[(9002, 10_000), (9003, 9_900)]),
            quorum(None, &[(9001, 9_000), (9002, 10_000), (9003, 9_900)]),
            quorum(Some(7), &[(9001, 9_000), (9002, 10_000), (9003, 9_900)]),
        ] {
            assert_ne!(kraft_whole(&view, &ids), Decision::Go, "{view:?}");
        }
    }

    #[test]
    fn a_restarted_controller_is_back_only_once_its_caught_up_time_moves_on() {
        let before = quorum(Some(9001), &[(9001, 10_000), (9002, 9_800), (9003, 9_900)]);
        // Its old time is still recent: not yet back.
        let stale = quorum(Some(9001), &[(9001, 11_000), (9002, 9_800), (9003, 10_900)]);
        assert!(matches!(
            kraft_rejoined(None, &before, 9002),
            Decision::Wait { .. }
        ));
        assert!(matches!(
            kraft_rejoined(Some(&before), &stale, 9002),
            Decision::Wait { .. }
        ));
        let fetching = quorum(
            Some(9001),
            &[(9001, 11_500), (9002, 11_400), (9003, 11_450)],
        );
        assert_eq!(kraft_rejoined(Some(&stale), &fetching, 9002), Decision::Go);
        // Another leader since: its times are not comparable; wait for a second reading.
        let elsewhere = quorum(
            Some(9003),
            &[(9001, 11_400), (9002, 11_450), (9003, 11_500)],
        );
        assert!(matches!(
            kraft_rejoined(Some(&stale), &elsewhere, 9002),
            Decision::Wait { .. }
        ));
    }

    #[test]
    fn a_running_quorum_keeps_its_members() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let running = names(&["zookeeper-1", "zookeeper-2", "zookeeper-3"]);
        assert_eq!(membership_change(Role::Zookeeper, &running, &[], &[]), None);
        // A new cluster: nothing runs yet.
        assert_eq!(membership_change(Role::Zookeeper, &[], &running, &[]), None);
        let grow = membership_change(
            Role::Zookeeper,
            &running,
            &names(&["zookeeper-4", "zookeeper-5"]),
            &[],
        )
        .expect("refused");
        assert!(
            grow.starts_with("the plan adds zookeeper-4, zookeeper-5 while zookeeper-1, zookeeper-2, zookeeper-3 run: ZooKeeper's membership is static"),
            "{grow}"
        );
        let shrink = membership_change(
            Role::Controller,
            &running[..2],
            &[],
            &names(&["controller-3"]),
        )
        .expect("refused");
        assert!(shrink.contains("removes controller-3"), "{shrink}");
        assert!(shrink.contains("controller.quorum.voters"), "{shrink}");
    }

    #[test]
    fn controllers_roll_by_id_with_the_quorum_leader_last() {
        let nodes = [
            ("controller-1".to_string(), 9001),
            ("controller-2".to_string(), 9002),
            ("controller-3".to_string(), 9003),
        ];
        assert_eq!(
            controller_order(&nodes, Some(9001)),
            ["controller-2", "controller-3", "controller-1"]
        );
    }

    fn p(topic: &str, replicas: &[i32], isr: &[i32], min: i32) -> Partition {
        Partition {
            topic: topic.into(),
            partition: 0,
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            min_isr: Some(min),
        }
    }

    fn view(partitions: Vec<Partition>) -> KafkaView {
        KafkaView {
            brokers: [1, 2, 3].into(),
            controller: Some(2),
            partitions,
            racks: BTreeMap::new(),
        }
    }

    #[test]
    fn a_broker_whose_partition_has_a_spare_in_sync_replica_may_stop() {
        let v = view(vec![p("t", &[1, 2, 3], &[1, 2, 3], 2)]);
        assert_eq!(broker_can_stop(&v, 1), Decision::Go);
    }

    #[test]
    fn a_broker_in_the_isr_of_a_partition_at_min_isr_may_not_stop() {
        let v = view(vec![p("t", &[1, 2, 3], &[1, 2], 2)]);
        let Decision::Wait { check, seen } = broker_can_stop(&v, 1) else {
            panic!("must wait")
        };
        assert_eq!(check, BROKER_MIN_ISR);
        assert!(
            seen.contains("t-0 ISR [1, 2] of replicas [1, 2, 3]"),
            "{seen}"
        );
        // Broker 3 is out of that ISR already: stopping it changes nothing.
        assert_eq!(broker_can_stop(&v, 3), Decision::Go);
    }

    #[test]
    fn a_partition_already_below_min_isr_blocks_every_replica() {
        let v = view(vec![p("t", &[1, 2, 3], &[1], 2)]);
        assert!(matches!(broker_can_stop(&v, 3), Decision::Wait { .. }));
    }

    #[test]
    fn replicas_not_above_min_isr_never_block_as_in_strimzi() {
        let v = view(vec![p("t", &[1, 2], &[1, 2], 2)]);
        assert_eq!(broker_can_stop(&v, 1), Decision::Go);
    }

    #[test]
    fn a_broker_is_back_once_registered_and_nothing_is_under_replicated() {
        let mut v = view(vec![p("t", &[1, 2, 3], &[2, 3], 2)]);
        assert!(matches!(broker_back(&v, 1), Decision::Wait { .. }));
        v.partitions[0].isr = vec![1, 2, 3];
        assert_eq!(broker_back(&v, 1), Decision::Go);
        v.brokers.remove(&1);
        let Decision::Wait { seen, .. } = broker_back(&v, 1) else {
            panic!("not registered")
        };
        assert!(seen.contains("broker 1 is not registered"), "{seen}");
    }

    #[test]
    fn the_controller_and_the_leader_roll_last() {
        let brokers = vec![
            ("broker-1".into(), 1),
            ("broker-2".into(), 2),
            ("broker-3".into(), 3),
        ];
        assert_eq!(
            broker_order(&brokers, Some(1)),
            vec!["broker-2", "broker-3", "broker-1"]
        );
        let members = vec![
            ZkMember {
                node: "zookeeper-1".into(),
                state: ZkState::Leader {
                    synced_followers: 2,
                },
            },
            ZkMember {
                node: "zookeeper-2".into(),
                state: ZkState::Follower,
            },
        ];
        let nodes: Vec<String> = vec!["zookeeper-1".into(), "zookeeper-2".into()];
        assert_eq!(
            zookeeper_order(&nodes, &members),
            vec!["zookeeper-2", "zookeeper-1"]
        );
    }

    #[test]
    fn the_ensemble_is_whole_only_with_one_leader_and_every_follower_synced() {
        let member = |n: &str, state: ZkState| ZkMember {
            node: n.into(),
            state,
        };
        let mut m = vec![
            member(
                "zookeeper-1",
                ZkState::Leader {
                    synced_followers: 2,
                },
            ),
            member("zookeeper-2", ZkState::Follower),
            member("zookeeper-3", ZkState::Follower),
        ];
        assert_eq!(zookeeper_whole(&m, 3), Decision::Go);
        m[0].state = ZkState::Leader {
            synced_followers: 1,
        };
        assert!(matches!(zookeeper_whole(&m, 3), Decision::Wait { .. }));
        m[0].state = ZkState::Leader {
            synced_followers: 2,
        };
        m[2].state = ZkState::Down("connection refused".into());
        let Decision::Wait { check, seen } = zookeeper_whole(&m, 3) else {
            panic!("one down")
        };
        assert_eq!(check, ZK_SYNCED);
        assert!(seen.contains("zookeeper-3: connection refused"), "{seen}");
    }

    fn worker(node: &str, connectors: Option<&[&str]>) -> ConnectWorker {
        ConnectWorker {
            node: node.into(),
            state: match connectors {
                Some(c) => ConnectState::Up {
                    version: "3.9.2".into(),
                    connectors: c.iter().map(|s| s.to_string()).collect(),
                },
                None => ConnectState::Down("HTTP 503".into()),
            },
        }
    }

    #[test]
    fn a_connect_group_is_whole_when_every_worker_answers_with_the_same_connectors() {
        let all = |c: &[&str]| {
            ["connect-1", "connect-2", "connect-3"]
                .map(|n| worker(n, Some(c)))
                .to_vec()
        };
        assert_eq!(connect_group_whole(&all(&["sink"]), 3), Decision::Go);
        assert_eq!(connect_group_whole(&all(&[]), 3), Decision::Go);
        // One worker not back yet.
        let mut w = all(&["sink"]);
        w[1] = worker("connect-2", None);
        let Decision::Wait { check, seen } = connect_group_whole(&w, 3) else {
            panic!("must wait")
        };
        assert_eq!(check, CONNECT_WHOLE);
        assert!(seen.contains("connect-2: HTTP 503"), "{seen}");
        assert!(
            seen.contains("connect-1: up (Kafka 3.9.2), connectors [\"sink\"]"),
            "{seen}"
        );
        // A worker that has not read the group's configs yet.
        let mut w = all(&["sink", "source"]);
        w[2] = worker("connect-3", Some(&[]));
        assert!(matches!(connect_group_whole(&w, 3), Decision::Wait { .. }));
        // A worker missing from the answers.
        assert!(matches!(
            connect_group_whole(&all(&["sink"])[..2], 3),
            Decision::Wait { .. }
        ));
    }
}
