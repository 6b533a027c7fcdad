//! Cluster → what an operator's Prometheus and Grafana need to watch it: a scrape configuration
//! whose targets are the nodes' fixed addresses (labelled node, role, zone and cluster), the
//! alert rules, and a dashboard. `kcluster monitoring` writes them.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::cluster::{ALERTMANAGER_PORT, Cluster, Node, PROMETHEUS_PORT};
use crate::render::exporters::{JMX_EXPORTER_PORT, NODE_EXPORTER_PORT};

/// The alert rules; cluster-independent (every expression keeps the `cluster` label).
pub const ALERTS: &str = include_str!("../../monitoring/alerts.yml");
/// The Grafana dashboard; its `cluster` variable picks the cluster.
pub const DASHBOARD: &str = include_str!("../../monitoring/dashboard.json");

/// File names in the output directory; `prometheus.yml` names the rules file relative to itself.
pub const PROMETHEUS_FILE: &str = "prometheus.yml";
pub const ALERTS_FILE: &str = "kcluster-alerts.yml";
pub const DASHBOARD_FILE: &str = "grafana-dashboard.json";

/// The scrape jobs: every node's JMX exporter agent and its node_exporter.
pub const JMX_JOB: &str = "kcluster-jmx";
pub const NODE_JOB: &str = "kcluster-node";
/// The monitoring nodes' own Prometheus and Alertmanager (each Prometheus scrapes itself too).
pub const PROMETHEUS_JOB: &str = "kcluster-prometheus";
pub const ALERTMANAGER_JOB: &str = "kcluster-alertmanager";

/// How often Prometheus scrapes and evaluates the rules, by default.
pub const DEFAULT_INTERVAL: &str = "30s";

/// One file of the monitoring output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitoringFile {
    pub name: &'static str,
    pub content: String,
}

/// Every file `kcluster monitoring` writes, in a fixed order.
pub fn files(cluster: &Cluster) -> Vec<MonitoringFile> {
    vec![
        MonitoringFile {
            name: PROMETHEUS_FILE,
            content: prometheus_config(cluster),
        },
        MonitoringFile {
            name: ALERTS_FILE,
            content: alerts(cluster),
        },
        MonitoringFile {
            name: DASHBOARD_FILE,
            content: dashboard(cluster),
        },
    ]
}

/// The alert rules file (the same for every cluster).
pub fn alerts(_: &Cluster) -> String {
    ALERTS.to_string()
}

/// The Grafana dashboard (the same for every cluster).
pub fn dashboard(_: &Cluster) -> String {
    DASHBOARD.to_string()
}

/// Writes the files into `dir` (created if needed).
pub fn write_to(files: &[MonitoringFile], dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for f in files {
        std::fs::write(dir.join(f.name), &f.content)?;
    }
    Ok(())
}

#[derive(Serialize)]
struct Config<'a> {
    global: Global,
    #[serde(skip_serializing_if = "Option::is_none")]
    alerting: Option<Alerting>,
    rule_files: Vec<&'a str>,
    scrape_configs: Vec<ScrapeConfig<'a>>,
}

#[derive(Serialize)]
struct Alerting {
    alertmanagers: Vec<AlertmanagerSet>,
}

#[derive(Serialize)]
struct AlertmanagerSet {
    static_configs: Vec<Targets>,
}

#[derive(Serialize)]
struct Targets {
    targets: Vec<String>,
}

#[derive(Serialize)]
struct Global {
    scrape_interval: &'static str,
    evaluation_interval: &'static str,
}

#[derive(Serialize)]
struct ScrapeConfig<'a> {
    job_name: &'a str,
    static_configs: Vec<StaticConfig>,
}

#[derive(Serialize)]
struct StaticConfig {
    targets: Vec<String>,
    labels: BTreeMap<&'static str, String>,
}

/// The Prometheus configuration: one job per exporter, one target per node at its fixed address;
/// with monitoring nodes, their Prometheus and Alertmanager as targets too, and every
/// Alertmanager as a receiver of the alerts. The monitoring nodes run this very file.
pub fn prometheus_config(cluster: &Cluster) -> String {
    let job = |name: &'static str, port: u16, nodes: Vec<&Node>| ScrapeConfig {
        job_name: name,
        static_configs: nodes
            .into_iter()
            .map(|n| StaticConfig {
                targets: vec![format!("{}:{port}", n.address)],
                labels: BTreeMap::from([
                    ("cluster", cluster.name.clone()),
                    ("node", n.name.clone()),
                    ("role", n.role.as_str().to_string()),
                    ("zone", n.zone.clone()),
                ]),
            })
            .collect(),
    };
    let jvms: Vec<&Node> = cluster.nodes.iter().filter(|n| n.role.info().jvm).collect();
    let monitors: Vec<&Node> = cluster.monitoring_nodes().collect();
    let mut scrape_configs = vec![
        job(JMX_JOB, JMX_EXPORTER_PORT, jvms),
        job(NODE_JOB, NODE_EXPORTER_PORT, cluster.nodes.iter().collect()),
    ];
    let alerting = (!monitors.is_empty()).then(|| {
        scrape_configs.push(job(PROMETHEUS_JOB, PROMETHEUS_PORT, monitors.clone()));
        scrape_configs.push(job(ALERTMANAGER_JOB, ALERTMANAGER_PORT, monitors.clone()));
        Alerting {
            alertmanagers: vec![AlertmanagerSet {
                static_configs: vec![Targets {
                    targets: monitors
                        .iter()
                        .map(|n| format!("{}:{ALERTMANAGER_PORT}", n.address))
                        .collect(),
                }],
            }],
        }
    });
    let config = Config {
        global: Global {
            scrape_interval: DEFAULT_INTERVAL,
            evaluation_interval: DEFAULT_INTERVAL,
        },
        alerting,
        rule_files: vec![ALERTS_FILE],
        scrape_configs,
    };
    // Serializing plain structs of strings cannot fail.
    let body = serde_yaml::to_string(&config).unwrap_or_default();
    let receivers = if cluster.monitoring_nodes().next().is_some() {
        "\n# The cluster's monitoring nodes run this file too, and receive its alerts in Alertmanager."
    } else {
        ""
    };
    format!(
        "# Prometheus configuration for Kafka cluster {}; written by `kcluster monitoring`.\n\
         # Targets are the nodes' fixed private addresses: run Prometheus where it can reach them\n\
         # (a subnet listed in `network.monitoring_cidrs`). {JMX_JOB}: each node's JMX exporter\n\
         # agent; {NODE_JOB}: its node_exporter. To watch several clusters, merge their\n\
         # static_configs into these two jobs: the alert rules keep clusters apart by label.{receivers}\n\
         {body}",
        cluster.name
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::{A, B, C, test_cluster};

    #[test]
    fn every_node_is_a_target_of_both_jobs_with_its_labels() {
        let cluster = test_cluster(&[A, B, C], &[A, B, C], &[A, B, C, A], 3, 2);
        let config: serde_yaml::Value =
            serde_yaml::from_str(&prometheus_config(&cluster)).expect("YAML");
        for (i, (job, port)) in [(JMX_JOB, 11001), (NODE_JOB, 11002)].iter().enumerate() {
            let scrape = &config["scrape_configs"][i];
            assert_eq!(scrape["job_name"].as_str(), Some(*job));
            let statics = scrape["static_configs"].as_sequence().expect("list");
            assert_eq!(statics.len(), cluster.nodes.len());
            for (s, node) in statics.iter().zip(&cluster.nodes) {
                assert_eq!(
                    s["targets"][0].as_str(),
                    Some(format!("{}:{port}", node.address).as_str())
                );
                assert_eq!(s["labels"]["node"].as_str(), Some(node.name.as_str()));
                assert_eq!(s["labels"]["role"].as_str(), Some(node.role.as_str()));
                assert_eq!(s["labels"]["zone"].as_str(), Some(node.zone.as_str()));
                assert_eq!(s["labels"]["cluster"].as_str(), Some(cluster.name.as_str()));
            }
        }
        assert_eq!(config["rule_files"][0].as_str(), Some(ALERTS_FILE));
    }

    #[test]
    fn the_dashboard_is_json() {
        let _: serde_json::Value = serde_json::from_str(DASHBOARD).expect("dashboard JSON");
    }
}
