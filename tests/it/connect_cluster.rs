//! Real Kafka Connect runs the rendered files: three workers started from kcluster's
//! `connect-distributed.properties` and units (with plugins installed by the rendered bootstrap)
//! form one group; a FileStreamSource posted to one worker and a FileStreamSink posted to another
//! move records end to end; a lost zone's tasks move to the surviving workers and every record
//! still arrives. kcluster's own executor rolls the workers one at a time behind the REST gate
//! (without it, two workers are seen away at once).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kcluster::cluster::{CONNECT_REST_PORT, Cluster, Role};
use kcluster::operations::health::connect_state;
use kcluster::operations::roll::ConnectState;
use kcluster::provision::apply::Gates;
use kcluster::render::exporters::JMX_EXPORTER_PORT;
use serde_json::{Value, json};

use crate::local::connect::{self, rest};
use crate::local::ec2::{apply, gated, health_of, on_local_ec2};
use crate::local::{LIMIT, LocalCluster, metrics};
use crate::support;

const TOPIC: &str = "connect-e2e";
const SOURCE: &str = "file-source";
const SINK: &str = "file-sink";
/// Records written before the zone is lost, and as many after.
const BATCH: usize = 500;

fn fixture() -> Cluster {
    support::load(&support::repo().join("tests/it/fixtures/connect-3x3.yaml"))
}

fn record(i: usize) -> String {
    format!("record-{i:05}")
}

fn append(file: &Path, range: std::ops::Range<usize>) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .expect("input file");
    for i in range {
        writeln!(f, "{}", record(i)).expect("write a record");
    }
}

/// The lines the sink wrote so far.
fn sunk(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The worker (its REST id, `address:port`) running each of a connector's tasks, when all run.
fn running_tasks(address: Ipv4Addr, connector: &str) -> Result<Vec<String>, String> {
    let (code, status) = rest(
        address,
        "GET",
        &format!("/connectors/{connector}/status"),
        None,
    )?;
    let tasks = status["tasks"].as_array().cloned().unwrap_or_default();
    if code != 200 || tasks.is_empty() || tasks.iter().any(|t| t["state"] != "RUNNING") {
        return Err(format!("{connector}: HTTP {code} {status}"));
    }
    Ok(tasks
        .iter()
        .map(|t| t["worker_id"].as_str().unwrap_or("?").to_string())
        .collect())
}

/// Runs each worker's rendered bootstrap to install the topology's plugins, checksum-verified,
/// where its rendered `plugin.path` points, and checks they are there.
fn install_plugins(local: &LocalCluster, cluster: &Cluster) {
    let group = cluster.connect.as_ref().expect("the fixture has workers");
    let plugins: Vec<_> = group
        .plugins
        .iter()
        .map(|p| (p.clone(), connect::fetched_plugin(p)))
        .collect();
    assert!(!plugins.is_empty(), "the fixture installs a plugin");
    for name in cluster.nodes_of(Role::Connect).map(|n| &n.name) {
        let node = local.node(name);
        let bootstrap =
            std::fs::read_to_string(node.rendered_file("bootstrap.sh")).expect("bootstrap");
        let props = kcluster::check::live::parse_properties(
            &std::fs::read_to_string(node.rendered_file("connect-distributed.properties"))
                .expect("rendered properties"),
        );
        assert_eq!(
            PathBuf::from(&props["plugin.path"]),
            local.plugin_dir(name),
            "{name}: the harness's plugin directory"
        );
        if let Err(e) = connect::install_plugins(&bootstrap, &plugins) {
            local.fail(&format!("{name}: {e}"));
        }
        for (plugin, _) in &plugins {
            let dir = PathBuf::from(&props["plugin.path"]).join(&plugin.name);
            let jars = std::fs::read_dir(&dir)
                .map(|d| d.count())
                .unwrap_or_else(|e| panic!("{name}: {} ({e})", dir.display()));
            assert!(jars > 0, "{name}: {} is empty", dir.display());
        }
    }
}

/// A FileStreamSource from `input` into the test topic and a FileStreamSink from it to `output`.
fn file_connectors(input: &Path, output: &Path) -> [Value; 2] {
    [
        json!({"name": SOURCE, "config": {
            "connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
            "tasks.max": "1", "file": input, "topic": TOPIC,
            "topic.creation.default.replication.factor": "3",
            "topic.creation.default.partitions": "3"}}),
        json!({"name": SINK, "config": {
            "connector.class": "org.apache.kafka.connect.file.FileStreamSinkConnector",
            "tasks.max": "1", "file": output, "topics": TOPIC}}),
    ]
}

#[test]
fn workers_form_one_group_move_records_and_survive_a_zone_loss() {
    let cluster = fixture();
    let mut local = LocalCluster::boot(&cluster);
    let workers: Vec<(String, Ipv4Addr, String)> = cluster
        .nodes_of(Role::Connect)
        .map(|n| (n.name.clone(), n.address, n.zone.clone()))
        .collect();
    let worker_at = |id: &str| -> (String, Ipv4Addr, String) {
        workers
            .iter()
            .find(|(_, a, _)| id == format!("{a}:{}", kcluster::cluster::CONNECT_REST_PORT))
            .cloned()
            .unwrap_or_else(|| panic!("no worker advertises {id}"))
    };

    // 1. Each worker's rendered bootstrap installs the plugins, checksum-verified, where the
    //    rendered `plugin.path` points.
    install_plugins(&local, &cluster);

    // 2. The workers start from the rendered files and form one group: every worker joined the
    //    same generation under the same leader.
    local.start_role(Role::Connect);
    let names: Vec<String> = workers.iter().map(|w| w.0.clone()).collect();
    let (generation, leader) = local.wait("the three workers to join one group", LIMIT, |c| {
        let joined: BTreeSet<Option<(u64, String)>> = names
            .iter()
            .map(|n| connect::joined_group(&c.node(n).log_text()))
            .collect();
        match joined.iter().collect::<Vec<_>>()[..] {
            [Some(one)] => Ok(one.clone()),
            _ => Err(format!("{joined:?}")),
        }
    });
    eprintln!("workers joined generation {generation} led by {leader}");
    for (name, address, _) in &workers {
        let (code, plugins) = local.wait(&format!("{name}'s REST API"), LIMIT, |_| {
            rest(*address, "GET", "/connector-plugins", None)
        });
        let classes: BTreeSet<&str> = plugins
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["class"].as_str())
            .collect();
        assert_eq!(code, 200, "{name}: {plugins}");
        for class in [
            "io.debezium.connector.postgresql.PostgresConnector",
            "org.apache.kafka.connect.file.FileStreamSourceConnector",
            "org.apache.kafka.connect.file.FileStreamSinkConnector",
        ] {
            assert!(classes.contains(class), "{name} lacks {class}: {classes:?}");
        }
    }

    // 3. A source posted to the first worker and a sink posted to the second move records end
    //    to end (requests a follower receives are forwarded to the leader).
    let dir = local.dir().join("connect-files");
    std::fs::create_dir_all(&dir).expect("connector files");
    let (input, output) = (dir.join("input.txt"), dir.join("output.txt"));
    append(&input, 0..BATCH);
    let [source, sink] = file_connectors(&input, &output);
    for (worker, body) in [(&workers[0], &source), (&workers[1], &sink)] {
        let (code, answer) =
            rest(worker.1, "POST", "/connectors", Some(body)).unwrap_or_else(|e| local.fail(&e));
        assert_eq!(code, 201, "POST to {}: {answer}", worker.0);
    }
    let expect_first: BTreeSet<String> = (0..BATCH).map(record).collect();
    local.wait("the first records to reach the sink's file", LIMIT, |_| {
        let got: BTreeSet<String> = sunk(&output).into_iter().collect();
        if got == expect_first {
            Ok(())
        } else {
            Err(format!("{} of {BATCH} records", got.len()))
        }
    });
    let sink_worker = local.wait("the sink task's worker", LIMIT, |_| {
        running_tasks(workers[0].1, SINK)
    });
    let (victim, _, zone) = worker_at(&sink_worker[0]);
    eprintln!("the sink task runs on {victim} in {zone}");

    // The sink task's consumer fetches from its worker's zone: Connect gave it `client.rack`.
    let block_of = |local: &LocalCluster, worker: &str| {
        let log = local.node(worker).log_text();
        connect::consumer_config_block(&log, &format!("connector-consumer-{SINK}-0"))
            .map(str::to_string)
    };
    let block = block_of(&local, &victim).unwrap_or_else(|| {
        local.fail(&format!("{victim} logged no config of the sink's consumer"))
    });
    assert!(
        block
            .lines()
            .any(|l| l.trim() == format!("client.rack = {zone}")),
        "{victim}'s sink consumer does not fetch from {zone}:\n{block}"
    );

    // Every metric the rendered rules name is served by some worker's JMX exporter.
    let rules = std::fs::read_to_string(local.node(&victim).rendered_file("jmx-exporter.yaml"))
        .expect("rules");
    let expected = metrics::rule_names(&rules);
    local.wait(
        "the workers' exporters to serve the Connect rules",
        LIMIT,
        |_| {
            let mut served = BTreeSet::new();
            for (_, address, _) in &workers {
                served.extend(metrics::scrape(*address, JMX_EXPORTER_PORT)?);
            }
            let missing: Vec<_> = expected.difference(&served).collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!("missing {missing:?}"))
            }
        },
    );

    // 4. The sink worker's zone is lost (its ZooKeeper member, broker and worker killed). More
    //    records arrive at the source; the lost worker's tasks move to the others and every
    //    record reaches the sink's file.
    let killed = local.kill_zone(&zone);
    let lost = Instant::now();
    eprintln!("killed {zone}: {killed:?}");
    append(&input, BATCH..2 * BATCH);
    let survivor = workers
        .iter()
        .find(|w| w.2 != zone)
        .expect("a worker outside the zone")
        .1;
    let moved = local.wait("the sink task to move out of the lost zone", LIMIT, |_| {
        let on = running_tasks(survivor, SINK)?;
        match worker_at(&on[0]) {
            (name, _, z) if z != zone => Ok(name),
            (name, _, _) => Err(format!("still on {name}")),
        }
    });
    eprintln!("the sink task moved to {moved} after {:?}", lost.elapsed());
    let expect_all: BTreeSet<String> = (0..2 * BATCH).map(record).collect();
    let lines = local.wait("every record to reach the sink's file", LIMIT, |_| {
        let lines = sunk(&output);
        let got: BTreeSet<String> = lines.iter().cloned().collect();
        if got == expect_all {
            Ok(lines)
        } else {
            Err(format!("{} of {} records", got.len(), 2 * BATCH))
        }
    });
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for l in &lines {
        *counts.entry(l.as_str()).or_default() += 1;
    }
    let duplicates = lines.len() - counts.len();
    eprintln!(
        "{} lines in the sink's file, {} distinct records of {} written, {duplicates} redelivered \
         (Connect delivers at least once), {:?} after the zone was lost",
        lines.len(),
        counts.len(),
        2 * BATCH,
        lost.elapsed()
    );
    assert_eq!(counts.len(), 2 * BATCH, "no record lost, none invented");
    let moved_zone = workers
        .iter()
        .find(|w| w.0 == moved)
        .expect("worker")
        .2
        .clone();
    let block = block_of(&local, &moved)
        .unwrap_or_else(|| local.fail(&format!("{moved} logged no config of the sink's consumer")));
    assert!(
        block
            .lines()
            .any(|l| l.trim() == format!("client.rack = {moved_zone}")),
        "{moved}'s sink consumer does not fetch from {moved_zone}:\n{block}"
    );
    let (code, status) = rest(
        survivor,
        "GET",
        &format!("/connectors/{SOURCE}/status"),
        None,
    )
    .unwrap_or_else(|e| local.fail(&e));
    assert_eq!(code, 200);
    assert_eq!(
        status["connector"]["state"],
        Value::from("RUNNING"),
        "{status}"
    );
}

/// The rendered bootstrap installs a plugin only when its checksum matches: another archive
/// served at the plugin's URL is refused and leaves nothing under `plugin.path`. With the check
/// taken out of the script (a test-only edit), the same substitute would be installed, so the
/// refusal above is the checksum's doing.
#[test]
fn the_bootstrap_installs_only_the_plugin_its_checksum_names() {
    let cluster = fixture();
    let node = cluster.nodes_of(Role::Connect).next().expect("a worker");
    let plugin = cluster.connect.as_ref().expect("workers").plugins[0].clone();
    let dir = tempfile::tempdir().expect("temporary directory");
    let plugin_dir = dir.path().join("plugins");
    let renderer = kcluster::render::Renderer::new(&kcluster::render::Options {
        plugin_dir: plugin_dir.display().to_string(),
        ..Default::default()
    })
    .expect("templates");
    let bootstrap = renderer
        .render_node(&cluster, node)
        .expect("renders")
        .file("bootstrap.sh")
        .expect("bootstrap")
        .content
        .clone();

    // A substitute: a well-formed archive holding something else.
    let substitute = dir.path().join("substitute.tar.gz");
    std::fs::create_dir_all(dir.path().join("evil")).expect("dir");
    std::fs::write(dir.path().join("evil/evil.jar"), b"not the plugin").expect("file");
    let tar = support::run_bounded(
        std::process::Command::new("tar")
            .arg("-czf")
            .arg(&substitute)
            .arg("-C")
            .arg(dir.path())
            .arg("evil"),
        std::time::Duration::from_secs(30),
    );
    assert!(tar.status.success(), "tar: {tar:?}");
    let installed = plugin_dir.join(&plugin.name);
    let leftovers = |d: &Path| std::fs::read_dir(d).map(|r| r.count()).unwrap_or(0);

    let err = connect::install_plugins(&bootstrap, &[(plugin.clone(), substitute.clone())])
        .expect_err("a substitute archive is refused");
    assert!(err.contains("checksum mismatch"), "{err}");
    assert!(!installed.exists(), "nothing installed");
    assert_eq!(
        leftovers(&plugin_dir),
        0,
        "no staging directory left behind"
    );

    // The check's place in the pipe goes to `cat`, which reads what `echo` writes: with `true`
    // there, `echo` could hit a closed pipe first and, under `pipefail`, fail the pipe anyway.
    let unchecked = bootstrap.replace(
        "| \"${algorithm}sum\" --check --strict --status",
        "| cat >/dev/null",
    );
    assert_ne!(unchecked, bootstrap, "the test-only edit applies");
    connect::install_plugins(&unchecked, &[(plugin.clone(), substitute)])
        .expect("without the check the substitute goes in");
    assert!(installed.join("evil/evil.jar").exists());
    std::fs::remove_dir_all(&installed).expect("clean");

    connect::install_plugins(
        &bootstrap,
        &[(plugin.clone(), connect::fetched_plugin(&plugin))],
    )
    .expect("the pinned archive installs");
    assert!(
        installed
            .join("debezium-connector-postgres")
            .read_dir()
            .is_ok_and(|mut d| d
                .any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".jar")))),
        "the plugin's jars are under {}",
        installed.display()
    );
    // A second boot keeps what is installed.
    connect::install_plugins(
        &bootstrap,
        &[(plugin.clone(), PathBuf::from("/nonexistent.tar.gz"))],
    )
    .expect("an installed plugin is not fetched again");
}

/// When a sample was taken, and the workers away then.
type Away = (Instant, Vec<String>);

/// Which workers' REST API does not answer `GET /`, sampled as often as it goes, until dropped:
/// a worker stopped, or started and not serving yet, is away.
struct AwayWatcher {
    samples: Arc<Mutex<Vec<Away>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl AwayWatcher {
    fn start(workers: Vec<(String, Ipv4Addr)>) -> AwayWatcher {
        let samples: Arc<Mutex<Vec<Away>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (out, halt) = (samples.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !halt.load(Ordering::SeqCst) {
                let away: Vec<String> = workers
                    .iter()
                    .filter(|(_, a)| {
                        let at = SocketAddr::from((*a, CONNECT_REST_PORT));
                        kcluster::operations::exporter_health::get(
                            at,
                            "/",
                            "application/json",
                            Duration::from_secs(5),
                        )
                        .is_err()
                    })
                    .map(|(n, _)| n.clone())
                    .collect();
                out.lock().expect("samples").push((Instant::now(), away));
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        AwayWatcher {
            samples,
            stop,
            thread: Some(thread),
        }
    }

    /// In `[from, to]`: how many samples, and the most workers away at once (a sample of them).
    fn most_away(&self, from: Instant, to: Instant) -> (usize, Vec<String>) {
        let samples = self.samples.lock().expect("samples");
        let window: Vec<&Away> = samples
            .iter()
            .filter(|(t, _)| *t >= from && *t <= to)
            .collect();
        let most = window
            .iter()
            .map(|(_, away)| away.clone())
            .max_by_key(Vec::len)
            .unwrap_or_default();
        (window.len(), most)
    }
}

impl Drop for AwayWatcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The fixture with the workers' heap changed: a change of files only, so a rolling restart.
fn with_worker_heap(heap: &str) -> Cluster {
    let yaml = std::fs::read_to_string(support::repo().join("tests/it/fixtures/connect-3x3.yaml"))
        .expect("fixture");
    let from = "connect:\n  count: 3\n  heap: 256m\n";
    assert!(yaml.contains(from), "connect-3x3.yaml changed shape");
    support::load_str(&yaml.replace(from, &format!("connect:\n  count: 3\n  heap: {heap}\n")))
}

/// kcluster's executor rolls a heap change over the workers of a running group, with records
/// flowing through a source and a sink: behind the REST gate, one worker at a time (a watcher
/// polling every worker's REST API never sees two away), each worker restarted once with its
/// new heap. The same roll with the gates off (the test-only switch) shows what the gate
/// prevents: two workers away at once. Every record written still reaches the sink.
#[test]
fn workers_roll_one_at_a_time_behind_the_rest_gate_and_without_it_two_are_away_at_once() {
    let cluster = fixture();
    let mut local = LocalCluster::boot(&cluster);
    install_plugins(&local, &cluster);
    local.start_role(Role::Connect);
    let workers: Vec<(String, Ipv4Addr)> = cluster
        .nodes_of(Role::Connect)
        .map(|n| (n.name.clone(), n.address))
        .collect();
    let group_whole = |workers: &[(String, Ipv4Addr)]| -> Result<(), String> {
        let states: Vec<ConnectState> = workers
            .iter()
            .map(|(_, a)| {
                connect_state(
                    SocketAddr::from((*a, CONNECT_REST_PORT)),
                    Duration::from_secs(5),
                )
            })
            .collect();
        if states.iter().all(|s| matches!(s, ConnectState::Up { .. })) {
            Ok(())
        } else {
            Err(format!("{states:?}"))
        }
    };
    local.wait("every worker in the group", LIMIT, |_| {
        group_whole(&workers)
    });
    let dir = local.dir().join("connect-files");
    std::fs::create_dir_all(&dir).expect("connector files");
    let (input, output) = (dir.join("input.txt"), dir.join("output.txt"));
    append(&input, 0..BATCH);
    for body in file_connectors(&input, &output) {
        let (code, answer) = rest(workers[0].1, "POST", "/connectors", Some(&body))
            .unwrap_or_else(|e| local.fail(&e));
        assert_eq!(code, 201, "{answer}");
    }
    local.wait("the first records to reach the sink's file", LIMIT, |_| {
        let got = sunk(&output).len();
        if got >= BATCH {
            Ok(())
        } else {
            Err(format!("{got} of {BATCH} records"))
        }
    });

    let (ec2, runtime) = on_local_ec2(&cluster, local, None);
    let watcher = AwayWatcher::start(workers.clone());
    let network = health_of(&cluster);
    let gated = gated(&network, Duration::from_secs(240));

    // 1. With the gate: each worker once, never two away.
    let tuned = with_worker_heap("288m");
    let (mark, from) = (ec2.stopped_since(0).len(), Instant::now());
    let (plan, _) = runtime.block_on(apply(&ec2, &tuned, &gated));
    let to = Instant::now();
    assert!(
        plan.nodes.iter().all(|n| (n.role == Role::Connect)
            == (n.instance == kcluster::provision::plan::Action::Update)),
        "{}",
        plan.render_text()
    );
    let mut rolled = ec2.stopped_since(mark);
    rolled.sort();
    assert_eq!(
        rolled,
        ["connect-1", "connect-2", "connect-3"],
        "each worker once"
    );
    for (name, _) in &workers {
        let local = ec2.local.lock().expect("local");
        let unit = local.node(name).unit_text();
        assert!(
            unit.contains("-Xmx288m"),
            "{name} runs its new heap: {unit}"
        );
    }
    let (samples, most) = watcher.most_away(from, to);
    eprintln!(
        "worker roll with the gate: {:?}, {samples} samples, most away at once: {most:?}",
        to - from
    );
    assert!(samples >= 20, "the watcher sampled the roll ({samples})");
    assert_eq!(
        most.len(),
        1,
        "one worker away at a time, and the watcher saw it: {most:?}"
    );

    // 2. The same roll with the gates off: the next worker stops while the last one starts.
    let (mark, from) = (ec2.stopped_since(0).len(), Instant::now());
    runtime.block_on(apply(&ec2, &fixture(), &Gates::skipped()));
    ec2.local
        .lock()
        .expect("local")
        .wait("every worker back in the group", LIMIT, |_| {
            group_whole(&workers)
        });
    let to = Instant::now();
    assert_eq!(ec2.stopped_since(mark).len(), 3);
    let (samples, most) = watcher.most_away(from, to);
    eprintln!(
        "worker roll without gates: {:?}, {samples} samples, most away at once: {most:?}",
        to - from
    );
    assert!(
        most.len() >= 2,
        "without the gate the watcher must see two workers away at once ({samples} samples, most {most:?})"
    );
    drop(watcher);

    // 3. The connectors ran on: every record written, before and after, reaches the sink.
    append(&input, BATCH..2 * BATCH);
    let expect_all: BTreeSet<String> = (0..2 * BATCH).map(record).collect();
    ec2.local
        .lock()
        .expect("local")
        .wait("every record to reach the sink's file", LIMIT, |_| {
            let got: BTreeSet<String> = sunk(&output).into_iter().collect();
            if got == expect_all {
                Ok(())
            } else {
                Err(format!("{} of {} records", got.len(), 2 * BATCH))
            }
        });
}
