//! One test per rule of the topology file (parse.rs and validate.rs), each asserting the message
//! an operator sees, and robustness tests: hostile input must come back as an error, quickly.

use std::sync::mpsc;
use std::time::Duration;

use super::{Loaded, MAX_FILE_BYTES, load};
use crate::topology::diagnostic::{Diagnostic, Location, Report, Severity};

/// A valid topology of 9 lines; tests append sections from line 10 on.
const BASE: &str = "\
name: demo
region: eu-west-1
zones:
  - name: eu-west-1a
    cidr: 10.0.0.0/24
  - name: eu-west-1b
    cidr: 10.0.1.0/24
  - name: eu-west-1c
    cidr: 10.0.2.0/24
";

fn with(extra: &str) -> String {
    format!("{BASE}{extra}")
}

/// Loads `yaml` and expects it to be refused; returns the report.
fn refused(yaml: &str) -> Report {
    match load("t.yaml", yaml.as_bytes()) {
        Ok(l) => panic!(
            "expected errors, got a valid cluster (warnings: {})",
            l.warnings
        ),
        Err(r) => r,
    }
}

/// Loads `yaml` and expects it to be valid.
fn accepted(yaml: &str) -> Loaded {
    match load("t.yaml", yaml.as_bytes()) {
        Ok(l) => l,
        Err(r) => panic!("expected a valid cluster, got:\n{r}"),
    }
}

/// The report's only diagnostic (the test fails if there are more: no cascades).
fn only(report: &Report) -> &Diagnostic {
    assert_eq!(
        report.diagnostics.len(),
        1,
        "expected exactly one diagnostic:\n{report}"
    );
    &report.diagnostics[0]
}

/// The diagnostic at `path` (as displayed, `(top level)` for the root).
fn at<'a>(report: &'a Report, path: &str) -> &'a Diagnostic {
    report
        .diagnostics
        .iter()
        .find(|d| d.path.to_string() == path)
        .unwrap_or_else(|| panic!("no diagnostic at {path}:\n{report}"))
}

/// Asserts every part of a diagnostic; `line_col` is checked when given.
#[track_caller]
fn expect(
    d: &Diagnostic,
    severity: Severity,
    path: &str,
    message: &str,
    help: Option<&str>,
    line_col: Option<(usize, usize)>,
) {
    assert_eq!(d.severity, severity, "{d:?}");
    assert_eq!(d.path.to_string(), path, "{d:?}");
    assert_eq!(d.message, message, "{d:?}");
    assert_eq!(d.help.as_deref(), help, "{d:?}");
    if let Some((line, column)) = line_col {
        assert_eq!(d.location, Some(Location { line, column }), "{d:?}");
    }
}

#[track_caller]
fn error(
    d: &Diagnostic,
    path: &str,
    message: &str,
    help: Option<&str>,
    line_col: Option<(usize, usize)>,
) {
    expect(d, Severity::Error, path, message, help, line_col);
}

/// Runs `f` on its own thread and fails if it panics or takes longer than `secs` seconds.
fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("did not return within {secs}s"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("panicked"),
    }
}

/// Loads bytes that must be refused, on a thread with a time limit.
fn refused_quickly(bytes: Vec<u8>) -> Report {
    within(10, move || load("t.yaml", &bytes)).expect_err("hostile input must be refused")
}

// ---------------------------------------------------------------------------------------------
// The base file and the shape of a report.

#[test]
fn base_topology_is_valid_without_warnings() {
    let l = accepted(BASE);
    assert!(l.warnings.diagnostics.is_empty(), "{}", l.warnings);
    assert_eq!(l.cluster.nodes.len(), 6);
}

#[test]
fn cluster_is_built_only_when_no_error_was_found() {
    let (cluster, diagnostics) = super::validate::check_raw(BASE);
    assert!(cluster.is_some() && diagnostics.is_empty());
    let (cluster, diagnostics) = super::validate::check_raw(&with("zookeeper:\n  count: 4\n"));
    assert!(cluster.is_none());
    assert_eq!(diagnostics.len(), 1);
}

#[test]
fn report_display_names_file_position_path_and_help() {
    let r = refused(&with("zookeeper:\n  count: 4\n"));
    assert_eq!(
        r.to_string(),
        "t.yaml:11:3: error: zookeeper.count: 4 ZooKeeper nodes: an even quorum adds no fault \
         tolerance (4 nodes survive 1 failure, as 3 do)\n  help: use 3 or 5\nt.yaml: 1 error, 0 warnings"
    );
}

// ---------------------------------------------------------------------------------------------
// ZooKeeper ensemble.

#[test]
fn fewer_than_three_zookeeper_nodes_is_refused() {
    for (count, message) in [
        (
            1,
            "1 ZooKeeper node: a quorum needs at least 3 to survive losing one",
        ),
        (
            2,
            "2 ZooKeeper nodes: a quorum needs at least 3 to survive losing one",
        ),
    ] {
        let r = refused(&with(&format!("zookeeper:\n  count: {count}\n")));
        error(
            only(&r),
            "zookeeper.count",
            message,
            Some("use 3 (or 5 for surviving two failures)"),
            Some((11, 3)),
        );
    }
}

#[test]
fn zero_zookeeper_nodes_is_refused() {
    let r = refused(&with("zookeeper:\n  count: 0\n"));
    assert_eq!(
        only(&r).message,
        "0 ZooKeeper nodes: a quorum needs at least 3 to survive losing one"
    );
}

#[test]
fn even_zookeeper_count_is_refused_saying_it_adds_no_fault_tolerance() {
    let r = refused(&with("zookeeper:\n  count: 4\n"));
    error(
        only(&r),
        "zookeeper.count",
        "4 ZooKeeper nodes: an even quorum adds no fault tolerance (4 nodes survive 1 failure, as 3 do)",
        Some("use 3 or 5"),
        Some((11, 3)),
    );
    let r = refused(&with("zookeeper:\n  count: 6\n"));
    assert_eq!(
        only(&r).message,
        "6 ZooKeeper nodes: an even quorum adds no fault tolerance (6 nodes survive 2 failures, as 5 do)"
    );
    assert_eq!(only(&r).help.as_deref(), Some("use 5 or 7"));
}

#[test]
fn even_zookeeper_count_from_pinned_nodes_is_refused() {
    let r = refused(&with(
        "zookeeper:\n  nodes:\n    - id: 1\n    - id: 2\n    - id: 3\n    - id: 4\n",
    ));
    assert!(
        only(&r)
            .message
            .starts_with("4 ZooKeeper nodes: an even quorum")
    );
    assert_eq!(only(&r).path.to_string(), "zookeeper.count");
}

#[test]
fn zookeeper_count_above_255_is_refused() {
    let r = refused(&with("zookeeper:\n  count: 300\n"));
    error(
        only(&r),
        "zookeeper.count",
        "300 ZooKeeper nodes is more than ZooKeeper's ids 1 to 255 allow",
        Some("ensembles of 3, 5 or 7 are usual"),
        Some((11, 3)),
    );
}

#[test]
fn zookeeper_majority_in_one_zone_is_refused() {
    let r = refused(&with(
        "zookeeper:\n  nodes:\n    - id: 1\n      zone: eu-west-1a\n    - id: 2\n      zone: eu-west-1a\n    - id: 3\n",
    ));
    error(
        only(&r),
        "zookeeper.nodes",
        "zone eu-west-1a holds 2 of 3 ZooKeeper nodes, a majority: losing that zone loses the quorum",
        Some(
            "spread ZooKeeper nodes so no zone holds a majority (remove zone pins to spread them round-robin)",
        ),
        Some((11, 3)),
    );
}

#[test]
fn five_zookeeper_nodes_round_robin_over_three_zones_hold_no_majority() {
    let l = accepted(&with("zookeeper:\n  count: 5\n"));
    let zones: Vec<&str> = l.cluster.zookeepers().map(|n| n.zone.as_str()).collect();
    assert_eq!(
        zones,
        [
            "eu-west-1a",
            "eu-west-1b",
            "eu-west-1c",
            "eu-west-1a",
            "eu-west-1b"
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Zones and their CIDRs.

#[test]
fn fewer_than_two_zones_is_refused() {
    let r = refused(
        "name: demo\nregion: eu-west-1\nzones:\n  - name: eu-west-1a\n    cidr: 10.0.0.0/24\n",
    );
    error(
        only(&r),
        "zones",
        "1 availability zone: a cluster needs at least 2, and 3 to survive losing one",
        Some("list 3 zones of the region"),
        Some((3, 1)),
    );
    let r = refused("name: demo\nregion: eu-west-1\nzones: []\n");
    assert_eq!(
        at(&r, "zones").message,
        "0 availability zones: a cluster needs at least 2, and 3 to survive losing one"
    );
}

const TWO_ZONES: &str = "\
name: demo
region: eu-west-1
zones:
  - name: eu-west-1a
    cidr: 10.0.0.0/24
  - name: eu-west-1b
    cidr: 10.0.1.0/24
";

#[test]
fn two_zones_are_refused_unless_the_topology_accepts_losing_the_cluster_with_a_zone() {
    let two =
        format!("{TWO_ZONES}brokers:\n  count: 2\n  overrides:\n    min.insync.replicas: 1\n");
    let r = refused(&two);
    error(
        only(&r),
        "zones",
        "only 2 availability zones: whichever zone holds the ZooKeeper majority takes the quorum down with it",
        Some(
            "use 3 zones (a third needs only a ZooKeeper member), or set `accept_zone_loss: true` \
             if the region has only 2 and the cluster may stop while one is down",
        ),
        Some((3, 1)),
    );
    let l = accepted(&format!("{two}accept_zone_loss: true\n"));
    assert!(l.cluster.accept_zone_loss);
    expect(
        only(&l.warnings),
        Severity::Warning,
        "zones",
        "only 2 availability zones: whichever zone holds the ZooKeeper majority takes the quorum down with it (accepted: `accept_zone_loss: true`)",
        Some("use 3 zones so that ZooKeeper and acks=all writes survive losing any one"),
        Some((3, 1)),
    );
}

#[test]
fn replication_factor_above_zone_count_is_a_warning() {
    let l = accepted(&format!(
        "{TWO_ZONES}brokers:\n  count: 4\n  overrides:\n    default.replication.factor: 3\n\
         accept_zone_loss: true\n"
    ));
    assert_eq!(l.warnings.diagnostics.len(), 2, "{}", l.warnings);
    expect(
        at(&l.warnings, "brokers.overrides.default.replication.factor"),
        Severity::Warning,
        "brokers.overrides.default.replication.factor",
        "replication factor 3 is greater than the 2 availability zones: some partitions keep two replicas in one zone",
        Some("add a zone, or accept that losing that zone takes two replicas of those partitions"),
        Some((11, 5)),
    );
}

#[test]
fn zone_cidr_that_does_not_parse_is_refused() {
    let r = refused(&BASE.replace("10.0.2.0/24", "10.0.2.0/33"));
    error(
        only(&r),
        "zones[2].cidr",
        "`10.0.2.0/33` is not an IPv4 CIDR",
        Some("write it like `10.0.1.0/24`"),
        Some((9, 5)),
    );
}

#[test]
fn zone_cidr_with_host_bits_is_refused() {
    let r = refused(&BASE.replace("10.0.2.0/24", "10.0.2.7/24"));
    error(
        only(&r),
        "zones[2].cidr",
        "`10.0.2.7/24` has host bits set",
        Some("the subnet's CIDR is `10.0.2.0/24`"),
        Some((9, 5)),
    );
}

#[test]
fn zone_cidr_outside_ec2_subnet_sizes_is_refused() {
    for (cidr, message) in [
        ("10.0.0.0/8", "a /8 cannot be an EC2 subnet"),
        ("10.0.2.0/29", "a /29 cannot be an EC2 subnet"),
    ] {
        let r = refused(&BASE.replace("10.0.2.0/24", cidr));
        error(
            at(&r, "zones[2].cidr"),
            "zones[2].cidr",
            message,
            Some("EC2 subnets are between /16 and /28"),
            Some((9, 5)),
        );
    }
}

#[test]
fn overlapping_zone_cidrs_are_refused() {
    let r = refused(&BASE.replace("10.0.2.0/24", "10.0.0.128/25"));
    error(
        only(&r),
        "zones[2].cidr",
        "10.0.0.128/25 overlaps the CIDR of zone eu-west-1a (10.0.0.0/24)",
        Some("each zone has its own subnet"),
        Some((9, 5)),
    );
}

#[test]
fn zone_listed_twice_is_refused() {
    let r = refused(&BASE.replace("eu-west-1c", "eu-west-1a"));
    error(
        at(&r, "zones[2].name"),
        "zones[2].name",
        "zone `eu-west-1a` is listed twice",
        Some("list each zone once"),
        Some((8, 5)),
    );
}

#[test]
fn zone_of_another_region_is_refused() {
    let r = refused(&BASE.replace("eu-west-1c", "us-east-1c"));
    error(
        only(&r),
        "zones[2].name",
        "`us-east-1c` is not an availability zone of region eu-west-1",
        Some("zones of eu-west-1 are named like `eu-west-1a`"),
        Some((8, 5)),
    );
}

#[test]
fn zone_without_name_or_cidr_is_refused() {
    let r = refused(&BASE.replace("  - name: eu-west-1c\n", "  - subnet: subnet-1\n"));
    error(
        only(&r),
        "zones[2].name",
        "missing",
        Some("add the zone name, e.g. `name: eu-west-1a`"),
        None,
    );
    let r = refused(&BASE.replace("    cidr: 10.0.2.0/24\n", ""));
    error(
        only(&r),
        "zones[2].cidr",
        "missing",
        Some(
            "add the subnet's IPv4 CIDR, e.g. `cidr: 10.0.1.0/24`; node addresses are allocated from it",
        ),
        None,
    );
}

#[test]
fn subnet_that_is_not_a_subnet_id_is_refused() {
    let r = refused(&BASE.replace(
        "    cidr: 10.0.2.0/24\n",
        "    cidr: 10.0.2.0/24\n    subnet: sn-123\n",
    ));
    error(
        only(&r),
        "zones[2].subnet",
        "`sn-123` is not a subnet id",
        Some("subnet ids look like `subnet-0abc1234`"),
        Some((10, 5)),
    );
}

#[test]
fn own_vpc_needs_a_subnet_id_in_every_zone() {
    let r = refused(&with("network:\n  vpc: vpc-0abc\n"));
    assert_eq!(r.diagnostics.len(), 3, "{r}");
    error(
        at(&r, "zones[0].subnet"),
        "zones[0].subnet",
        "missing: `network.vpc` is set, so every zone needs its subnet id",
        Some(
            "add `subnet: subnet-…`, or remove `network.vpc` to use the default VPC's default subnets",
        ),
        None,
    );
}

#[test]
fn vpc_that_is_not_a_vpc_id_is_refused() {
    let yaml = BASE.replace("10.0.0.0/24", "10.0.0.0/24\n    subnet: subnet-a");
    let yaml = yaml.replace("10.0.1.0/24", "10.0.1.0/24\n    subnet: subnet-b");
    let yaml = yaml.replace("10.0.2.0/24", "10.0.2.0/24\n    subnet: subnet-c");
    accepted(&format!("{yaml}network:\n  vpc: vpc-0abc\n"));
    let r = refused(&format!("{yaml}network:\n  vpc: default\n"));
    error(
        only(&r),
        "network.vpc",
        "`default` is not a VPC id",
        Some("VPC ids look like `vpc-0abc1234`"),
        Some((14, 3)),
    );
}

#[test]
fn client_cidr_that_does_not_parse_is_refused() {
    let r = refused(&with("network:\n  client_cidrs: [10.0.0.0/16, anywhere]\n"));
    error(
        only(&r),
        "network.client_cidrs[1]",
        "`anywhere` is not an IPv4 CIDR",
        Some("write it like `10.0.0.0/16`"),
        Some((11, 31)),
    );
}

#[test]
fn client_listener_open_to_the_internet_is_a_warning() {
    let l = accepted(&with("network:\n  client_cidrs: [0.0.0.0/0]\n"));
    expect(
        only(&l.warnings),
        Severity::Warning,
        "network.client_cidrs",
        "the client listener is open to the whole internet (0.0.0.0/0) and speaks plaintext",
        Some("list the CIDRs of your clients' networks"),
        Some((11, 3)),
    );
}

#[test]
fn monitoring_cidr_that_does_not_parse_is_refused() {
    let r = refused(&with(
        "network:\n  monitoring_cidrs: [10.9.0.0/24, prometheus]\n",
    ));
    error(
        only(&r),
        "network.monitoring_cidrs[1]",
        "`prometheus` is not an IPv4 CIDR",
        Some("write it like `10.0.0.0/16`"),
        Some((11, 35)),
    );
}

#[test]
fn exporters_open_to_the_internet_is_a_warning() {
    let l = accepted(&with("network:\n  monitoring_cidrs: [0.0.0.0/0]\n"));
    expect(
        only(&l.warnings),
        Severity::Warning,
        "network.monitoring_cidrs",
        "the exporters are open to the whole internet (0.0.0.0/0) and answer anyone",
        Some("list the CIDRs your Prometheus scrapes from"),
        Some((11, 3)),
    );
}

#[test]
fn exporters_are_open_to_the_group_and_the_monitoring_cidrs_only() {
    let l = accepted(&with("network:\n  monitoring_cidrs: [10.9.0.0/24]\n"));
    let rules = crate::provision::desired::group_rules(&l.cluster);
    for port in [11001, 11002] {
        let sources: Vec<_> = rules
            .iter()
            .filter(|r| r.ports == Some((port, port)))
            .map(|r| r.source.clone())
            .collect();
        assert_eq!(
            sources,
            vec![
                crate::ec2::Source::Group,
                crate::ec2::Source::Cidr("10.9.0.0/24".parse().unwrap())
            ],
            "port {port}"
        );
    }
    let none = accepted(&with(""));
    assert!(
        crate::provision::desired::group_rules(&none.cluster)
            .iter()
            .filter(|r| matches!(r.ports, Some((11001, 11001) | (11002, 11002))))
            .all(|r| r.source == crate::ec2::Source::Group),
        "without monitoring_cidrs only the group reaches the exporters"
    );
}

#[test]
fn monitoring_node_only_with_its_section_at_offset_40_plus_id() {
    let l = accepted(&with(""));
    assert_eq!(
        l.cluster.monitoring_nodes().count(),
        0,
        "absent section: none"
    );
    let l = accepted(&with("monitoring: {}\n"));
    let m: Vec<_> = l.cluster.monitoring_nodes().collect();
    assert_eq!(m.len(), 1, "a section without count: one");
    assert_eq!(
        (m[0].name.as_str(), m[0].zone.as_str()),
        ("monitoring-1", "eu-west-1a")
    );
    assert_eq!(m[0].address.to_string(), "10.0.0.41");
    let spec = l
        .cluster
        .role_spec(crate::cluster::Role::Monitoring)
        .expect("spec");
    assert_eq!(
        (
            spec.instance_type.as_str(),
            spec.volume.as_ref().map(|v| v.size_gib)
        ),
        ("m5.large", Some(50))
    );
    assert_eq!(l.cluster.monitoring.retention, "15d");
    assert_eq!(l.cluster.monitoring.webhook_url, None);
    let l = accepted(&with(
        "monitoring:\n  count: 2\n  retention: 6w\n  webhook_url: https://h.example/x?a=1\n",
    ));
    let zones: Vec<_> = l
        .cluster
        .monitoring_nodes()
        .map(|n| n.zone.as_str())
        .collect();
    assert_eq!(
        zones,
        ["eu-west-1a", "eu-west-1b"],
        "two monitoring nodes, two zones"
    );
    assert_eq!(l.cluster.monitoring.retention, "6w");
    let l = accepted(&with("monitoring:\n  count: 0\n"));
    assert_eq!(l.cluster.monitoring_nodes().count(), 0);
    // Not a broker, not a quorum member: check's broker and ZooKeeper counts leave it out.
    let l = accepted(&with("monitoring: {}\n"));
    assert_eq!(l.cluster.brokers().count(), 3);
    assert_eq!(l.cluster.zookeepers().count(), 3);
}

#[test]
fn two_monitoring_nodes_in_one_zone_is_a_warning() {
    let l = accepted(&with(
        "monitoring:\n  nodes:\n    - {id: 1, zone: eu-west-1c}\n    - {id: 2, zone: eu-west-1c}\n",
    ));
    expect(
        only(&l.warnings),
        Severity::Warning,
        "monitoring.nodes",
        "both monitoring nodes are in eu-west-1c: losing that zone silences every alert, its own loss included",
        Some("pin them to two different zones, or leave their zones to kcluster"),
        None,
    );
    assert!(
        accepted(&with("monitoring:\n  count: 2\n"))
            .warnings
            .diagnostics
            .is_empty()
    );
}

#[test]
fn more_than_two_monitoring_nodes_is_refused() {
    let r = refused(&with("monitoring:\n  count: 3\n"));
    error(
        only(&r),
        "monitoring.count",
        "3 monitoring nodes is more than monitoring's ids 1 to 2 allow",
        Some("use at most 2"),
        Some((11, 3)),
    );
}

#[test]
fn monitoring_retention_and_webhook_are_checked() {
    for bad in ["15", "d", "0d", "15m", "1.5d", "15 d"] {
        let r = refused(&with(&format!("monitoring:\n  retention: \"{bad}\"\n")));
        error(
            only(&r),
            "monitoring.retention",
            &format!("`{bad}` is not a retention Prometheus takes here"),
            Some("write a number and a unit: h, d, w or y, e.g. `15d` or `6w`"),
            None,
        );
    }
    for bad in [
        "ftp://x/y",
        "https://",
        "hooks.example.com/x",
        "https://a b/c",
    ] {
        let r = refused(&with(&format!("monitoring:\n  webhook_url: \"{bad}\"\n")));
        error(
            only(&r),
            "monitoring.webhook_url",
            &format!("`{bad}` is not an http(s) URL"),
            Some(
                "write it like `https://alerts.example.com/hook` (no spaces), or omit it for no receiver",
            ),
            None,
        );
    }
}

#[test]
fn prometheus_and_alertmanager_are_open_to_the_group_and_monitoring_cidrs_never_9093() {
    use crate::ec2::{Rule, Source};
    let cidr = Source::Cidr("10.9.0.0/24".parse().unwrap());
    let l = accepted(&with(
        "monitoring:\n  count: 2\nnetwork:\n  monitoring_cidrs: [10.9.0.0/24]\n",
    ));
    let rules = crate::provision::desired::group_rules(&l.cluster);
    for port in [9090, 9095] {
        assert!(rules.contains(&Rule::tcp(port, Source::Group)), "{port}");
        assert!(rules.contains(&Rule::tcp(port, cidr.clone())), "{port}");
    }
    // The brokers' inter-broker listener stays inside the group.
    assert!(
        rules
            .iter()
            .filter(|r| r.ports == Some((9093, 9093)))
            .all(|r| r.source == Source::Group)
    );
    // The Alertmanagers' gossip: TCP and UDP, inside the group only.
    assert!(rules.contains(&Rule::tcp(9096, Source::Group)));
    assert!(rules.contains(&Rule::udp(9096, Source::Group)));
    assert!(
        !rules
            .iter()
            .any(|r| r.ports == Some((9096, 9096)) && r.source != Source::Group)
    );
    // Without a monitoring node none of its ports is open.
    let none = accepted(&with("network:\n  monitoring_cidrs: [10.9.0.0/24]\n"));
    assert!(
        !crate::provision::desired::group_rules(&none.cluster)
            .iter()
            .any(|r| matches!(r.ports, Some((9090 | 9095 | 9096, _))))
    );
}

#[test]
fn client_port_that_kcluster_uses_or_below_1024_is_refused() {
    for port in [
        80, 2181, 2888, 3888, 8083, 9090, 9093, 9094, 9095, 9096, 9999, 11001, 11002,
    ] {
        let r = refused(&with(&format!("network:\n  client_port: {port}\n")));
        error(
            only(&r),
            "network.client_port",
            &format!("port {port} is not available for the client listener"),
            Some(
                "use a port from 1024 up other than 2181, 2888, 3888, 8083, 9090, 9093, 9094, 9095, 9096, 9999, 11001 and 11002, e.g. 9092",
            ),
            Some((11, 3)),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Node pins: ids, zones, addresses.

#[test]
fn node_pinned_to_unlisted_zone_is_refused() {
    let r = refused(&with(
        "brokers:\n  nodes:\n    - id: 1\n    - id: 2\n    - id: 3\n      zone: eu-west-1d\n",
    ));
    error(
        only(&r),
        "brokers.nodes[2].zone",
        "zone `eu-west-1d` is not one of `zones`",
        Some("use one of: eu-west-1a, eu-west-1b, eu-west-1c"),
        Some((15, 7)),
    );
}

#[test]
fn duplicate_node_ids_are_refused() {
    let r = refused(&with(
        "brokers:\n  nodes:\n    - id: 1\n    - id: 2\n    - id: 2\n",
    ));
    error(
        only(&r),
        "brokers.nodes[2].id",
        "duplicate id 2: `broker-2` is also defined at brokers.nodes[1]",
        Some("each node has its own id; remove or renumber one"),
        Some((14, 7)),
    );
}

#[test]
fn node_id_out_of_range_is_refused() {
    let r = refused(&with(
        "zookeeper:\n  nodes:\n    - id: 1\n    - id: 2\n    - id: 256\n",
    ));
    error(
        only(&r),
        "zookeeper.nodes[2].id",
        "id 256 is out of range",
        Some("ids run 1 to 255 (ZooKeeper's myid)"),
        Some((14, 7)),
    );
    let r = refused(&with("brokers:\n  nodes:\n    - id: 0\n"));
    error(
        only(&r),
        "brokers.nodes[0].id",
        "id 0 is out of range",
        Some("ids run from 1"),
        Some((12, 7)),
    );
}

#[test]
fn node_pin_without_id_is_refused() {
    let r = refused(&with(
        "brokers:\n  nodes:\n    - id: 1\n    - zone: eu-west-1b\n",
    ));
    error(
        only(&r),
        "brokers.nodes[1].id",
        "missing",
        Some("every entry of `nodes` names the node by `id`"),
        Some((13, 7)),
    );
}

#[test]
fn node_id_beyond_count_is_refused() {
    let r = refused(&with("brokers:\n  count: 3\n  nodes:\n    - id: 4\n"));
    error(
        only(&r),
        "brokers.nodes[0].id",
        "id 4 is beyond `count: 3`",
        Some(
            "with `count`, ids run 1..=3; raise `count` or drop `count` to list the nodes explicitly",
        ),
        Some((13, 7)),
    );
}

#[test]
fn duplicate_addresses_are_refused() {
    let r = refused(&with(
        "brokers:\n  nodes:\n    - id: 1\n      address: 10.0.0.50\n    - id: 2\n      zone: eu-west-1a\n      address: 10.0.0.50\n    - id: 3\n",
    ));
    error(
        only(&r),
        "brokers.nodes",
        "broker-2 and broker-1 both have address 10.0.0.50",
        Some("every node needs its own address; change the pinned one"),
        Some((11, 3)),
    );
}

#[test]
fn broker_pinned_to_a_zookeeper_address_is_refused() {
    // zookeeper-1 gets 10.0.0.11 (offset 10 + id in eu-west-1a).
    let r = refused(&with(
        "brokers:\n  nodes:\n    - id: 1\n      address: 10.0.0.11\n    - id: 2\n    - id: 3\n",
    ));
    assert_eq!(
        only(&r).message,
        "broker-1 and zookeeper-1 both have address 10.0.0.11"
    );
}

#[test]
fn address_outside_its_subnet_is_refused() {
    let r = refused(&with(
        "zookeeper:\n  nodes:\n    - id: 1\n      address: 10.0.1.11\n    - id: 2\n    - id: 3\n",
    ));
    error(
        only(&r),
        "zookeeper.nodes[0].address",
        "10.0.1.11 is outside zone eu-west-1a's subnet 10.0.0.0/24",
        Some("pick an address in 10.0.0.0/24"),
        Some((13, 7)),
    );
}

#[test]
fn addresses_reserved_by_aws_are_refused() {
    // The network address, the next three (router, DNS, future use) and the broadcast address.
    for (address, zone) in [
        ("10.0.0.0", "eu-west-1a"),
        ("10.0.0.1", "eu-west-1a"),
        ("10.0.0.2", "eu-west-1a"),
        ("10.0.0.3", "eu-west-1a"),
        ("10.0.0.255", "eu-west-1a"),
    ] {
        let r = refused(&with(&format!(
            "brokers:\n  nodes:\n    - id: 1\n      zone: {zone}\n      address: {address}\n    - id: 2\n    - id: 3\n"
        )));
        error(
            only(&r),
            "brokers.nodes[0].address",
            &format!("{address} is reserved by AWS in subnet 10.0.0.0/24"),
            Some("AWS keeps the first four addresses and the last one of every subnet"),
            Some((14, 7)),
        );
    }
    let l = accepted(&with(
        "brokers:\n  nodes:\n    - id: 1\n      address: 10.0.0.4\n    - id: 2\n    - id: 3\n",
    ));
    assert_eq!(
        l.cluster.node("broker-1").unwrap().address.to_string(),
        "10.0.0.4"
    );
}

#[test]
fn address_that_does_not_parse_is_refused() {
    let r = refused(&with(
        "brokers:\n  nodes:\n    - id: 1\n      address: 10.0.0\n    - id: 2\n    - id: 3\n",
    ));
    error(
        only(&r),
        "brokers.nodes[0].address",
        "`10.0.0` is not an IPv4 address",
        Some("write it like `10.0.1.20`"),
        Some((13, 7)),
    );
}

#[test]
fn subnet_too_small_for_the_address_offset_is_refused() {
    // A /28 has 16 addresses; broker 1 wants offset 101.
    let yaml = BASE.replace("10.0.0.0/24", "10.0.0.0/28");
    let r = refused(&yaml);
    error(
        only(&r),
        "brokers",
        "broker-1 gets no address: offset 101 is beyond zone eu-west-1a's subnet 10.0.0.0/28",
        Some("pin its address under `brokers.nodes` or use a larger subnet"),
        None,
    );
}

#[test]
fn addresses_follow_the_documented_offsets() {
    let l = accepted(BASE);
    let addresses: Vec<String> = l
        .cluster
        .nodes
        .iter()
        .map(|n| format!("{} {} {}", n.name, n.zone, n.address))
        .collect();
    assert_eq!(
        addresses,
        [
            "zookeeper-1 eu-west-1a 10.0.0.11",
            "zookeeper-2 eu-west-1b 10.0.1.12",
            "zookeeper-3 eu-west-1c 10.0.2.13",
            "broker-1 eu-west-1a 10.0.0.101",
            "broker-2 eu-west-1b 10.0.1.102",
            "broker-3 eu-west-1c 10.0.2.103",
        ]
    );
}

#[test]
fn too_many_nodes_is_refused() {
    let r = refused(&with("brokers:\n  count: 1001\n"));
    error(
        only(&r),
        "brokers.count",
        "1001 nodes is more than kcluster manages",
        Some("use at most 1000"),
        Some((11, 3)),
    );
}

// ---------------------------------------------------------------------------------------------
// Replication.

#[test]
fn replication_factor_above_broker_count_is_refused() {
    let r = refused(&with(
        "brokers:\n  count: 3\n  overrides:\n    default.replication.factor: 4\n",
    ));
    error(
        only(&r),
        "brokers.overrides.default.replication.factor",
        "replication factor 4 is larger than the 3 brokers",
        Some("use at most 3, or add brokers"),
        Some((13, 5)),
    );
}

#[test]
fn internal_topic_replication_above_broker_count_is_refused() {
    let r = refused(&with(
        "brokers:\n  overrides:\n    offsets.topic.replication.factor: 5\n    transaction.state.log.replication.factor: 4\n",
    ));
    error(
        at(&r, "brokers.overrides.offsets.topic.replication.factor"),
        "brokers.overrides.offsets.topic.replication.factor",
        "offsets.topic.replication.factor 5 is larger than the 3 brokers",
        Some("use at most 3"),
        Some((12, 5)),
    );
    assert_eq!(
        at(
            &r,
            "brokers.overrides.transaction.state.log.replication.factor"
        )
        .message,
        "transaction.state.log.replication.factor 4 is larger than the 3 brokers"
    );
}

#[test]
fn min_insync_replicas_not_below_replication_factor_is_refused() {
    let r = refused(&with(
        "brokers:\n  overrides:\n    min.insync.replicas: 3\n",
    ));
    error(
        only(&r),
        "brokers.overrides.min.insync.replicas",
        "min.insync.replicas 3 ≥ replication factor 3: acks=all writes stop as soon as one replica is down",
        Some("use min.insync.replicas 2 with replication factor 3"),
        Some((12, 5)),
    );
    // Lowering the replication factor below kcluster's default min.insync.replicas 2.
    let r = refused(&with(
        "brokers:\n  overrides:\n    default.replication.factor: 1\n",
    ));
    assert_eq!(
        only(&r).message,
        "min.insync.replicas 2 ≥ replication factor 1: acks=all writes stop as soon as one replica is down"
    );
    assert_eq!(
        only(&r).help.as_deref(),
        Some("use min.insync.replicas 1 with replication factor 1")
    );
}

#[test]
fn single_broker_is_not_told_to_set_min_insync_replicas_it_already_has() {
    // Regression: one broker gets replication factor 1 and min.insync.replicas 1 by default, and was
    // refused with "use min.insync.replicas 1 with replication factor 1".
    let l = accepted(&with("brokers:\n  count: 1\n"));
    assert_eq!(l.cluster.replication_factor(), 1);
    assert_eq!(l.cluster.min_insync_replicas(), 1);
}

#[test]
fn zero_brokers_is_refused_as_such() {
    // Regression: `count: 0` was refused with a min.insync.replicas message about a key not in the file.
    let r = refused(&with("brokers:\n  count: 0\n"));
    error(
        only(&r),
        "brokers.count",
        "0 brokers: a Kafka cluster needs at least one",
        Some("use 3 or more, one per zone"),
        Some((11, 3)),
    );
}

#[test]
fn replication_defaults_follow_the_broker_count() {
    let l = accepted(&with("brokers:\n  count: 6\n"));
    let s = &l.cluster.broker_settings;
    assert_eq!(s["default.replication.factor"], "3");
    assert_eq!(s["min.insync.replicas"], "2");
    assert_eq!(s["unclean.leader.election.enable"], "false");
    assert_eq!(s["auto.create.topics.enable"], "false");
}

// ---------------------------------------------------------------------------------------------
// Broker overrides.

#[test]
fn override_that_is_not_a_kafka_39_broker_config_is_refused_with_a_suggestion() {
    let r = refused(&with("brokers:\n  overrides:\n    num.partition: 12\n"));
    error(
        only(&r),
        "brokers.overrides.num.partition",
        "not a Kafka 3.9 broker config; did you mean `num.partitions`?",
        None,
        Some((12, 5)),
    );
}

#[test]
fn override_of_a_managed_key_is_refused() {
    for key in super::defaults::managed_keys(crate::cluster::metadata::Metadata::Zookeeper) {
        let r = refused(&with(&format!("brokers:\n  overrides:\n    {key}: x\n")));
        error(
            only(&r),
            &format!("brokers.overrides.{key}"),
            &format!("`{key}` is set by kcluster for each node"),
            Some("remove it; kcluster derives it from the topology"),
            Some((12, 5)),
        );
    }
}

#[test]
fn kraft_key_is_refused_in_zookeeper_mode() {
    for key in [
        "controller.listener.names",
        "controller.quorum.bootstrap.servers",
        "controller.quorum.voters",
        "controller.quorum.election.timeout.ms",
        "node.id",
        "process.roles",
        "metadata.log.dir",
    ] {
        let r = refused(&with(&format!("brokers:\n  overrides:\n    {key}: x\n")));
        error(
            only(&r),
            &format!("brokers.overrides.{key}"),
            &format!("`{key}` is a KRaft setting; this cluster is in ZooKeeper mode"),
            Some("remove it, or set `metadata: kraft` to run KRaft controllers"),
            Some((12, 5)),
        );
    }
}

#[test]
fn override_value_of_the_wrong_kafka_type_is_refused() {
    let r = refused(&with(
        "brokers:\n  overrides:\n    num.partitions: twelve\n    unclean.leader.election.enable: maybe\n    compression.type: zstandard\n    num.io.threads: 0\n",
    ));
    assert_eq!(r.diagnostics.len(), 4, "{r}");
    error(
        at(&r, "brokers.overrides.num.partitions"),
        "brokers.overrides.num.partitions",
        "expected an int (32-bit integer), found `twelve`",
        None,
        Some((12, 5)),
    );
    error(
        at(&r, "brokers.overrides.unclean.leader.election.enable"),
        "brokers.overrides.unclean.leader.election.enable",
        "expected a boolean (true or false), found `maybe`",
        None,
        Some((13, 5)),
    );
    assert_eq!(
        at(&r, "brokers.overrides.compression.type").message,
        "must be one of `uncompressed`, `zstd`, `lz4`, `snappy`, `gzip` or `producer`, found `zstandard`; did you mean `zstd`?"
    );
    assert_eq!(
        at(&r, "brokers.overrides.num.io.threads").message,
        "must be at least 1, found 0"
    );
}

#[test]
fn override_value_that_is_a_mapping_is_refused() {
    let r = refused(&with(
        "brokers:\n  overrides:\n    log.cleanup.policy: {delete: true}\n",
    ));
    error(
        only(&r),
        "brokers.overrides.log.cleanup.policy",
        "expected a single value or a list of values",
        Some("write e.g. `num.partitions: 12` or `cleanup.policy: [delete, compact]`"),
        Some((12, 5)),
    );
}

#[test]
fn override_lists_are_joined_with_commas_and_scalars_kept_as_written() {
    let l = accepted(&with(
        "brokers:\n  overrides:\n    log.cleanup.policy: [delete, compact]\n    num.partitions: 12\n    log.retention.hours: 72\n    delete.topic.enable: true\n",
    ));
    let s = &l.cluster.broker_settings;
    assert_eq!(s["log.cleanup.policy"], "delete,compact");
    assert_eq!(s["num.partitions"], "12");
    assert_eq!(s["log.retention.hours"], "72");
    assert_eq!(s["delete.topic.enable"], "true");
}

// ---------------------------------------------------------------------------------------------
// Unknown keys and wrong YAML types (parse.rs).

#[test]
fn unknown_key_suggests_the_closest_known_key() {
    let r = refused(&with(
        "zookeper:\n  count: 3\nbrokers:\n  instnace_type: m5.large\n",
    ));
    assert_eq!(r.diagnostics.len(), 2, "{r}");
    error(
        at(&r, "zookeper"),
        "zookeper",
        "unknown key `zookeper`",
        Some("did you mean `zookeeper`?"),
        Some((10, 1)),
    );
    error(
        at(&r, "brokers.instnace_type"),
        "brokers.instnace_type",
        "unknown key `instnace_type`",
        Some("did you mean `instance_type`?"),
        Some((13, 3)),
    );
}

#[test]
fn unknown_key_without_a_close_match_lists_the_known_keys() {
    let r = refused(&with("brokers:\n  volume:\n    size: 200\n"));
    error(
        only(&r),
        "brokers.volume.size",
        "unknown key `size`",
        Some("expected one of: iops, size_gib, throughput_mibps, type"),
        Some((12, 5)),
    );
    let r = refused(&with("colour: blue\n"));
    error(
        only(&r),
        "colour",
        "unknown key `colour`",
        Some(
            "expected one of: accept_zone_loss, ami, brokers, connect, controllers, kafka, metadata, \
             monitoring, name, network, region, tags, zones, zookeeper",
        ),
        Some((10, 1)),
    );
}

#[test]
fn unknown_key_inside_a_list_item_is_located() {
    let r = refused(&BASE.replace(
        "    cidr: 10.0.2.0/24",
        "    cidr: 10.0.2.0/24\n    subnt: subnet-1",
    ));
    error(
        only(&r),
        "zones[2].subnt",
        "unknown key `subnt`",
        Some("did you mean `subnet`?"),
        Some((10, 5)),
    );
}

#[test]
fn number_where_text_belongs_says_to_quote_it() {
    let r = refused(&with("kafka:\n  scala: 2.13\n"));
    error(
        only(&r),
        "kafka.scala",
        "invalid type: floating point `2.13`, expected a string",
        Some("quote the value, e.g. \"2.13\", so YAML keeps it as text"),
        Some((11, 3)),
    );
}

#[test]
fn quoted_number_where_a_number_belongs_says_to_unquote_it() {
    let r = refused(&with("brokers:\n  count: \"6\"\n"));
    error(
        only(&r),
        "brokers.count",
        "invalid type: string \"6\", expected a whole number",
        Some("write the number without quotes"),
        Some((11, 3)),
    );
}

#[test]
fn word_where_a_number_belongs_is_not_told_to_remove_quotes() {
    // Regression: `count: three` got "write the number without quotes".
    let r = refused(&with("zookeeper:\n  count: three\n"));
    error(
        only(&r),
        "zookeeper.count",
        "invalid type: string \"three\", expected a whole number",
        None,
        Some((11, 3)),
    );
}

#[test]
fn list_where_text_belongs_is_refused_once() {
    // Regression: a value of the wrong type was also reported as missing.
    let r = refused(&BASE.replace("region: eu-west-1", "region: [eu-west-1]"));
    error(
        only(&r),
        "region",
        "invalid type: sequence, expected a string",
        None,
        Some((2, 1)),
    );
}

#[test]
fn zone_of_the_wrong_type_hides_nothing_and_adds_nothing() {
    // Regression: a bad zone item also gave "zones: missing", "0 ZooKeeper nodes" and a
    // min.insync.replicas error about a key not in the file.
    let r = refused(&BASE.replace(
        "  - name: eu-west-1c\n    cidr: 10.0.2.0/24\n",
        "  - eu-west-1c\n",
    ));
    error(
        only(&r),
        "zones[2]",
        "invalid type: string \"eu-west-1c\", expected a mapping of settings",
        None,
        Some((8, 5)),
    );
}

#[test]
fn port_out_of_range_is_refused() {
    let r = refused(&with("network:\n  client_port: 70000\n"));
    error(
        only(&r),
        "network.client_port",
        "invalid value: integer `70000`, expected a whole number from 0 to 65535",
        None,
        Some((11, 3)),
    );
}

#[test]
fn integer_too_large_or_negative_for_a_count_says_the_range() {
    let r = refused(&with("brokers:\n  count: 4294967296\n"));
    error(
        only(&r),
        "brokers.count",
        "invalid value: integer `4294967296`, expected a whole number from 0 to 4294967295",
        None,
        Some((11, 3)),
    );
    let r = refused(&with("brokers:\n  volume:\n    size_gib: -1\n"));
    assert_eq!(
        only(&r).message,
        "invalid value: integer `-1`, expected a whole number from 0 to 4294967295"
    );
}

#[test]
fn one_type_error_per_section_others_still_reported() {
    let r = refused(&with(
        "zookeeper:\n  count: three\nbrokers:\n  count: [1]\ntags: [a]\n",
    ));
    assert_eq!(r.diagnostics.len(), 3, "{r}");
    assert_eq!(
        at(&r, "tags").message,
        "invalid type: sequence, expected a mapping"
    );
    assert_eq!(
        at(&r, "brokers.count").message,
        "invalid type: sequence, expected a whole number"
    );
}

#[test]
fn volume_type_other_than_gp3_is_refused() {
    let r = refused(&with("brokers:\n  volume:\n    type: io2\n"));
    let d = only(&r);
    assert_eq!(d.path.to_string(), "brokers.volume.type");
    assert_eq!(d.message, "unknown variant `io2`, expected `gp3`");
    assert_eq!(d.help, None);
}

#[test]
fn non_string_top_level_key_is_refused() {
    let r = refused(&with("1: x\n"));
    error(
        only(&r),
        "(top level)",
        "keys must be strings, found a number",
        None,
        None,
    );
}

// ---------------------------------------------------------------------------------------------
// Whole-file problems (parse.rs).

#[test]
fn empty_file_is_refused() {
    for text in ["", "\n", "# only a comment\n", "~\n"] {
        let r = refused(text);
        error(
            only(&r),
            "(top level)",
            "the file is empty",
            Some("start from one of the examples in topologies/, e.g. topologies/minimal.yaml"),
            None,
        );
    }
}

#[test]
fn non_utf8_file_is_refused_with_the_position_of_the_bad_byte() {
    let r = load("t.yaml", b"name: demo\nregion: caf\xe9\n").unwrap_err();
    error(
        only(&r),
        "(top level)",
        "the file is not UTF-8 text (byte 0xe9)",
        Some("save the topology as UTF-8"),
        Some((2, 12)),
    );
}

#[test]
fn utf16_file_is_refused_as_not_utf8() {
    let text: Vec<u8> = "name: demo\n"
        .encode_utf16()
        .flat_map(|u| u.to_le_bytes())
        .collect();
    let bytes = [vec![0xff, 0xfe], text].concat();
    let r = load("t.yaml", &bytes).unwrap_err();
    assert_eq!(only(&r).message, "the file is not UTF-8 text (byte 0xff)");
    assert_eq!(only(&r).location, Some(Location { line: 1, column: 1 }));
}

#[test]
fn invalid_yaml_syntax_is_refused_with_line_and_column() {
    let r = refused(
        "name: demo\nregion: eu-west-1\nzones: [\n  {name: eu-west-1a, cidr: 10.0.0.0/24},\n",
    );
    error(
        only(&r),
        "(top level)",
        "not valid YAML: did not find expected node content",
        Some("fix the YAML syntax at that position"),
        Some((5, 1)),
    );
    let r = refused("name: demo\nregion: 'eu-west-1\n");
    let d = only(&r);
    assert!(d.message.starts_with("not valid YAML: "), "{d:?}");
    assert_eq!(d.location.map(|l| l.line), Some(3), "{d:?}");
}

#[test]
fn tab_indentation_is_refused_with_its_position() {
    let r = refused("name: demo\n\tregion: eu-west-1\n");
    error(
        only(&r),
        "(top level)",
        "not valid YAML: found a tab character that violates indentation",
        Some("fix the YAML syntax at that position"),
        Some((2, 1)),
    );
}

#[test]
fn oversized_file_is_refused_before_parsing() {
    let mut bytes = b"# ".to_vec();
    bytes.resize(MAX_FILE_BYTES + 1, b'x');
    let r = refused_quickly(bytes);
    error(
        only(&r),
        "(top level)",
        "the file is over 1 MiB; a topology file is at most 1 MiB (1048576 bytes)",
        Some("is this the right file?"),
        None,
    );
    // Exactly at the limit is read (and here refused for other reasons).
    let mut bytes = b"# ".to_vec();
    bytes.resize(MAX_FILE_BYTES, b'x');
    assert_eq!(
        refused_quickly(bytes).diagnostics[0].message,
        "the file is empty"
    );
}

#[test]
fn oversized_file_is_not_reported_as_the_bytes_read() {
    // Regression: a 50 MB file was reported as "1048577 bytes", the number kcluster had read.
    let mut bytes = b"# ".to_vec();
    bytes.resize(MAX_FILE_BYTES + 1, b'x');
    let r = refused_quickly(bytes);
    assert!(!r.diagnostics[0].message.contains("1048577"), "{r}");
    assert!(r.diagnostics[0].message.contains("over 1 MiB"), "{r}");
}

#[test]
fn byte_order_mark_at_the_start_is_accepted() {
    // Regression: a file saved with a UTF-8 BOM was refused as "more than one YAML document".
    let l = accepted(&format!("\u{feff}{BASE}"));
    assert_eq!(l.cluster.name, "demo");
    // Positions are the editor's: the mark takes no column.
    let r = refused(&format!("\u{feff}{}", with("brokers:\n  count: many\n")));
    assert_eq!(
        only(&r).location,
        Some(Location {
            line: 11,
            column: 3
        }),
        "{r}"
    );
}

#[test]
fn top_level_that_is_not_a_mapping_is_refused() {
    for (text, found) in [
        ("- name: demo\n", "a list"),
        ("demo\n", "a string"),
        ("42\n", "a number"),
        ("true\n", "a boolean"),
    ] {
        let r = refused(text);
        error(
            only(&r),
            "(top level)",
            &format!("expected a mapping of settings, found {found}"),
            Some("a topology starts with keys such as `name:`, `region:` and `zones:`"),
            Some((1, 1)),
        );
    }
}

#[test]
fn several_yaml_documents_are_refused_pointing_at_the_second() {
    // Regression: serde_yaml's "more than one document is not supported" came with "fix the
    // YAML syntax at that position" and no position.
    let r = refused(&format!("{BASE}---\n{BASE}"));
    error(
        only(&r),
        "(top level)",
        "the file holds more than one YAML document",
        Some("keep one topology per file: remove this `---` and what follows, or split the file"),
        Some((10, 1)),
    );
}

#[test]
fn duplicate_key_is_refused_at_its_second_occurrence() {
    // Regression: serde_yaml points at the start of the mapping, not at the repeated key.
    let r = refused(&with("zookeeper:\n  count: 3\n  heap: 1g\n  count: 5\n"));
    error(
        only(&r),
        "zookeeper.count",
        "`count` is set twice",
        Some("YAML keys are unique within a mapping; keep one of them"),
        Some((13, 3)),
    );
    let r = refused(&with("name: other\n"));
    error(
        only(&r),
        "name",
        "`name` is set twice",
        Some("YAML keys are unique within a mapping; keep one of them"),
        Some((10, 1)),
    );
    let r = refused(&with(
        "brokers:\n  overrides:\n    num.partitions: 3\n    num.partitions: 4\n",
    ));
    assert_eq!(
        only(&r).path.to_string(),
        "brokers.overrides.num.partitions"
    );
    assert_eq!(
        only(&r).location,
        Some(Location {
            line: 13,
            column: 5
        })
    );
}

// ---------------------------------------------------------------------------------------------
// gp3 volumes.

#[test]
fn volume_size_outside_gp3_limits_is_refused() {
    for size in [0, 16385] {
        let r = refused(&with(&format!(
            "brokers:\n  volume:\n    size_gib: {size}\n"
        )));
        error(
            only(&r),
            "brokers.volume.size_gib",
            &format!("{size} GiB is outside gp3's 1-16384 GiB"),
            Some("pick a size from 1 to 16384"),
            Some((12, 5)),
        );
    }
}

#[test]
fn iops_outside_gp3_limits_is_refused() {
    for iops in [2999, 80001] {
        let r = refused(&with(&format!(
            "brokers:\n  volume:\n    size_gib: 1000\n    iops: {iops}\n"
        )));
        error(
            only(&r),
            "brokers.volume.iops",
            &format!("{iops} IOPS is outside gp3's 3000-80000"),
            Some("gp3 gives 3000 IOPS at no extra cost; provision up to 80000"),
            Some((13, 5)),
        );
    }
}

#[test]
fn iops_above_500_per_gib_is_refused() {
    let r = refused(&with(
        "zookeeper:\n  volume:\n    size_gib: 10\n    iops: 16000\n",
    ));
    error(
        only(&r),
        "zookeeper.volume.iops",
        "16000 IOPS on 10 GiB exceeds gp3's 500 IOPS per GiB",
        Some("lower iops to 5000 or grow the volume to 32 GiB"),
        Some((13, 5)),
    );
    // The 3000 IOPS baseline is allowed on any size.
    accepted(&with(
        "zookeeper:\n  volume:\n    size_gib: 1\n    iops: 3000\n",
    ));
}

#[test]
fn throughput_outside_gp3_limits_is_refused() {
    for mibps in [124, 2001] {
        let r = refused(&with(&format!(
            "brokers:\n  volume:\n    size_gib: 1000\n    iops: 80000\n    throughput_mibps: {mibps}\n"
        )));
        error(
            only(&r),
            "brokers.volume.throughput_mibps",
            &format!("{mibps} MiB/s is outside gp3's 125-2000"),
            Some("pick a throughput from 125 to 2000"),
            Some((14, 5)),
        );
    }
}

#[test]
fn throughput_above_a_quarter_of_iops_is_refused() {
    let r = refused(&with(
        "brokers:\n  volume:\n    iops: 3000\n    throughput_mibps: 1000\n",
    ));
    error(
        only(&r),
        "brokers.volume.throughput_mibps",
        "1000 MiB/s needs at least 4000 IOPS (gp3 allows 0.25 MiB/s per IOPS)",
        Some("raise iops to 4000 or lower throughput_mibps to 750"),
        Some((13, 5)),
    );
    accepted(&with(
        "brokers:\n  volume:\n    iops: 4000\n    throughput_mibps: 1000\n",
    ));
}

// ---------------------------------------------------------------------------------------------
// The Kafka distribution.

#[test]
fn non_default_version_without_sha512_is_refused() {
    let r = refused(&with("kafka:\n  version: 3.9.3\n"));
    error(
        only(&r),
        "kafka.sha512",
        "missing: kcluster knows the published checksums of Apache's Scala 2.13 tarballs of Kafka 3.9.0-3.9.2 and 4.3.1 only, so this one's must be given",
        Some("add `sha512:` with the value from the `.sha512` file published beside the tarball"),
        Some((10, 1)),
    );
    for (key, value) in [
        ("scala", "\"2.12\""),
        ("url", "https://mirror.example/kafka_2.13-3.9.1.tgz"),
    ] {
        let r = refused(&with(&format!("kafka:\n  {key}: {value}\n")));
        assert_eq!(only(&r).path.to_string(), "kafka.sha512");
    }
    let sha = "ab".repeat(64);
    accepted(&with(&format!(
        "kafka:\n  version: 3.9.3\n  sha512: {sha}\n"
    )));
}

#[test]
fn every_published_3_9_release_needs_no_sha512() {
    for (version, prefix) in [
        ("3.9.0", "5324c1f4"),
        ("3.9.1", "1ea204ba"),
        ("3.9.2", "01186a50"),
    ] {
        let l = accepted(&with(&format!("kafka:\n  version: {version}\n")));
        assert!(l.cluster.kafka.sha512.starts_with(prefix), "{version}");
        assert_eq!(
            l.cluster.kafka.url,
            format!("https://archive.apache.org/dist/kafka/{version}/kafka_2.13-{version}.tgz")
        );
    }
    assert_eq!(accepted(BASE).cluster.kafka.version, "3.9.2");
}

#[test]
fn sha512_that_is_not_128_hex_digits_is_refused() {
    let r = refused(&with("kafka:\n  version: 3.9.0\n  sha512: abc123\n"));
    error(
        only(&r),
        "kafka.sha512",
        "not a SHA-512 (128 hex digits)",
        Some("copy it from the `.sha512` file published beside the tarball"),
        Some((12, 3)),
    );
}

#[test]
fn kafka_4_in_zookeeper_mode_is_refused_because_it_has_no_zookeeper() {
    let sha = "ab".repeat(64);
    let r = refused(&with(&format!(
        "metadata: zookeeper\nkafka:\n  version: 4.0.0\n  sha512: {sha}\n"
    )));
    error(
        only(&r),
        "metadata",
        "Kafka 4.0.0 has no ZooKeeper mode: Kafka 4.0 removed ZooKeeper",
        Some(
            "use `metadata: kraft` with a `controllers` section, or Kafka 3.9 (e.g. `3.9.2`) for ZooKeeper mode",
        ),
        Some((10, 1)),
    );
}

#[test]
fn kafka_version_outside_the_39_line_is_refused() {
    let sha = "ab".repeat(64);
    for version in ["3.8.1", "3.9", "3.9.x"] {
        let r = refused(&with(&format!(
            "kafka:\n  version: \"{version}\"\n  sha512: {sha}\n"
        )));
        error(
            only(&r),
            "kafka.version",
            &format!("unsupported Kafka version `{version}`"),
            Some(
                "ZooKeeper mode runs on the Kafka 3.9 line, the last with ZooKeeper, e.g. `3.9.2`; \
                 Kafka 4.x needs `metadata: kraft`",
            ),
            Some((11, 3)),
        );
    }
}

#[test]
fn unsupported_scala_and_plain_http_url_are_refused() {
    let sha = "ab".repeat(64);
    let r = refused(&with(&format!(
        "kafka:\n  scala: \"3\"\n  url: http://mirror.example/k.tgz\n  sha512: {sha}\n"
    )));
    assert_eq!(r.diagnostics.len(), 2, "{r}");
    error(
        at(&r, "kafka.scala"),
        "kafka.scala",
        "Kafka 3.9 is not built for Scala `3`",
        Some("use `2.13` (or `2.12`)"),
        Some((11, 3)),
    );
    error(
        at(&r, "kafka.url"),
        "kafka.url",
        "`http://mirror.example/k.tgz` is not an https URL",
        Some("serve the tarball over https"),
        Some((12, 3)),
    );
}

// ---------------------------------------------------------------------------------------------
// Name, region, AMI, instance types, heaps.

#[test]
fn missing_name_region_and_zones_are_each_refused() {
    let r = refused("kafka: {}\n");
    assert_eq!(r.diagnostics.len(), 3, "{r}");
    error(
        at(&r, "name"),
        "name",
        "missing",
        Some("add `name: my-cluster` (lowercase letters, digits, dashes)"),
        None,
    );
    error(
        at(&r, "region"),
        "region",
        "missing",
        Some("add the AWS region, e.g. `region: eu-west-1`"),
        None,
    );
    error(
        at(&r, "zones"),
        "zones",
        "missing",
        Some(
            "list the availability zones (at least 3 for a cluster that survives losing one), each with `name` and `cidr`",
        ),
        None,
    );
}

#[test]
fn invalid_cluster_name_is_refused() {
    for name in ["Demo", "1demo", "demo-", "de_mo", &"a".repeat(33)] {
        let r = refused(&BASE.replace("name: demo", &format!("name: \"{name}\"")));
        error(
            only(&r),
            "name",
            &format!("`{name}` is not a valid cluster name"),
            Some(
                "use 1-32 lowercase letters, digits and dashes, starting with a letter and not ending with a dash",
            ),
            Some((1, 1)),
        );
    }
}

#[test]
fn invalid_region_is_refused() {
    let r = refused(&BASE.replace("region: eu-west-1", "region: europe"));
    let d = at(&r, "region");
    error(
        d,
        "region",
        "`europe` is not an AWS region name",
        Some("write it like `eu-west-1` or `us-east-2`"),
        Some((2, 1)),
    );
}

#[test]
fn ami_rules_are_enforced() {
    let cases = [
        (
            "ami:\n  id: img-123\n",
            "ami.id",
            "`img-123` is not an AMI id",
            "AMI ids look like `ami-0abc1234`",
        ),
        (
            "ami:\n  ssm_parameter: aws/service/x\n",
            "ami.ssm_parameter",
            "`aws/service/x` is not an SSM parameter name",
            "parameter names start with `/`",
        ),
        (
            "ami:\n  id: ami-1\n  ssm_parameter: /x\n",
            "ami",
            "both `id` and `ssm_parameter` are set",
            "keep one of them",
        ),
        (
            "ami: {}\n",
            "ami",
            "neither `id` nor `ssm_parameter` is set",
            "set one, or remove `ami` for Amazon Linux 2023",
        ),
    ];
    for (extra, path, message, help) in cases {
        let r = refused(&with(extra));
        error(only(&r), path, message, Some(help), None);
    }
}

#[test]
fn invalid_instance_type_and_heap_are_refused() {
    let r = refused(&with(
        "zookeeper:\n  instance_type: large\nbrokers:\n  heap: 4 GB\n",
    ));
    assert_eq!(r.diagnostics.len(), 2, "{r}");
    error(
        at(&r, "zookeeper.instance_type"),
        "zookeeper.instance_type",
        "`large` is not an EC2 instance type",
        Some("write it like `m5.large`"),
        Some((11, 3)),
    );
    error(
        at(&r, "brokers.heap"),
        "brokers.heap",
        "`4 GB` is not a JVM heap size",
        Some("write it like `1g` or `512m`"),
        Some((13, 3)),
    );
}

// ---------------------------------------------------------------------------------------------
// SSH and tags.

#[test]
fn ssh_open_to_the_internet_is_refused() {
    let r = refused(&with(
        "network:\n  ssh:\n    key_name: ops\n    cidrs: [10.1.0.0/24, 0.0.0.0/0]\n",
    ));
    error(
        only(&r),
        "network.ssh.cidrs",
        "SSH open to the whole internet (0.0.0.0/0) is refused",
        Some("name your bastion's or VPN's CIDR, or use SSM Session Manager and drop `ssh`"),
        Some((13, 5)),
    );
    let l = accepted(&with("network:\n  ssh:\n    cidrs: [10.1.0.0/24]\n"));
    assert_eq!(
        l.cluster.network.ssh.unwrap().cidrs[0].to_string(),
        "10.1.0.0/24"
    );
}

#[test]
fn reserved_tags_are_refused() {
    let r = refused(&with(
        "tags:\n  Name: x\n  kcluster:cluster: y\n  aws:createdBy: z\n  team: data\n",
    ));
    assert_eq!(r.diagnostics.len(), 3, "{r}");
    for (key, line) in [
        ("Name", 11),
        ("kcluster:cluster", 12),
        ("aws:createdBy", 13),
    ] {
        error(
            at(&r, &format!("tags.{key}")),
            &format!("tags.{key}"),
            &format!("tag `{key}` is reserved"),
            Some("kcluster sets `Name` and `kcluster:*` itself; AWS owns `aws:*`"),
            Some((line, 3)),
        );
    }
}

#[test]
fn aws_tag_prefix_in_any_letter_case_is_refused() {
    // Regression: `AWS:` and `Aws:` passed; AWS reserves the prefix whatever its case.
    let r = refused(&with(
        "tags:\n  AWS:team: x\n  Aws:cost: y\n  aWs:z: w\n  awsome: ok\n",
    ));
    assert_eq!(r.diagnostics.len(), 3, "{r}");
    for key in ["AWS:team", "Aws:cost", "aWs:z"] {
        assert_eq!(
            at(&r, &format!("tags.{key}")).message,
            format!("tag `{key}` is reserved")
        );
    }
}

#[test]
fn tags_too_long_or_too_many_are_refused() {
    let long = "v".repeat(257);
    let r = refused(&with(&format!("tags:\n  team: {long}\n")));
    error(
        only(&r),
        "tags.team",
        "tag keys are 1-128 characters and values at most 256",
        Some("shorten it"),
        Some((11, 3)),
    );
    let many: String = (0..41).map(|i| format!("  t{i:02}: x\n")).collect();
    let r = refused(&with(&format!("tags:\n{many}")));
    error(
        only(&r),
        "tags",
        "41 tags; EC2 allows 50 per resource and kcluster uses up to 10",
        Some("keep at most 40"),
        Some((10, 1)),
    );
}

// ---------------------------------------------------------------------------------------------
// Every problem at once.

#[test]
fn all_problems_of_a_file_are_reported_at_once_top_to_bottom() {
    let yaml = "\
name: Demo_Cluster
region: europe
zones:
  - name: eu-west-1a
    cidr: 10.0.0.0/24
zookeeper:
  count: 2
  heap: lots
brokers:
  count: 2
  instance_type: large
  volume:
    iops: 90000
  overrides:
    broker.rack: x
    num.partitions: 0
    default.replication.factor: 3
kafka:
  version: 3.8.1
network:
  vpc: my-vpc
  ssh:
    cidrs: [0.0.0.0/0]
tags:
  Name: x
colour: blue
";
    let r = refused(yaml);
    let summary: Vec<String> = r
        .diagnostics
        .iter()
        .map(|d| {
            let l = d.location.expect("every problem has a position");
            format!("{}:{} {}", l.line, l.column, d.path)
        })
        .collect();
    assert_eq!(
        summary,
        [
            "1:1 name",
            "2:1 region",
            "3:1 zones",
            "4:5 zones[0].subnet",
            "7:3 zookeeper.count",
            "8:3 zookeeper.heap",
            "11:3 brokers.instance_type",
            "13:5 brokers.volume.iops",
            "15:5 brokers.overrides.broker.rack",
            "16:5 brokers.overrides.num.partitions",
            "17:5 brokers.overrides.default.replication.factor",
            "18:1 kafka.sha512",
            "19:3 kafka.version",
            "21:3 network.vpc",
            "23:5 network.ssh.cidrs",
            "25:3 tags.Name",
            "26:1 colour",
        ]
    );
    assert!(r.errors().count() == 17 && r.warnings().count() == 0);
    assert!(
        r.to_string().ends_with("t.yaml: 17 errors, 0 warnings"),
        "{r}"
    );
}

#[test]
fn bad_pin_is_not_also_counted_as_a_missing_node() {
    // Regression: a node dropped for a bad address made the ensemble "2 ZooKeeper nodes".
    let r = refused(&with(
        "zookeeper:\n  nodes:\n    - id: 1\n      address: 10.9.9.9\n    - id: 2\n    - id: 3\nbrokers:\n  nodes:\n    - id: 1\n      zone: nowhere\n    - id: 2\n    - id: 3\n",
    ));
    let paths: Vec<String> = r.diagnostics.iter().map(|d| d.path.to_string()).collect();
    assert_eq!(
        paths,
        ["zookeeper.nodes[0].address", "brokers.nodes[0].zone"]
    );
}

#[test]
fn zone_errors_do_not_invent_a_replication_warning() {
    // Regression: the replication-factor-over-zones warning counted only the zones without errors.
    let r = refused(&BASE.replace("10.0.2.0/24", "10.0.2.0/33"));
    assert_eq!(r.warnings().count(), 0, "{r}");
}

// ---------------------------------------------------------------------------------------------
// Robustness: hostile input is refused quickly, without a panic.

#[test]
fn alias_bomb_is_refused_quickly() {
    // "Billion laughs": nine levels of nine aliases each.
    let mut yaml = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        let refs = vec![format!("*a{}", i - 1); 9].join(", ");
        yaml.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    yaml.push_str("name: *a9\n");
    let r = refused_quickly(yaml.into_bytes());
    error(
        only(&r),
        "(top level)",
        "YAML aliases expand to too much data",
        Some("write the values out instead of repeating aliases (`*name`)"),
        None,
    );
}

#[test]
fn deeply_nested_flow_sequences_are_refused_quickly() {
    let r = refused_quickly("[".repeat(100_000).into_bytes());
    error(
        only(&r),
        "(top level)",
        "the YAML is nested too deeply",
        Some("a topology nests a few levels; is this the right file?"),
        Some((1, 129)),
    );
}

#[test]
fn deeply_nested_block_mappings_are_refused_quickly() {
    let yaml: String = (0..1000)
        .map(|i| format!("{}a:\n", " ".repeat(i)))
        .collect();
    let r = refused_quickly(yaml.into_bytes());
    assert_eq!(only(&r).message, "the YAML is nested too deeply");
}

#[test]
fn deeply_nested_flow_mappings_inside_a_section_are_refused_quickly() {
    let yaml = with(&format!("tags: {}\n", "{a: ".repeat(50_000)));
    let r = refused_quickly(yaml.into_bytes());
    assert_eq!(r.diagnostics.len(), 1, "{r}");
}

#[test]
fn huge_numbers_are_refused_quickly() {
    let r =
        refused_quickly(with("brokers:\n  count: 99999999999999999999999999999\n").into_bytes());
    error(
        only(&r),
        "(top level)",
        "the number 99999999999999999999999999999 is too large",
        Some("numbers in a topology are counts, sizes and ports"),
        Some((11, 10)),
    );
    let digits = "9".repeat(100_000);
    let r = refused_quickly(with(&format!("zookeeper:\n  count: {digits}\n")).into_bytes());
    assert_eq!(r.diagnostics.len(), 1, "{r}");
    let r = refused_quickly(
        with("brokers:\n  count: 1e400\n  volume:\n    size_gib: .inf\n").into_bytes(),
    );
    assert_eq!(r.diagnostics.len(), 1, "{r}");
    let r =
        refused_quickly(with("brokers:\n  overrides:\n    num.partitions: 1e400\n").into_bytes());
    assert_eq!(
        only(&r).path.to_string(),
        "brokers.overrides.num.partitions"
    );
}

#[test]
fn tabs_anywhere_are_refused_or_read_without_panic() {
    for text in [
        "\tname: demo\n",
        "name:\tdemo\n",
        "zones:\n\t- name: a\n",
        "name: demo\t\n",
        "\t\t\t",
    ] {
        let bytes = text.as_bytes().to_vec();
        let result = within(10, move || load("t.yaml", &bytes).map(|_| ()));
        assert!(result.is_err(), "{text:?} is not a valid topology");
    }
}

#[test]
fn multi_document_files_are_refused_quickly() {
    for text in [
        "name: a\n---\nname: b\n",
        "---\n---\n",
        "--- a\n--- b\n--- c\n",
    ] {
        let r = refused_quickly(text.as_bytes().to_vec());
        assert_eq!(
            only(&r).message,
            "the file holds more than one YAML document",
            "{text:?}"
        );
    }
}

/// A small deterministic generator (xorshift64*), so the fuzz tests below are reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_bytes_never_panic_or_hang() {
    within(60, || {
        let mut rng = Rng(0x5eed);
        for _ in 0..300 {
            let len = rng.below(2048);
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let _ = load("t.yaml", &bytes);
        }
    });
}

#[test]
fn random_yaml_like_text_never_panics_or_hangs() {
    // Tokens of YAML and of topologies, shuffled: reaches the parser, the locator and the rules.
    const TOKENS: &[&str] = &[
        "name: ",
        "region: ",
        "zones:",
        "zookeeper:",
        "brokers:",
        "overrides:",
        "nodes:",
        "count: ",
        "id: ",
        "zone: ",
        "address: ",
        "cidr: ",
        "- ",
        "\n",
        "\n  ",
        "\n    ",
        "[",
        "]",
        "{",
        "}",
        ", ",
        ": ",
        "&a ",
        "*a",
        "!!str ",
        "? ",
        "---\n",
        "...\n",
        "\"",
        "'",
        "#",
        "|\n",
        ">\n",
        "\t",
        "~",
        "0",
        "3",
        "-1",
        "1e9",
        "10.0.0.0/24",
        "eu-west-1a",
        "demo",
        "é",
        "\u{feff}",
        "num.partitions: ",
        "<<: ",
    ];
    within(60, || {
        let mut rng = Rng(0xfeed_beef);
        for _ in 0..2000 {
            let n = rng.below(60);
            let text: String = (0..n).map(|_| TOKENS[rng.below(TOKENS.len())]).collect();
            let _ = load("t.yaml", text.as_bytes());
        }
    });
}

#[test]
fn mutations_of_a_valid_file_never_panic() {
    within(60, || {
        let mut rng = Rng(42);
        let base = BASE.as_bytes();
        for _ in 0..1000 {
            let mut bytes = base.to_vec();
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(bytes.len());
                match rng.below(3) {
                    0 => bytes[i] = rng.next() as u8,
                    1 => {
                        bytes.remove(i);
                    }
                    _ => {
                        let chars = b" :-[{\n\t#&*'\"";
                        bytes.insert(i, chars[rng.below(chars.len())]);
                    }
                }
            }
            let _ = load("t.yaml", &bytes);
        }
    });
}

#[test]
fn authorizer_settings_are_accepted_though_not_in_the_broker_table() {
    let yaml = format!(
        "{}brokers:\n  overrides:\n    authorizer.class.name: kafka.security.authorizer.AclAuthorizer\n    super.users: User:admin\n    allow.everyone.if.no.acl.found: false\n",
        "name: acl\nregion: eu-west-1\nzones:\n  - {name: eu-west-1a, cidr: 10.0.1.0/24}\n  - {name: eu-west-1b, cidr: 10.0.2.0/24}\n  - {name: eu-west-1c, cidr: 10.0.3.0/24}\n"
    );
    let loaded = crate::topology::load("acl.yaml", yaml.as_bytes()).expect("valid");
    assert_eq!(loaded.cluster.broker_settings["super.users"], "User:admin");
    assert_eq!(
        loaded.cluster.broker_settings["allow.everyone.if.no.acl.found"],
        "false"
    );
}

#[test]
fn schema_names_every_top_level_key_and_refuses_unknown_ones() {
    let schema = crate::topology::json_schema();
    let props = schema["properties"].as_object().expect("properties");
    let mut keys: Vec<&str> = props.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "accept_zone_loss",
            "ami",
            "brokers",
            "connect",
            "controllers",
            "kafka",
            "metadata",
            "monitoring",
            "name",
            "network",
            "region",
            "tags",
            "zones",
            "zookeeper"
        ]
    );
    assert_eq!(schema["additionalProperties"], serde_json::json!(false));
    assert!(
        props["name"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("Cluster name")),
        "fields carry their documentation"
    );
}

// ---------------------------------------------------------------------------------------------
// KRaft mode: the metadata mode, the controllers, node ids and mode-specific settings.

mod kraft {
    use super::*;
    use crate::cluster::{Metadata, Role};

    fn kraft(extra: &str) -> String {
        with(&format!("metadata: kraft\n{extra}"))
    }

    #[test]
    fn kraft_defaults_to_kafka_4_3_1_and_three_controllers_spread_round_robin() {
        let c = accepted(&kraft("")).cluster;
        assert_eq!(c.metadata, Metadata::Kraft);
        assert_eq!(c.kafka.version, "4.3.1");
        assert_eq!(
            c.kafka.sha512,
            crate::topology::defaults::known_sha512("4.3.1").expect("pinned")
        );
        assert_eq!(c.zookeepers().count(), 0, "no ZooKeeper in KRaft mode");
        let controllers: Vec<(String, String, String, u32)> = c
            .controllers()
            .map(|n| {
                (
                    n.name.clone(),
                    n.zone.clone(),
                    n.address.to_string(),
                    n.node_id(),
                )
            })
            .collect();
        assert_eq!(
            controllers,
            [
                (
                    "controller-1".into(),
                    "eu-west-1a".into(),
                    "10.0.0.21".into(),
                    9001
                ),
                (
                    "controller-2".into(),
                    "eu-west-1b".into(),
                    "10.0.1.22".into(),
                    9002
                ),
                (
                    "controller-3".into(),
                    "eu-west-1c".into(),
                    "10.0.2.23".into(),
                    9003
                ),
            ]
        );
        assert_eq!(
            c.quorum_voters(),
            "9001@10.0.0.21:9094,9002@10.0.1.22:9094,9003@10.0.2.23:9094"
        );
        assert_eq!(c.roles[&Role::Controller].instance_type, "m5.large");
        // Launch order: controllers before brokers.
        assert_eq!(c.nodes.first().map(|n| n.role), Some(Role::Controller));
    }

    #[test]
    fn kafka_4_without_metadata_is_kraft_and_3_9_stays_zookeeper() {
        let c = accepted(&with("kafka:\n  version: 4.3.1\n")).cluster;
        assert_eq!(c.metadata, Metadata::Kraft);
        assert_eq!(c.controllers().count(), 3);
        let c = accepted(BASE).cluster;
        assert_eq!(c.metadata, Metadata::Zookeeper);
        assert_eq!(c.kafka.version, "3.9.2");
        assert_eq!(c.controllers().count(), 0);
    }

    #[test]
    fn kraft_is_allowed_on_kafka_3_9() {
        let c = accepted(&kraft("kafka:\n  version: 3.9.2\n")).cluster;
        assert_eq!(
            (c.metadata, c.kafka.version.as_str()),
            (Metadata::Kraft, "3.9.2")
        );
    }

    #[test]
    fn zookeeper_section_in_kraft_mode_is_refused_saying_why() {
        let r = refused(&kraft("zookeeper:\n  count: 3\n"));
        error(
            only(&r),
            "zookeeper",
            "`zookeeper` is not used in KRaft mode (`metadata: kraft`): KRaft controllers hold the metadata, not ZooKeeper",
            Some("remove `zookeeper` and describe the controllers under `controllers`"),
            Some((11, 1)),
        );
    }

    #[test]
    fn controllers_section_in_zookeeper_mode_is_refused_saying_why() {
        let r = refused(&with("controllers:\n  count: 3\n"));
        error(
            only(&r),
            "controllers",
            "`controllers` is not used in ZooKeeper mode (`metadata: zookeeper`): the ZooKeeper ensemble holds the metadata; controllers exist only in KRaft mode",
            Some(
                "remove `controllers`, or set `metadata: kraft` (and remove `zookeeper`) to run KRaft controllers",
            ),
            Some((10, 1)),
        );
    }

    #[test]
    fn controller_quorum_follows_zookeepers_rules_and_messages() {
        let r = refused(&kraft("controllers:\n  count: 2\n"));
        error(
            only(&r),
            "controllers.count",
            "2 controller nodes: a quorum needs at least 3 to survive losing one",
            Some("use 3 (or 5 for surviving two failures)"),
            Some((12, 3)),
        );
        let r = refused(&kraft("controllers:\n  count: 4\n"));
        error(
            only(&r),
            "controllers.count",
            "4 controller nodes: an even quorum adds no fault tolerance (4 nodes survive 1 failure, as 3 do)",
            Some("use 3 or 5"),
            Some((12, 3)),
        );
        let r = refused(&kraft(
            "controllers:\n  nodes:\n    - {id: 1, zone: eu-west-1a}\n    - {id: 2, zone: eu-west-1a}\n    - {id: 3}\n",
        ));
        assert!(
            r.diagnostics.iter().any(|d| d.path.to_string() == "controllers.nodes"
                && d.message
                    == "zone eu-west-1a holds 2 of 3 controller nodes, a majority: losing that zone loses the quorum"),
            "{r}"
        );
    }

    #[test]
    fn controller_ids_stay_within_their_node_id_range() {
        let r = refused(&kraft("controllers:\n  nodes:\n    - {id: 1000}\n"));
        assert!(
            r.diagnostics
                .iter()
                .any(|d| d.path.to_string() == "controllers.nodes[0].id"
                    && d.message == "id 1000 is out of range"
                    && d.help.as_deref() == Some("ids run 1 to 999 (node.id 9001 to 9999)")),
            "{r}"
        );
    }

    #[test]
    fn broker_id_in_the_controllers_node_id_range_is_refused() {
        let r = refused(&kraft(
            "brokers:\n  nodes:\n    - {id: 1}\n    - {id: 2}\n    - {id: 9001, address: 10.0.0.200}\n",
        ));
        error(
            only(&r),
            "brokers.nodes",
            "broker-9001 has id 9001, in the controllers' node.id range (9001-9999) of KRaft mode",
            Some("broker ids run 1 to 9000 in KRaft mode; renumber the broker"),
            None,
        );
        // The same ids are fine in ZooKeeper mode, where controllers do not exist.
        accepted(&with(
            "brokers:\n  nodes:\n    - {id: 1}\n    - {id: 2}\n    - {id: 9001, address: 10.0.0.200}\n",
        ));
    }

    #[test]
    fn zookeeper_settings_are_refused_in_kraft_mode() {
        for key in [
            "zookeeper.session.timeout.ms",
            "zookeeper.set.acl",
            "reserved.broker.max.id",
            "broker.id.generation.enable",
        ] {
            let r = refused(&kraft(&format!("brokers:\n  overrides:\n    {key}: 1\n")));
            error(
                only(&r),
                &format!("brokers.overrides.{key}"),
                &format!("`{key}` is a ZooKeeper-mode setting; this cluster is in KRaft mode"),
                Some("remove it: KRaft controllers hold the metadata"),
                Some((13, 5)),
            );
        }
    }

    #[test]
    fn kraft_identity_keys_are_kcluster_s_and_combined_nodes_are_refused() {
        for key in [
            "node.id",
            "controller.quorum.voters",
            "controller.listener.names",
        ] {
            let r = refused(&kraft(&format!("brokers:\n  overrides:\n    {key}: x\n")));
            error(
                only(&r),
                &format!("brokers.overrides.{key}"),
                &format!("`{key}` is set by kcluster for each node"),
                Some("remove it; kcluster derives it from the topology"),
                Some((13, 5)),
            );
        }
        let r = refused(&kraft(
            "brokers:\n  overrides:\n    process.roles: [broker, controller]\n",
        ));
        error(
            only(&r),
            "brokers.overrides.process.roles",
            "`process.roles` is set by kcluster for each node",
            Some(
                "remove it; kcluster runs controllers and brokers on their own instances \
                 (combined nodes are for development only, as Kafka's documentation says)",
            ),
            Some((13, 5)),
        );
    }

    #[test]
    fn kraft_tunables_are_checked_against_kafka_4s_table() {
        let c = accepted(&kraft(
            "brokers:\n  overrides:\n    controller.quorum.election.timeout.ms: 2000\n",
        ))
        .cluster;
        assert_eq!(
            c.broker_settings["controller.quorum.election.timeout.ms"],
            "2000"
        );
        let r = refused(&kraft("brokers:\n  overrides:\n    num.partition: 3\n"));
        assert!(only(&r).message.contains("not a Kafka 4"), "{r}");
    }

    #[test]
    fn two_zones_in_kraft_mode_name_the_controller_majority() {
        let yaml = "name: demo\nregion: eu-west-1\nmetadata: kraft\nzones:\n  - {name: eu-west-1a, cidr: 10.0.0.0/24}\n  - {name: eu-west-1b, cidr: 10.0.1.0/24}\n";
        let r = refused(yaml);
        let d = at(&r, "zones");
        assert_eq!(
            d.message,
            "only 2 availability zones: whichever zone holds the controller majority takes the quorum down with it"
        );
        assert!(
            d.help
                .as_deref()
                .is_some_and(|h| h.contains("a third needs only a controller")),
            "{d:?}"
        );
    }

    #[test]
    fn security_group_opens_the_controller_port_within_the_group_and_no_zookeeper_port() {
        let within = |c: &crate::cluster::Cluster| -> Vec<i32> {
            crate::provision::desired::group_rules(c)
                .iter()
                .filter(|r| r.source == crate::ec2::Source::Group)
                .filter_map(|r| r.ports.map(|(from, _)| from))
                .collect()
        };
        let k = within(&accepted(&kraft("")).cluster);
        assert!(k.contains(&9094) && k.contains(&9093), "{k:?}");
        assert!(!k.iter().any(|p| [2181, 2888, 3888].contains(p)), "{k:?}");
        let z = within(&accepted(BASE).cluster);
        assert!(!z.contains(&9094) && z.contains(&2181), "{z:?}");
    }

    #[test]
    fn cluster_id_is_derived_from_name_and_region() {
        let a = accepted(&kraft("")).cluster;
        let b = accepted(&kraft("")).cluster;
        assert_eq!(a.kraft_cluster_id(), b.kraft_cluster_id());
        let other = accepted(&kraft("").replace("name: demo", "name: demo2")).cluster;
        assert_ne!(a.kraft_cluster_id(), other.kraft_cluster_id());
    }
}

#[test]
fn az_ids_become_racks_and_must_be_ids_of_the_region_each_once() {
    let yaml = BASE.replace("10.0.0.0/24", "10.0.0.0/24\n    id: euw1-az3");
    let yaml = yaml.replace("10.0.1.0/24", "10.0.1.0/24\n    id: euw1-az1");
    let l = accepted(&yaml);
    assert_eq!(l.cluster.rack_of("eu-west-1a"), "euw1-az3");
    assert_eq!(
        l.cluster.rack_of("eu-west-1c"),
        "eu-west-1c",
        "no id: the name"
    );

    let r = refused(&BASE.replace("10.0.0.0/24", "10.0.0.0/24\n    id: use1-az1"));
    error(
        only(&r),
        "zones[0].id",
        "`use1-az1` is not an AZ ID of region eu-west-1",
        Some(
            "AZ IDs of eu-west-1 look like `euw1-az1`; `aws ec2 describe-availability-zones --region eu-west-1` lists which name is which ID in your account",
        ),
        None,
    );
    let twice = yaml.replace("id: euw1-az1", "id: euw1-az3");
    let r = refused(&twice);
    error(
        only(&r),
        "zones[1].id",
        "AZ ID `euw1-az3` is also zone eu-west-1a's",
        Some("each zone is one AZ: `aws ec2 describe-availability-zones` lists their IDs"),
        None,
    );
}

#[test]
fn az_id_prefixes_follow_aws_naming() {
    use crate::topology::az_id_prefix;
    for (region, prefix) in [
        ("eu-west-1", "euw1"),
        ("us-east-1", "use1"),
        ("ap-southeast-2", "apse2"),
        ("ap-northeast-1", "apne1"),
        ("ca-central-1", "cac1"),
        ("us-gov-west-1", "usgw1"),
    ] {
        assert_eq!(az_id_prefix(region).as_deref(), Some(prefix), "{region}");
    }
    assert_eq!(az_id_prefix("nowhere"), None);
}
