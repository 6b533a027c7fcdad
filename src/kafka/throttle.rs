//! The replication throttle kcluster puts on its own replica moves, computed as values (no I/O:
//! `drain.rs` reads the configs and asks Kafka to change them), the way Kafka's
//! `kafka-reassign-partitions.sh --throttle` sets it: the brokers a move involves get
//! `leader.replication.throttled.rate` and `follower.replication.throttled.rate`; each moving
//! topic gets `leader.replication.throttled.replicas` (every partition's current replicas, which
//! the new ones fetch from) and `follower.replication.throttled.replicas` (the new replicas only).
//! Unlike Kafka's tool, kcluster removes exactly what it set once the moves are done, and finds a
//! throttle an interrupted apply left by its rate: a broker's rate is kcluster's when it is
//! exactly the rate this apply uses; any other rate is an operator's and is never touched.

use std::collections::{BTreeMap, BTreeSet};

use crate::kafka::reassign::{Move, Ongoing};

pub const LEADER_RATE: &str = "leader.replication.throttled.rate";
pub const FOLLOWER_RATE: &str = "follower.replication.throttled.rate";
pub const LEADER_REPLICAS: &str = "leader.replication.throttled.replicas";
pub const FOLLOWER_REPLICAS: &str = "follower.replication.throttled.replicas";
const RATES: [&str; 2] = [LEADER_RATE, FOLLOWER_RATE];
const LISTS: [&str; 2] = [LEADER_REPLICAS, FOLLOWER_REPLICAS];

/// 40 MiB/s per broker, each way. kcluster's brokers are m5.xlarge (1.25 Gbit/s network
/// baseline, about 149 MiB/s) on gp3 volumes at their included 125 MiB/s: 40 MiB/s is about a
/// third of the volume's throughput and a quarter of the network baseline, leaving the rest to
/// producers, consumers and the replication of new writes; on an m5.large (0.75 Gbit/s, about
/// 89 MiB/s) it is under half. A 100 GiB broker drains in about 45 minutes.
pub const DEFAULT_RATE: u64 = 40 * 1024 * 1024;

/// How fast moved replicas may copy: at most so many bytes per second per broker, or without a
/// throttle (`--move-rate none`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveRate {
    Limit(u64),
    Unthrottled,
}

impl Default for MoveRate {
    fn default() -> Self {
        MoveRate::Limit(DEFAULT_RATE)
    }
}

impl MoveRate {
    /// `50MiB/s`, `800KiB/s`, `1000000` (bytes per second), or `none`.
    pub fn parse(text: &str) -> Result<MoveRate, String> {
        if text.trim().eq_ignore_ascii_case("none") {
            return Ok(MoveRate::Unthrottled);
        }
        match crate::render::client_config::parse_rate(text) {
            Ok(0) => Err(format!(
                "`{text}` would stop every move; give a rate like `40MiB/s`, or `none` to move without a throttle"
            )),
            Ok(r) => Ok(MoveRate::Limit(r)),
            Err(e) => Err(format!("{e}, or `none` to move without a throttle")),
        }
    }

    /// The rate a broker's throttle has when kcluster set it (with `none`, the default's: an
    /// unthrottled apply still removes what a throttled one left).
    pub fn mark(self) -> u64 {
        match self {
            MoveRate::Limit(r) => r,
            MoveRate::Unthrottled => DEFAULT_RATE,
        }
    }
}

impl std::fmt::Display for MoveRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MoveRate::Unthrottled => f.write_str("no throttle"),
            MoveRate::Limit(r) if r % (1024 * 1024) == 0 => write!(f, "{} MiB/s", r / 1024 / 1024),
            MoveRate::Limit(r) if r % 1024 == 0 => write!(f, "{} KiB/s", r / 1024),
            MoveRate::Limit(r) => write!(f, "{r} B/s"),
        }
    }
}

/// What a set of moves throttles: the brokers, and per topic the `partition:broker` entries of
/// the leader and follower lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Throttle {
    pub brokers: BTreeSet<i32>,
    pub leader: BTreeMap<String, BTreeSet<(i32, i32)>>,
    pub follower: BTreeMap<String, BTreeSet<(i32, i32)>>,
}

impl Throttle {
    /// As Kafka's tool computes it: a partition's sources are its replicas before the move (for
    /// one already moving, its replicas but those being added), its destinations the target's
    /// other brokers; the leader list names every source, the follower list every destination,
    /// and every source and destination is a throttled broker. Reassignments under way are
    /// throttled too, as the tool does, so that a resumed move keeps its throttle.
    pub fn of(moves: &[Move], ongoing: &[Ongoing]) -> Throttle {
        // Partition → (sources, destinations).
        type Ends = (BTreeSet<i32>, BTreeSet<i32>);
        let mut parts: BTreeMap<(&str, i32), Ends> = BTreeMap::new();
        for o in ongoing {
            let sources = o
                .replicas
                .iter()
                .copied()
                .filter(|b| !o.adding.contains(b))
                .collect();
            let destinations = o.adding.iter().copied().collect();
            parts.insert((&o.topic, o.partition), (sources, destinations));
        }
        for m in moves {
            let key = (m.topic.as_str(), m.partition);
            let sources: BTreeSet<i32> = match parts.get(&key) {
                Some((s, _)) => s.clone(),
                None => m.from.iter().copied().collect(),
            };
            let destinations =
                m.to.iter()
                    .copied()
                    .filter(|b| !sources.contains(b))
                    .collect();
            parts.insert(key, (sources, destinations));
        }
        let mut t = Throttle::default();
        for ((topic, partition), (sources, destinations)) in parts {
            for s in &sources {
                t.leader
                    .entry(topic.to_string())
                    .or_default()
                    .insert((partition, *s));
            }
            for d in &destinations {
                t.follower
                    .entry(topic.to_string())
                    .or_default()
                    .insert((partition, *d));
            }
            t.brokers.extend(sources.iter().chain(&destinations));
        }
        t
    }

    /// Adds what `other` throttles.
    pub fn merge(&mut self, other: &Throttle) {
        self.brokers.extend(&other.brokers);
        for (mine, theirs) in [
            (&mut self.leader, &other.leader),
            (&mut self.follower, &other.follower),
        ] {
            for (topic, entries) in theirs {
                mine.entry(topic.clone()).or_default().extend(entries);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.brokers.is_empty()
    }

    fn entries(&self, list: &str) -> &BTreeMap<String, BTreeSet<(i32, i32)>> {
        if list == LEADER_REPLICAS {
            &self.leader
        } else {
            &self.follower
        }
    }
}

/// The throttle configs as Kafka reports them: the dynamic per-broker rates of each broker that
/// has any, and the lists of each topic that has any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    /// Broker → config name → value.
    pub brokers: BTreeMap<i32, BTreeMap<String, String>>,
    /// Topic → config name → value.
    pub topics: BTreeMap<String, BTreeMap<String, String>>,
    /// The brokers registered with the cluster (empty when not known).
    pub registered: BTreeSet<i32>,
}

/// What one IncrementalAlterConfigs operation changes: a broker's or a topic's config, set to a
/// value or deleted (`None`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    pub resource: Resource,
    pub name: &'static str,
    pub value: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Resource {
    Broker(i32),
    Topic(String),
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.resource {
            Resource::Broker(b) => write!(f, "broker {b} ")?,
            Resource::Topic(t) => write!(f, "topic {t} ")?,
        }
        match &self.value {
            Some(v) => write!(f, "{}={v}", self.name),
            None => write!(f, "{} deleted", self.name),
        }
    }
}

/// The entries of a throttled-replicas list (`0:1,0:2`); `*` (every replica) is not a list.
fn entries(value: &str) -> Option<BTreeSet<String>> {
    if value.trim() == "*" {
        return None;
    }
    Some(
        value
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_string)
            .collect(),
    )
}

fn joined(entries: &BTreeSet<String>) -> String {
    entries.iter().cloned().collect::<Vec<_>>().join(",")
}

/// What kcluster changes before it asks Kafka for `throttle`'s moves at `rate`: both rates on
/// every involved broker (one whose rate someone else set keeps it: that is named in the notes),
/// and its entries added to each moving topic's lists (entries already there stay; a list of
/// `*` already throttles every replica and is left as it is).
pub fn to_set(throttle: &Throttle, rate: u64, seen: &Seen) -> (Vec<Change>, Vec<String>) {
    let mut changes = Vec::new();
    let mut notes = Vec::new();
    let ours = rate.to_string();
    for b in &throttle.brokers {
        let has = seen.brokers.get(b);
        for name in RATES {
            match has.and_then(|c| c.get(name)) {
                Some(v) if *v == ours => {}
                Some(v) => notes.push(format!(
                    "broker {b} keeps its {name} of {v}, which kcluster did not set"
                )),
                None => changes.push(Change {
                    resource: Resource::Broker(*b),
                    name,
                    value: Some(ours.clone()),
                }),
            }
        }
    }
    for name in LISTS {
        for (topic, mine) in throttle.entries(name) {
            let now = seen.topics.get(topic).and_then(|c| c.get(name));
            let Some(mut list) = now.map_or_else(|| Some(BTreeSet::new()), |v| entries(v)) else {
                continue;
            };
            let before = list.len();
            list.extend(mine.iter().map(|(p, b)| format!("{p}:{b}")));
            if list.len() != before {
                changes.push(Change {
                    resource: Resource::Topic(topic.clone()),
                    name,
                    value: Some(joined(&list)),
                });
            }
        }
    }
    (changes, notes)
}

/// What removes kcluster's throttle: each broker rate of exactly `rate`; from each topic's
/// lists, the entries `set` added, every entry naming a broker whose rate is kcluster's, and
/// every entry naming a broker no longer registered (a broker drained and terminated: the entry
/// throttles nothing); a list left empty is deleted, one with other entries keeps them. Rates of
/// any other value, and entries naming registered brokers without kcluster's rate, are someone
/// else's and stay.
pub fn to_clear(seen: &Seen, rate: u64, set: &Throttle) -> Vec<Change> {
    let ours = rate.to_string();
    let mut changes = Vec::new();
    let mut marked = BTreeSet::new();
    for (b, configs) in &seen.brokers {
        for name in RATES {
            if configs.get(name) == Some(&ours) {
                marked.insert(*b);
                changes.push(Change {
                    resource: Resource::Broker(*b),
                    name,
                    value: None,
                });
            }
        }
    }
    for (topic, configs) in &seen.topics {
        for name in LISTS {
            let Some(list) = configs.get(name).and_then(|v| entries(v)) else {
                continue;
            };
            let added: BTreeSet<String> = set
                .entries(name)
                .get(topic)
                .map(|e| e.iter().map(|(p, b)| format!("{p}:{b}")).collect())
                .unwrap_or_default();
            let rest: BTreeSet<String> = list
                .iter()
                .filter(|e| {
                    let broker = e.split_once(':').and_then(|(_, b)| b.parse::<i32>().ok());
                    let gone =
                        |b: i32| !seen.registered.is_empty() && !seen.registered.contains(&b);
                    !added.contains(*e) && !broker.is_some_and(|b| marked.contains(&b) || gone(b))
                })
                .cloned()
                .collect();
            if rest.len() == list.len() {
                continue;
            }
            changes.push(Change {
                resource: Resource::Topic(topic.clone()),
                name,
                value: (!rest.is_empty()).then(|| joined(&rest)),
            });
        }
    }
    changes
}

/// `brokers 1, 2 and topics orders, payments`, for what `changes` touch.
pub fn touched(changes: &[Change]) -> String {
    let brokers: BTreeSet<String> = changes
        .iter()
        .filter_map(|c| match &c.resource {
            Resource::Broker(b) => Some(b.to_string()),
            Resource::Topic(_) => None,
        })
        .collect();
    let topics: BTreeSet<&str> = changes
        .iter()
        .filter_map(|c| match &c.resource {
            Resource::Topic(t) => Some(t.as_str()),
            Resource::Broker(_) => None,
        })
        .collect();
    let mut parts = Vec::new();
    if !brokers.is_empty() {
        parts.push(format!(
            "broker{} {}",
            if brokers.len() == 1 { "" } else { "s" },
            brokers.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    if !topics.is_empty() {
        parts.push(format!(
            "topic{} {}",
            if topics.len() == 1 { "" } else { "s" },
            topics.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    parts.join(" and ")
}

/// The throttles of `seen` that are not kcluster's at `rate` (an operator's), one line each.
pub fn foreign(seen: &Seen, rate: u64) -> Vec<String> {
    let ours = rate.to_string();
    let mut out = Vec::new();
    for (b, configs) in &seen.brokers {
        for name in RATES {
            if let Some(v) = configs.get(name).filter(|v| **v != ours) {
                out.push(format!("broker {b} {name}={v}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mv(topic: &str, partition: i32, from: &[i32], to: &[i32]) -> Move {
        Move {
            topic: topic.into(),
            partition,
            from: from.to_vec(),
            to: to.to_vec(),
        }
    }

    fn shown(changes: &[Change]) -> Vec<String> {
        changes.iter().map(ToString::to_string).collect()
    }

    fn set(pairs: &[(i32, i32)]) -> BTreeSet<(i32, i32)> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn the_leader_list_names_the_current_replicas_and_the_follower_list_only_the_new_ones() {
        // A drain of broker 4: its place goes to broker 1 in partition 0 and broker 2 in
        // partition 3; partition 1 does not move.
        let t = Throttle::of(
            &[
                mv("orders", 0, &[4, 2, 3], &[1, 2, 3]),
                mv("orders", 3, &[3, 4, 1], &[3, 2, 1]),
                mv("audit", 0, &[4, 5, 6], &[1, 5, 6]),
            ],
            &[],
        );
        assert_eq!(
            t.leader["orders"],
            set(&[(0, 2), (0, 3), (0, 4), (3, 1), (3, 3), (3, 4)])
        );
        assert_eq!(t.follower["orders"], set(&[(0, 1), (3, 2)]));
        assert_eq!(t.leader["audit"], set(&[(0, 4), (0, 5), (0, 6)]));
        assert_eq!(t.follower["audit"], set(&[(0, 1)]));
        assert_eq!(t.brokers, [1, 2, 3, 4, 5, 6].into());

        let (changes, notes) = to_set(&t, 1000, &Seen::default());
        assert!(notes.is_empty());
        assert_eq!(
            shown(&changes),
            vec![
                "broker 1 leader.replication.throttled.rate=1000",
                "broker 1 follower.replication.throttled.rate=1000",
                "broker 2 leader.replication.throttled.rate=1000",
                "broker 2 follower.replication.throttled.rate=1000",
                "broker 3 leader.replication.throttled.rate=1000",
                "broker 3 follower.replication.throttled.rate=1000",
                "broker 4 leader.replication.throttled.rate=1000",
                "broker 4 follower.replication.throttled.rate=1000",
                "broker 5 leader.replication.throttled.rate=1000",
                "broker 5 follower.replication.throttled.rate=1000",
                "broker 6 leader.replication.throttled.rate=1000",
                "broker 6 follower.replication.throttled.rate=1000",
                "topic audit leader.replication.throttled.replicas=0:4,0:5,0:6",
                "topic orders leader.replication.throttled.replicas=0:2,0:3,0:4,3:1,3:3,3:4",
                "topic audit follower.replication.throttled.replicas=0:1",
                "topic orders follower.replication.throttled.replicas=0:1,3:2",
            ]
        );
    }

    #[test]
    fn a_move_under_way_keeps_its_sources_and_is_throttled_too() {
        // Partition 0 is moving from [1, 2, 3] to [4, 2, 3] (Kafka lists [4, 2, 3, 1], adding
        // 4, removing 1); partition 1 is asked to move now.
        let ongoing = vec![Ongoing {
            topic: "orders".into(),
            partition: 0,
            replicas: vec![4, 2, 3, 1],
            adding: vec![4],
            removing: vec![1],
        }];
        let t = Throttle::of(&[mv("orders", 1, &[2, 3, 1], &[2, 3, 4])], &ongoing);
        assert_eq!(
            t.leader["orders"],
            set(&[(0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (1, 3)])
        );
        assert_eq!(t.follower["orders"], set(&[(0, 4), (1, 4)]));
        // Asked again for the partition already moving: the sources stay those before the move.
        let again = Throttle::of(&[mv("orders", 0, &[4, 2, 3], &[4, 2, 3])], &ongoing);
        assert_eq!(again.leader["orders"], set(&[(0, 1), (0, 2), (0, 3)]));
        assert_eq!(again.follower["orders"], set(&[(0, 4)]));
    }

    fn seen(brokers: &[(i32, &str, &str)], topics: &[(&str, &str, &str)]) -> Seen {
        let mut s = Seen::default();
        for (b, k, v) in brokers {
            s.brokers
                .entry(*b)
                .or_default()
                .insert(k.to_string(), v.to_string());
        }
        for (t, k, v) in topics {
            s.topics
                .entry(t.to_string())
                .or_default()
                .insert(k.to_string(), v.to_string());
        }
        s
    }

    #[test]
    fn an_operators_throttle_is_kept_and_kcluster_adds_its_entries_beside_it() {
        let t = Throttle::of(&[mv("orders", 0, &[4, 2, 3], &[1, 2, 3])], &[]);
        let before = seen(
            &[(2, LEADER_RATE, "5000"), (2, FOLLOWER_RATE, "5000")],
            &[
                ("orders", LEADER_REPLICAS, "7:9"),
                ("orders", FOLLOWER_REPLICAS, "*"),
            ],
        );
        let (changes, notes) = to_set(&t, 1000, &before);
        assert_eq!(
            notes,
            vec![
                "broker 2 keeps its leader.replication.throttled.rate of 5000, which kcluster did not set",
                "broker 2 keeps its follower.replication.throttled.rate of 5000, which kcluster did not set",
            ]
        );
        assert!(
            !changes
                .iter()
                .any(|c| c.resource == Resource::Broker(2) || c.name == FOLLOWER_REPLICAS),
            "{changes:?}"
        );
        assert!(changes.contains(&Change {
            resource: Resource::Topic("orders".into()),
            name: LEADER_REPLICAS,
            value: Some("0:2,0:3,0:4,7:9".into()),
        }));

        // Once the move is done: kcluster's rates and entries go, the operator's stay.
        let after = seen(
            &[
                (1, LEADER_RATE, "1000"),
                (1, FOLLOWER_RATE, "1000"),
                (2, LEADER_RATE, "5000"),
                (2, FOLLOWER_RATE, "5000"),
                (3, LEADER_RATE, "1000"),
                (3, FOLLOWER_RATE, "1000"),
                (4, LEADER_RATE, "1000"),
                (4, FOLLOWER_RATE, "1000"),
            ],
            &[
                ("orders", LEADER_REPLICAS, "0:2,0:3,0:4,7:9"),
                ("orders", FOLLOWER_REPLICAS, "*"),
            ],
        );
        assert_eq!(
            shown(&to_clear(&after, 1000, &t)),
            vec![
                "broker 1 leader.replication.throttled.rate deleted",
                "broker 1 follower.replication.throttled.rate deleted",
                "broker 3 leader.replication.throttled.rate deleted",
                "broker 3 follower.replication.throttled.rate deleted",
                "broker 4 leader.replication.throttled.rate deleted",
                "broker 4 follower.replication.throttled.rate deleted",
                "topic orders leader.replication.throttled.replicas=7:9",
            ]
        );
        assert_eq!(foreign(&after, 1000).len(), 2);
    }

    #[test]
    fn a_throttle_an_interrupted_apply_left_is_found_by_its_rate_alone() {
        // Nothing recorded of the earlier apply: the brokers at kcluster's rate mark it, and the
        // list entries naming them go with it.
        let left = seen(
            &[
                (1, LEADER_RATE, "41943040"),
                (1, FOLLOWER_RATE, "41943040"),
                (4, LEADER_RATE, "41943040"),
                (4, FOLLOWER_RATE, "41943040"),
                (5, FOLLOWER_RATE, "10485760"),
            ],
            &[
                ("orders", LEADER_REPLICAS, "0:4,3:4"),
                ("orders", FOLLOWER_REPLICAS, "0:1,3:1,2:5"),
            ],
        );
        assert_eq!(
            shown(&to_clear(&left, DEFAULT_RATE, &Throttle::default())),
            vec![
                "broker 1 leader.replication.throttled.rate deleted",
                "broker 1 follower.replication.throttled.rate deleted",
                "broker 4 leader.replication.throttled.rate deleted",
                "broker 4 follower.replication.throttled.rate deleted",
                "topic orders leader.replication.throttled.replicas deleted",
                "topic orders follower.replication.throttled.replicas=2:5",
            ]
        );
        // At another rate nothing is kcluster's: nothing is removed, and all of it is foreign.
        assert_eq!(to_clear(&left, 1000, &Throttle::default()), vec![]);
        // Unless a list names a broker that is gone (drained and terminated with its rate
        // left): that entry throttles nothing, and goes.
        let mut gone = left.clone();
        gone.registered = [1, 2, 3, 5].into();
        assert_eq!(
            shown(&to_clear(&gone, 1000, &Throttle::default())),
            vec!["topic orders leader.replication.throttled.replicas deleted"]
        );
        assert_eq!(foreign(&left, 1000).len(), 5);
        assert_eq!(
            touched(&to_clear(&left, DEFAULT_RATE, &Throttle::default())),
            "brokers 1, 4 and topic orders"
        );
    }

    #[test]
    fn the_rate_parses_like_a_write_rate_or_none() {
        assert_eq!(
            MoveRate::parse("50MiB/s"),
            Ok(MoveRate::Limit(50 * 1024 * 1024))
        );
        assert_eq!(MoveRate::parse("1000000"), Ok(MoveRate::Limit(1_000_000)));
        assert_eq!(MoveRate::parse("None"), Ok(MoveRate::Unthrottled));
        assert!(
            MoveRate::parse("0")
                .unwrap_err()
                .contains("would stop every move")
        );
        assert!(MoveRate::parse("fast").unwrap_err().contains("`none`"));
        assert_eq!(MoveRate::default().to_string(), "40 MiB/s");
        assert_eq!(MoveRate::Limit(1_000_000).to_string(), "1000000 B/s");
        assert_eq!(MoveRate::Unthrottled.mark(), DEFAULT_RATE);
    }
}
