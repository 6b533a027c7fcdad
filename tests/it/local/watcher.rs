//! What a test that changes a running cluster checks with Kafka's own clients, nothing of
//! kcluster's: an independent watcher sampling every partition's replicas and ISR through the
//! Admin API, as often as it can; and, once the change is over, that every record the producer
//! saw acknowledged is read back exactly once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::LocalCluster;
use super::clients::{self, Partition, StreamProducer};

/// Producer settings that keep every acknowledged record through restarts and moves: the
/// idempotent producer (no duplicate on a retry) and a delivery timeout longer than any change.
pub const DURABLE_PRODUCER: &[u8] = b"enable.idempotence=true\nmax.in.flight.requests.per.connection=5\ndelivery.timeout.ms=600000\nrequest.timeout.ms=30000\n";

/// The running cluster under load: `topic` created with `partitions` partitions and 3 replicas
/// and in sync, a producer writing 50 numbered records a second under `acks=all`
/// ([`DURABLE_PRODUCER`]) and a watcher of its replicas, both started from the brokers running
/// now, and a few seconds of both before the change.
pub fn under_load(
    local: &std::sync::Mutex<LocalCluster>,
    topic: &str,
    partitions: u32,
) -> (StreamProducer, Watcher) {
    let mut local = local.lock().expect("local cluster");
    let bootstrap = local.bootstrap();
    clients::probe(
        &["create", &bootstrap, topic, &partitions.to_string(), "3"],
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| panic!("create {topic}: {e}"));
    wait_in_sync(&mut local, topic);
    let stream = StreamProducer::start(
        &bootstrap,
        topic,
        50,
        1_000_000,
        24,
        DURABLE_PRODUCER,
        local.dir(),
    );
    let watcher = Watcher::start(bootstrap, topic);
    std::thread::sleep(Duration::from_secs(4));
    (stream, watcher)
}

/// Waits until every partition of `topic` has a leader and all its replicas in sync.
pub fn wait_in_sync(local: &mut LocalCluster, topic: &str) {
    local.wait(
        &format!("every replica of {topic} in sync"),
        Duration::from_secs(180),
        |c| {
            let parts = clients::describe(&c.bootstrap(), topic)?;
            let synced = |p: &Partition| {
                p.leader.is_some()
                    && !p.replicas.is_empty()
                    && p.replicas.iter().all(|r| p.isr.contains(r))
            };
            if parts.iter().all(synced) {
                Ok(())
            } else {
                Err(format!("{parts:?}"))
            }
        },
    );
}

/// The records the producer saw acknowledged, and how many of them were not read back or were
/// read back more than once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadBack {
    pub acked: usize,
    pub lost: usize,
    pub duplicated: usize,
}

/// Lets the producer finish, reads `topic` whole and fails the test unless the producer kept
/// writing and every acknowledged record is read back exactly once; prints the counts.
pub fn assert_read_back(
    stream: &mut StreamProducer,
    local: &mut LocalCluster,
    topic: &str,
) -> ReadBack {
    let r = read_back(stream, local, topic);
    eprintln!(
        "acked {} / lost {} / duplicated {}",
        r.acked, r.lost, r.duplicated
    );
    assert!(
        r.acked > 100,
        "the producer kept writing: {} acked",
        r.acked
    );
    assert_eq!(
        (r.lost, r.duplicated),
        (0, 0),
        "no acknowledged record lost or duplicated"
    );
    r
}

/// Lets the producer finish, then reads `topic` whole and counts every acknowledged record.
pub fn read_back(stream: &mut StreamProducer, local: &mut LocalCluster, topic: &str) -> ReadBack {
    let events = stream.finish(Duration::from_secs(5));
    let acked: Vec<String> = events
        .iter()
        .filter(|e| e["name"] == "producer_send_success")
        .filter_map(|e| e["value"].as_str().map(str::to_string))
        .collect();
    let records = local.wait(
        &format!("every record of {topic}"),
        Duration::from_secs(180),
        |c| clients::read_all(&c.bootstrap(), topic),
    );
    let mut read: BTreeMap<String, usize> = BTreeMap::new();
    for (_, _, value) in records {
        *read.entry(value).or_default() += 1;
    }
    ReadBack {
        acked: acked.len(),
        lost: acked.iter().filter(|v| !read.contains_key(*v)).count(),
        duplicated: read.values().filter(|&&n| n > 1).count(),
    }
}

/// One sample of the watcher: when, and every partition (or why there was none).
type Sample = (Instant, Result<Vec<Partition>, String>);

/// Samples every partition of a topic, its replicas and ISR, through Kafka's Admin API (the
/// tests' Java probe, nothing of kcluster's), as often as it can, until stopped.
pub struct Watcher {
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watcher {
    pub fn start(bootstrap: String, topic: &str) -> Watcher {
        let topic = topic.to_string();
        let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (s, halt) = (samples.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !halt.load(Ordering::SeqCst) {
                let seen = clients::describe(&bootstrap, &topic);
                s.lock().expect("samples").push((Instant::now(), seen));
            }
        });
        Watcher {
            samples,
            stop,
            thread: Some(thread),
        }
    }

    /// The samples taken in `[from, to]`: how many answered, and each (partition, ISR size)
    /// seen below `min_isr`.
    pub fn between(
        &self,
        from: Instant,
        to: Instant,
        min_isr: usize,
    ) -> (usize, Vec<(u32, usize)>) {
        self.seen(from, to, |p| p.isr.len() < min_isr)
    }

    /// The samples taken in `[from, to]`: how many answered, and each (partition, ISR size)
    /// seen with fewer replicas in sync than it has.
    pub fn under_replicated(&self, from: Instant, to: Instant) -> (usize, Vec<(u32, usize)>) {
        self.seen(from, to, |p| p.replicas.iter().any(|r| !p.isr.contains(r)))
    }

    fn seen(
        &self,
        from: Instant,
        to: Instant,
        bad: impl Fn(&Partition) -> bool,
    ) -> (usize, Vec<(u32, usize)>) {
        let samples = self.samples.lock().expect("samples");
        let window: Vec<&Sample> = samples
            .iter()
            .filter(|(t, _)| *t >= from && *t <= to)
            .collect();
        let seen = window
            .iter()
            .filter_map(|(_, s)| s.as_ref().ok())
            .flatten()
            .filter(|p| bad(p))
            .map(|p| (p.partition, p.isr.len()))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let good = window.iter().filter(|(_, s)| s.is_ok()).count();
        (good, seen)
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
