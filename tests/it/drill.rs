//! The zone-loss drill: a rendered cluster on loopback loses every process of one zone at once
//! (SIGKILL) while Kafka's own `VerifiableProducer` writes a numbered stream with `acks=all` and
//! idempotence; the drill measures what Kafka really did — the metadata quorum (ZooKeeper's, or
//! the KRaft controllers'), partitions with a leader, partitions that take an `acks=all` write —
//! and, once the zone is back, reads the topic
//! to prove that every acknowledged record is there exactly once. Each measurement is compared
//! with what `kcluster check --offline` predicted for that zone. The producer buffer is measured
//! through the same kind of loss: how long `send()` blocks with `client-config`'s settings.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kcluster::check::{Verdict, simulate};
use kcluster::cluster::{Cluster, Metadata, Role};
use serde_json::Value;

use crate::local::{LocalCluster, clients, zk};
use crate::support;

/// How fast the stream writes. Small enough for a 2-core machine running 9 JVMs.
const RECORDS_PER_SECOND: u32 = 100;
/// How long the drill waits, after the kill, for Kafka to settle: ZooKeeper notices the lost
/// brokers when their sessions expire (`zookeeper.session.timeout.ms`, 18 s; in KRaft mode the
/// controller fences a broker after `broker.session.timeout.ms`, 9 s), then the controller moves
/// leaders; leaders drop lost followers from the ISR after `replica.lag.time.max.ms` (30 s). A
/// cluster that has not settled by then (no quorum) is measured as it is.
const SETTLE: Duration = Duration::from_secs(75);
/// How long one `acks=all` write may take before its partition counts as not writable.
const WRITE_TIMEOUT: Duration = Duration::from_secs(20);

#[test]
fn three_brokers_over_three_zones_keep_every_acked_record_through_the_loss_of_any_zone() {
    let rows = drill("kafka-3x3.yaml", None);
    assert_all_match(&rows);
    assert!(rows.iter().all(|r| r.measured.verdict == Verdict::Ok));
}

#[test]
fn six_brokers_over_three_zones_keep_every_acked_record_through_the_loss_of_any_zone() {
    let rows = drill("kafka-3x6.yaml", None);
    assert_all_match(&rows);
    assert!(rows.iter().all(|r| r.measured.verdict == Verdict::Ok));
}

/// The layout of `topologies/two-zones.yaml` on loopback: `check` says neither zone's loss is
/// survived, and Kafka agrees — the zone holding two of the three ZooKeeper members takes the
/// quorum with it; the other takes one of the two replicas some partitions keep in it, so they
/// refuse `acks=all` writes. Nothing acknowledged is lost either way. The comparison is also
/// shown to catch a wrong prediction: the same measurements against "ok" fail on the verdict.
#[test]
fn two_zones_lose_quorum_or_writes_with_either_zone_exactly_as_check_predicts() {
    let rows = drill("kafka-two-zones.yaml", None);
    assert_all_match(&rows);
    let verdicts: Vec<Verdict> = rows.iter().map(|r| r.measured.verdict).collect();
    assert_eq!(
        verdicts,
        vec![Verdict::QuorumLost, Verdict::WritesBlocked],
        "{}",
        table(&rows)
    );
    assert_wrong_prediction_is_caught(&rows);
}

/// The comparison catches a wrong prediction: the same measurements against "ok" fail on the
/// verdict.
pub fn assert_wrong_prediction_is_caught(rows: &[Row]) {
    for row in rows {
        let wrong = Predicted {
            verdict: Verdict::Ok,
            quorum: true,
            partitions_online: row.measured.partitions,
            partitions_writable: row.measured.partitions,
        };
        let err = compare(&wrong, &row.measured).expect_err("an `ok` prediction must not match");
        assert!(
            err.starts_with("verdict: check Ok, Kafka "),
            "{}: {err}",
            row.zone
        );
    }
}

/// What `check` predicted for one zone's loss.
#[derive(Debug, Clone)]
pub struct Predicted {
    pub verdict: Verdict,
    /// The metadata quorum (ZooKeeper or the controllers) holds.
    pub quorum: bool,
    pub partitions_online: u32,
    pub partitions_writable: u32,
}

/// What Kafka did when the zone was lost.
#[derive(Debug, Clone)]
pub struct Measured {
    pub partitions: u32,
    pub verdict: Verdict,
    pub quorum: bool,
    pub partitions_online: u32,
    pub partitions_writable: u32,
    /// Seconds from the kill until every partition had a live leader and no lost replica in its
    /// ISR; `None` if that never happened within [`SETTLE`].
    pub settled_after: Option<u64>,
    /// Stream records acknowledged while the zone was down.
    pub acked_while_down: usize,
    pub acked: usize,
    pub lost: usize,
    pub duplicated: usize,
}

pub struct Row {
    pub zone: String,
    pub predicted: Predicted,
    pub measured: Measured,
}

/// Boots the fixture, then for each zone (all of them, in file order, unless `zones` names
/// some) runs the drill on a fresh topic with the cluster's defaults.
pub fn drill(fixture: &str, zones: Option<&[&str]>) -> Vec<Row> {
    let path = support::repo().join("tests/it/fixtures").join(fixture);
    let cluster = support::load(&path);
    let check = check_offline(&path);
    let simulation = &check["simulation"];
    let partitions = simulation["partitions"].as_u64().expect("partitions") as u32;
    let rf = simulation["replication_factor"].as_u64().expect("rf") as u32;
    assert_eq!(
        rf,
        cluster.replication_factor(),
        "check simulates the default RF"
    );
    let predictions: BTreeMap<String, Predicted> = simulation["scenarios"]
        .as_array()
        .expect("scenarios")
        .iter()
        .map(|s| (s["zone"].as_str().expect("zone").to_string(), predicted(s)))
        .collect();
    assert_invariant(&cluster, partitions, rf, &predictions);

    let expected_load = zone_load(&check);
    let producer_settings = producer_settings(&path, &cluster.zones[0].name);

    let mut local = LocalCluster::boot(&cluster);
    let mut rows = Vec::new();
    let chosen: Vec<String> = match zones {
        Some(z) => z.iter().map(|s| s.to_string()).collect(),
        None => cluster.zones.iter().map(|z| z.name.clone()).collect(),
    };
    for zone in chosen {
        let measured = lose_zone(
            &mut local,
            &zone,
            partitions,
            rf,
            &expected_load,
            &producer_settings,
        );
        let row = Row {
            predicted: predictions[&zone].clone(),
            zone,
            measured,
        };
        eprintln!("{fixture}: {}", table(std::slice::from_ref(&row)));
        rows.push(row);
    }
    eprintln!("{fixture}:\n{}", table(&rows));
    rows
}

/// The predictions this drill compares with must not depend on Kafka's random start index
/// (Kafka picks one per topic; `check` simulates one): the counts are the same for every start
/// index `check` can simulate, so whatever Kafka picked, the prediction holds.
fn assert_invariant(
    cluster: &Cluster,
    partitions: u32,
    rf: u32,
    by_zone: &BTreeMap<String, Predicted>,
) {
    let brokers = cluster.brokers().count() as u32;
    for start in 0..brokers {
        let sim = simulate(cluster, partitions, rf, start).expect("simulation");
        for s in &sim.scenarios {
            let p = &by_zone[&s.zone];
            assert_eq!(
                (s.partitions_online, s.partitions_writable, s.verdict),
                (p.partitions_online, p.partitions_writable, p.verdict),
                "the prediction for {} depends on the start index ({start}); \
                 this layout cannot be compared with one drill",
                s.zone
            );
        }
    }
}

fn predicted(scenario: &Value) -> Predicted {
    let verdict = match scenario["verdict"].as_str() {
        Some("ok") => Verdict::Ok,
        Some("writes_blocked") => Verdict::WritesBlocked,
        Some("partitions_offline") => Verdict::PartitionsOffline,
        Some("quorum_lost") => Verdict::QuorumLost,
        other => panic!("unknown verdict {other:?}"),
    };
    Predicted {
        verdict,
        quorum: scenario["quorum_kept"].as_bool().expect("quorum"),
        partitions_online: scenario["partitions_online"].as_u64().expect("online") as u32,
        partitions_writable: scenario["partitions_writable"].as_u64().expect("writable") as u32,
    }
}

/// What `kcluster client-config --producer` renders for an application in `zone` that writes
/// the stream (100 records of ~10 bytes a second, taken as 1 KiB/s) and must ride out a zone's
/// loss and return (up to two minutes here, ZooKeeper's quorum included).
fn producer_settings(path: &std::path::Path, zone: &str) -> Vec<u8> {
    let args = ["--producer", "--write-rate", "1KiB/s", "--ride-out", "2m"];
    let settings = clients::client_config(path, zone, &args);
    let text = String::from_utf8_lossy(&settings);
    for setting in ["acks=all", "enable.idempotence=true", "max.block.ms=120000"] {
        assert!(
            text.lines().any(|l| l == setting),
            "{setting} not in:\n{text}"
        );
    }
    settings
}

/// `kcluster check --offline --output json` for the fixture, as a user would run it.
pub fn check_offline(path: &std::path::Path) -> Value {
    let out = support::kcluster()
        .args(["check", "--offline", "--output", "json", "-f"])
        .arg(path)
        .output()
        .expect("kcluster runs");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "check --offline printed no JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Replicas and preferred leaders per zone, and distinct zones per partition: what Kafka's
/// rack-aware assignment guarantees whatever start index it draws.
#[derive(Debug, PartialEq, Eq)]
pub struct ZoneLoad {
    /// zone → (replicas, preferred leaders)
    pub per_zone: BTreeMap<String, (u32, u32)>,
    /// How many partitions span each number of distinct zones.
    pub zones_per_partition: BTreeMap<usize, u32>,
}

/// The load `check` predicts, from its JSON.
fn zone_load(check: &Value) -> ZoneLoad {
    let sim = &check["simulation"];
    let per_zone = sim["zones"]
        .as_array()
        .expect("zones")
        .iter()
        .map(|z| {
            let n = |k: &str| z[k].as_u64().expect("count") as u32;
            let zone = z["zone"].as_str().expect("zone").to_string();
            (zone, (n("replicas"), n("leaders")))
        })
        .collect();
    let mut zones_per_partition = BTreeMap::new();
    for p in sim["assignment"].as_array().expect("assignment") {
        let mut zones: Vec<&str> = p["zones"]
            .as_array()
            .expect("zones")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        zones.sort_unstable();
        zones.dedup();
        *zones_per_partition.entry(zones.len()).or_default() += 1;
    }
    ZoneLoad {
        per_zone,
        zones_per_partition,
    }
}

/// The load of a topic Kafka placed, from its metadata (the first replica is the preferred
/// leader, as in `check`).
fn kafka_load(cluster: &Cluster, parts: &[clients::Partition]) -> ZoneLoad {
    let zone_of: BTreeMap<u32, &str> = cluster.brokers().map(|n| (n.id, n.zone.as_str())).collect();
    let mut per_zone: BTreeMap<String, (u32, u32)> = cluster
        .zones
        .iter()
        .map(|z| (z.name.clone(), (0, 0)))
        .collect();
    let mut zones_per_partition = BTreeMap::new();
    for p in parts {
        let mut zones: Vec<&str> = p.replicas.iter().map(|r| zone_of[r]).collect();
        for (i, zone) in zones.iter().enumerate() {
            let entry = per_zone.entry(zone.to_string()).or_default();
            entry.0 += 1;
            if i == 0 {
                entry.1 += 1;
            }
        }
        zones.sort_unstable();
        zones.dedup();
        *zones_per_partition.entry(zones.len()).or_default() += 1;
    }
    ZoneLoad {
        per_zone,
        zones_per_partition,
    }
}

/// One zone's drill on topic `drill-<zone>`.
fn lose_zone(
    local: &mut LocalCluster,
    zone: &str,
    partitions: u32,
    rf: u32,
    expected_load: &ZoneLoad,
    producer_settings: &[u8],
) -> Measured {
    let topic = format!("drill-{zone}");
    let bootstrap = local.bootstrap();
    let (p, r) = (partitions.to_string(), rf.to_string());
    clients::probe(
        &["create", &bootstrap, &topic, &p, &r],
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| local.fail(&e));
    wait_in_sync(local, &topic, rf);
    // Kafka placed the topic itself (no explicit assignment), from a random start index: its
    // per-zone load and zones per partition are what `check` predicted.
    let placed = clients::describe(&bootstrap, &topic).unwrap_or_else(|e| local.fail(&e));
    assert_eq!(
        &kafka_load(&local.cluster, &placed),
        expected_load,
        "Kafka's assignment of {topic} differs from check's: {placed:?}"
    );

    let mut stream = clients::StreamProducer::start(
        &bootstrap,
        &topic,
        RECORDS_PER_SECOND,
        1_000_000,
        partitions * 4,
        producer_settings,
        local.dir(),
    );
    let acked = |events: &[Value]| {
        events
            .iter()
            .filter(|e| e["name"] == "producer_send_success")
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        local.check_alive();
        let n = acked(&stream.events());
        if n >= 200 {
            break;
        }
        if stream.exited() || Instant::now() > deadline {
            local.fail(&format!(
                "the stream producer has {n} of its first 200 acknowledgements; it said: {}",
                stream.tail()
            ));
        }
        std::thread::sleep(Duration::from_millis(500));
    }

    let killed_at = Instant::now();
    let acked_before = acked(&stream.events());
    let lost: Vec<String> = local.kill_zone(zone);
    let lost_brokers: Vec<u32> = local
        .nodes
        .iter()
        .filter(|n| n.role == Role::Broker && lost.contains(&n.name))
        .map(|n| n.id)
        .collect();

    let settled = local.poll(SETTLE, |c| {
        let parts = clients::describe(&c.bootstrap(), &topic)?;
        let unsettled: Vec<_> = parts
            .iter()
            .filter(|p| {
                p.leader.is_none_or(|l| lost_brokers.contains(&l))
                    || p.isr.iter().any(|r| lost_brokers.contains(r))
            })
            .collect();
        if unsettled.is_empty() {
            Ok(())
        } else {
            Err(format!("{unsettled:?}"))
        }
    });
    let settled_after = settled.ok().map(|()| killed_at.elapsed().as_secs());

    let quorum = match local.cluster.metadata {
        Metadata::Zookeeper => local
            .running(Role::Zookeeper)
            .iter()
            .any(|m| zk::serving(m.address)),
        // The running controllers name a leader among themselves (without a majority they
        // cannot: the request times out).
        Metadata::Kraft => local.controller_quorum().is_ok_and(|q| {
            local
                .running(Role::Controller)
                .iter()
                .any(|n| n.name == q.leader)
        }),
    };
    let parts = clients::describe(&local.bootstrap(), &topic).unwrap_or_else(|e| local.fail(&e));
    let partitions_online = parts
        .iter()
        .filter(|p| p.leader.is_some_and(|l| !lost_brokers.contains(&l)))
        .count() as u32;
    let writes = clients::write_each(&local.bootstrap(), &topic, WRITE_TIMEOUT)
        .unwrap_or_else(|e| local.fail(&e));
    let partitions_writable = writes.written.len() as u32;
    for (partition, why) in &writes.failed {
        eprintln!("losing {zone}: {topic}-{partition} took no acks=all write: {why}");
    }
    let acked_while_down = acked(&stream.events()) - acked_before;

    local.start_zone(zone);
    local.wait_for_quorum();
    local.wait_for_brokers();
    wait_in_sync(local, &topic, rf);
    let events = stream.finish(Duration::from_secs(5));

    let acked_values: Vec<String> = events
        .iter()
        .filter(|e| e["name"] == "producer_send_success")
        .filter_map(|e| e["value"].as_str().map(str::to_string))
        .collect();
    let mut read: BTreeMap<String, usize> = BTreeMap::new();
    // Read through a poll: a broker of the returned zone may still be restarting.
    let what = format!("every record of {topic}, read from the beginning");
    let records = local.wait(&what, Duration::from_secs(180), |c| {
        clients::read_all(&c.bootstrap(), &topic)
    });
    for (_, _, value) in records {
        if !value.starts_with("probe-") {
            *read.entry(value).or_default() += 1;
        }
    }
    let lost_records = acked_values
        .iter()
        .filter(|v| !read.contains_key(*v))
        .count();
    let duplicated = read.values().filter(|&&n| n > 1).count();
    assert!(
        !acked_values.is_empty() && events.iter().any(|e| e["name"] == "tool_data"),
        "the stream producer did not finish cleanly: {:?}",
        events.last()
    );

    let verdict = if !quorum {
        Verdict::QuorumLost
    } else if partitions_online < partitions {
        Verdict::PartitionsOffline
    } else if partitions_writable < partitions {
        Verdict::WritesBlocked
    } else {
        Verdict::Ok
    };
    Measured {
        partitions,
        verdict,
        quorum,
        partitions_online,
        partitions_writable,
        settled_after,
        acked_while_down,
        acked: acked_values.len(),
        lost: lost_records,
        duplicated,
    }
}

/// Waits until every partition of `topic` has all `rf` replicas in its ISR.
fn wait_in_sync(local: &mut LocalCluster, topic: &str, rf: u32) {
    let what = format!("every replica of {topic} in sync");
    local.wait(&what, Duration::from_secs(120), |c| {
        let parts = clients::describe(&c.bootstrap(), topic)?;
        if parts
            .iter()
            .all(|p| p.isr.len() == rf as usize && p.leader.is_some())
        {
            Ok(())
        } else {
            Err(format!("{parts:?}"))
        }
    });
}

/// Whether the measurement is what `check` predicted; `Err` says where they differ.
pub fn compare(predicted: &Predicted, measured: &Measured) -> Result<(), String> {
    let (p, m) = (predicted, measured);
    let differences: Vec<String> = [
        (
            "verdict",
            format!("{:?}", p.verdict),
            format!("{:?}", m.verdict),
        ),
        (
            "metadata quorum",
            p.quorum.to_string(),
            m.quorum.to_string(),
        ),
        (
            "partitions online",
            p.partitions_online.to_string(),
            m.partitions_online.to_string(),
        ),
        (
            "partitions writable",
            p.partitions_writable.to_string(),
            m.partitions_writable.to_string(),
        ),
    ]
    .into_iter()
    .filter(|(_, check, kafka)| check != kafka)
    .map(|(what, check, kafka)| format!("{what}: check {check}, Kafka {kafka}"))
    .collect();
    if differences.is_empty() {
        Ok(())
    } else {
        Err(differences.join("; "))
    }
}

/// Every zone's measurement matches its prediction, and nothing acknowledged was lost or
/// duplicated, whatever the verdict.
pub fn assert_all_match(rows: &[Row]) {
    let mut failures = Vec::new();
    for row in rows {
        if let Err(e) = compare(&row.predicted, &row.measured) {
            failures.push(format!("losing {}: {e}", row.zone));
        }
        if row.measured.lost > 0 || row.measured.duplicated > 0 {
            failures.push(format!(
                "losing {}: {} acknowledged records lost, {} duplicated",
                row.zone, row.measured.lost, row.measured.duplicated
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n{}",
        failures.join("\n"),
        table(rows)
    );
}

/// The drill as a markdown table: predicted against measured, per lost zone.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| zone lost | check predicts | Kafka did | metadata quorum | online | writable (acks=all) | \
         settled after | acked while down | acked / lost / duplicated |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let (p, m) = (&r.predicted, &r.measured);
        out.push_str(&format!(
            "| {} | {} | {} | {} / {} | {} / {} of {} | {} / {} of {} | {} | {} | {} / {} / {} |\n",
            r.zone,
            p.verdict.as_str(),
            m.verdict.as_str(),
            p.quorum,
            m.quorum,
            p.partitions_online,
            m.partitions_online,
            m.partitions,
            p.partitions_writable,
            m.partitions_writable,
            m.partitions,
            m.settled_after
                .map_or("not within 75 s".to_string(), |s| format!("{s} s")),
            m.acked_while_down,
            m.acked,
            m.lost,
            m.duplicated
        ));
    }
    out
}

/// How the producer-buffer test writes: 500 records a second of 2 KiB, about 1 MiB/s.
const BUFFER_RATE: u32 = 500;
const BUFFER_RECORD_BYTES: u32 = 2048;
/// How long each producer writes, and when (after it starts) the zone is killed.
const BUFFER_SECONDS: u32 = 60;
const BUFFER_KILL_AFTER: Duration = Duration::from_secs(10);

/// One `Probe timed-send` run through the loss of `zone`: the producer is built from the
/// properties in `settings` alone; returns what it measured (send() blocking, answers, records
/// missing on read-back). The zone is started again and the topic back in sync afterwards.
fn timed_send_through_zone_loss(
    local: &mut LocalCluster,
    topic: &str,
    zone: &str,
    settings: &[u8],
) -> Value {
    let bootstrap = local.bootstrap();
    clients::probe(
        &["create", &bootstrap, topic, "6", "3"],
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| local.fail(&e));
    wait_in_sync(local, topic, 3);
    let file = local.dir().join(format!("{topic}.properties"));
    std::fs::write(&file, settings).expect("producer settings");
    let log = local.dir().join(format!("{topic}.out"));
    // The application's heap holds the buffer (`client-config --heap` warns below 4 times it).
    let mut cmd = crate::local::jvm::kafka().tool_with_heap("Probe", "320m");
    cmd.args(["timed-send"])
        .arg(&file)
        .args([topic, &BUFFER_RATE.to_string()])
        .args([
            &BUFFER_RECORD_BYTES.to_string(),
            &BUFFER_SECONDS.to_string(),
        ]);
    let mut producer = crate::local::process::Watchdog::start(&cmd, &log);
    std::thread::sleep(BUFFER_KILL_AFTER);
    let killed = local.kill_zone(zone);
    eprintln!("{topic}: killed {zone} ({killed:?})");
    let deadline = Instant::now() + Duration::from_secs(u64::from(BUFFER_SECONDS) + 240);
    while producer.exited().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let result: Value = text
        .lines()
        .rev()
        .find(|l| l.starts_with("{\"sent\""))
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| local.fail(&format!("timed-send printed no result:\n{text}")));
    local.start_zone(zone);
    local.wait_for_zookeeper_quorum();
    local.wait_for_brokers();
    wait_in_sync(local, topic, 3);
    result
}

/// The producer buffer, measured through a zone loss: a producer configured only from
/// `kcluster client-config --producer` (1 MiB/s, ride out 60 s: a 60 MiB buffer) keeps sending
/// while a zone is down. In ZooKeeper mode every `acks=all` write waits until the lost broker is
/// dropped from the ISRs (its 18 s ZooKeeper session expires, then the controller moves leaders),
/// so for that long nothing is acknowledged and the whole write rate accumulates in the buffer.
/// The sized buffer holds it: send() never blocks (far below max.block.ms), nothing fails, and
/// every acknowledged record is read back. The control run, the same settings with an 8 MiB
/// buffer, shows that the measurement sees send() block when the buffer is too small.
#[test]
fn client_config_producer_rides_out_a_zone_loss_without_blocking_or_losing_records() {
    let path = support::repo().join("tests/it/fixtures/kafka-3x3.yaml");
    let cluster = support::load(&path);
    let mut local = LocalCluster::boot(&cluster);
    let app_zone = &cluster.zones[1].name;
    let lost_zone = cluster.zones[0].name.clone();
    let args = [
        "--producer",
        "--write-rate",
        "1MiB/s",
        "--ride-out",
        "60s",
        "--heap",
        "320m",
    ];
    let settings = clients::client_config(&path, app_zone, &args);
    let text = String::from_utf8_lossy(&settings).to_string();
    let value = |key: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in:\n{text}"))
    };
    let max_block_ms = value("max.block.ms");
    assert_eq!(max_block_ms, 60_000, "{text}");
    assert_eq!(value("buffer.memory"), 60 << 20, "{text}");

    let sized = timed_send_through_zone_loss(&mut local, "buffer-sized", &lost_zone, &settings);
    eprintln!("client-config producer: {sized}");
    let n = |v: &Value, k: &str| v[k].as_u64().unwrap_or(u64::MAX);
    let sent = u64::from(BUFFER_RATE * BUFFER_SECONDS);
    assert_eq!(n(&sized, "sent"), sent, "{sized}");
    assert_eq!(n(&sized, "thrown"), 0, "send() never threw: {sized}");
    assert_eq!(n(&sized, "failed"), 0, "no record failed: {sized}");
    assert_eq!(
        n(&sized, "acked"),
        sent,
        "every record acknowledged: {sized}"
    );
    assert_eq!(
        n(&sized, "missing"),
        0,
        "every acknowledged record read back: {sized}"
    );
    let max = n(&sized["block_ms"], "max");
    assert!(
        max < max_block_ms,
        "send() blocked {max} ms, max.block.ms is {max_block_ms}: {sized}"
    );
    // The buffer holds the whole outage: send() does not wait for it at all (a second allows
    // for a loaded machine's scheduling and GC pauses, far below the outage itself). The first
    // second is left out: the first send() waits for the topic's metadata.
    let running = n(&sized["block_ms"], "max_after_first_second");
    assert!(
        running < 1_000,
        "send() blocked {running} ms during the outage: {sized}"
    );

    // Control: the same settings with a buffer far too small for the outage (8 s of writes).
    let mut small = settings.clone();
    small.extend_from_slice(b"\nbuffer.memory=8388608\n");
    let control = timed_send_through_zone_loss(&mut local, "buffer-small", &lost_zone, &small);
    eprintln!("8 MiB buffer: {control}");
    let control_max = n(&control["block_ms"], "max");
    assert!(
        control_max > 2_000,
        "with an 8 MiB buffer send() should block while the lost broker is replaced: {control}"
    );
    assert_eq!(n(&control, "missing"), 0, "{control}");
}
