//! The monitoring files `kcluster monitoring` writes, put through Prometheus's own `promtool`:
//! the configuration and rules load, every alert fires and stays quiet in its unit tests
//! (`tests/monitoring/alerts-test.yml`), and every metric an alert or the dashboard reads is one
//! the nodes' exporters produce (the rendered JMX exporter rules, whose names `kafka.rs` scrapes
//! from the real agent, and node_exporter's, scraped here from a real one).

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use kcluster::cluster::Role;
use kcluster::render::monitoring::{self, ALERTS_FILE, DASHBOARD_FILE, PROMETHEUS_FILE};
use kcluster::render::{Options, Renderer};

use crate::local::metrics;
use crate::local::process::Watchdog;
use crate::support;

const PROMETHEUS: &str = "apt-get install --no-install-recommends prometheus";
const NODE_EXPORTER: &str = "apt-get install --no-install-recommends prometheus-node-exporter";
const ALERTMANAGER: &str = "apt-get install --no-install-recommends prometheus-alertmanager";
const TOOL_LIMIT: Duration = Duration::from_secs(60);

fn promtool(args: &[&str], dir: &Path) -> String {
    let promtool = support::require_tool("promtool", PROMETHEUS);
    let out = support::run_bounded(
        Command::new(promtool).args(args).current_dir(dir),
        TOOL_LIMIT,
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

/// The monitoring node runs the very files `kcluster monitoring` writes (one source of truth),
/// installed side by side as on the node, where promtool accepts them; its Alertmanager
/// configuration passes Alertmanager's own `amtool check-config`; and its Prometheus sends
/// alerts to every monitoring node's Alertmanager (on 9095, never the brokers' 9093).
#[test]
fn the_monitoring_node_runs_the_monitoring_files_and_they_load() {
    let renderer = Renderer::new(&Options::default()).expect("templates");
    let mut checked = 0;
    for path in support::example_topologies() {
        let cluster = support::load(&path);
        let monitors: Vec<_> = cluster.nodes_of(Role::Monitoring).collect();
        let written = monitoring::files(&cluster);
        for node in &monitors {
            let rendered = renderer.render_node(&cluster, node).expect("render");
            let dir = tempfile::tempdir().expect("temporary directory");
            for f in &written {
                let on_node = rendered.file(f.name).unwrap_or_else(|| {
                    panic!("{}: {} has no {}", path.display(), node.name, f.name)
                });
                assert_eq!(on_node.content, f.content, "{} {}", node.name, f.name);
                assert!(
                    on_node.path.ends_with(&format!("/{}", f.name)),
                    "{}",
                    on_node.path
                );
                std::fs::write(dir.path().join(f.name), &on_node.content).expect("write");
            }
            let text = promtool(&["check", "config", PROMETHEUS_FILE], dir.path());
            assert!(text.contains("SUCCESS: 1 rule files found"), "{text}");
            let config: serde_yaml::Value =
                serde_yaml::from_str(&rendered.file(PROMETHEUS_FILE).expect("config").content)
                    .expect("YAML");
            let receivers: Vec<&str> = config["alerting"]["alertmanagers"][0]["static_configs"][0]
                ["targets"]
                .as_sequence()
                .expect("alertmanagers")
                .iter()
                .filter_map(|t| t.as_str())
                .collect();
            let expected: Vec<String> = monitors
                .iter()
                .map(|m| format!("{}:9095", m.address))
                .collect();
            assert_eq!(receivers, expected);
            let am = rendered.file("alertmanager.yml").expect("alertmanager.yml");
            std::fs::write(dir.path().join("alertmanager.yml"), &am.content).expect("write");
            let amtool = support::require_tool("amtool", ALERTMANAGER);
            let out = support::run_bounded(
                Command::new(amtool)
                    .args(["check-config", "alertmanager.yml"])
                    .current_dir(dir.path()),
                TOOL_LIMIT,
            );
            let text = String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success(),
                "amtool check-config:\n{text}\n{}",
                am.content
            );
            assert!(text.contains("SUCCESS"), "{text}");
            match &cluster.monitoring.webhook_url {
                Some(url) => assert!(
                    am.content.contains(&format!("url: \"{url}\"")),
                    "{}",
                    am.content
                ),
                None => assert!(am.content.contains("receiver: none"), "{}", am.content),
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 3,
        "only {checked} monitoring nodes among the examples"
    );
}

/// A configuration amtool refuses is caught: the check above can fail.
#[test]
fn amtool_refuses_a_broken_alertmanager_configuration() {
    let amtool = support::require_tool("amtool", ALERTMANAGER);
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(
        dir.path().join("alertmanager.yml"),
        "route:\n  receiver: webhook\nreceivers:\n  - name: none\n",
    )
    .expect("write");
    let out = support::run_bounded(
        Command::new(amtool)
            .args(["check-config", "alertmanager.yml"])
            .current_dir(dir.path()),
        TOOL_LIMIT,
    );
    assert!(
        !out.status.success(),
        "an undefined receiver must be refused"
    );
}

#[test]
fn every_example_gets_a_config_and_rules_promtool_accepts() {
    for path in support::example_topologies() {
        let out = tempfile::tempdir().expect("temporary directory");
        support::kcluster()
            .arg("monitoring")
            .arg("-f")
            .arg(&path)
            .arg("--out")
            .arg(out.path())
            .assert()
            .success();
        let text = promtool(&["check", "config", PROMETHEUS_FILE], out.path());
        assert!(text.contains("SUCCESS: 1 rule files found"), "{text}");
        promtool(&["check", "rules", ALERTS_FILE], out.path());
        let dashboard = std::fs::read_to_string(out.path().join(DASHBOARD_FILE)).expect("dash");
        let _: serde_json::Value = serde_json::from_str(&dashboard).expect("dashboard is JSON");
    }
}

#[test]
fn every_alert_fires_and_stays_quiet_in_promtools_unit_tests() {
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(dir.path().join("alerts.yml"), monitoring::ALERTS).expect("rules");
    let tests = std::fs::read_to_string(support::repo().join("tests/monitoring/alerts-test.yml"))
        .expect("alert tests");
    std::fs::write(dir.path().join("alerts-test.yml"), &tests).expect("tests");
    promtool(&["test", "rules", "alerts-test.yml"], dir.path());

    // Each alert has a case where it fires and one where it does not.
    let doc: serde_yaml::Value = serde_yaml::from_str(&tests).expect("YAML");
    let mut firing = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for test in doc["tests"].as_sequence().expect("tests") {
        for case in test["alert_rule_test"].as_sequence().expect("cases") {
            let name = case["alertname"].as_str().expect("alertname").to_string();
            let expected = case["exp_alerts"].as_sequence().map_or(0, Vec::len);
            if expected == 0 {
                quiet.insert(name);
            } else {
                firing.insert(name);
            }
        }
    }
    let alerts = alert_names();
    assert_eq!(firing, alerts, "alerts with a firing case");
    assert_eq!(quiet, alerts, "alerts with a quiet case");
}

fn alert_names() -> BTreeSet<String> {
    rule_exprs().into_iter().map(|(alert, _)| alert).collect()
}

/// (alert name, expression) of every alert rule.
pub fn rule_exprs() -> Vec<(String, String)> {
    let doc: serde_yaml::Value = serde_yaml::from_str(monitoring::ALERTS).expect("rules YAML");
    doc["groups"]
        .as_sequence()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_sequence().expect("rules").iter())
        .map(|r| {
            (
                r["alert"].as_str().expect("alert").to_string(),
                r["expr"].as_str().expect("expr").to_string(),
            )
        })
        .collect()
}

/// Every expression of the dashboard's panels.
pub fn dashboard_exprs() -> Vec<String> {
    let doc: serde_json::Value = serde_json::from_str(monitoring::DASHBOARD).expect("JSON");
    doc["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().expect("targets").iter())
        .map(|t| t["expr"].as_str().expect("expr").to_string())
        .collect()
}

#[test]
fn every_metric_the_alerts_and_the_dashboard_read_is_exported() {
    let produced = produced_metrics();
    let mut missing = Vec::new();
    let exprs = rule_exprs()
        .into_iter()
        .map(|(alert, expr)| (format!("alert {alert}"), expr))
        .chain(
            dashboard_exprs()
                .into_iter()
                .map(|e| ("dashboard".to_string(), e)),
        );
    for (what, expr) in exprs {
        let names = metric_names(&expr);
        assert!(!names.is_empty(), "{what}: no metric in {expr}");
        for name in names {
            if !produced.contains(&name) {
                missing.push(format!("{what}: {name} (in {expr})"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "metrics no exporter produces:\n{}",
        missing.join("\n")
    );
}

/// What the nodes' exporters produce: the metric names of the rendered JMX exporter rules of
/// ZooKeeper, brokers and KRaft controllers, the agent's own JVM metrics, Prometheus's `up`, and what a real node_exporter
/// serves on this machine.
fn produced_metrics() -> BTreeSet<String> {
    let cluster = support::load(&support::topology("minimal.yaml"));
    let renderer = Renderer::new(&Options::default()).expect("templates");
    let mut names = BTreeSet::from(["up".to_string(), "jvm_memory_used_bytes".to_string()]);
    for role in [Role::Zookeeper, Role::Broker] {
        let node = cluster.nodes.iter().find(|n| n.role == role).expect("node");
        let rendered = renderer.render_node(&cluster, node).expect("renders");
        let rules = &rendered.file("jmx-exporter.yaml").expect("rules").content;
        names.extend(metrics::rule_names(rules));
    }
    // KRaft controllers: the same rules file, with the raft metrics of a KRaft cluster.
    let kraft = support::load(&support::topology("kraft.yaml"));
    let controller = kraft
        .nodes
        .iter()
        .find(|n| n.role == Role::Controller)
        .expect("a controller");
    let rendered = renderer.render_node(&kraft, controller).expect("renders");
    let rules = &rendered.file("jmx-exporter.yaml").expect("rules").content;
    names.extend(metrics::rule_names(rules));
    names.extend(node_exporter_metrics());
    names
}

/// The metric names a real node_exporter serves, started on 127.0.0.1 for this test.
fn node_exporter_metrics() -> BTreeSet<String> {
    let program = support::require_tool("prometheus-node-exporter", NODE_EXPORTER);
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut cmd = Command::new(program);
    cmd.arg(format!("--web.listen-address=127.0.0.1:{port}"));
    let exporter = Watchdog::start(&cmd, &dir.path().join("node-exporter.log"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let names = loop {
        match metrics::scrape(Ipv4Addr::LOCALHOST, port) {
            Ok(names) => break names,
            Err(e) if Instant::now() > deadline => panic!("node_exporter never answered: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    exporter.kill();
    names
}

/// The metric names a PromQL expression reads: identifiers outside strings and label matchers
/// that are followed by a label matcher, or contain an underscore and are not a function call.
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let (mut i, mut braces, mut parens_after_by) = (0, 0, false);
    while i < chars.len() {
        let c = chars[i];
        if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += 1;
            }
        } else if c == '{' {
            braces += 1;
        } else if c == '}' {
            braces -= 1;
        } else if c == '[' {
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
        } else if braces == 0 && (c.is_ascii_alphabetic() || c == '_') {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = chars[i..].iter().find(|c| !c.is_whitespace());
            let grouping = matches!(word.as_str(), "by" | "without" | "on" | "ignoring");
            if parens_after_by {
                // Label names inside `by (…)`.
            } else if next == Some(&'{') || (word.contains('_') && next != Some(&'(')) {
                names.insert(word);
            }
            if grouping {
                parens_after_by = true;
            }
            continue;
        } else if c == ')' {
            parens_after_by = false;
        }
        i += 1;
    }
    names
}

#[test]
fn metric_names_reads_promql() {
    assert_eq!(
        metric_names(
            r#"sum by (cluster, zone) (rate(kafka_server_bytes_in_total{job="a_b", x=~"y"}[5m])) or vector(0)"#
        ),
        BTreeSet::from(["kafka_server_bytes_in_total".to_string()])
    );
    assert_eq!(
        metric_names("count by (cluster) (up{role=\"zookeeper\"} == 0) * 2 <= zookeeper_serving"),
        BTreeSet::from(["up".to_string(), "zookeeper_serving".to_string()])
    );
}

/// The rendered alertmanager.yml in Alertmanager itself: while a zone is down, the node-down
/// alerts of that zone are held back (inhibited), and those of another zone are not.
#[test]
fn alertmanager_holds_back_the_node_down_alerts_of_a_lost_zone() {
    let program = support::require_tool("prometheus-alertmanager", ALERTMANAGER);
    let amtool = support::require_tool("amtool", ALERTMANAGER);
    let cluster = support::load(&support::topology("two-zones.yaml"));
    let node = cluster
        .nodes_of(Role::Monitoring)
        .next()
        .expect("monitoring node");
    let rendered = Renderer::new(&Options::default())
        .expect("templates")
        .render_node(&cluster, node)
        .expect("render");
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = dir.path().join("alertmanager.yml");
    std::fs::write(
        &config,
        &rendered.file("alertmanager.yml").expect("config").content,
    )
    .expect("write");
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut cmd = Command::new(program);
    cmd.arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=");
    let _alertmanager = Watchdog::start(&cmd, &dir.path().join("alertmanager.log"));
    let url = format!("--alertmanager.url=http://127.0.0.1:{port}");
    let amtool_run = |args: &[&str]| {
        support::run_bounded(Command::new(&amtool).arg(&url).args(args), TOOL_LIMIT)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !amtool_run(&["config", "show"]).status.success() {
        assert!(Instant::now() < deadline, "Alertmanager did not start");
        std::thread::sleep(Duration::from_millis(200));
    }
    for labels in [
        &["alertname=KafkaZoneDown", "cluster=west", "zone=us-west-1b"][..],
        &[
            "alertname=KafkaNodeDown",
            "cluster=west",
            "zone=us-west-1b",
            "node=broker-2",
        ],
        &[
            "alertname=KafkaNodeDown",
            "cluster=west",
            "zone=us-west-1c",
            "node=broker-3",
        ],
    ] {
        let out = amtool_run(&[&["alert", "add"][..], labels].concat());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let state = |node: &str| -> Option<String> {
        let out = amtool_run(&["-o", "json", "alert", "query", "-i", "-a"]);
        let alerts: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        alerts.as_array()?.iter().find_map(|a| {
            (a["labels"]["node"] == node)
                .then(|| a["status"]["state"].as_str().unwrap_or("").to_string())
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (lost, other) = (state("broker-2"), state("broker-3"));
        if lost.as_deref() == Some("suppressed") && other.as_deref() == Some("active") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "broker-2 (lost zone) {lost:?}, broker-3 (other zone) {other:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}
