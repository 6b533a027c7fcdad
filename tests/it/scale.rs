//! Brokers leave and join a real cluster through kcluster's own executor (the fake EC2 whose
//! launches and terminations start and stop the local JVMs, `local/ec2.rs`), under a continuous
//! `acks=all` producer and an independent watcher sampling every partition's replicas and ISR:
//! a scale-out with `--rebalance` moves replicas onto the new broker, rack-aware; a scale-in
//! drains the leaving broker through Kafka's reassignment before terminating it, so it holds no
//! replica when it goes and no partition falls below `min.insync.replicas`; the same scale-in
//! with the drain switched off (a test-only switch) is caught: the broker goes with replicas on
//! board and the watcher sees them under-replicated. Every acknowledged record is read back
//! exactly once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kcluster::cluster::{Cluster, Role};
use kcluster::operations::drain::Moves;
use kcluster::provision::apply::Gates;
use kcluster::provision::plan::Action;

use crate::local::LocalCluster;
use crate::local::clients::{self, Partition};
use crate::local::ec2::{Lifecycle, LocalEc2, apply, health_of, on_local_ec2};
use crate::local::watcher::{assert_read_back, under_load};
use crate::support;

const TOPIC: &str = "scaled";
const MIN_ISR: usize = 2;

/// The 3-zone loopback fixture with `brokers` brokers (broker-4 in eu-west-1a, with broker-1).
pub fn topology(brokers: u32) -> Cluster {
    let base = std::fs::read_to_string(support::repo().join("tests/it/fixtures/kafka-3x4.yaml"))
        .expect("fixture");
    assert!(
        base.contains("  count: 4\n"),
        "kafka-3x4.yaml changed shape"
    );
    let mut cluster =
        support::load_str(&base.replace("  count: 4\n", &format!("  count: {brokers}\n")));
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

fn describe(ec2: &LocalEc2) -> Vec<Partition> {
    partitions(ec2, TOPIC)
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

#[test]
fn a_scale_in_drains_first_and_a_scale_out_rebalances_without_losing_a_record_and_an_undrained_scale_in_is_caught()
 {
    let started = Instant::now();
    let (three, four) = (topology(3), topology(4));
    let rack_of = racks(&four);
    // Every node of the four-broker topology is rendered; broker-4 starts only when kcluster
    // launches it.
    let mut local = LocalCluster::render(&four);
    local.start_role(Role::Zookeeper);
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
    let (mut stream, watcher) = under_load(&ec2.local, TOPIC, 8);
    let network = health_of(&four);
    let gates = |moves: Moves| Gates {
        health: Some(&network),
        timeout: Duration::from_secs(120),
        poll: Duration::from_secs(1),
        moves,
    };
    let rebalance = Moves {
        rebalance: true,
        ..Moves::default()
    };

    // 1. Scale-out with --rebalance: broker-4 is launched, then takes broker-1's share of zone
    // eu-west-1a's replicas (each partition keeps one replica per zone).
    let from = Instant::now();
    let (plan, outcome) = runtime.block_on(apply(&ec2, &four, &gates(rebalance)));
    let done = Instant::now();
    let launched: Vec<&str> = plan
        .nodes
        .iter()
        .filter(|n| n.instance != Action::NoOp)
        .map(|n| n.node.as_str())
        .collect();
    assert_eq!(launched, vec!["broker-4"], "{}", plan.render_text());
    let text = plan.render_text();
    assert!(
        text.contains("rebalance onto broker-4 with `kcluster apply --rebalance`: 4 replicas move to it from broker-1 (4), rack-aware"),
        "{text}"
    );
    let after = describe(&ec2);
    assert_spread_and_in_sync(&after, &rack_of);
    let c = counts(&after);
    assert_eq!(
        (c.get(&1), c.get(&4)),
        (Some(&4), Some(&4)),
        "zone eu-west-1a's 8 replicas split between its two brokers: {c:?}"
    );
    assert_eq!(outcome.replicas_moved, 4);
    std::thread::sleep(Duration::from_secs(2));
    let to = Instant::now();
    let (samples, below) = watcher.between(from, to, MIN_ISR);
    eprintln!(
        "scale-out with rebalance: {:?}, {} replicas moved, {samples} ISR samples, below min ISR: {below:?}",
        done - from,
        outcome.replicas_moved
    );
    assert!(
        samples >= 3,
        "the watcher sampled the scale-out ({samples})"
    );
    assert_eq!(below, vec![], "no partition below min.insync.replicas");

    // 2. Scale-in with the drain: broker-4's replicas move back to broker-1 first; it holds none
    // when it is terminated, and nothing is under-replicated once it is gone.
    let from = Instant::now();
    let (plan, outcome) = runtime.block_on(apply(&ec2, &three, &gates(Moves::default())));
    let done = Instant::now();
    let text = plan.render_text();
    assert!(
        text.contains("drain broker-4 (i-")
            && text.contains("): 4 replicas move to broker-1 (4) through Kafka's reassignment"),
        "{text}"
    );
    assert_eq!(
        ec2.terminated.lock().expect("terminated").last(),
        Some(&("broker-4".to_string(), vec![])),
        "broker-4 held no partition of {TOPIC} when it was terminated"
    );
    let after = describe(&ec2);
    assert_spread_and_in_sync(&after, &rack_of);
    assert_eq!(counts(&after).get(&4), None);
    std::thread::sleep(Duration::from_secs(5));
    let to = Instant::now();
    let (samples, below) = watcher.between(from, to, MIN_ISR);
    let (after_samples, under) = watcher.under_replicated(done, to);
    eprintln!(
        "scale-in with drain: {:?}, {} replicas moved, {samples} ISR samples, below min ISR: {below:?}; after it {after_samples} samples, under-replicated: {under:?}",
        done - from,
        outcome.replicas_moved
    );
    assert_eq!(outcome.replicas_moved, 4);
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

    // 3. Out again (broker-4 comes back on its kept volume and takes its share), then in with
    // the drain switched off: caught.
    let (_, outcome) = runtime.block_on(apply(&ec2, &four, &gates(rebalance)));
    assert_eq!(outcome.replicas_moved, 4);
    let undrained = Moves {
        skip_drain: true,
        ..Moves::default()
    };
    runtime.block_on(apply(&ec2, &three, &gates(undrained)));
    let done = Instant::now();
    std::thread::sleep(Duration::from_secs(5));
    let to = Instant::now();
    let gone = ec2.terminated.lock().expect("terminated").last().cloned();
    let (samples, under) = watcher.under_replicated(done, to);
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

    // 4. Every acknowledged record is there, exactly once.
    drop(watcher);
    let mut local = ec2.local.lock().expect("local");
    assert_read_back(&mut stream, &mut local, TOPIC);
    eprintln!("the whole test took {:?}", started.elapsed());
}
