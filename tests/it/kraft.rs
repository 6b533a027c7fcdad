//! Real Kafka 4 reads the rendered KRaft files: the controllers, started from kcluster's
//! `controller.properties` and units after `kafka-storage format` as the bootstrap runs it, form
//! the metadata quorum of every voter with one leader; the brokers register with the racks the
//! topology gives them under the cluster id kcluster derives; killing the active controller moves
//! leadership within the quorum and metadata stays writable. The zone-loss drills in KRaft mode
//! compare what Kafka does with what `kcluster check --offline` predicts, including the layout
//! `check` fails (two zones, the controllers' majority in one) failing for real.

use std::collections::BTreeMap;
use std::time::Duration;

use kcluster::check::Verdict;
use kcluster::cluster::{Cluster, Metadata, Role};

use crate::drill;
use kcluster::render::exporters::JMX_EXPORTER_PORT;

use crate::local::{LIMIT, LocalCluster, clients, metrics};
use crate::support;

fn fixture(name: &str) -> Cluster {
    support::load(&support::repo().join("tests/it/fixtures").join(name))
}

/// `key=value` lines of a properties file Kafka wrote (`meta.properties`).
fn properties(path: &std::path::Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn controllers_form_a_quorum_brokers_register_with_their_racks_and_leadership_survives_the_leader()
{
    let cluster = fixture("kraft-3x3.yaml");
    assert_eq!(cluster.metadata, Metadata::Kraft);
    assert!(
        cluster.kafka.version.starts_with("4."),
        "the KRaft default is Kafka 4: {}",
        cluster.kafka.version
    );
    let mut local = LocalCluster::boot(&cluster);
    let cluster_id = cluster.kraft_cluster_id();

    // 1. Every node's storage was formatted with the cluster's derived id and its node.id.
    for node in &local.nodes {
        let meta = properties(
            &local
                .dir()
                .join(&node.name)
                .join("data/kafka/meta.properties"),
        );
        assert_eq!(meta.get("cluster.id"), Some(&cluster_id), "{}", node.name);
        assert_eq!(
            meta.get("node.id"),
            Some(&node.node_id().to_string()),
            "{}",
            node.name
        );
    }

    // 2. The quorum: every controller a voter, one leader among them, the brokers observers.
    let quorum = local.wait_for_controller_quorum();
    let voters: Vec<u32> = quorum.voters.iter().map(|(id, _)| *id).collect();
    assert_eq!(voters, [9001, 9002, 9003], "{quorum:?}");
    let observers: Vec<u32> = quorum.observers.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        observers,
        [1, 2, 3],
        "the brokers follow the log: {quorum:?}"
    );
    assert!(quorum.leader.starts_with("controller-"), "{quorum:?}");

    // 3. Brokers registered with their zone as rack, their client listener, the derived id.
    let described = local.wait_for_brokers();
    assert_eq!(
        described["cluster_id"],
        serde_json::Value::from(cluster_id.clone())
    );
    crate::kafka::assert_registered_racks(&cluster, &described);

    // 4. The rendered JMX exporter agent serves each controller's metrics: the active controller
    // counts 1, the others 0 (what the KafkaActiveControllerCount alert sums). The quorum is read
    // again: the leader may have changed while the brokers registered.
    let quorum = local.wait_for_controller_quorum();
    let active: BTreeMap<String, f64> = local
        .running(Role::Controller)
        .iter()
        .map(|n| {
            let body = metrics::get(n.address, JMX_EXPORTER_PORT, "/metrics")
                .unwrap_or_else(|e| local.fail(&e));
            let value = body
                .lines()
                .find_map(|l| l.strip_prefix("kafka_controller_active_controller_count"))
                .and_then(|rest| rest.rsplit(' ').next())
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or_else(|| {
                    local.fail(&format!(
                        "{}: no kafka_controller_active_controller_count",
                        n.name
                    ))
                });
            (n.name.clone(), value)
        })
        .collect();
    let expected: BTreeMap<String, f64> = active
        .keys()
        .map(|name| (name.clone(), if *name == quorum.leader { 1.0 } else { 0.0 }))
        .collect();
    assert_eq!(active, expected, "active controller count per controller");
    // Every node, controller or broker, names the quorum's leader in `kafka_raft_current_leader`.
    let leader_id = f64::from(local.node(&quorum.leader).node_id());
    for n in local
        .running(Role::Controller)
        .into_iter()
        .chain(local.running(Role::Broker))
    {
        let body = metrics::get(n.address, JMX_EXPORTER_PORT, "/metrics")
            .unwrap_or_else(|e| local.fail(&e));
        let named = body
            .lines()
            .find_map(|l| l.strip_prefix("kafka_raft_current_leader"))
            .and_then(|rest| rest.rsplit(' ').next())
            .and_then(|v| v.trim().parse::<f64>().ok());
        assert_eq!(
            named,
            Some(leader_id),
            "{}'s kafka_raft_current_leader",
            n.name
        );
    }

    // 5. Metadata is writable: a topic is created and takes acks=all writes everywhere.
    create_and_write(&mut local, "before");

    // 6. The active controller dies: another voter leads in a later epoch, and metadata stays
    // writable (a new topic is created and written).
    let old = quorum.clone();
    local.kill(&old.leader);
    let what = format!("a new leader after killing {}", old.leader);
    let new = local.wait(&what, LIMIT, |c| {
        let q = c.controller_quorum()?;
        if q.leader != old.leader && q.epoch > old.epoch {
            Ok(q)
        } else {
            Err(format!("{q:?}"))
        }
    });
    eprintln!(
        "leadership moved from {} (epoch {}) to {} (epoch {})",
        old.leader, old.epoch, new.leader, new.epoch
    );
    create_and_write(&mut local, "after");

    // 7. The old leader comes back (its volume kept) and rejoins as a voter, caught up.
    local.start(&old.leader);
    let back = local.wait_for_controller_quorum();
    assert_eq!(back.voters.len(), 3, "{back:?}");
    assert!(
        local.running(Role::Controller).len() == 3,
        "every controller runs again"
    );
}

/// Creates `topic` (3 partitions, 3 replicas), which only a writable metadata quorum can do,
/// and writes one acks=all record into each partition.
fn create_and_write(local: &mut LocalCluster, topic: &str) {
    let bootstrap = local.bootstrap();
    clients::probe(&["create", &bootstrap, topic, "3", "3"], LIMIT)
        .unwrap_or_else(|e| local.fail(&e));
    let written = clients::write_each(&bootstrap, topic, Duration::from_secs(30))
        .unwrap_or_else(|e| local.fail(&e));
    assert_eq!(written.written, vec![0, 1, 2], "{topic}: {written:?}");
}

#[test]
fn kraft_three_brokers_over_three_zones_keep_every_acked_record_through_the_loss_of_any_zone() {
    let rows = drill::drill("kraft-3x3.yaml", None);
    drill::assert_all_match(&rows);
    assert!(
        rows.iter().all(|r| r.measured.verdict == Verdict::Ok),
        "{}",
        drill::table(&rows)
    );
}

/// The layout `check` fails in KRaft mode: two zones, two of the three controllers in the first.
/// Losing it loses the controller quorum (metadata read-only: no leader moves, no ISR shrinks);
/// losing the other blocks acks=all writes of the partitions with two replicas there. Nothing
/// acknowledged is lost either way, and a wrong prediction is caught.
#[test]
fn kraft_two_zones_lose_the_controller_quorum_or_writes_exactly_as_check_predicts() {
    let rows = drill::drill("kraft-two-zones.yaml", None);
    drill::assert_all_match(&rows);
    let verdicts: Vec<Verdict> = rows.iter().map(|r| r.measured.verdict).collect();
    assert_eq!(
        verdicts,
        vec![Verdict::QuorumLost, Verdict::WritesBlocked],
        "{}",
        drill::table(&rows)
    );
    drill::assert_wrong_prediction_is_caught(&rows);
}

/// Runs the rendered bootstrap's `format_storage` in bash against a data directory in `state`,
/// with `kafka-storage.sh` replaced by a script that records its arguments and `runuser` by a
/// shim that runs the command as the test user. Returns whether it succeeded and what
/// `kafka-storage.sh` was asked (empty when it was not run).
fn run_format_storage(script: &str, data_dir: &std::path::Path) -> (bool, String) {
    let bash = support::require_tool("bash", "apt-get install bash");
    let start = script
        .find("format_storage() {")
        .expect("the bootstrap defines format_storage");
    let end = start + script[start..].find("\n}\n").expect("function end") + 3;
    let function = &script[start..end];
    let home = data_dir.parent().expect("parent").join("kafka-home");
    std::fs::create_dir_all(home.join("bin")).expect("bin");
    let calls = home.join("calls");
    let tool = home.join("bin/kafka-storage.sh");
    std::fs::write(
        &tool,
        format!("#!/bin/bash\necho \"$*\" >>'{}'\n", calls.display()),
    )
    .expect("fake kafka-storage.sh");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).expect("mode");
    let program = format!(
        "set -euo pipefail\n\
         log() {{ echo \"$*\" >&2; }}\n\
         runuser() {{ shift 3; \"$@\"; }}\n\
         readonly KAFKA_HOME='{}' DATA_DIR='{}' CLUSTER_ID=test-id CONFIG=/etc/kafka/x.properties\n\
         {function}\nformat_storage\n",
        home.display(),
        data_dir.display()
    );
    let out = support::run_bounded(
        std::process::Command::new(bash).arg("-c").arg(program),
        Duration::from_secs(30),
    );
    let asked = std::fs::read_to_string(&calls).unwrap_or_default();
    let _ = std::fs::remove_file(&calls);
    (out.status.success(), asked)
}

/// The bootstrap formats a KRaft node's storage only when its volume holds nothing yet: a volume
/// already formatted (a replaced instance that kept its volume, a re-run) keeps its data and the
/// node's place in the quorum, and a volume holding anything else is left alone for a person.
/// With the guard taken out, the same test catches the reformat.
#[test]
fn bootstrap_formats_kraft_storage_once_and_never_a_volume_holding_data() {
    let cluster = fixture("kraft-3x3.yaml");
    let renderer = kcluster::render::Renderer::new(&Default::default()).expect("templates");
    for node in cluster.nodes.iter().filter(|n| n.role != Role::Zookeeper) {
        let rendered = renderer.render_node(&cluster, node).expect("renders");
        let script = rendered
            .file("bootstrap.sh")
            .expect("bootstrap")
            .content
            .clone();
        let dir = tempfile::tempdir().expect("temporary directory");
        let data = dir.path().join("data");
        let kafka = data.join("kafka");
        std::fs::create_dir_all(&kafka).expect("log directory");

        // A fresh volume: formatted once, with the cluster's id and the node's configuration.
        let (ok, asked) = run_format_storage(&script, &data);
        assert!(ok, "{}", node.name);
        assert_eq!(
            asked,
            "format --cluster-id test-id --config /etc/kafka/x.properties --ignore-formatted\n",
            "{}",
            node.name
        );

        // A formatted volume: left as it is.
        std::fs::write(kafka.join("meta.properties"), "cluster.id=other\n").expect("meta");
        std::fs::write(kafka.join("orders-0"), "data").expect("data");
        let (ok, asked) = run_format_storage(&script, &data);
        assert!(ok && asked.is_empty(), "{}: {asked}", node.name);

        // The guards are what keep it: without them the same volume would be formatted again.
        let unguarded = script
            .replace(
                "if [ -f \"${dir}/meta.properties\" ]; then",
                "if false; then",
            )
            .replace("if [ -n \"$(ls -A \"${dir}\")\" ]; then", "if false; then");
        assert_eq!(
            unguarded.matches("if false; then").count(),
            2,
            "both guards are in the script"
        );
        let (_, asked) = run_format_storage(&unguarded, &data);
        assert!(
            !asked.is_empty(),
            "without the guard the test sees a reformat"
        );

        // Files but no meta.properties: refused, nothing formatted.
        std::fs::remove_file(kafka.join("meta.properties")).expect("remove");
        let (ok, asked) = run_format_storage(&script, &data);
        assert!(!ok && asked.is_empty(), "{}: {asked}", node.name);
    }
}

/// KRaft mode is allowed on Kafka 3.9 too: the same rendered controllers, formatted by 3.9.2's
/// `kafka-storage`, form the quorum of every voter under 3.9.2, and a broker registers with it.
#[test]
fn kraft_on_kafka_3_9_forms_the_same_quorum() {
    let yaml = std::fs::read_to_string(support::repo().join("tests/it/fixtures/kraft-3x3.yaml"))
        .expect("fixture")
        .replace(
            "metadata: kraft\n",
            "metadata: kraft\nkafka:\n  version: 3.9.2\n",
        )
        .replace("  count: 3\n  heap: 320m", "  count: 1\n  heap: 320m");
    let cluster = support::load_str(&yaml);
    assert_eq!(
        (cluster.metadata, cluster.kafka.version.as_str()),
        (Metadata::Kraft, "3.9.2")
    );
    let mut local = LocalCluster::boot(&cluster);
    let quorum = local.wait_for_controller_quorum();
    let voters: Vec<u32> = quorum.voters.iter().map(|(id, _)| *id).collect();
    assert_eq!(voters, [9001, 9002, 9003], "{quorum:?}");
    let described = local.wait_for_brokers();
    assert_eq!(
        described["cluster_id"],
        serde_json::Value::from(cluster.kraft_cluster_id())
    );
    crate::kafka::assert_registered_racks(&cluster, &described);
}
