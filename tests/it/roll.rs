//! kcluster's own executor rolls a real cluster: the in-process fake EC2 stands for the account,
//! and its instance stops and starts stop and start the local node processes (each keeping its
//! data directory as its volume, and taking its new files from the user-data kcluster set while
//! it was stopped, as the bootstrap does at boot). The health gates read the nodes over their
//! loopback addresses, which are the topology's own addresses here. Under a continuous
//! `acks=all` producer and an independent watcher sampling every partition's ISR through Kafka's
//! Admin API: a broker override rolls over every broker and a heap change over the ZooKeeper
//! ensemble, each node restarted once, the controller and the leader last, no partition ever
//! below `min.insync.replicas`; the same broker roll without the gates is caught by the watcher;
//! and every acknowledged record is read back exactly once.

use std::time::{Duration, Instant};

use kcluster::cluster::{Cluster, Role};
use kcluster::provision::apply::Gates;

use crate::local::ec2::{apply, gated, health_of, on_local_ec2};
use crate::local::watcher::{assert_read_back, under_load, wait_in_sync};
use crate::local::{LocalCluster, clients, zk};
use crate::support;

const TOPIC: &str = "rolled";
const MIN_ISR: usize = 2;

/// The 3 + 3 loopback fixture with the ZooKeeper heap and, if any, a broker log retention.
fn topology(zookeeper_heap: &str, retention_hours: Option<u32>) -> Cluster {
    let base = std::fs::read_to_string(support::repo().join("tests/it/fixtures/kafka-3x3.yaml"))
        .expect("fixture");
    assert!(
        base.contains("zookeeper:\n  heap: 128m\n") && base.contains("  heap: 320m\n"),
        "kafka-3x3.yaml changed shape"
    );
    let mut yaml = base.replace(
        "zookeeper:\n  heap: 128m\n",
        &format!("zookeeper:\n  heap: {zookeeper_heap}\n"),
    );
    if let Some(h) = retention_hours {
        yaml = yaml.replace(
            "  heap: 320m\n",
            &format!("  heap: 320m\n  overrides:\n    log.retention.hours: {h}\n"),
        );
    }
    let mut cluster = support::load_str(&yaml);
    // The fixture's AZ IDs are those of the moto account; the fake account maps zone names to
    // other IDs, as another real account would. Racks by AZ ID are proven by `kafka::`; here the
    // racks are the zone names.
    for z in &mut cluster.zones {
        z.id = None;
    }
    cluster
}

#[test]
fn rolls_through_the_executor_keep_min_isr_and_every_acked_record_and_without_gates_do_not() {
    let first = topology("128m", None);
    let local = LocalCluster::boot(&first);
    let (ec2, runtime) = on_local_ec2(&first, local, None);
    let (mut stream, watcher) = under_load(&ec2.local, TOPIC, 6);
    let bootstrap = ec2.local.lock().expect("local").bootstrap();
    let network = health_of(&first);
    let gated = gated(&network, Duration::from_secs(240));
    let controller = clients::probe(&["cluster", &bootstrap], Duration::from_secs(60))
        .expect("cluster")["controller"]
        .as_u64()
        .expect("a controller");

    // 1. A broker override: every broker restarts once, the controller last, behind the gates.
    let tuned = topology("128m", Some(72));
    let (mark, from) = (ec2.stopped_since(0).len(), Instant::now());
    let (plan, _) = runtime.block_on(apply(&ec2, &tuned, &gated));
    let to = Instant::now();
    let rolled = ec2.stopped_since(mark);
    assert!(
        plan.nodes.iter().all(|n| (n.role == Role::Broker)
            == (n.instance == kcluster::provision::plan::Action::Update)),
        "{}",
        plan.render_text()
    );
    let mut sorted = rolled.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        vec!["broker-1", "broker-2", "broker-3"],
        "each broker once"
    );
    assert_eq!(
        rolled.last().map(String::as_str),
        Some(format!("broker-{controller}").as_str()),
        "the active controller last: {rolled:?}"
    );
    {
        let local = ec2.local.lock().expect("local");
        for b in ["broker-1", "broker-2", "broker-3"] {
            let config = local.node(b).config_text();
            assert!(config.contains("log.retention.hours=72"), "{b}: {config}");
        }
    }
    let (samples, below) = watcher.between(from, to, MIN_ISR);
    eprintln!(
        "broker roll with gates: {:?}, {samples} ISR samples, below min ISR: {below:?}",
        to - from
    );
    assert!(
        samples >= 5,
        "the watcher sampled the roll ({samples} samples)"
    );
    assert_eq!(
        below,
        vec![],
        "no partition below min.insync.replicas during the gated roll"
    );

    // 2. A ZooKeeper heap change: every member restarts once, the leader last.
    let leader = ec2.local.lock().expect("local").wait_for_zookeeper_quorum();
    let zk_heap = topology("160m", Some(72));
    let (mark, from) = (ec2.stopped_since(0).len(), Instant::now());
    runtime.block_on(apply(&ec2, &zk_heap, &gated));
    let to = Instant::now();
    let rolled = ec2.stopped_since(mark);
    let mut sorted = rolled.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        vec!["zookeeper-1", "zookeeper-2", "zookeeper-3"],
        "each member once"
    );
    assert_eq!(rolled.last(), Some(&leader), "the leader last: {rolled:?}");
    {
        let mut local = ec2.local.lock().expect("local");
        local.wait_for_zookeeper_quorum();
        for m in ["zookeeper-1", "zookeeper-2", "zookeeper-3"] {
            let address = local.node(m).address;
            assert!(zk::serving(address), "{m} serves");
        }
    }
    let (samples, below) = watcher.between(from, to, MIN_ISR);
    eprintln!(
        "ZooKeeper roll with gates: {:?}, {samples} ISR samples, below min ISR: {below:?}",
        to - from
    );
    assert!(
        samples >= 3,
        "the watcher sampled the roll ({samples} samples)"
    );
    assert_eq!(
        below,
        vec![],
        "no partition below min.insync.replicas during the ZooKeeper roll"
    );

    // 3. The same kind of broker roll without the gates: the watcher sees what they prevent.
    let ungated = topology("160m", Some(96));
    let (mark, from) = (ec2.stopped_since(0).len(), Instant::now());
    // The test-only switch: the same executor, its gates off.
    runtime.block_on(apply(&ec2, &ungated, &Gates::skipped()));
    // The damage shows while the restarted brokers catch up.
    {
        let mut local = ec2.local.lock().expect("local");
        local.wait_for_brokers();
        wait_in_sync(&mut local, TOPIC);
    }
    let to = Instant::now();
    assert_eq!(ec2.stopped_since(mark).len(), 3);
    let (samples, below) = watcher.between(from, to, MIN_ISR);
    eprintln!(
        "broker roll without gates: {:?}, {samples} ISR samples, below min ISR: {below:?}",
        to - from
    );
    assert!(
        !below.is_empty(),
        "without the gates the watcher must see a partition below min.insync.replicas ({samples} samples)"
    );

    // 4. Every acknowledged record is there, exactly once.
    drop(watcher);
    let mut local = ec2.local.lock().expect("local");
    assert_read_back(&mut stream, &mut local, TOPIC);
}

/// The 3 controllers + 3 brokers KRaft fixture (Kafka 4) with the controllers' heap.
fn kraft_topology(controller_heap: &str) -> Cluster {
    let base = std::fs::read_to_string(support::repo().join("tests/it/fixtures/kraft-3x3.yaml"))
        .expect("fixture");
    assert!(
        base.contains("controllers:\n  heap: 256m\n"),
        "kraft-3x3.yaml changed shape"
    );
    support::load_str(&base.replace(
        "controllers:\n  heap: 256m\n",
        &format!("controllers:\n  heap: {controller_heap}\n"),
    ))
}

#[test]
fn kraft_controller_rolls_keep_a_caught_up_majority_and_without_gates_do_not() {
    let first = kraft_topology("256m");
    let mut local = LocalCluster::boot(&first);
    let leader = local.wait_for_quorum();
    local.wait_for_brokers();
    let (ec2, runtime) = on_local_ec2(&first, local, None);
    let network = health_of(&first);
    let gated = gated(&network, Duration::from_secs(180));

    // 1. A controller heap change behind the gates: each controller restarts once, the leader
    // last, and each stops only while both others are caught up with the leader.
    let (mark, from) = (ec2.stopped_since(0).len(), Instant::now());
    let (plan, _) = runtime.block_on(apply(&ec2, &kraft_topology("288m"), &gated));
    let rolled = ec2.stopped_since(mark);
    let at_stop = ec2.quorum_at_stop.lock().expect("quorum").clone();
    eprintln!(
        "controller roll with gates: {:?}, order {rolled:?}, caught-up others at each stop {at_stop:?}",
        from.elapsed()
    );
    assert!(
        plan.nodes.iter().all(|n| (n.role == Role::Controller)
            == (n.instance == kcluster::provision::plan::Action::Update)),
        "{}",
        plan.render_text()
    );
    let mut sorted = rolled.clone();
    sorted.sort();
    assert_eq!(sorted, ["controller-1", "controller-2", "controller-3"]);
    assert_eq!(rolled.last(), Some(&leader), "the quorum's leader last");
    assert!(
        at_stop.iter().all(|(_, others)| *others == 2),
        "each controller stopped with both others caught up: {at_stop:?}"
    );
    {
        let mut local = ec2.local.lock().expect("local");
        for c in ["controller-1", "controller-2", "controller-3"] {
            assert!(local.node(c).unit_text().contains("-Xmx288m"), "{c}");
        }
        local.wait_for_quorum();
    }

    // 2. The same roll without the gates (the test-only switch): a controller is stopped while
    // the one restarted before it has not caught up yet — that stop left no caught-up majority.
    let mark = at_stop.len();
    runtime.block_on(apply(&ec2, &kraft_topology("320m"), &Gates::skipped()));
    let ungated = ec2.quorum_at_stop.lock().expect("quorum")[mark..].to_vec();
    eprintln!("controller roll without gates: caught-up others at each stop {ungated:?}");
    assert_eq!(ungated.len(), 3);
    assert!(
        ungated.iter().any(|(_, others)| *others < 2),
        "without the gates a controller must be stopped before the previous one caught up: {ungated:?}"
    );
    let mut local = ec2.local.lock().expect("local");
    local.wait_for_quorum();
    local.wait_for_brokers();
}
