//! Brokers leave and join a real cluster through kcluster's own executor (the fake EC2 whose
//! launches and terminations start and stop the local JVMs, `local/ec2.rs`), under a continuous
//! `acks=all` producer and an independent watcher sampling every partition's replicas and ISR:
//! a scale-out with `--rebalance` moves replicas onto the new broker, rack-aware; a scale-in
//! drains the leaving broker through Kafka's reassignment before terminating it, so it holds no
//! replica when it goes and no partition falls below `min.insync.replicas`; the same scale-in
//! with the drain switched off (a test-only switch) is caught: the broker goes with replicas on
//! board and the watcher sees them under-replicated. Every acknowledged record is read back
//! exactly once. The same scale-out and drained scale-in run in ZooKeeper mode (Kafka 3.9) and in
//! KRaft mode (Kafka 4, dedicated controllers).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kcluster::cluster::{Cluster, Metadata};
use kcluster::operations::drain::Moves;
use kcluster::operations::health::Network;
use kcluster::provision::apply::{Gates, Outcome};
use kcluster::provision::plan::{Action, Plan};
use kcluster::render::JMX_PORT;

use crate::local::LocalCluster;
use crate::local::clients::{self, Partition, StreamProducer};
use crate::local::ec2::{Lifecycle, LocalEc2, apply, health_of, on_local_ec2};
use crate::local::watcher::{Watcher, assert_read_back, under_load};
use crate::support;

const TOPIC: &str = "scaled";
const MIN_ISR: usize = 2;

/// The 3-zone loopback `fixture` with `brokers` brokers (broker-4 in eu-west-1a, with broker-1):
/// `kafka-3x4.yaml` (ZooKeeper, Kafka 3.9) or `kraft-3x3.yaml` (KRaft controllers, Kafka 4).
pub fn topology(fixture: &str, brokers: u32) -> Cluster {
    let base = std::fs::read_to_string(support::repo().join("tests/it/fixtures").join(fixture))
        .expect("fixture");
    let key = "brokers:\n  count: ";
    let at = base
        .find(key)
        .unwrap_or_else(|| panic!("{fixture} changed shape: no `{key}`"))
        + key.len();
    let end = at + base[at..].find('\n').expect("a line");
    let mut cluster = support::load_str(&format!("{}{brokers}{}", &base[..at], &base[end..]));
    // The fake account maps zone names to other AZ IDs than the fixture's (as another real
    // account would): the racks are the zone names here, as in `roll::`.
    for z in &mut cluster.zones {
        z.id = None;
    }
    cluster
}

/// The zone (rack) of each broker id.
fn racks(cluster: &Cluster) -> BTreeMap<u32, String> {
    cluster.brokers().map(|b| (b.id, b.zone.clone())).collect()
}

/// `topic`'s partitions as Kafka's Admin describes them.
pub fn partitions(ec2: &LocalEc2, topic: &str) -> Vec<Partition> {
    let mut local = ec2.local.lock().expect("local");
    local.wait(
        &format!("{topic}'s partitions"),
        Duration::from_secs(60),
        |c| clients::describe(&c.bootstrap(), topic),
    )
}

/// Replicas per broker.
fn counts(partitions: &[Partition]) -> BTreeMap<u32, usize> {
    let mut c = BTreeMap::new();
    for p in partitions {
        for r in &p.replicas {
            *c.entry(*r).or_default() += 1;
        }
    }
    c
}

/// Every partition keeps 3 replicas in 3 racks, all in sync.
fn assert_spread_and_in_sync(partitions: &[Partition], racks: &BTreeMap<u32, String>) {
    for p in partitions {
        let spread: BTreeSet<&String> = p.replicas.iter().filter_map(|r| racks.get(r)).collect();
        assert_eq!(p.replicas.len(), 3, "RF kept: {p:?}");
        assert_eq!(spread.len(), 3, "three racks kept: {p:?}");
        assert!(
            p.replicas.iter().all(|r| p.isr.contains(r)),
            "in sync: {p:?}"
        );
    }
}

/// A running three-broker cluster of a fixture behind the local EC2 (every node of the
/// four-broker topology rendered; broker-4 starts only when kcluster launches it), under the
/// `acks=all` producer and the watcher, with the gates apply runs with.
struct Scaling {
    started: Instant,
    three: Cluster,
    four: Cluster,
    rack_of: BTreeMap<u32, String>,
    ec2: LocalEc2,
    runtime: tokio::runtime::Runtime,
    stream: StreamProducer,
    watcher: Watcher,
    network: Network,
}

/// What one apply did, as the test saw it.
struct Step {
    plan: Plan,
    outcome: Outcome,
    took: Duration,
}

impl Scaling {
    fn start(fixture: &str) -> Scaling {
        let started = Instant::now();
        let (three, four) = (topology(fixture, 3), topology(fixture, 4));
        let mut local = LocalCluster::render(&four);
        local.start_role(four.metadata.quorum_role());
        local.wait_for_quorum();
        for b in ["broker-1", "broker-2", "broker-3"] {
            local.start(b);
        }
        local.wait_for_brokers();
        let (ec2, runtime) = on_local_ec2(
            &three,
            local,
            Some(Lifecycle {
                topic: TOPIC.into(),
            }),
        );
        let (stream, watcher) = under_load(&ec2.local, TOPIC, 8);
        Scaling {
            started,
            rack_of: racks(&four),
            network: health_of(&four),
            three,
            four,
            ec2,
            runtime,
            stream,
            watcher,
        }
    }

    /// Applies the four-broker topology (`four`) or the three-broker one with `moves`.
    fn apply(&self, four: bool, moves: Moves) -> Step {
        let gates = Gates {
            health: Some(&self.network),
            timeout: Duration::from_secs(120),
            poll: Duration::from_secs(1),
            moves,
        };
        let cluster = if four { &self.four } else { &self.three };
        let from = Instant::now();
        let (plan, outcome) = self.runtime.block_on(apply(&self.ec2, cluster, &gates));
        Step {
            plan,
            outcome,
            took: from.elapsed(),
        }
    }

    fn describe(&self) -> Vec<Partition> {
        partitions(&self.ec2, TOPIC)
    }

    /// Scale-out with --rebalance: broker-4 is launched, then takes broker-1's share of zone
    /// eu-west-1a's replicas (each partition keeps one replica per zone); no partition falls
    /// below min.insync.replicas meanwhile.
    fn out_with_rebalance(&self) -> Step {
        let from = Instant::now();
        let step = self.apply(true, rebalance());
        let launched: Vec<&str> = step
            .plan
            .nodes
            .iter()
            .filter(|n| n.instance != Action::NoOp)
            .map(|n| n.node.as_str())
            .collect();
        assert_eq!(launched, vec!["broker-4"], "{}", step.plan.render_text());
        let text = step.plan.render_text();
        assert!(
            text.contains("rebalance onto broker-4 with `kcluster apply --rebalance`: 4 replicas move to it from broker-1 (4), rack-aware"),
            "{text}"
        );
        let after = self.describe();
        assert_spread_and_in_sync(&after, &self.rack_of);
        let c = counts(&after);
        assert_eq!(
            (c.get(&1), c.get(&4)),
            (Some(&4), Some(&4)),
            "zone eu-west-1a's 8 replicas split between its two brokers: {c:?}"
        );
        assert_eq!(step.outcome.replicas_moved, 4);
        std::thread::sleep(Duration::from_secs(2));
        let (samples, below) = self.watcher.between(from, Instant::now(), MIN_ISR);
        eprintln!(
            "scale-out with rebalance: {:?}, {} replicas moved, {samples} ISR samples, below min ISR: {below:?}",
            step.took, step.outcome.replicas_moved
        );
        assert!(
            samples >= 3,
            "the watcher sampled the scale-out ({samples})"
        );
        assert_eq!(below, vec![], "no partition below min.insync.replicas");
        step
    }

    /// Scale-in with the drain: broker-4's replicas move back to broker-1 first; it holds none
    /// when it is terminated, and nothing is under-replicated once it is gone.
    fn in_with_drain(&self) -> Step {
        let from = Instant::now();
        let step = self.apply(false, Moves::default());
        let done = Instant::now();
        let text = step.plan.render_text();
        assert!(
            text.contains("drain broker-4 (i-")
                && text.contains("): 4 replicas move to broker-1 (4) through Kafka's reassignment"),
            "{text}"
        );
        assert_eq!(
            self.ec2.terminated.lock().expect("terminated").last(),
            Some(&("broker-4".to_string(), vec![])),
            "broker-4 held no partition of {TOPIC} when it was terminated"
        );
        let after = self.describe();
        assert_spread_and_in_sync(&after, &self.rack_of);
        assert_eq!(counts(&after).get(&4), None);
        std::thread::sleep(Duration::from_secs(5));
        let to = Instant::now();
        let (samples, below) = self.watcher.between(from, to, MIN_ISR);
        let (after_samples, under) = self.watcher.under_replicated(done, to);
        eprintln!(
            "scale-in with drain: {:?}, {} replicas moved, {samples} ISR samples, below min ISR: {below:?}; after it {after_samples} samples, under-replicated: {under:?}",
            step.took, step.outcome.replicas_moved
        );
        assert_eq!(step.outcome.replicas_moved, 4);
        assert!(samples >= 3, "the watcher sampled the scale-in ({samples})");
        assert_eq!(below, vec![], "no partition below min.insync.replicas");
        assert!(
            after_samples >= 2,
            "the watcher sampled the cluster after it ({after_samples})"
        );
        assert_eq!(
            under,
            vec![],
            "no partition under-replicated once broker-4 is gone"
        );
        step
    }

    /// Waits until the brokers registered with the KRaft controllers, active and fenced, are
    /// `expected`, as the active controller counts them (its JMX metrics, read with Kafka's
    /// JmxTool); fails with what it counts after 30 s.
    fn assert_registered(&self, expected: (u32, u32), what: &str) {
        let mut local = self.ec2.local.lock().expect("local");
        let leader = local.wait_for_controller_quorum().leader;
        let address = local.node(&leader).address.to_string();
        let count = |name: &str| {
            let object = format!("kafka.controller:type=KafkaController,name={name}");
            clients::jmx_read(&address, JMX_PORT, &object, "Value")
                .and_then(|v| v.parse::<f64>().map_err(|e| format!("{v}: {e}")))
                .map(|v| v as u32)
        };
        local.wait(
            &format!("{what}: (active, fenced) brokers {expected:?}"),
            Duration::from_secs(30),
            |_| {
                let seen = (count("ActiveBrokerCount")?, count("FencedBrokerCount")?);
                if seen == expected {
                    Ok(())
                } else {
                    Err(format!("{leader} counts (active, fenced) {seen:?}"))
                }
            },
        );
    }

    /// Out again (broker-4 comes back on its kept volume and takes its share), then in with the
    /// drain switched off: caught, broker-4 goes with replicas on board and the watcher sees
    /// them under-replicated.
    fn undrained_is_caught(&self) {
        assert_eq!(self.apply(true, rebalance()).outcome.replicas_moved, 4);
        let undrained = Moves {
            skip_drain: true,
            ..Moves::default()
        };
        self.apply(false, undrained);
        let done = Instant::now();
        std::thread::sleep(Duration::from_secs(5));
        let to = Instant::now();
        let gone = self
            .ec2
            .terminated
            .lock()
            .expect("terminated")
            .last()
            .cloned();
        let (samples, under) = self.watcher.under_replicated(done, to);
        eprintln!(
            "scale-in without drain: broker-4 terminated holding partitions {:?}, {samples} samples, under-replicated: {under:?}",
            gone.as_ref().map(|g| &g.1)
        );
        assert!(
            gone.as_ref()
                .is_some_and(|(n, held)| n == "broker-4" && !held.is_empty()),
            "without the drain broker-4 goes with replicas on board: {gone:?}"
        );
        assert!(
            !under.is_empty(),
            "without the drain the watcher sees under-replicated partitions ({samples} samples)"
        );
    }

    /// Every acknowledged record is there, exactly once.
    fn read_back(self) {
        let Scaling {
            started,
            ec2,
            mut stream,
            watcher,
            ..
        } = self;
        drop(watcher);
        let mut local = ec2.local.lock().expect("local");
        assert_read_back(&mut stream, &mut local, TOPIC);
        eprintln!("the whole test took {:?}", started.elapsed());
    }
}

fn rebalance() -> Moves {
    Moves {
        rebalance: true,
        ..Moves::default()
    }
}

#[test]
fn a_scale_in_drains_first_and_a_scale_out_rebalances_without_losing_a_record_and_an_undrained_scale_in_is_caught()
 {
    let s = Scaling::start("kafka-3x4.yaml");
    s.out_with_rebalance();
    s.in_with_drain();
    s.undrained_is_caught();
    s.read_back();
}

/// The same scale-out, drained scale-in and undrained control on Kafka 4 in KRaft mode (3
/// controllers, 3 brokers), where Metadata names a broker as controller (it forwards the
/// reassignments to the quorum's leader, KIP-590), brokers register with the controllers, and a
/// broker that shuts down stays registered, fenced, until apply unregisters it.
#[test]
fn kraft_a_scale_out_rebalances_and_a_scale_in_drains_and_unregisters_without_losing_a_record_and_an_undrained_one_is_caught()
 {
    let s = Scaling::start("kraft-3x3.yaml");
    assert_eq!(s.four.metadata, Metadata::Kraft);
    assert!(
        s.four.kafka.version.starts_with("4."),
        "{}",
        s.four.kafka.version
    );
    let bootstrap = s.ec2.local.lock().expect("local").bootstrap();
    let described = clients::probe(&["cluster", &bootstrap], Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        described["controller"]
            .as_u64()
            .is_some_and(|c| (1..=3).contains(&c)),
        "the brokers name a broker as controller, not the quorum's leader: {described}"
    );
    s.out_with_rebalance();
    s.assert_registered((4, 0), "four brokers registered, none fenced");
    s.in_with_drain();
    // A KRaft broker that shuts down stays registered, fenced: new partitions may still be
    // placed on it (a rack's fenced brokers once its unfenced ones are used) and it holds back
    // feature upgrades. Apply unregisters the brokers it removes.
    s.assert_registered(
        (3, 0),
        "broker-4 is unregistered, not left registered and fenced",
    );
    // Unregistered, broker-4 registers again when it comes back on its kept volume; without the
    // drain it goes with replicas on board, and is caught.
    s.undrained_is_caught();
    s.assert_registered((3, 0), "broker-4 is unregistered again");
    s.read_back();
}
