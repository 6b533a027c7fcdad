//! The monitoring files at work: a rendered cluster on loopback, every node with its JMX exporter
//! agent, scraped by a real Prometheus (Debian's) running the configuration and alert rules
//! `kcluster monitoring` writes. Every metric the alerts and the dashboard read from the agents
//! is in what Prometheus scraped; killing a zone sends the zone-down, node-down and
//! under-replicated-partitions alerts to firing in Prometheus's own API, and they resolve once
//! the zone is back. In KRaft mode (Kafka 4), losing the zone that holds the controllers' majority
//! fires the KRaft quorum, active controller and zone-down alerts, and a lone broker's
//! unreplicated partitions are counted once by the offline-partitions alert.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use kcluster::cluster::{Cluster, Metadata, Role};
use kcluster::render::monitoring::{self, ALERTS_FILE, JMX_JOB, PROMETHEUS_FILE};
use kcluster::render::{Options, Renderer};
use serde_json::Value;

use crate::local::process::Watchdog;
use crate::local::{LocalCluster, clients, metrics};
use crate::support;

const PROMETHEUS: &str = "apt-get install --no-install-recommends prometheus";
/// The test's copy of prometheus.yml scrapes every 5 s (timeout 5 s) and evaluates every second
/// instead of every 30 s, so that the alerts' own `for:` durations (unchanged) dominate the
/// test's length. (A 1 s scrape timeout is too short for a JVM on a busy 2-core machine.)
const SCRAPE_INTERVAL: &str = "5s";
const EVALUATION_INTERVAL: &str = "1s";
/// Alerts with `for: 1m` after a condition that itself takes up to ~30 s (ISR shrink after
/// `replica.lag.time.max.ms`) to appear.
const ALERT_LIMIT: Duration = Duration::from_secs(240);

/// A Prometheus server on 127.0.0.1 with a temporary storage directory; it dies with the test.
struct Prometheus {
    port: u16,
    _process: Watchdog,
}

impl Prometheus {
    fn start(dir: &Path) -> Prometheus {
        let program = support::require_tool("prometheus", PROMETHEUS);
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut cmd = Command::new(program);
        cmd.arg(format!(
            "--config.file={}",
            dir.join(PROMETHEUS_FILE).display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .current_dir(dir);
        let process = Watchdog::start(&cmd, &dir.join("prometheus.log"));
        Prometheus {
            port,
            _process: process,
        }
    }

    fn api(&self, path: &str) -> Result<Value, String> {
        let body = metrics::get(Ipv4Addr::LOCALHOST, self.port, path)?;
        let v: Value = serde_json::from_str(&body).map_err(|e| format!("{path}: {e}"))?;
        if v["status"] != "success" {
            return Err(format!("{path}: {v}"));
        }
        Ok(v["data"].clone())
    }

    /// Each node's value in an instant PromQL query (series without a `node` label left out).
    fn by_node(&self, promql: &str) -> Result<BTreeMap<String, f64>, String> {
        let encoded: String = promql
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => char::from(b).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        let data = self.api(&format!("/api/v1/query?query={encoded}"))?;
        Ok(data["result"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|r| {
                let node = r["metric"]["node"].as_str()?.to_string();
                let value = r["value"][1].as_str().and_then(|v| v.parse().ok());
                Some((node, value.unwrap_or(f64::NAN)))
            })
            .collect())
    }

    /// Every pending or firing alert.
    fn alerts(&self) -> Result<Vec<Alert>, String> {
        let data = self.api("/api/v1/alerts")?;
        Ok(data["alerts"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|a| {
                let labels = a["labels"].as_object().cloned().unwrap_or_default();
                let text = labels
                    .iter()
                    .filter(|(k, _)| *k != "alertname")
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                    .collect::<Vec<_>>()
                    .join(",");
                Alert {
                    name: labels["alertname"].as_str().unwrap_or("").to_string(),
                    labels: text,
                    state: a["state"].as_str().unwrap_or("").to_string(),
                    value: a["value"]
                        .as_str()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(f64::NAN),
                }
            })
            .collect())
    }
}

/// A pending or firing alert as Prometheus's API lists it.
#[derive(Debug)]
struct Alert {
    name: String,
    /// Its labels but the name, as `k=v` text.
    labels: String,
    state: String,
    /// The value of its expression when Prometheus last evaluated it.
    value: f64,
}

/// The monitoring files for `cluster` in `dir`, the Prometheus configuration with short intervals
/// (its targets are the fixture's loopback addresses already, so nothing else changes).
fn write_monitoring(cluster: &Cluster, dir: &Path) {
    let files = monitoring::files(cluster);
    monitoring::write_to(&files, dir).expect("monitoring files");
    let path = dir.join(PROMETHEUS_FILE);
    let mut config: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&path).expect("config")).expect("YAML");
    config["global"]["scrape_interval"] = SCRAPE_INTERVAL.into();
    config["global"]["scrape_timeout"] = SCRAPE_INTERVAL.into();
    config["global"]["evaluation_interval"] = EVALUATION_INTERVAL.into();
    std::fs::write(&path, serde_yaml::to_string(&config).expect("YAML")).expect("config");
}

/// Alert `name` if it fires, with the label `label` (`k=v`) when one is given.
fn firing<'a>(alerts: &'a [Alert], name: &str, label: Option<&str>) -> Option<&'a Alert> {
    alerts.iter().find(|a| {
        a.name == name
            && a.state == "firing"
            && label.is_none_or(|label| a.labels.split(',').any(|kv| kv == label))
    })
}

/// Fails unless KafkaNodeDown fires for every node in `killed`.
fn assert_nodes_down(alerts: &[Alert], killed: &[String]) {
    for name in killed {
        assert!(
            firing(alerts, "KafkaNodeDown", Some(&format!("node={name}"))).is_some(),
            "{name} is down but KafkaNodeDown does not fire: {alerts:?}"
        );
    }
}

/// Starts the nodes of `zone` again and waits until none of the alerts `names` is pending or
/// firing; returns how long that took.
fn restart_zone_until_resolved(
    local: &mut LocalCluster,
    prometheus: &Prometheus,
    zone: &str,
    names: &[&str],
) -> Duration {
    let returned_at = Instant::now();
    local.start_zone(zone);
    local.wait(
        "the alerts to resolve once the zone is back",
        ALERT_LIMIT,
        |_| {
            let alerts = prometheus.alerts()?;
            let left: Vec<&Alert> = alerts
                .iter()
                .filter(|a| names.contains(&a.name.as_str()))
                .collect();
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("{left:?}"))
            }
        },
    );
    returned_at.elapsed()
}

/// Waits until Prometheus scrapes the JMX exporter of every node that runs a JVM.
fn wait_for_targets(local: &mut LocalCluster, prometheus: &Prometheus) {
    let targets = local
        .cluster
        .nodes
        .iter()
        .filter(|n| n.role.info().jvm)
        .count();
    local.wait(
        "Prometheus to scrape every node's JMX exporter",
        Duration::from_secs(60),
        |_| {
            let data = prometheus.api("/api/v1/targets")?;
            let up = data["activeTargets"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .filter(|t| t["labels"]["job"] == JMX_JOB && t["health"] == "up")
                .count();
            if up == targets {
                Ok(())
            } else {
                Err(format!("{up} of {targets} JMX exporter targets up"))
            }
        },
    );
}

/// The metric names the JMX exporter rules of one node of each role promise; `rules` reads a
/// node's rules file (`None`: its role runs no JMX exporter).
fn promised<N>(
    nodes: impl Iterator<Item = (Role, N)>,
    rules: impl Fn(N) -> Option<String>,
) -> BTreeSet<String> {
    let mut roles = BTreeSet::new();
    nodes
        .filter(|(role, _)| roles.insert(*role))
        .filter_map(|(_, n)| rules(n))
        .flat_map(|r| metrics::rule_names(&r))
        .collect()
}

/// Waits until every metric the alerts and the dashboard read from the agents, and every metric
/// the rendered JMX exporter rules of the cluster's nodes name, was scraped; fails the test with
/// the missing names (node_exporter does not run here; monitoring.rs checks its metrics against a
/// real one). Only the metrics that the other metadata mode's nodes alone export are not asked for
/// (ZooKeeper's own and the broker's ZooKeeper session in KRaft mode, the raft and KRaft controller
/// metrics in ZooKeeper mode): those the rendered rules of an example cluster in the other mode
/// name and this cluster's do not.
fn wait_for_scraped(local: &mut LocalCluster, prometheus: &Prometheus) {
    let here = promised(local.nodes.iter().map(|n| (n.role, n)), |n| {
        let path = n.rendered_file("jmx-exporter.yaml");
        Some(std::fs::read_to_string(path).expect("rendered rules"))
    });
    let other = support::load(&support::topology(match local.cluster.metadata {
        Metadata::Zookeeper => "kraft.yaml",
        Metadata::Kraft => "minimal.yaml",
    }));
    assert_ne!(other.metadata, local.cluster.metadata);
    let renderer = Renderer::new(&Options::default()).expect("templates");
    let there = promised(other.nodes.iter().map(|n| (n.role, n)), |n| {
        let rendered = renderer.render_node(&other, n).expect("renders");
        Some(rendered.file("jmx-exporter.yaml")?.content.clone())
    });
    let wanted: BTreeSet<String> = agent_metrics_read()
        .into_iter()
        .filter(|m| here.contains(m) || !there.contains(m))
        .chain(here.iter().cloned())
        .collect();
    local.wait(
        "every metric the alerts and dashboard read to be scraped",
        Duration::from_secs(30),
        |_| {
            let names: BTreeSet<String> = prometheus
                .api("/api/v1/label/__name__/values")?
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            let missing: Vec<_> = wanted.difference(&names).collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!("not scraped: {missing:?}"))
            }
        },
    );
}

/// Waits until a healthy cluster has no alert pending or firing (the rules evaluate every second,
/// so one that misfires is pending within seconds and stays so).
fn wait_for_quiet(local: &mut LocalCluster, prometheus: &Prometheus) {
    local.wait(
        "a healthy cluster to have no alert pending or firing",
        Duration::from_secs(90),
        |_| {
            let alerts = prometheus.alerts()?;
            if alerts.is_empty() {
                Ok(())
            } else {
                Err(format!("{alerts:?}"))
            }
        },
    );
}

/// The cluster booted, with topic `watched` (6 partitions, 3 replicas) created.
fn boot_with_watched_topic(cluster: &Cluster) -> LocalCluster {
    let local = LocalCluster::boot(cluster);
    clients::probe(
        &["create", &local.bootstrap(), "watched", "6", "3"],
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| local.fail(&e));
    local
}

#[test]
fn losing_a_zone_fires_the_zone_down_and_under_replicated_alerts_and_they_resolve() {
    let cluster = support::load(&support::repo().join("tests/it/fixtures/kafka-3x3.yaml"));
    let zone = cluster.zones[0].name.clone();
    let mut local = boot_with_watched_topic(&cluster);

    let dir = local.dir().join("prometheus");
    write_monitoring(&cluster, &dir);
    let prometheus = Prometheus::start(&dir);
    wait_for_targets(&mut local, &prometheus);
    wait_for_scraped(&mut local, &prometheus);
    wait_for_quiet(&mut local, &prometheus);

    let killed_at = Instant::now();
    let killed = local.kill_zone(&zone);
    let zone_label = format!("zone={zone}");
    let mut zone_down_after = None;
    let mut urp_after = None;
    let alerts = local.wait(
        "the zone-down and under-replicated-partitions alerts to fire",
        ALERT_LIMIT,
        |_| {
            let alerts = prometheus.alerts()?;
            if zone_down_after.is_none()
                && firing(&alerts, "KafkaZoneDown", Some(&zone_label)).is_some()
            {
                zone_down_after = Some(killed_at.elapsed());
            }
            if urp_after.is_none()
                && firing(&alerts, "KafkaUnderReplicatedPartitions", None).is_some()
            {
                urp_after = Some(killed_at.elapsed());
            }
            if zone_down_after.is_some() && urp_after.is_some() {
                Ok(alerts)
            } else {
                Err(format!("{alerts:?}"))
            }
        },
    );
    assert_nodes_down(&alerts, &killed);
    assert!(
        alerts
            .iter()
            .all(|a| a.name != "ZooKeeperNoQuorum" && a.name != "KafkaOfflinePartitions"),
        "two zones of three keep the quorum and every partition: {alerts:?}"
    );

    let resolved_after = restart_zone_until_resolved(
        &mut local,
        &prometheus,
        &zone,
        &[
            "KafkaZoneDown",
            "KafkaNodeDown",
            "KafkaUnderReplicatedPartitions",
        ],
    );
    eprintln!(
        "zone {zone} killed: KafkaZoneDown firing after {:?}, KafkaUnderReplicatedPartitions \
         after {:?}; zone back: resolved after {:?}",
        zone_down_after.unwrap_or_default(),
        urp_after.unwrap_or_default(),
        resolved_after
    );
}

/// A test-only switch that breaks KRaftNoQuorum in the test's copy of the rules, to show that the
/// KRaft alert test catches a wrong rule: `fallback` takes out the part that makes the count 0
/// when no controller applies metadata, `leader` counts the controllers that name a leader in
/// `kafka_raft_current_leader` instead (which a Kafka 4 controller without a quorum keeps doing).
/// Never set in the suite.
const BREAK_KRAFT_RULE: &str = "KCLUSTER_TEST_BREAK_KRAFT_NO_QUORUM";

fn break_kraft_no_quorum(dir: &Path, how: &str) {
    let (from, to) = match how {
        "fallback" => (
            r#" or count by (cluster) (up{job="kcluster-jmx", role="controller"}) * 0"#,
            "",
        ),
        "leader" => (
            r#"kafka_controller_last_applied_record_lag_seconds{role="controller"} < 30"#,
            r#"kafka_raft_current_leader{role="controller"} >= 0"#,
        ),
        other => panic!("{BREAK_KRAFT_RULE}={other}: say `fallback` or `leader`"),
    };
    let path = dir.join(ALERTS_FILE);
    let rules = std::fs::read_to_string(&path).expect("rules");
    assert_eq!(
        rules.matches(from).count(),
        1,
        "KRaftNoQuorum no longer reads `{from}`: update {BREAK_KRAFT_RULE}"
    );
    std::fs::write(&path, rules.replacen(from, to, 1)).expect("rules");
    eprintln!("{BREAK_KRAFT_RULE}={how}: KRaftNoQuorum is broken on purpose");
}

/// KRaft mode, with Kafka 4 and the two-zone layout whose first zone holds two of the three
/// controllers, watched by a real Prometheus with the written files. Every metric the alerts and
/// the dashboard read is scraped; every controller and broker names the quorum's leader (the one
/// Kafka's Admin describes) in `kafka_raft_current_leader`; every controller reports the active
/// controller count (1 on that leader only), the offline partitions and a fresh last applied
/// metadata record; and nothing fires. One broker of that zone lost alone takes its unreplicated
/// partitions offline: every controller counts them and KafkaOfflinePartitions counts them once.
/// The rest of the zone lost takes the controllers' majority: KRaftNoQuorum fires counting no
/// controller (the survivor runs, and still names the dead leader, but applies no metadata),
/// KafkaActiveControllerCount fires with 0 and KafkaZoneDown with the zone; all resolve once the
/// zone is back.
#[test]
fn kraft_losing_the_controllers_majority_fires_kraft_no_quorum_and_it_resolves() {
    let cluster = support::load(&support::repo().join("tests/it/fixtures/kraft-two-zones.yaml"));
    assert_eq!(cluster.metadata, Metadata::Kraft);
    let voters = cluster.controllers().count();
    let zone = cluster
        .zones
        .iter()
        .map(|z| z.name.clone())
        .find(|z| 2 * cluster.controllers().filter(|n| &n.zone == z).count() > voters)
        .expect("a zone holding a majority of the controllers");
    let started = Instant::now();
    let mut local = LocalCluster::boot(&cluster);
    let booted = started.elapsed();
    // Partitions without a replica: those of a lost broker go offline.
    clients::probe(
        &["create", &local.bootstrap(), "single", "4", "1"],
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| local.fail(&e));
    let partitions =
        clients::describe(&local.bootstrap(), "single").unwrap_or_else(|e| local.fail(&e));
    let (offline, first) = local
        .running(Role::Broker)
        .iter()
        .filter(|n| n.zone == zone)
        .map(|n| {
            let held = partitions.iter().filter(|p| p.replicas == [n.id]).count();
            (held, n.name.clone())
        })
        .max()
        .expect("a broker in the zone");
    assert!(
        offline > 0,
        "no partition of `single` on {zone}: {partitions:?}"
    );

    let dir = local.dir().join("prometheus");
    write_monitoring(&cluster, &dir);
    if let Ok(how) = std::env::var(BREAK_KRAFT_RULE) {
        break_kraft_no_quorum(&dir, &how);
    }
    let prometheus = Prometheus::start(&dir);
    wait_for_targets(&mut local, &prometheus);
    wait_for_scraped(&mut local, &prometheus);

    let names = |role: Role| -> BTreeSet<String> {
        cluster.nodes_of(role).map(|n| n.name.clone()).collect()
    };
    let (controllers, brokers) = (names(Role::Controller), names(Role::Broker));
    let raft_nodes: BTreeSet<String> = controllers.union(&brokers).cloned().collect();
    let healthy_lag = local.wait(
        "every node's raft, controller and metadata metrics to agree with Kafka's quorum",
        Duration::from_secs(60),
        |c| {
            let named = prometheus.by_node("kafka_raft_current_leader")?;
            let active = prometheus.by_node("kafka_controller_active_controller_count")?;
            let offline = prometheus.by_node("kafka_controller_offline_partitions")?;
            let lag = prometheus.by_node("kafka_controller_last_applied_record_lag_seconds")?;
            let seen = format!("leader {named:?}, active {active:?}, lag {lag:?}");
            let keys = |m: &BTreeMap<String, f64>| m.keys().cloned().collect::<BTreeSet<_>>();
            if keys(&named) != raft_nodes
                || [&active, &offline, &lag]
                    .iter()
                    .any(|m| keys(m) != controllers)
            {
                return Err(format!("not every node reports: {seen}"));
            }
            let ids: BTreeSet<u64> = named.values().map(|v| *v as u64).collect();
            let leader = match ids.iter().collect::<Vec<_>>().as_slice() {
                [id] => c
                    .nodes
                    .iter()
                    .find(|n| n.role == Role::Controller && u64::from(n.node_id()) == **id)
                    .map(|n| n.name.clone())
                    .ok_or_else(|| format!("the leader is no controller: {seen}"))?,
                _ => return Err(format!("the nodes name different leaders: {seen}")),
            };
            let only_leader_active = active
                .iter()
                .all(|(n, v)| *v == if *n == leader { 1.0 } else { 0.0 });
            if !only_leader_active
                || offline.values().any(|v| *v != 0.0)
                || lag.values().any(|v| *v >= 30.0)
            {
                return Err(seen);
            }
            let quorum = c.controller_quorum()?;
            if quorum.leader == leader {
                Ok(lag)
            } else {
                Err(format!("Kafka says {quorum:?}; the metrics: {seen}"))
            }
        },
    );
    wait_for_quiet(&mut local, &prometheus);
    let watched = started.elapsed();
    let topology = support::repo().join("tests/it/fixtures/kraft-two-zones.yaml");
    let leader_id = local
        .controller_quorum()
        .map(|q| q.leader)
        .unwrap_or_else(|e| local.fail(&e));
    let leader_id = cluster
        .controllers()
        .find(|n| n.name == leader_id)
        .map(|n| f64::from(n.node_id()))
        .expect("the leader is a controller");
    // `kcluster status` reads the same: each controller applies metadata and names the leader.
    let s = status(&topology).unwrap_or_else(|e| local.fail(&e));
    for name in &controllers {
        let h = health(&s, name);
        assert_eq!(h["quorum_leader"].as_f64(), Some(leader_id), "{name}: {h}");
        assert!(
            h["metadata_lag"].as_f64().is_some_and(|lag| lag < 30.0),
            "{name}: {h}"
        );
    }

    // One broker of the zone, alone: the controllers fence it and count its partitions offline.
    let broker_killed_at = Instant::now();
    local.kill(&first);
    let offline_value = local.wait(
        &format!("KafkaOfflinePartitions to count the {offline} partitions of {first} once"),
        Duration::from_secs(90),
        |_| {
            let each = prometheus.by_node("kafka_controller_offline_partitions")?;
            let alerts = prometheus.alerts()?;
            let alert = alerts.iter().find(|a| a.name == "KafkaOfflinePartitions");
            match alert {
                Some(a) if a.value == offline as f64 && each.values().all(|v| *v == a.value) => {
                    Ok(a.value)
                }
                _ => Err(format!("per controller {each:?}; alert {alert:?}")),
            }
        },
    );
    let offline_after = broker_killed_at.elapsed();

    // The rest of the zone: the controllers' majority.
    let killed_at = Instant::now();
    let killed = local.kill_zone(&zone);
    let survivors: Vec<String> = local
        .running(Role::Controller)
        .iter()
        .map(|n| n.name.clone())
        .collect();
    let cluster_label = format!("cluster={}", cluster.name);
    let zone_label = format!("zone={zone}");
    let mut after: BTreeMap<&str, Duration> = BTreeMap::new();
    let alerts = local.wait(
        "KRaftNoQuorum, KafkaActiveControllerCount and KafkaZoneDown to fire",
        ALERT_LIMIT,
        |_| {
            let alerts = prometheus.alerts()?;
            for (name, label) in [
                ("KRaftNoQuorum", &cluster_label),
                ("KafkaActiveControllerCount", &cluster_label),
                ("KafkaZoneDown", &zone_label),
            ] {
                if firing(&alerts, name, Some(label)).is_some() {
                    after.entry(name).or_insert_with(|| killed_at.elapsed());
                }
            }
            if after.len() == 3 {
                Ok(alerts)
            } else {
                Err(format!("{alerts:?}"))
            }
        },
    );
    let value = |name: &str| firing(&alerts, name, None).map(|a| a.value);
    assert_eq!(
        value("KRaftNoQuorum"),
        Some(0.0),
        "no controller applies metadata without a quorum, though {survivors:?} run: {alerts:?}"
    );
    assert_eq!(
        value("KafkaActiveControllerCount"),
        Some(0.0),
        "no controller is active without a quorum: {alerts:?}"
    );
    assert_nodes_down(&alerts, &killed);
    assert!(
        alerts.iter().all(|a| a.name != "ZooKeeperNoQuorum"),
        "a KRaft cluster has no ZooKeeper: {alerts:?}"
    );
    let survivors_name = prometheus
        .by_node("kafka_raft_current_leader")
        .unwrap_or_else(|e| local.fail(&e));
    // `kcluster status` says the surviving controller is in no quorum, though it still names
    // the lost leader.
    let text = support::status_health(&topology, &["--health-timeout", "5"]);
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    for name in &survivors {
        assert!(
            text.lines().any(
                |l| l.contains(name.as_str()) && l.contains("no quorum: last metadata applied")
            ),
            "{name} not shown without a quorum:\n{text}"
        );
    }

    let resolved_after = restart_zone_until_resolved(
        &mut local,
        &prometheus,
        &zone,
        &[
            "KRaftNoQuorum",
            "KafkaActiveControllerCount",
            "KafkaZoneDown",
            "KafkaNodeDown",
            "KafkaOfflinePartitions",
        ],
    );
    eprintln!(
        "booted in {booted:?}, watched and quiet after {watched:?}; healthy: last applied \
         metadata record {healthy_lag:?} s old; {first} killed: \
         KafkaOfflinePartitions at {offline_value} after {offline_after:?}; zone {zone} killed: \
         firing after {after:?}, the survivors' kafka_raft_current_leader {survivors_name:?}; \
         zone back: resolved after {resolved_after:?}"
    );
}

/// The metric names the alert rules and the dashboard read from the JMX exporter agents (all
/// but node_exporter's `node_*`).
fn agent_metrics_read() -> BTreeSet<String> {
    use crate::monitoring::{dashboard_exprs, metric_names, rule_exprs};
    rule_exprs()
        .into_iter()
        .map(|(_, expr)| expr)
        .chain(dashboard_exprs())
        .flat_map(|e| metric_names(&e))
        .filter(|n| !n.starts_with("node_"))
        .collect()
}

/// `kcluster status --health-only --output json` on the local cluster, as JSON.
fn status(topology: &Path) -> Result<Value, String> {
    let out = support::status_health(topology, &["--output", "json", "--health-timeout", "5"]);
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

/// One node's `health` object from a status document.
fn health<'a>(status: &'a Value, node: &str) -> &'a Value {
    &support::status_node(status, node)["health"]
}

/// `kcluster status` reads each node's health from its JMX exporter: on a healthy cluster every
/// node is up, no partition is under-replicated or offline, one broker is the active controller
/// and ZooKeeper has a leader with both followers in sync. A killed broker shows as down with the
/// reason, and the others report under-replicated partitions.
#[test]
fn status_shows_each_nodes_health_and_a_killed_broker_down_with_urp() {
    let topology = support::repo().join("tests/it/fixtures/kafka-3x3.yaml");
    let cluster = support::load(&topology);
    let mut local = boot_with_watched_topic(&cluster);
    let brokers = ["broker-1", "broker-2", "broker-3"];
    local.wait(
        "status to show a healthy cluster",
        Duration::from_secs(90),
        |_| {
            let s = status(&topology)?;
            if s["metrics_reachable"] != true {
                return Err(format!("not reachable: {s}"));
            }
            for n in &cluster.nodes {
                let h = health(&s, &n.name);
                if !h["unreachable"].is_null() {
                    return Err(format!("{} unreachable: {h}", n.name));
                }
            }
            let urp: f64 = brokers
                .iter()
                .map(|b| health(&s, b)["under_replicated"].as_f64().unwrap_or(-1.0))
                .sum();
            let offline: f64 = brokers
                .iter()
                .map(|b| health(&s, b)["offline_partitions"].as_f64().unwrap_or(-1.0))
                .sum();
            let controllers: f64 = brokers
                .iter()
                .map(|b| health(&s, b)["active_controller"].as_f64().unwrap_or(-1.0))
                .sum();
            let modes: Vec<&str> = ["zookeeper-1", "zookeeper-2", "zookeeper-3"]
                .iter()
                .map(|z| health(&s, z)["zookeeper_mode"].as_str().unwrap_or("?"))
                .collect();
            let leaders: Vec<&Value> = ["zookeeper-1", "zookeeper-2", "zookeeper-3"]
                .iter()
                .map(|z| health(&s, z))
                .filter(|h| h["zookeeper_mode"] == "leader")
                .collect();
            if urp != 0.0 || offline != 0.0 || controllers != 1.0 {
                return Err(format!(
                    "URP {urp}, offline {offline}, controllers {controllers}"
                ));
            }
            match leaders.as_slice() {
                [leader] if leader["synced_followers"] == 2 => Ok(()),
                _ => Err(format!("ZooKeeper modes {modes:?}")),
            }
        },
    );

    local.kill("broker-1");
    local.wait(
        "status to show broker-1 down and under-replicated partitions",
        Duration::from_secs(120),
        |_| {
            let s = status(&topology)?;
            let down = health(&s, "broker-1");
            if down["unreachable"].is_null() {
                return Err(format!("broker-1 still up: {down}"));
            }
            let urp: f64 = ["broker-2", "broker-3"]
                .iter()
                .map(|b| health(&s, b)["under_replicated"].as_f64().unwrap_or(0.0))
                .sum();
            if urp > 0.0 {
                Ok(())
            } else {
                Err(format!("URP {urp}"))
            }
        },
    );
    // The text table says it in words.
    let out = support::status_health(&topology, &["--health-timeout", "5"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = |node: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{node} ")))
            .unwrap_or_else(|| panic!("no {node} line:\n{text}"))
            .to_string()
    };
    assert!(line("broker-1").contains("DOWN ("), "{text}");
    assert!(
        line("broker-2").contains("up, URP ") || line("broker-3").contains("up, URP "),
        "{text}"
    );
    assert!(!text.contains("not reachable from here"), "{text}");
}

/// Where the monitored fixture's Alertmanager posts its alerts.
const WEBHOOK: (Ipv4Addr, u16) = (Ipv4Addr::LOCALHOST, 18081);
const ALERTMANAGER: &str = "apt-get install --no-install-recommends prometheus-alertmanager";

/// A webhook receiver on `WEBHOOK`: every request body it gets, in order.
struct Webhook {
    bodies: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Webhook {
    fn start() -> Webhook {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = TcpListener::bind(WEBHOOK).expect("the webhook port is free");
        let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = bodies.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let mut reader = BufReader::new(stream);
                let mut length = 0usize;
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                    if let Some((k, v)) = line.split_once(':')
                        && k.eq_ignore_ascii_case("content-length")
                    {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    line.clear();
                }
                let mut body = vec![0u8; length];
                if reader.read_exact(&mut body).is_ok()
                    && let Ok(mut b) = seen.lock()
                {
                    b.push(String::from_utf8_lossy(&body).into_owned());
                }
                let _ = reader
                    .get_mut()
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
            }
        });
        Webhook { bodies }
    }

    /// (alert name, zone, status) of every alert posted so far.
    fn alerts(&self) -> Vec<(String, String, String)> {
        let bodies = self.bodies.lock().map(|b| b.clone()).unwrap_or_default();
        bodies
            .iter()
            .filter_map(|b| serde_json::from_str::<Value>(b).ok())
            .flat_map(|v| v["alerts"].as_array().cloned().unwrap_or_default())
            .map(|a| {
                let s = |v: &Value| v.as_str().unwrap_or("").to_string();
                (
                    s(&a["labels"]["alertname"]),
                    s(&a["labels"]["zone"]),
                    s(&a["status"]),
                )
            })
            .collect()
    }
}

/// The monitoring node's Alertmanager as its rendered unit starts it (its own flags and
/// addresses), with Debian's Alertmanager, the rendered configuration and a temporary store.
fn start_alertmanager(unit: &str, config: &Path, dir: &Path) -> Watchdog {
    let program = support::require_tool("prometheus-alertmanager", ALERTMANAGER);
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("the unit has ExecStart");
    let mut cmd = Command::new(program);
    for arg in exec.split_whitespace().skip(1) {
        if arg.starts_with("--config.file=") {
            cmd.arg(format!("--config.file={}", config.display()));
        } else if arg.starts_with("--storage.path=") {
            cmd.arg(format!("--storage.path={}", dir.join("am-data").display()));
        } else {
            cmd.arg(arg);
        }
    }
    Watchdog::start(&cmd, &dir.join("alertmanager.log"))
}

/// The monitoring node's own files at work: a real Prometheus with its prometheus.yml sends the
/// alerts of a lost zone to its Alertmanager, started as the rendered unit says with the rendered
/// alertmanager.yml, which posts them to the topology's webhook; the zone-down alert holds back
/// the node-down alerts of the same zone.
#[test]
fn the_monitoring_nodes_alertmanager_posts_a_lost_zone_to_the_webhook() {
    let topology = support::repo().join("tests/it/fixtures/kafka-3x3-monitored.yaml");
    let cluster = support::load(&topology);
    let monitor = cluster
        .nodes_of(kcluster::cluster::Role::Monitoring)
        .next()
        .expect("a monitoring node")
        .clone();
    let zone = cluster.zones[1].name.clone();
    let webhook = Webhook::start();
    let mut local = boot_with_watched_topic(&cluster);

    let dir = local.dir().join("monitoring");
    let rendered = kcluster::render::Renderer::new(&kcluster::render::Options::default())
        .expect("templates")
        .render_node(&cluster, &monitor)
        .expect("monitoring node renders");
    let file = |name: &str| rendered.file(name).expect(name).content.clone();
    write_monitoring(&cluster, &dir);
    let am_config = dir.join("alertmanager.yml");
    std::fs::write(&am_config, file("alertmanager.yml")).expect("alertmanager.yml");
    let _alertmanager = start_alertmanager(&file("alertmanager.service"), &am_config, &dir);
    let prometheus = Prometheus::start(&dir);
    local.wait(
        "Prometheus to find its Alertmanager",
        Duration::from_secs(60),
        |_| {
            let data = prometheus.api("/api/v1/alertmanagers")?;
            let active = data["activeAlertmanagers"].to_string();
            if active.contains(&format!("{}:9095", monitor.address)) {
                Ok(())
            } else {
                Err(active)
            }
        },
    );

    local.kill_zone(&zone);
    let posted = local.wait(
        "Alertmanager to post KafkaZoneDown to the webhook",
        ALERT_LIMIT + Duration::from_secs(60),
        |_| {
            let posted = webhook.alerts();
            if posted
                .iter()
                .any(|(n, z, s)| n == "KafkaZoneDown" && z == &zone && s == "firing")
            {
                Ok(posted)
            } else {
                Err(format!("{posted:?}"))
            }
        },
    );
    assert!(
        !posted
            .iter()
            .any(|(n, z, _)| n == "KafkaNodeDown" && z == &zone),
        "the zone-down alert holds back its nodes' node-down alerts: {posted:?}"
    );
}
