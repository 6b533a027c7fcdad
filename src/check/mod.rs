//! The rack-awareness report: static rules over the cluster, a simulation of losing each AZ,
//! and room for findings from the live cluster, printed as text or serialized as JSON.

pub mod live;
mod render;
pub mod rules;
mod simulate;
#[cfg(test)]
pub(crate) mod testing;

use std::collections::BTreeSet;

use serde::Serialize;
use serde::ser::SerializeStruct;

use crate::cluster::Cluster;

pub use rules::{WorstCaseLoss, static_findings, worst_case_loss};
pub use simulate::{PartitionReplicas, Simulation, Verdict, ZoneLoad, ZoneLoss, simulate};

/// How bad a finding is: errors make [`Report::ok`] false, warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// One problem found, with what to change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// Stable id of the rule, e.g. `broker-rack-balance`; safe to match on in scripts.
    pub rule: &'static str,
    pub message: String,
    pub fix: String,
}

impl Finding {
    pub fn error(rule: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Finding {
            severity: Severity::Error,
            rule,
            message: message.into(),
            fix: fix.into(),
        }
    }

    pub fn warning(rule: &'static str, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Finding {
            severity: Severity::Warning,
            rule,
            message: message.into(),
            fix: fix.into(),
        }
    }
}

/// Rule id of the finding that stands in for a simulation Kafka would refuse to run.
pub const SIMULATION_RULE: &str = "simulation";

/// Everything `kcluster check` says about a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub cluster: String,
    /// Findings from the topology alone, errors first.
    pub findings: Vec<Finding>,
    /// `None` when the assignment itself failed (a finding with rule [`SIMULATION_RULE`] says why).
    pub simulation: Option<Simulation>,
    /// Findings from the running cluster (EC2), errors first; empty until [`Report::add_live`].
    pub live: Vec<Finding>,
    /// What the live check looked at, when it ran (e.g. "6 instances; broker.rack read back from
    /// the user-data of 3 brokers").
    pub live_checked: Option<String>,
    /// The topology accepts that losing one zone may stop the cluster (`accept_zone_loss`):
    /// zones whose loss is not survived are reported but do not fail the report.
    pub zone_loss_accepted: bool,
}

impl Report {
    /// Runs the static rules and the AZ-loss simulation for a topic of `partitions` partitions
    /// with `replication_factor` replicas placed from Kafka's fixed start index `start_index`.
    pub fn build(
        cluster: &Cluster,
        partitions: u32,
        replication_factor: u32,
        start_index: u32,
    ) -> Report {
        let mut findings = static_findings(cluster);
        let simulation = match simulate(cluster, partitions, replication_factor, start_index) {
            Ok(sim) => Some(sim),
            Err(e) => {
                findings.push(Finding::error(
                    SIMULATION_RULE,
                    format!(
                        "Kafka would refuse to create the simulated topic \
                         ({partitions} partitions, replication factor {replication_factor}): {e}"
                    ),
                    "simulate a topic the cluster can hold: at least one partition and a \
                     replication factor between 1 and the number of brokers",
                ));
                None
            }
        };
        findings.sort_by_key(|f| f.severity);
        Report {
            cluster: cluster.name.clone(),
            findings,
            simulation,
            live: Vec::new(),
            live_checked: None,
            zone_loss_accepted: cluster.accept_zone_loss,
        }
    }

    /// Adds findings from the running cluster; keeps errors first, otherwise the given order.
    pub fn add_live(&mut self, findings: impl IntoIterator<Item = Finding>) {
        self.live.extend(findings);
        self.live.sort_by_key(|f| f.severity);
    }

    /// True when nothing is an error and losing any one AZ keeps every partition online and
    /// writable with `acks=all` and keeps the metadata quorum (ZooKeeper's or the KRaft
    /// controllers'), or the topology accepts that it does not.
    pub fn ok(&self) -> bool {
        let no_errors = self
            .findings
            .iter()
            .chain(&self.live)
            .all(|f| f.severity != Severity::Error);
        let scenarios_ok = self.simulation.as_ref().is_some_and(|s| {
            self.zone_loss_accepted || s.scenarios.iter().all(|z| z.verdict == Verdict::Ok)
        });
        no_errors && scenarios_ok
    }

    /// Count of error and warning findings, static and live.
    pub fn counts(&self) -> (usize, usize) {
        let all = || self.findings.iter().chain(&self.live);
        let errors = all().filter(|f| f.severity == Severity::Error).count();
        (errors, all().count() - errors)
    }

    /// The report for people: placement per AZ, a verdict per lost AZ, then findings with fixes.
    pub fn render_text(&self) -> String {
        render::render_text(self)
    }
}

impl Serialize for Report {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Report", 7)?;
        s.serialize_field("cluster", &self.cluster)?;
        s.serialize_field("ok", &self.ok())?;
        s.serialize_field("zone_loss_accepted", &self.zone_loss_accepted)?;
        s.serialize_field("findings", &self.findings)?;
        s.serialize_field("simulation", &self.simulation)?;
        s.serialize_field("live", &self.live)?;
        s.serialize_field("live_checked", &self.live_checked)?;
        s.end()
    }
}

/// The AZs the report talks about: the cluster's zones in file order, then any zone a node names
/// that the cluster does not list (a rule flags those), sorted.
fn zone_order(cluster: &Cluster) -> Vec<String> {
    let mut zones: Vec<String> = cluster.zones.iter().map(|z| z.name.clone()).collect();
    let unknown: BTreeSet<&str> = cluster
        .nodes
        .iter()
        .map(|n| n.zone.as_str())
        .filter(|z| !zones.iter().any(|known| known == z))
        .collect();
    zones.extend(unknown.into_iter().map(str::to_owned));
    zones
}

/// A metadata quorum (ZooKeeper's or the KRaft controllers'): a strict majority of its members.
fn zookeeper_quorum(members: u32) -> u32 {
    members / 2 + 1
}

#[cfg(test)]
mod tests {
    use super::testing::{A, B, C, test_cluster};
    use super::{Finding, Report, SIMULATION_RULE, Severity, Verdict};

    #[test]
    fn healthy_three_az_cluster_is_ok() {
        let cluster = test_cluster(&[A, B, C], &[A, B, C], &[A, B, C], 3, 2);
        let report = Report::build(&cluster, 6, 3, 0);
        assert_eq!(report.findings, vec![]);
        assert!(report.ok());
        assert_eq!(report.counts(), (0, 0));
    }

    #[test]
    fn live_errors_make_the_report_fail_and_sort_first() {
        let cluster = test_cluster(&[A, B, C], &[A, B, C], &[A, B, C], 3, 2);
        let mut report = Report::build(&cluster, 6, 3, 0);
        report.add_live([
            Finding::warning("live-x", "w", "f"),
            Finding::error("live-y", "e", "f"),
        ]);
        assert!(!report.ok());
        assert_eq!(report.live[0].severity, Severity::Error);
        assert_eq!(report.counts(), (1, 1));
    }

    #[test]
    fn warnings_alone_keep_the_report_ok() {
        // Brokers 2/2/0 over three AZs: unbalanced (a warning), yet RF 2 survives any AZ loss.
        let cluster = test_cluster(&[A, B, C], &[A, B, C], &[A, A, B, B], 2, 1);
        let report = Report::build(&cluster, 4, 2, 0);
        assert!(
            report
                .findings
                .iter()
                .all(|f| f.severity == Severity::Warning)
        );
        assert!(!report.findings.is_empty());
        assert!(report.ok(), "{}", report.render_text());
    }

    #[test]
    fn impossible_simulation_becomes_an_error_finding() {
        let cluster = test_cluster(&[A, B, C], &[A, B, C], &[A, B], 2, 1);
        let report = Report::build(&cluster, 6, 3, 0);
        assert!(report.simulation.is_none());
        let f = report
            .findings
            .iter()
            .find(|f| f.rule == SIMULATION_RULE)
            .expect("simulation finding");
        assert!(
            f.message
                .ends_with("Replication factor: 3 larger than available brokers: 2."),
            "{}",
            f.message
        );
        assert!(!report.ok());
    }

    #[test]
    fn lost_quorum_scenario_fails_the_report() {
        let cluster = test_cluster(&[A, B], &[A, A, B], &[A, B], 2, 1);
        let report = Report::build(&cluster, 4, 2, 0);
        let sim = report.simulation.as_ref().expect("simulation");
        assert_eq!(sim.scenarios[0].verdict, Verdict::QuorumLost);
        assert!(!report.ok());
    }

    #[test]
    fn accepted_zone_loss_turns_the_zone_loss_errors_into_warnings_and_keeps_the_verdicts() {
        let mut cluster = test_cluster(&[A, B], &[A, A, B], &[A, A, B, B], 3, 2);
        let refused = Report::build(&cluster, 4, 3, 0);
        assert!(!refused.ok());
        let rules = |r: &Report, severity: Severity| -> Vec<&str> {
            r.findings
                .iter()
                .filter(|f| f.severity == severity)
                .map(|f| f.rule)
                .collect()
        };
        assert_eq!(
            rules(&refused, Severity::Error),
            ["zookeeper-quorum-zones", "writes-survive-az-loss"]
        );

        cluster.accept_zone_loss = true;
        let accepted = Report::build(&cluster, 4, 3, 0);
        assert!(accepted.ok(), "{}", accepted.render_text());
        assert!(rules(&accepted, Severity::Error).is_empty());
        assert!(
            accepted
                .findings
                .iter()
                .filter(|f| f.rule == "zookeeper-quorum-zones")
                .all(|f| f.message.ends_with("(accepted: `accept_zone_loss: true`)"))
        );
        assert_eq!(
            accepted.simulation, refused.simulation,
            "the verdicts stay as they are"
        );
        assert!(
            accepted
                .render_text()
                .ends_with("2 AZ losses not survived, accepted by `accept_zone_loss: true`)\n")
        );
    }

    #[test]
    fn json_has_stable_fields_in_order() {
        let cluster = test_cluster(&[A, B, C], &[A, B, C], &[A, B, C], 3, 2);
        let mut report = Report::build(&cluster, 3, 3, 0);
        report.add_live([Finding::warning("live-x", "m", "f")]);
        let json = serde_json::to_string(&report).expect("json");
        let keys = [
            "\"cluster\":",
            "\"ok\":",
            "\"findings\":",
            "\"simulation\":",
            "\"live\":",
        ];
        let positions: Vec<usize> = keys.iter().map(|k| json.find(k).expect(k)).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{json}");
        assert!(json.contains(
            r#""live":[{"severity":"warning","rule":"live-x","message":"m","fix":"f"}]"#
        ));
        assert!(json.contains(r#""verdict":"ok""#));
        assert_eq!(json, serde_json::to_string(&report).expect("json"));
    }

    fn kraft(yaml_tail: &str) -> crate::cluster::Cluster {
        let yaml = format!("name: k\nregion: us-west-1\nmetadata: kraft\n{yaml_tail}");
        match crate::topology::load("k.yaml", yaml.as_bytes()) {
            Ok(l) => l.cluster,
            Err(r) => panic!("{r}"),
        }
    }

    #[test]
    fn kraft_controllers_are_the_quorum_check_reports_per_zone() {
        let cluster = kraft(
            "zones:\n  - {name: us-west-1a, cidr: 10.0.1.0/24}\n  - {name: us-west-1b, cidr: 10.0.2.0/24}\n  - {name: us-west-1c, cidr: 10.0.3.0/24}\n",
        );
        let report = Report::build(&cluster, 6, 3, 0);
        assert!(report.ok(), "{}", report.render_text());
        let sim = report.simulation.as_ref().expect("simulation");
        assert_eq!(sim.quorum_role, crate::cluster::Role::Controller);
        assert_eq!((sim.quorum_members, sim.quorum), (3, 2));
        assert!(sim.zones.iter().all(|z| z.quorum_members == 1));
        assert!(
            sim.scenarios
                .iter()
                .all(|s| s.quorum_kept && s.quorum_survivors == 2)
        );
        let text = report.render_text();
        assert!(
            text.contains("controller quorum 2 of 3: metadata is writable only with it"),
            "{text}"
        );
        assert!(
            text.contains("  AZ          brokers  controller  replicas  leaders\n"),
            "{text}"
        );
    }

    #[test]
    fn kraft_controller_majority_in_one_of_two_zones_loses_metadata_writes() {
        let cluster = kraft(
            "accept_zone_loss: true\nzones:\n  - {name: us-west-1a, cidr: 10.0.1.0/24}\n  - {name: us-west-1b, cidr: 10.0.2.0/24}\nbrokers:\n  count: 4\n",
        );
        let report = Report::build(&cluster, 4, 2, 0);
        let sim = report.simulation.as_ref().expect("simulation");
        assert_eq!(sim.scenarios[0].verdict, Verdict::QuorumLost);
        assert!(!sim.scenarios[0].quorum_kept);
        assert_eq!(
            sim.verdict_text(Verdict::QuorumLost),
            "controller quorum lost"
        );
        assert!(sim.scenarios[1].quorum_kept);
        let rules: Vec<&str> = report.findings.iter().map(|f| f.rule).collect();
        assert!(rules.contains(&"controller-quorum-zones"), "{rules:?}");
        assert!(
            !rules.iter().any(|r| r.starts_with("zookeeper")),
            "{rules:?}"
        );
        let text = report.render_text();
        assert!(
            text.contains("1/3 no quorum  controller quorum lost"),
            "{text}"
        );
        let mut refused = cluster.clone();
        refused.accept_zone_loss = false;
        assert!(!Report::build(&refused, 4, 2, 0).ok());
    }
}
