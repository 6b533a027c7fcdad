//! A roll is an availability decision: which node goes next, and whether it may go now, computed
//! as values from the cluster's observed health (the model is Strimzi's KafkaAvailability and
//! KafkaRoller). ZooKeeper followers first, the leader last, each only while the ensemble serves
//! with every follower synced; brokers with the active controller last, none stopped while a
//! partition it holds in sync would fall below `min.insync.replicas`, and the next one only once
//! no partition is under-replicated; Kafka Connect workers one at a time, each only while every
//! worker of the group answers its REST API. Nothing here does I/O: `health.rs` observes,
//! `apply.rs` acts.

use std::collections::BTreeSet;

use serde::Serialize;

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
