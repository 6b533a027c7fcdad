//! kcluster against a local moto EC2 (one moto_server per test): apply, re-apply, scaling,
//! replacement, destroy, interrupted and failed applies, the live rack check, and missing
//! credentials. Every outcome is counted from EC2 through the AWS SDK, not taken from kcluster.

#[path = "mock/mod.rs"]
mod mock;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use aws_sdk_ec2::types::{HttpTokensState, Instance, VolumeType};
use serde_json::json;

use mock::{Account, Gate, Kc, Launch, MockEc2, Run, Strictness, Topology, tag};

mod egress;
mod network;
mod safety;

/// A moto_server, the SDK's view of its eu-west-1, and a directory for topology files.
struct Fixture {
    mock: MockEc2,
    ec2: Account,
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with(Strictness::default())
    }

    /// A fixture whose strict EC2 is `strictness`, its default VPC routed to an internet
    /// gateway as a real one is.
    fn with(strictness: Strictness) -> Fixture {
        let mock = MockEc2::strict(strictness);
        let ec2 = Account::connect(&mock.endpoint(), "eu-west-1");
        ec2.internet_gateway(&ec2.default_vpc());
        Fixture {
            mock,
            ec2,
            dir: tempfile::tempdir().expect("temporary directory"),
        }
    }

    fn file(&self, t: &Topology) -> String {
        t.write(self.dir.path()).display().to_string()
    }

    /// kcluster with these arguments, pointed at this fixture's moto.
    fn kc<const N: usize>(&self, args: [&str; N]) -> Kc {
        Kc::new(&self.mock.endpoint()).args(args)
    }

    /// `apply --yes --api-calls` of `t`, which must succeed.
    fn apply(&self, t: &Topology) -> Run {
        self.kc(["apply", "--yes", "--api-calls", "-f", &self.file(t)])
            .run()
            .ok()
    }

    /// `apply --skip-health-gates` of `t`, which must succeed: a roll on moto, where no Kafka
    /// runs behind the instances (a cluster "already down" as far as the gates can tell).
    fn apply_down(&self, t: &Topology) -> Run {
        self.kc([
            "apply",
            "--yes",
            "--api-calls",
            "--skip-health-gates",
            "-f",
            &self.file(t),
        ])
        .run()
        .ok()
    }

    /// `apply` of `t` with `flags`, which must fail: what it said on stderr.
    fn apply_refused(&self, t: &Topology, flags: &[&str]) -> String {
        let file = self.file(t);
        let mut args = vec!["apply", "--yes"];
        args.extend(flags);
        args.extend(["-f", file.as_str()]);
        Kc::new(&self.mock.endpoint())
            .args(&args)
            .run()
            .expect_code(1)
            .stderr
    }

    /// `apply --skip-health-gates --accept-data-loss` of `t`, which must succeed: a scale-in on
    /// moto, where no Kafka runs behind the brokers to drain them.
    fn apply_lossy(&self, t: &Topology) -> Run {
        self.kc([
            "apply",
            "--yes",
            "--api-calls",
            "--skip-health-gates",
            "--accept-data-loss",
            "-f",
            &self.file(t),
        ])
        .run()
        .ok()
    }

    /// The cluster's data volumes by node: (id, zone, instance attached to).
    fn volumes(&self, cluster: &str) -> BTreeMap<String, (String, String, Option<String>)> {
        let mut out = BTreeMap::new();
        for v in self.ec2.data_volumes(cluster) {
            let node = tag(v.tags(), "kcluster:node")
                .unwrap_or("(none)")
                .to_string();
            let attached = v
                .attachments()
                .first()
                .and_then(|a| a.instance_id())
                .map(String::from);
            let value = (
                v.volume_id().unwrap_or_default().to_string(),
                v.availability_zone().unwrap_or_default().to_string(),
                attached,
            );
            assert!(
                out.insert(node.clone(), value).is_none(),
                "{node} of {cluster} has a second data volume"
            );
        }
        out
    }

    /// `apply` after a run that was killed: its lease is left behind, so break it.
    fn apply_after_kill(&self, t: &Topology) -> Run {
        self.kc([
            "apply",
            "--yes",
            "--api-calls",
            "--break-lease",
            "-f",
            &self.file(t),
        ])
        .run()
        .ok()
    }

    /// The cluster's live instances by node, each node with exactly one (fails otherwise).
    fn one_instance_per_node(&self, cluster: &str, nodes: &[String]) -> BTreeMap<String, Instance> {
        let mut by_node: BTreeMap<String, Vec<Instance>> = BTreeMap::new();
        for i in self.ec2.instances(cluster) {
            let node = tag(i.tags(), "kcluster:node")
                .unwrap_or("(none)")
                .to_string();
            by_node.entry(node).or_default().push(i);
        }
        let found: BTreeMap<&str, Vec<&str>> = by_node
            .iter()
            .map(|(n, is)| {
                (
                    n.as_str(),
                    is.iter().filter_map(|i| i.instance_id()).collect(),
                )
            })
            .collect();
        let wanted: BTreeSet<&str> = nodes.iter().map(String::as_str).collect();
        assert_eq!(
            found.keys().copied().collect::<BTreeSet<_>>(),
            wanted,
            "live instances of {cluster} by node: {found:?}"
        );
        assert!(
            found.values().all(|ids| ids.len() == 1),
            "each node of {cluster} has exactly one live instance: {found:?}"
        );
        by_node
            .into_iter()
            .map(|(n, mut is)| (n, is.remove(0)))
            .collect()
    }

    /// The cluster's network interfaces as node → (id, address, zone); exactly one per node.
    fn one_interface_per_node(
        &self,
        cluster: &str,
        nodes: &[String],
    ) -> BTreeMap<String, (String, String, String)> {
        let enis = self.ec2.interfaces(cluster);
        let mut out = BTreeMap::new();
        for n in &enis {
            let node = tag(n.tag_set(), "kcluster:node")
                .unwrap_or("(none)")
                .to_string();
            let v = (
                n.network_interface_id().unwrap_or_default().to_string(),
                n.private_ip_address().unwrap_or_default().to_string(),
                n.availability_zone().unwrap_or_default().to_string(),
            );
            assert!(
                out.insert(node.clone(), v).is_none(),
                "{node} of {cluster} has a second network interface: {enis:?}"
            );
        }
        assert_eq!(
            out.keys().collect::<BTreeSet<_>>(),
            nodes.iter().collect::<BTreeSet<_>>(),
            "network interfaces of {cluster} by node"
        );
        out
    }
}

fn id(i: &Instance) -> String {
    i.instance_id().unwrap_or_default().to_string()
}

fn ids(m: &BTreeMap<String, Instance>) -> BTreeMap<String, String> {
    m.iter().map(|(n, i)| (n.clone(), id(i))).collect()
}

/// Node names: zookeeper-1..=zk, broker-1..=brokers.
fn nodes(zk: u32, brokers: u32) -> Vec<String> {
    (1..=zk)
        .map(|i| format!("zookeeper-{i}"))
        .chain((1..=brokers).map(|i| format!("broker-{i}")))
        .collect()
}

/// The zone and default address of a node over default-vpc.yaml's zones:
/// round-robin by id, ZooKeeper at subnet + 10 + id, brokers at subnet + 100 + id.
fn default_placement(node: &str) -> (String, String) {
    let (role, n) = node.rsplit_once('-').expect("role-id");
    let n: u32 = n.parse().expect("node id");
    let zone = (n - 1) % 3;
    let host = if role == "zookeeper" { 10 + n } else { 100 + n };
    (
        format!("eu-west-1{}", ["a", "b", "c"][zone as usize]),
        format!("172.31.{}.{host}", zone * 16),
    )
}

/// KRaft mode end to end: apply (which runs the live check) launches one instance per
/// controller and broker with its role tag, address block and rendered identity; the group opens
/// the controller port within itself and no ZooKeeper port; status and check name the
/// controllers; a second plan is empty; a broker removed without health gates is said to stay
/// registered, with the command that unregisters it; destroy removes everything.
#[test]
fn kraft_cluster_applies_reports_checks_and_destroys_with_its_controllers() {
    let f = Fixture::new();
    let t = Topology::minimal("kr").kraft();
    let file = f.file(&t);
    let run = f.apply(&t);
    assert!(
        run.stdout.contains("controller quorum 2 of 3"),
        "{}",
        run.stdout
    );
    let all: Vec<String> = (1..=3)
        .map(|i| format!("controller-{i}"))
        .chain((1..=3).map(|i| format!("broker-{i}")))
        .collect();
    let instances = f.one_instance_per_node("kr", &all);
    let enis = f.one_interface_per_node("kr", &all);
    for (node, i) in &instances {
        let (role, n) = node.rsplit_once('-').expect("role-id");
        let n: u32 = n.parse().expect("id");
        let zone = (n - 1) % 3;
        let host = if role == "controller" {
            20 + n
        } else {
            100 + n
        };
        assert_eq!(
            enis[node].1,
            format!("172.31.{}.{host}", zone * 16),
            "{node}"
        );
        assert_eq!(tag(i.tags(), "kcluster:role"), Some(role), "{node}");
        let user_data = f.ec2.user_data(&id(i));
        let identity = if role == "controller" {
            format!("process.roles=controller\n      node.id={}", 9000 + n)
        } else {
            format!("process.roles=broker\n      node.id={n}\n      broker.rack=eu-west-1")
        };
        assert!(
            user_data.contains(&identity),
            "{node}: {identity}\n{user_data}"
        );
        assert!(!user_data.contains("zookeeper.connect"), "{node}");
        assert!(user_data.contains("kafka-storage.sh\" format"), "{node}");
    }
    let groups = f.ec2.groups("kr");
    let within: BTreeSet<i32> = groups[0]
        .ip_permissions()
        .iter()
        .filter(|p| !p.user_id_group_pairs().is_empty())
        .filter_map(|p| p.from_port())
        .collect();
    assert!(
        within.contains(&9094) && within.contains(&9093),
        "{within:?}"
    );
    assert!(
        !within.iter().any(|p| [2181, 2888, 3888].contains(p)),
        "{within:?}"
    );

    let status = f.kc(["status", "--output", "json", "-f", &file]).run().ok();
    let roles: BTreeSet<String> = status.json()["nodes"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|n| n["role"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        roles,
        BTreeSet::from(["broker".to_string(), "controller".to_string()]),
        "{}",
        status.stdout
    );
    let check = f.kc(["check", "-f", &file]).run().ok();
    assert!(
        check.stdout.contains("Live cluster checked in EC2"),
        "{}",
        check.stdout
    );
    f.kc(["plan", "--detailed-exitcode", "-f", &file])
        .run()
        .expect_code(0);

    // A scale-in without the cluster (no Kafka runs behind moto's instances): the broker it
    // terminates stays registered with the controllers, and apply says how to unregister it.
    f.apply_down(&t.clone().brokers(4));
    let run = f.apply_lossy(&t);
    assert!(
        run.stdout.contains("Terminated brokers stay registered with the KRaft controllers, fenced (apply ran without health gates); once the cluster answers, run: kafka-cluster.sh unregister --bootstrap-server 172.31.0.101:PORT --id 4"),
        "{}",
        run.stdout
    );
    f.kc(["destroy", "--yes", "-f", &file]).run().ok();
    assert_eq!(f.ec2.instances("kr").len(), 0);
    assert_eq!(f.ec2.interfaces("kr").len(), 0);
    assert_eq!(f.ec2.groups("kr").len(), 0);
}

/// The plan's changes as (address, action) pairs.
fn changes(plan: &serde_json::Value) -> BTreeSet<(String, String)> {
    plan["changes"]
        .as_array()
        .expect("changes[]")
        .iter()
        .map(|c| {
            (
                c["address"].as_str().unwrap_or_default().to_string(),
                c["action"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Operations in `--api-calls` that change EC2.
fn mutating(calls: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    calls
        .iter()
        .filter(|(k, _)| !k.starts_with("Describe") && !k.starts_with("Get") && *k != "DryRun")
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

#[test]
fn apply_on_an_empty_account_creates_one_hardened_tagged_instance_per_node() {
    let f = Fixture::new();
    let t = Topology::minimal("demo");
    f.apply(&t);
    let all = nodes(3, 3);

    let instances = f.one_instance_per_node("demo", &all);
    assert_eq!(
        f.ec2.all_instances().len(),
        6,
        "nothing but the cluster runs"
    );
    let enis = f.one_interface_per_node("demo", &all);
    let groups = f.ec2.groups("demo");
    assert_eq!(groups.len(), 1, "one security group: {groups:?}");
    let group = &groups[0];
    let group_id = group.group_id().expect("group id");
    assert_eq!(tag(group.tags(), "kcluster:cluster"), Some("demo"));

    for (node, i) in &instances {
        let (zone, address) = default_placement(node);
        let (eni_id, eni_address, eni_zone) = &enis[node];
        assert_eq!(
            (eni_address, eni_zone),
            (&address, &zone),
            "{node}'s interface"
        );
        assert_eq!(
            i.private_ip_address(),
            Some(address.as_str()),
            "{node}'s address"
        );
        assert_eq!(
            i.placement().and_then(|p| p.availability_zone()),
            Some(zone.as_str()),
            "{node}'s zone"
        );
        let primary = i
            .network_interfaces()
            .iter()
            .find(|n| n.attachment().and_then(|a| a.device_index()) == Some(0))
            .and_then(|n| n.network_interface_id());
        assert_eq!(
            primary,
            Some(eni_id.as_str()),
            "{node} runs on its interface"
        );
        assert!(
            i.network_interfaces()
                .iter()
                .flat_map(|n| n.groups())
                .any(|g| g.group_id() == Some(group_id)),
            "{node} is in the cluster's group"
        );
        assert_eq!(
            i.metadata_options().and_then(|m| m.http_tokens()),
            Some(&HttpTokensState::Required),
            "{node} requires IMDSv2"
        );

        let role = if node.starts_with("broker") {
            "broker"
        } else {
            "zookeeper"
        };
        let t = i.tags();
        assert_eq!(tag(t, "kcluster:cluster"), Some("demo"), "{node} tags");
        assert_eq!(tag(t, "kcluster:node"), Some(node.as_str()), "{node} tags");
        assert_eq!(tag(t, "kcluster:role"), Some(role), "{node} tags");
        assert_eq!(tag(t, "kcluster:generation"), Some("1"), "{node} tags");
        assert_eq!(tag(t, "kcluster:image"), Some(mock::AMI), "{node} tags");
        assert_eq!(
            tag(t, "Name"),
            Some(format!("demo-{node}").as_str()),
            "{node} tags"
        );
        assert!(
            tag(t, "kcluster:config").is_some_and(|h| h.len() == 16),
            "{node} carries its config hash: {t:?}"
        );

        let volumes = f.ec2.volumes(&id(i));
        let data_gib = if role == "broker" { 100 } else { 20 };
        let mut shape: Vec<(String, i32)> = volumes
            .iter()
            .map(|v| {
                assert_eq!(v.volume_type(), Some(&VolumeType::Gp3), "{node}: {v:?}");
                assert_eq!(v.encrypted(), Some(true), "{node}: {v:?}");
                assert_eq!(
                    tag(v.tags(), "kcluster:cluster"),
                    Some("demo"),
                    "{node}: {v:?}"
                );
                let device = v.attachments().first().and_then(|a| a.device());
                (
                    device.unwrap_or_default().to_string(),
                    v.size().unwrap_or(0),
                )
            })
            .collect();
        shape.sort();
        assert_eq!(
            shape,
            vec![
                ("/dev/sdf".to_string(), data_gib),
                ("/dev/xvda".to_string(), 20)
            ],
            "{node}'s volumes: an encrypted gp3 root and data volume, nothing else"
        );

        if role == "broker" {
            let user_data = f.ec2.user_data(&id(i));
            assert!(
                user_data.contains(&format!("broker.rack={zone}")),
                "{node}'s user-data sets broker.rack={zone}:\n{user_data}"
            );
        }
    }

    // Ingress: ZooKeeper only from the group itself; nothing from anywhere; no SSH.
    let perms = group.ip_permissions();
    assert!(!perms.is_empty(), "the group has ingress rules");
    for p in perms {
        let (from, to) = (p.from_port().unwrap_or(-1), p.to_port().unwrap_or(-1));
        assert_eq!(p.ip_protocol(), Some("tcp"), "only TCP rules: {p:?}");
        assert!(
            p.ip_ranges()
                .iter()
                .all(|r| r.cidr_ip() != Some("0.0.0.0/0"))
                && p.ipv6_ranges().is_empty(),
            "no rule open to the world: {p:?}"
        );
        assert!(
            !(from..=to).contains(&22),
            "no SSH without `network.ssh`: {p:?}"
        );
        if [2181, 2888, 3888]
            .iter()
            .any(|port| (from..=to).contains(port))
        {
            assert!(
                p.ip_ranges().is_empty()
                    && !p.user_id_group_pairs().is_empty()
                    && p.user_id_group_pairs()
                        .iter()
                        .all(|g| g.group_id() == Some(group_id)),
                "ZooKeeper ports only from the cluster's own group: {p:?}"
            );
        }
    }
    let zk_ports: BTreeSet<i32> = perms
        .iter()
        .filter(|p| !p.user_id_group_pairs().is_empty())
        .filter_map(|p| p.from_port())
        .collect();
    assert!(
        [2181, 2888, 3888].iter().all(|p| zk_ports.contains(p)),
        "ZooKeeper's ports are open within the group: {perms:?}"
    );
}

#[test]
fn second_apply_changes_nothing_and_launches_nothing() {
    let f = Fixture::new();
    let t = Topology::minimal("again");
    f.apply(&t);
    let all = nodes(3, 3);
    let before = ids(&f.one_instance_per_node("again", &all));
    let enis_before = f.one_interface_per_node("again", &all);

    let run = f.apply(&t);
    assert!(run.stdout.contains("No changes."), "{}", run.stdout);
    let calls = run.api_calls();
    assert_eq!(
        mutating(&calls),
        BTreeMap::new(),
        "a second apply only reads: {calls:?}"
    );
    assert_eq!(ids(&f.one_instance_per_node("again", &all)), before);
    assert_eq!(f.one_interface_per_node("again", &all), enis_before);
    f.kc(["plan", "--detailed-exitcode", "-f", &f.file(&t)])
        .run()
        .ok();
}

#[test]
fn apply_without_yes_and_no_terminal_refuses_and_creates_nothing() {
    let f = Fixture::new();
    let t = Topology::minimal("ask");
    let run = f.kc(["apply", "-f", &f.file(&t)]).run().expect_code(1);
    assert!(run.stderr.contains("--yes"), "{}", run.stderr);
    assert_eq!(f.ec2.all_instances().len(), 0, "no instance");
    assert_eq!(f.ec2.interfaces("ask").len(), 0, "no interface");
    assert_eq!(f.ec2.groups("ask").len(), 0, "no group");
}

#[test]
fn plan_makes_the_same_describe_calls_for_6_and_30_nodes() {
    let f = Fixture::new();
    let small = Topology::minimal("small");
    // The same subnets exist in us-east-1 a/b/c, so the 30 nodes' addresses clash with nothing.
    let large = Topology::minimal("large").region("us-east-1").brokers(27);
    let us_east = Account::connect(&f.mock.endpoint(), "us-east-1");
    us_east.internet_gateway(&us_east.default_vpc());
    let plan = |t: &Topology| {
        f.kc(["plan", "--api-calls", "-f", &f.file(t)])
            .run()
            .ok()
            .api_calls()
    };
    let empty_small = plan(&small);
    let empty_large = plan(&large);
    f.apply(&small);
    f.apply(&large);
    assert_eq!(
        us_east.instances("large").len(),
        30,
        "the large cluster runs"
    );
    let applied_small = plan(&small);
    let applied_large = plan(&large);

    assert!(
        empty_small
            .keys()
            .all(|k| k.starts_with("Describe") || k == "DryRun")
            && !empty_small.is_empty(),
        "plan only describes and asks DryRun: {empty_small:?}"
    );
    assert_eq!(empty_small, empty_large, "empty account: 6 vs 30 nodes");
    assert_eq!(applied_small, applied_large, "after apply: 6 vs 30 nodes");
    // The DryRuns are those of the calls each plan makes (an applied cluster creates no volume),
    // the Describe calls the same.
    let only_describes = |calls: &BTreeMap<String, u64>| -> BTreeMap<String, u64> {
        calls
            .iter()
            .filter(|(k, _)| k.starts_with("Describe"))
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    };
    assert_eq!(
        only_describes(&empty_small),
        only_describes(&applied_small),
        "empty vs applied"
    );
    assert!(
        empty_small["DryRun"] > applied_small["DryRun"],
        "the empty account's plan also asks CreateVolume and AttachVolume: {empty_small:?} vs {applied_small:?}"
    );
    let describes: u64 = only_describes(&empty_small).values().sum();
    // Subnets, route tables, groups, interfaces, instances, data volumes, Elastic IPs,
    // availability zones, the image, type offerings, the architectures of each of the two
    // instance types, the interfaces holding the nodes' addresses.
    assert_eq!(describes, 13, "{empty_small:?}");
}

#[test]
fn scale_out_from_3_to_6_brokers_adds_only_the_new_brokers() {
    let f = Fixture::new();
    let three = Topology::minimal("grow");
    f.apply(&three);
    let before = ids(&f.one_instance_per_node("grow", &nodes(3, 3)));
    let enis_before = f.one_interface_per_node("grow", &nodes(3, 3));

    let six = three.brokers(6);
    let plan = f
        .kc(["plan", "--output", "json", "-f", &f.file(&six)])
        .run()
        .ok()
        .json();
    let expected: BTreeSet<(String, String)> = (4..=6)
        .flat_map(|n| {
            [
                (
                    format!("network_interface.broker-{n}"),
                    "create".to_string(),
                ),
                (format!("public_address.broker-{n}"), "create".to_string()),
                (format!("instance.broker-{n}"), "create".to_string()),
                (format!("volume.broker-{n}"), "create".to_string()),
            ]
        })
        .collect();
    assert_eq!(changes(&plan), expected, "plan: {plan:#}");
    assert_eq!(
        plan["summary"],
        json!({"add": 12, "change": 0, "destroy": 0})
    );

    let calls = f.apply(&six).api_calls();
    assert_eq!(
        mutating(&calls),
        BTreeMap::from([
            ("AllocateAddress".to_string(), 3),
            ("AssociateAddress".to_string(), 3),
            ("AttachVolume".to_string(), 3),
            ("CreateNetworkInterface".to_string(), 3),
            ("CreateVolume".to_string(), 3),
            ("RunInstances".to_string(), 3)
        ]),
        "{calls:?}"
    );
    let after = ids(&f.one_instance_per_node("grow", &nodes(3, 6)));
    let enis_after = f.one_interface_per_node("grow", &nodes(3, 6));
    for (node, id) in &before {
        assert_eq!(&after[node], id, "{node} is untouched");
        assert_eq!(
            enis_after[node], enis_before[node],
            "{node}'s interface is untouched"
        );
    }
    for n in 4..=6 {
        let node = format!("broker-{n}");
        assert!(
            !before.values().any(|id| id == &after[&node]),
            "{node} is a new instance"
        );
        let (zone, address) = default_placement(&node);
        assert_eq!(
            (&enis_after[&node].1, &enis_after[&node].2),
            (&address, &zone)
        );
    }
}

#[test]
fn scale_in_from_6_to_3_brokers_removes_only_brokers_4_to_6() {
    let f = Fixture::new();
    let six = Topology::minimal("shrink").brokers(6);
    f.apply(&six);
    let before = ids(&f.one_instance_per_node("shrink", &nodes(3, 6)));
    let enis_before = f.one_interface_per_node("shrink", &nodes(3, 6));

    let three = six.brokers(3);
    let plan = f
        .kc(["plan", "--output", "json", "-f", &f.file(&three)])
        .run()
        .ok()
        .json();
    let expected: BTreeSet<(String, String)> = (4..=6)
        .flat_map(|n| {
            [
                (
                    format!("network_interface.broker-{n}"),
                    "delete".to_string(),
                ),
                (format!("public_address.broker-{n}"), "delete".to_string()),
                (format!("instance.broker-{n}"), "delete".to_string()),
            ]
        })
        .collect();
    assert_eq!(changes(&plan), expected, "plan: {plan:#}");
    // No Kafka runs behind moto's instances: plan cannot count the replicas that move.
    assert_eq!(plan["replicas"]["state"], "unread", "plan: {plan:#}");
    let drains: Vec<&str> = plan["availability"]
        .as_array()
        .expect("availability")
        .iter()
        .filter_map(|l| l.as_str())
        .filter(|l| l.starts_with("drain broker-"))
        .collect();
    assert_eq!(drains.len(), 3, "{drains:?}");
    assert!(
        drains[0].contains("how many is read at apply time: the cluster does not answer here"),
        "{drains:?}"
    );

    // A scale-in is a drain first: with gates, a cluster that does not answer is refused; with
    // gates skipped, only the flag that accepts the loss of the brokers' replicas lets it go.
    let refused = f.apply_refused(&three, &[]);
    assert!(
        refused.contains(
            "Draining broker-4, broker-5, broker-6 before termination needs the running cluster"
        ) && refused.contains("`kcluster apply --skip-health-gates --accept-data-loss`"),
        "{refused}"
    );
    let refused = f.apply_refused(&three, &["--skip-health-gates"]);
    assert!(
        refused.contains("--skip-health-gates does not read the cluster, so apply cannot move the replicas broker-4, broker-5, broker-6 holds"),
        "{refused}"
    );
    assert_eq!(
        ids(&f.one_instance_per_node("shrink", &nodes(3, 6))),
        before,
        "nothing changed"
    );
    let calls = f.apply_lossy(&three).api_calls();
    assert_eq!(calls.get("RunInstances"), None, "{calls:?}");
    let after = ids(&f.one_instance_per_node("shrink", &nodes(3, 3)));
    let enis_after = f.one_interface_per_node("shrink", &nodes(3, 3));
    for (node, id) in &after {
        assert_eq!(id, &before[node], "{node} is untouched");
        assert_eq!(
            enis_after[node], enis_before[node],
            "{node}'s interface is untouched"
        );
    }
}

#[test]
fn instance_type_change_stops_modifies_and_starts_each_broker_keeping_instance_volume_and_address()
{
    let f = Fixture::new();
    let all = nodes(3, 3);
    f.apply(&Topology::minimal("bigger"));
    let before = ids(&f.one_instance_per_node("bigger", &all));
    let enis_before = f.one_interface_per_node("bigger", &all);
    let volumes_before = f.volumes("bigger");

    let t = Topology::minimal("bigger").broker_type("m5.2xlarge");
    let plan = f
        .kc(["plan", "--output", "json", "-f", &f.file(&t)])
        .run()
        .ok()
        .json();
    let got: Vec<&serde_json::Value> = plan["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .collect();
    let want: Vec<serde_json::Value> = (1..=3)
        .map(|n| {
            json!({
                "address": format!("instance.broker-{n}"),
                "action": "update",
                "id": before[&format!("broker-{n}")],
                "reasons": ["instance type m5.xlarge → m5.2xlarge"],
            })
        })
        .collect();
    assert_eq!(got, want.iter().collect::<Vec<_>>(), "plan: {plan:#}");
    assert!(
        plan["availability"][0]
            .as_str()
            .is_some_and(|a| a.starts_with("resize to m5.2xlarge: broker-1 (stop, change, start")),
        "plan: {plan:#}"
    );

    // No Kafka answers behind moto's instances: a roll with gates refuses and changes nothing.
    let refused = f
        .kc(["apply", "--yes", "--api-calls", "-f", &f.file(&t)])
        .run()
        .expect_code(1);
    assert!(
        refused.stderr.contains("no broker node answers")
            && refused
                .stderr
                .contains("`kcluster apply --skip-health-gates`")
            && refused.stderr.contains("Nothing was changed."),
        "{}",
        refused.stderr
    );
    for i in f.ec2.instances("bigger") {
        assert_eq!(
            (
                i.state().and_then(|s| s.name()).map(|n| n.as_str()),
                i.instance_type().map(|t| t.as_str())
            ),
            (
                Some("running"),
                Some(if tag(i.tags(), "kcluster:role") == Some("broker") {
                    "m5.xlarge"
                } else {
                    "m5.large"
                })
            ),
            "untouched by the refused apply"
        );
    }

    let calls = f.apply_down(&t).api_calls();
    assert_eq!(
        mutating(&calls),
        BTreeMap::from([
            ("CreateTags".to_string(), 3),
            ("ModifyInstanceAttribute".to_string(), 3),
            ("StartInstances".to_string(), 3),
            ("StopInstances".to_string(), 3),
        ]),
        "nothing launched, terminated or created: {calls:?}"
    );
    let after = f.one_instance_per_node("bigger", &all);
    assert_eq!(
        f.one_interface_per_node("bigger", &all),
        enis_before,
        "interfaces kept"
    );
    assert_eq!(
        f.volumes("bigger"),
        volumes_before,
        "volumes kept, attached"
    );
    for (node, i) in &after {
        assert_eq!(id(i), before[node], "{node} is the same instance");
        let want = if node.starts_with("broker") {
            "m5.2xlarge"
        } else {
            "m5.large"
        };
        assert_eq!(i.instance_type().map(|t| t.as_str()), Some(want), "{node}");
        assert_eq!(
            i.state().and_then(|s| s.name()).map(|n| n.as_str()),
            Some("running")
        );
    }
    f.kc(["plan", "--detailed-exitcode", "-f", &f.file(&t)])
        .run()
        .ok();
}

#[test]
fn config_only_change_restarts_every_node_in_place_and_terminates_nothing() {
    let f = Fixture::new();
    let all = nodes(3, 3);
    let t = Topology::minimal("files");
    f.apply(&t);
    let before = ids(&f.one_instance_per_node("files", &all));
    let volumes = f.volumes("files");

    // A template every node renders (sysctl.conf) changes: every node's files change.
    let templates = tempfile::tempdir().expect("temporary directory");
    let marker = "# kcluster test: tuned";
    std::fs::write(
        templates.path().join("sysctl.conf.j2"),
        format!("{marker}\nvm.swappiness=1\n"),
    )
    .expect("template");
    let dir = templates.path().display().to_string();
    let plan = f
        .kc([
            "plan",
            "--output",
            "json",
            "--templates",
            &dir,
            "-f",
            &f.file(&t),
        ])
        .run()
        .ok()
        .json();
    let expected: BTreeSet<(String, String)> = all
        .iter()
        .map(|n| (format!("instance.{n}"), "update".to_string()))
        .collect();
    assert_eq!(changes(&plan), expected, "plan: {plan:#}");
    assert_eq!(
        plan["summary"],
        json!({"add": 0, "change": 6, "destroy": 0})
    );

    let calls = f
        .kc([
            "apply",
            "--yes",
            "--api-calls",
            "--skip-health-gates",
            "--templates",
            &dir,
            "-f",
            &f.file(&t),
        ])
        .run()
        .ok()
        .api_calls();
    assert_eq!(calls.get("TerminateInstances"), None, "{calls:?}");
    assert_eq!(calls.get("RunInstances"), None, "{calls:?}");
    assert_eq!(calls.get("StopInstances"), Some(&6), "{calls:?}");
    let after = f.one_instance_per_node("files", &all);
    assert_eq!(ids(&after), before, "the same instances");
    assert_eq!(f.volumes("files"), volumes, "the same volumes, attached");
    for (node, i) in &after {
        let data = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            f.ec2.user_data_base64(&id(i)),
        )
        .expect("base64");
        let text = kcluster::render::user_data_text(&data).expect("user-data");
        assert!(text.contains(marker), "{node} holds its new files");
        assert!(
            text.contains(&format!("readonly DATA_VOLUME=\"{}\"", volumes[node].0)),
            "{node}'s bootstrap names its volume"
        );
    }
    f.kc([
        "plan",
        "--detailed-exitcode",
        "--templates",
        &dir,
        "-f",
        &f.file(&t),
    ])
    .run()
    .ok();
}

#[test]
fn moving_brokers_to_other_zones_replaces_their_interfaces_and_instances() {
    let f = Fixture::new();
    let all = nodes(3, 3);
    f.apply(&Topology::minimal("swap"));
    let before = ids(&f.one_instance_per_node("swap", &all));
    let enis_before = f.one_interface_per_node("swap", &all);

    // broker-1 (a) and broker-2 (b) swap zones, so every zone keeps one broker.
    let t = Topology::minimal("swap")
        .broker_zone(1, 1)
        .broker_zone(2, 0);
    let plan = f
        .kc(["plan", "--output", "json", "-f", &f.file(&t)])
        .run()
        .ok()
        .json();
    let expected: BTreeSet<(String, String)> = [1, 2]
        .into_iter()
        .flat_map(|n| {
            [
                (
                    format!("network_interface.broker-{n}"),
                    "replace".to_string(),
                ),
                // The node's Elastic IP moves to its new interface.
                (format!("public_address.broker-{n}"), "update".to_string()),
                (format!("instance.broker-{n}"), "replace".to_string()),
                // EBS volumes stay in their zone: a new, empty one in the new zone.
                (format!("volume.broker-{n}"), "create".to_string()),
            ]
        })
        .collect();
    assert_eq!(changes(&plan), expected, "plan: {plan:#}");

    f.apply_down(&t);
    let after = f.one_instance_per_node("swap", &all);
    let enis = f.one_interface_per_node("swap", &all);
    let addresses = f.ec2.addresses("swap");
    assert_eq!(addresses.len(), 6, "the same six Elastic IPs");
    for a in &addresses {
        let node = tag(a.tags(), "kcluster:node").expect("a node tag");
        assert_eq!(
            a.network_interface_id(),
            Some(enis[node].0.as_str()),
            "{node}'s Elastic IP is on its (new) interface"
        );
    }
    for (node, zone, address) in [
        ("broker-1", "eu-west-1b", "172.31.16.101"),
        ("broker-2", "eu-west-1a", "172.31.0.102"),
    ] {
        let i = &after[node];
        assert_ne!(id(i), before[node], "{node} was replaced");
        assert_ne!(
            enis[node].0, enis_before[node].0,
            "{node} has a new interface"
        );
        assert_eq!(
            (enis[node].1.as_str(), enis[node].2.as_str()),
            (address, zone)
        );
        assert_eq!(i.private_ip_address(), Some(address), "{node}");
        assert_eq!(
            i.placement().and_then(|p| p.availability_zone()),
            Some(zone)
        );
    }
    for node in nodes(3, 0).iter().chain([&"broker-3".to_string()]) {
        assert_eq!(id(&after[node]), before[node], "{node} is untouched");
        assert_eq!(
            enis[node], enis_before[node],
            "{node}'s interface is untouched"
        );
    }
    let (code, live) = live_check(&f, &t);
    assert_eq!(
        (code, live),
        (Some(0), vec![]),
        "the moved brokers' racks hold"
    );
}

/// Two monitoring nodes through the real SDK: launched in two zones at offset 40 + id, their
/// UDP gossip rule and the Prometheus and Alertmanager rules read back as planned (a second
/// apply changes nothing), the inter-broker port stays inside the group, status lists them, and
/// destroy removes them with the rest.
#[test]
fn monitoring_nodes_are_applied_read_back_unchanged_and_destroyed() {
    let f = Fixture::new();
    let t = Topology::minimal("watched").monitoring(2, "10.9.0.0/24");
    f.apply(&t);
    let mut all = nodes(3, 3);
    all.extend(["monitoring-1".to_string(), "monitoring-2".to_string()]);
    let instances = f.one_instance_per_node("watched", &all);
    for (node, zone, address) in [
        ("monitoring-1", "eu-west-1a", "172.31.0.41"),
        ("monitoring-2", "eu-west-1b", "172.31.16.42"),
    ] {
        let i = &instances[node];
        assert_eq!(i.private_ip_address(), Some(address), "{node}");
        assert_eq!(
            i.placement().and_then(|p| p.availability_zone()),
            Some(zone),
            "{node}"
        );
        assert_eq!(tag(i.tags(), "kcluster:role"), Some("monitoring"));
    }
    let groups = f.ec2.groups("watched");
    let perms = groups[0].ip_permissions();
    let open_to = |protocol: &str, port: i32| -> Vec<String> {
        perms
            .iter()
            .filter(|p| p.ip_protocol() == Some(protocol) && p.from_port() == Some(port))
            .flat_map(|p| {
                p.ip_ranges()
                    .iter()
                    .filter_map(|r| r.cidr_ip().map(str::to_string))
            })
            .collect()
    };
    assert_eq!(open_to("tcp", 9090), ["10.9.0.0/24"]);
    assert_eq!(open_to("tcp", 9095), ["10.9.0.0/24"]);
    assert!(
        open_to("tcp", 9093).is_empty(),
        "9093 stays inside the group"
    );
    assert!(
        open_to("udp", 9096).is_empty(),
        "gossip stays inside the group"
    );
    assert!(
        perms
            .iter()
            .any(|p| p.ip_protocol() == Some("udp") && p.from_port() == Some(9096)),
        "gossip over UDP within the group: {perms:?}"
    );

    let again = f.apply(&t);
    assert!(again.stdout.contains("No changes."), "{}", again.stdout);
    let status = f
        .kc(["status", "--health-timeout", "1", "-f", &f.file(&t)])
        .run()
        .ok();
    assert!(
        status
            .stdout
            .lines()
            .any(|l| l.starts_with("monitoring-2 ") && l.contains("running")),
        "{}",
        status.stdout
    );
    let run = f.kc(["destroy", "--yes", "-f", &f.file(&t)]).run().ok();
    assert!(
        run.stdout.contains("Destroyed cluster watched"),
        "{}",
        run.stdout
    );
    assert_eq!(f.ec2.instances("watched").len(), 0);
    assert_eq!(f.ec2.groups("watched").len(), 0);
}

#[test]
fn destroy_removes_only_the_cluster_and_a_second_destroy_finds_nothing() {
    let f = Fixture::new();
    let alpha = Topology::minimal("alpha");
    let beta = Topology::minimal("beta").pinned(30);
    f.apply(&alpha);
    f.apply(&beta);
    let subnet = f.ec2.default_subnet("eu-west-1a");
    let stranger = f.ec2.launch(&Launch {
        instance_type: "t3.medium",
        zone: "eu-west-1a",
        interface_id: None,
        subnet_id: subnet.subnet_id(),
        user_data: None,
        tags: vec![],
    });
    let beta_ids = ids(&f.one_instance_per_node("beta", &nodes(3, 3)));
    let beta_enis = f.one_interface_per_node("beta", &nodes(3, 3));
    let beta_volumes = f.volumes("beta");
    let alpha_volumes = f.volumes("alpha");
    assert_eq!(alpha_volumes.len(), 6);

    let run = f.kc(["destroy", "--yes", "-f", &f.file(&alpha)]).run().ok();
    assert!(
        run.stdout.contains("Destroyed cluster alpha"),
        "{}",
        run.stdout
    );
    // The list says the data volumes go, each by id, and they are gone.
    for (node, (volume, _, _)) in &alpha_volumes {
        assert!(
            run.stdout.lines().any(|l| l.contains(volume)
                && l.contains(node.as_str())
                && l.contains("the node's data, deleted for good")),
            "{node}'s volume {volume} in the list:\n{}",
            run.stdout
        );
    }
    assert!(
        run.stdout.contains("6 data volumes (their data is lost)"),
        "{}",
        run.stdout
    );
    assert_eq!(f.ec2.data_volumes("alpha").len(), 0, "no volume of alpha");
    assert_eq!(f.volumes("beta"), beta_volumes, "beta keeps its volumes");
    assert_eq!(
        f.ec2.instances("alpha").len(),
        0,
        "no live instance of alpha"
    );
    assert_eq!(f.ec2.interfaces("alpha").len(), 0, "no interface of alpha");
    assert_eq!(f.ec2.groups("alpha").len(), 0, "no group of alpha");

    assert_eq!(
        ids(&f.one_instance_per_node("beta", &nodes(3, 3))),
        beta_ids
    );
    assert_eq!(f.one_interface_per_node("beta", &nodes(3, 3)), beta_enis);
    assert_eq!(f.ec2.groups("beta").len(), 1, "beta keeps its group");
    let live: BTreeSet<String> = f.ec2.all_instances().iter().map(id).collect();
    assert!(live.contains(&stranger), "the untagged instance survives");
    assert_eq!(live.len(), 7, "beta's 6 and the stranger: {live:?}");

    for args in [
        vec!["destroy", "--yes", "-f", &f.file(&alpha)],
        vec![
            "destroy",
            "--yes",
            "--cluster",
            "alpha",
            "--region",
            "eu-west-1",
        ],
    ] {
        let again = Kc::new(&f.mock.endpoint()).args(&args).run().ok();
        assert!(
            again.stdout.contains("nothing to destroy"),
            "{args:?}: {}",
            again.stdout
        );
    }
    assert_eq!(f.ec2.all_instances().len(), 7);
}

#[test]
fn destroy_without_yes_and_no_terminal_refuses_and_touches_nothing() {
    let f = Fixture::new();
    let t = Topology::minimal("keep");
    f.apply(&t);
    let all = nodes(3, 3);
    let before = ids(&f.one_instance_per_node("keep", &all));
    let enis = f.one_interface_per_node("keep", &all);

    for args in [
        vec!["destroy", "-f", &f.file(&t)],
        vec!["destroy", "--cluster", "keep", "--region", "eu-west-1"],
    ] {
        let run = Kc::new(&f.mock.endpoint()).args(&args).run().expect_code(1);
        assert!(run.stderr.contains("--yes"), "{args:?}: {}", run.stderr);
    }
    assert_eq!(ids(&f.one_instance_per_node("keep", &all)), before);
    assert_eq!(f.one_interface_per_node("keep", &all), enis);
    assert_eq!(f.ec2.groups("keep").len(), 1);
}

/// Runs `apply` on 18 nodes through a gate that answers the first 4 `action` calls and swallows
/// the answers to the next ones (EC2 still carries them out), two calls in flight at a time;
/// kills kcluster with SIGKILL once both are stuck. EC2 then holds exactly 6 of `action`'s
/// resources: the 4 answered and the 2 swallowed, which kcluster never heard of.
fn apply_killed_at(f: &Fixture, t: &Topology, action: &str) {
    let gate = Gate::start(f.mock.port(), action, 4);
    let mut child = Kc::new(&gate.endpoint())
        .args(["apply", "--yes", "--parallelism", "2", "-f", &f.file(t)])
        .start();
    gate.wait_until(
        &format!("kcluster to be stuck in {action}"),
        Duration::from_secs(60),
        |c| c.answered == 4 && c.swallowed == 2 || !c.errors.is_empty(),
    );
    let still_running = child.is_running();
    child.kill();
    let counts = gate.counts();
    drop(gate);
    assert!(
        counts.errors.is_empty(),
        "the gate failed: {:?}",
        counts.errors
    );
    assert!(
        still_running,
        "kcluster finished although EC2 never answered {action}"
    );
    assert_eq!(
        counts.seen, 6,
        "no further {action} after both slots got stuck: {counts:?}"
    );
}

#[test]
fn apply_killed_while_creating_interfaces_then_rerun_converges_without_duplicates() {
    let f = Fixture::new();
    let t = Topology::minimal("killed").brokers(15);
    apply_killed_at(&f, &t, "CreateNetworkInterface");
    let enis: BTreeSet<String> = f
        .ec2
        .interfaces("killed")
        .iter()
        .filter_map(|n| n.network_interface_id().map(String::from))
        .collect();
    assert_eq!(enis.len(), 6, "the kill left 6 of 18 interfaces");
    assert_eq!(f.ec2.instances("killed").len(), 0, "and no instance");

    let calls = f.apply_after_kill(&t).api_calls();
    assert_eq!(calls.get("CreateNetworkInterface"), Some(&12), "{calls:?}");
    assert_eq!(calls.get("RunInstances"), Some(&18), "{calls:?}");
    assert_eq!(calls.get("CreateSecurityGroup"), None, "{calls:?}");
    let all = nodes(3, 15);
    f.one_instance_per_node("killed", &all);
    let after = f.one_interface_per_node("killed", &all);
    let kept: BTreeSet<String> = after.values().map(|(id, _, _)| id.clone()).collect();
    assert!(
        enis.is_subset(&kept),
        "the interfaces made before the kill are used"
    );
    assert_eq!(f.ec2.groups("killed").len(), 1);
}

#[test]
fn apply_killed_while_launching_instances_then_rerun_converges_without_duplicates() {
    let f = Fixture::new();
    let t = Topology::minimal("killed").brokers(15);
    apply_killed_at(&f, &t, "RunInstances");
    let launched: BTreeSet<String> = f.ec2.instances("killed").iter().map(id).collect();
    assert_eq!(launched.len(), 6, "the kill left 6 of 18 instances");
    assert_eq!(f.ec2.interfaces("killed").len(), 18);

    let calls = f.apply_after_kill(&t).api_calls();
    assert_eq!(calls.get("RunInstances"), Some(&12), "{calls:?}");
    assert_eq!(calls.get("CreateNetworkInterface"), None, "{calls:?}");
    assert_eq!(calls.get("TerminateInstances"), None, "{calls:?}");
    let all = nodes(3, 15);
    let after: BTreeSet<String> = ids(&f.one_instance_per_node("killed", &all))
        .into_values()
        .collect();
    assert!(
        launched.is_subset(&after),
        "instances launched before the kill (even those kcluster never heard of) are kept"
    );
    f.one_interface_per_node("killed", &all);
}

/// Changes the brokers' type and kills `apply` once EC2 has carried out the first replacement's
/// `action` (its answer swallowed); the next apply finishes the rolling replacement.
fn replacement_killed_at(action: &str, cluster: &str) {
    let f = Fixture::new();
    let all = nodes(3, 3);
    f.apply(&Topology::minimal(cluster));
    let before = ids(&f.one_instance_per_node(cluster, &all));
    let enis = f.one_interface_per_node(cluster, &all);

    let volumes = f.volumes(cluster);
    // A new image replaces every node, ZooKeeper first, keeping its volume.
    let t = Topology::minimal(cluster).image("ami-fa7cdd89");
    let gate = Gate::start(f.mock.port(), action, 0);
    let mut child = Kc::new(&gate.endpoint())
        .args(["apply", "--yes", "--skip-health-gates", "-f", &f.file(&t)])
        .start();
    gate.wait_until(
        &format!("kcluster to be stuck in {action}"),
        Duration::from_secs(60),
        |c| c.swallowed == 1 || !c.errors.is_empty(),
    );
    let still_running = child.is_running();
    child.kill();
    let counts = gate.counts();
    drop(gate);
    assert!(
        counts.errors.is_empty(),
        "the gate failed: {:?}",
        counts.errors
    );
    assert!(
        still_running,
        "kcluster finished although EC2 never answered {action}"
    );
    let old = before["zookeeper-1"].clone();
    assert!(
        !f.ec2.instances(cluster).iter().any(|i| id(i) == old),
        "zookeeper-1's old instance was terminated before the kill"
    );

    f.kc([
        "apply",
        "--yes",
        "--break-lease",
        "--skip-health-gates",
        "-f",
        &f.file(&t),
    ])
    .run()
    .ok();
    let after = f.one_instance_per_node(cluster, &all);
    assert_eq!(
        f.one_interface_per_node(cluster, &all),
        enis,
        "interfaces kept"
    );
    let volumes_after = f.volumes(cluster);
    for (node, i) in &after {
        assert_ne!(id(i), before[node], "{node} was replaced");
        assert_eq!(i.image_id(), Some("ami-fa7cdd89"), "{node}");
        // A launch after an interrupted replacement may skip a generation: its ClientToken
        // must be one no earlier launch used.
        let generation: u32 = tag(i.tags(), "kcluster:generation")
            .and_then(|g| g.parse().ok())
            .unwrap_or(0);
        assert!(generation >= 2, "{node}: generation {generation}");
        assert_eq!(
            volumes_after[node].0, volumes[node].0,
            "{node} keeps its volume"
        );
        assert_eq!(
            volumes_after[node].2,
            Some(id(i)),
            "{node}'s volume is on it"
        );
    }
    f.kc(["plan", "--detailed-exitcode", "-f", &f.file(&t)])
        .run()
        .ok();
}

#[test]
fn replacement_killed_after_terminating_the_old_node_is_finished_by_the_next_apply() {
    replacement_killed_at("TerminateInstances", "rollterm");
}

#[test]
fn replacement_killed_after_launching_the_new_node_is_finished_by_the_next_apply() {
    replacement_killed_at("RunInstances", "rollrun");
}

#[test]
fn apply_interrupted_by_ctrl_c_exits_130_and_the_next_apply_finishes() {
    let f = Fixture::new();
    let t = Topology::minimal("sigint");
    // One launch at a time: two answered, the third carried out but never answered.
    let gate = Gate::start(f.mock.port(), "RunInstances", 2);
    let mut child = Kc::new(&gate.endpoint())
        .args(["apply", "--yes", "--parallelism", "1", "-f", &f.file(&t)])
        .start();
    gate.wait_until(
        "kcluster to be stuck in RunInstances",
        Duration::from_secs(60),
        |c| c.answered == 2 && c.swallowed == 1 || !c.errors.is_empty(),
    );
    assert!(
        child.is_running(),
        "kcluster finished although EC2 never answered"
    );
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.pid().to_string()])
        .status()
        .expect("kill -INT");
    assert!(sent.success(), "SIGINT sent");
    let run = child.wait().expect_code(130);
    drop(gate);
    assert!(
        run.stderr.contains("interrupted") && run.stderr.contains("kcluster apply"),
        "says it was interrupted and how to finish:\n{}",
        run.stderr
    );
    assert_eq!(
        f.ec2.instances("sigint").len(),
        3,
        "three launches reached EC2"
    );

    let calls = f.apply(&t).api_calls();
    assert_eq!(calls.get("RunInstances"), Some(&3), "{calls:?}");
    f.one_instance_per_node("sigint", &nodes(3, 3));
    f.one_interface_per_node("sigint", &nodes(3, 3));
}

#[test]
fn failed_apply_then_fixed_apply_converges_without_duplicates() {
    // EC2 has no capacity for the brokers' type: ZooKeeper launches, brokers fail.
    let f = Fixture::with(Strictness {
        no_capacity: vec!["m5.xlarge"],
        ..Strictness::default()
    });
    let all = nodes(3, 3);
    let t = Topology::minimal("fixme");
    let run = f
        .kc(["apply", "--yes", "-f", &f.file(&t)])
        .run()
        .expect_code(1);
    assert!(
        run.stderr.contains("InsufficientInstanceCapacity")
            && run.stderr.contains("instance.broker-1"),
        "the failure names the brokers and the cause:\n{}",
        run.stderr
    );
    let zk: BTreeMap<String, String> = f
        .ec2
        .instances("fixme")
        .iter()
        .map(|i| {
            (
                tag(i.tags(), "kcluster:node").unwrap_or("?").to_string(),
                id(i),
            )
        })
        .collect();
    assert_eq!(
        zk.keys().cloned().collect::<Vec<_>>(),
        nodes(3, 0),
        "the failed apply launched only ZooKeeper"
    );
    let enis = f.one_interface_per_node("fixme", &all);

    f.mock.restore_capacity();
    let calls = f.apply(&t).api_calls();
    assert_eq!(calls.get("RunInstances"), Some(&3), "{calls:?}");
    assert_eq!(calls.get("CreateNetworkInterface"), None, "{calls:?}");
    let after = ids(&f.one_instance_per_node("fixme", &all));
    for (node, id) in &zk {
        assert_eq!(&after[node], id, "{node} is kept");
    }
    assert_eq!(f.one_interface_per_node("fixme", &all), enis);
}

/// `check --output json` of `t`; returns the exit code and the live findings as (rule, message).
fn live_check(f: &Fixture, t: &Topology) -> (Option<i32>, Vec<(String, String)>) {
    let run = f.kc(["check", "--output", "json", "-f", &f.file(t)]).run();
    let report = run.json();
    let live = report["live"]
        .as_array()
        .expect("live[]")
        .iter()
        .map(|x| {
            (
                x["rule"].as_str().unwrap_or_default().to_string(),
                x["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        report["ok"],
        json!(run.code == Some(0)),
        "ok matches the exit code"
    );
    (run.code, live)
}

#[test]
fn check_passes_on_a_clean_apply() {
    let f = Fixture::new();
    let t = Topology::minimal("clean");
    f.apply(&t);
    let (code, live) = live_check(&f, &t);
    assert_eq!(code, Some(0), "{live:?}");
    assert_eq!(live, vec![], "no live finding");
}

/// moto's eu-west-1 maps a, b, c to these AZ IDs (a real account maps them its own way).
const MOTO_AZ_IDS: [&str; 3] = ["euw1-az3", "euw1-az1", "euw1-az2"];

#[test]
fn brokers_rack_by_az_id_checked_against_ec2_by_plan_and_by_check() {
    let f = Fixture::new();
    // IDs of another account's mapping: plan refuses them, naming the right one per zone.
    let wrong = Topology::minimal("racks").az_ids(["euw1-az1", "euw1-az2", "euw1-az3"]);
    let run = f.kc(["plan", "-f", &f.file(&wrong)]).run().expect_code(1);
    assert!(
        run.stderr.contains(
            "zones[0].id: zone eu-west-1a is euw1-az3 in this account, not euw1-az1 (euw1-az1 is eu-west-1b)"
        ),
        "{}",
        run.stderr
    );
    let t = Topology::minimal("racks").az_ids(MOTO_AZ_IDS);
    f.apply(&t);
    let instances = f.one_instance_per_node("racks", &nodes(3, 3));
    for (broker, rack) in [
        ("broker-1", "euw1-az3"),
        ("broker-2", "euw1-az1"),
        ("broker-3", "euw1-az2"),
    ] {
        let data = f.ec2.user_data(&id(&instances[broker]));
        assert!(
            data.contains(&format!("broker.rack={rack}\n")),
            "{broker}: {data}"
        );
    }
    let (code, live) = live_check(&f, &t);
    assert_eq!(code, Some(0), "{live:?}");
    assert_eq!(live, vec![], "no live finding");
}

#[test]
fn check_flags_a_broker_relaunched_by_hand_in_another_zone_and_apply_moves_it_back() {
    let f = Fixture::new();
    let t = Topology::minimal("moved");
    f.apply(&t);
    let old = f
        .ec2
        .instances("moved")
        .into_iter()
        .find(|i| tag(i.tags(), "kcluster:node") == Some("broker-2"))
        .expect("broker-2 runs");
    let user_data = f.ec2.user_data_base64(&id(&old));
    let tags: Vec<(String, String)> = old
        .tags()
        .iter()
        .map(|t| {
            (
                t.key().unwrap_or_default().into(),
                t.value().unwrap_or_default().into(),
            )
        })
        .collect();
    f.ec2.terminate(&id(&old));
    let group = f.ec2.groups("moved")[0]
        .group_id()
        .expect("group")
        .to_string();
    let subnet = f.ec2.default_subnet("eu-west-1a");
    let eni = f.ec2.create_interface(
        subnet.subnet_id().expect("subnet id"),
        "172.31.0.202",
        &group,
    );
    let moved = f.ec2.launch(&Launch {
        instance_type: "m5.xlarge",
        zone: "eu-west-1a",
        interface_id: Some(&eni),
        subnet_id: None,
        user_data: Some(&user_data),
        tags,
    });

    let (code, live) = live_check(&f, &t);
    assert_eq!(code, Some(1), "{live:?}");
    let rack = live
        .iter()
        .find(|(rule, _)| rule == "live-broker-rack")
        .unwrap_or_else(|| panic!("a live-broker-rack finding: {live:?}"));
    assert!(
        rack.1.contains("broker-2")
            && rack.1.contains(&moved)
            && rack.1.contains("eu-west-1a")
            && rack.1.contains("broker.rack=eu-west-1b"),
        "{rack:?}"
    );
    assert!(
        live.iter().any(|(rule, m)| rule == "live-zone"
            && m.contains("broker-2")
            && m.contains("eu-west-1b")),
        "a live-zone finding for broker-2: {live:?}"
    );

    // apply replaces it in its zone, on its own interface, with its own volume.
    let volume = f.volumes("moved")["broker-2"].0.clone();
    f.apply_down(&t);
    let enis = f.one_interface_per_node("moved", &nodes(3, 3));
    let back = &f.one_instance_per_node("moved", &nodes(3, 3))["broker-2"];
    assert_ne!(id(back), moved);
    assert_eq!(
        back.placement().and_then(|p| p.availability_zone()),
        Some("eu-west-1b")
    );
    assert_eq!(back.private_ip_address(), Some(enis["broker-2"].1.as_str()));
    assert_eq!(
        f.volumes("moved")["broker-2"],
        (volume, "eu-west-1b".to_string(), Some(id(back))),
        "broker-2 has its volume back"
    );
    let (code, live) = live_check(&f, &t);
    assert_eq!((code, live), (Some(0), vec![]), "check passes again");
}

#[test]
fn check_reports_an_unknown_instance_with_the_cluster_tag_and_apply_removes_it() {
    let f = Fixture::new();
    let t = Topology::minimal("extra");
    f.apply(&t);
    let subnet = f.ec2.default_subnet("eu-west-1a");
    let stray = f.ec2.launch(&Launch {
        instance_type: "m5.xlarge",
        zone: "eu-west-1a",
        interface_id: None,
        subnet_id: subnet.subnet_id(),
        user_data: None,
        tags: vec![
            ("kcluster:cluster".into(), "extra".into()),
            ("kcluster:role".into(), "broker".into()),
            ("kcluster:node".into(), "broker-99".into()),
        ],
    });

    let (code, live) = live_check(&f, &t);
    assert_eq!(code, Some(1), "{live:?}");
    assert!(
        live.iter().any(|(rule, m)| rule == "live-unknown-instance"
            && m.contains(&stray)
            && m.contains("broker-99")),
        "a live-unknown-instance finding naming {stray} and broker-99: {live:?}"
    );

    // A stray broker is drained like any broker that leaves; no Kafka runs behind moto's
    // instances, so only the flag that accepts the loss of its replicas removes it.
    let refused = f.apply_refused(&t, &[]);
    assert!(
        refused.contains("Draining broker-99 before termination needs the running cluster"),
        "{refused}"
    );
    f.apply_lossy(&t);
    f.one_instance_per_node("extra", &nodes(3, 3));
    let (code, live) = live_check(&f, &t);
    assert_eq!((code, live), (Some(0), vec![]), "check passes again");
}

/// A stopped instance still stands for its node (apply leaves it alone), but `check` proves the
/// live cluster: a stopped broker or ZooKeeper member is down in its zone, and `check` said
/// "Result: OK" for it.
#[test]
fn check_reports_stopped_nodes() {
    let f = Fixture::new();
    let t = Topology::minimal("stopped");
    f.apply(&t);
    let running = f.one_instance_per_node("stopped", &nodes(3, 3));
    let stopped = vec![id(&running["zookeeper-1"]), id(&running["broker-1"])];
    f.ec2.stop(&stopped);

    let (code, live) = live_check(&f, &t);
    assert_eq!(code, Some(1), "check fails with stopped nodes: {live:?}");
    for node in ["zookeeper-1", "broker-1"] {
        assert!(
            live.iter()
                .any(|(_, m)| m.contains(node) && m.contains("stopped")),
            "a live finding says {node} is stopped: {live:?}"
        );
    }
}

#[test]
fn status_lists_every_node_with_its_live_instance() {
    let f = Fixture::new();
    let t = Topology::minimal("shown");
    f.apply(&t);
    let live = ids(&f.one_instance_per_node("shown", &nodes(3, 3)));
    let status = f
        .kc(["status", "--output", "json", "-f", &f.file(&t)])
        .run()
        .ok()
        .json();
    let rows: BTreeMap<String, (String, String, String, String)> = status["nodes"]
        .as_array()
        .expect("nodes[]")
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
            (
                s("node"),
                (s("instance_id"), s("state"), s("zone"), s("address")),
            )
        })
        .collect();
    let expected: BTreeMap<String, (String, String, String, String)> = live
        .iter()
        .map(|(node, id)| {
            let (zone, address) = default_placement(node);
            (node.clone(), (id.clone(), "running".into(), zone, address))
        })
        .collect();
    assert_eq!(rows, expected, "{status:#}");
}

/// An endpoint nothing listens on: kcluster retries a few times, then must say in one sentence
/// that it cannot reach the endpoint. It used to retry for about 50 s and print the SDK's Debug dump
/// (`DispatchFailure(DispatchFailure { source: ConnectorError { … } })`, src/ec2/sdk.rs `aws_error`).
#[test]
fn unreachable_endpoint_error_is_one_sentence_without_an_sdk_dump() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = Topology::minimal("nowhere").write(dir.path());
    let port = std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let run = Kc::new(&endpoint)
        .args(["plan", "-f", &file.display().to_string()])
        .run()
        .expect_code(1);
    let err = run.stderr.trim();
    assert!(
        err.contains("cannot reach the EC2 endpoint") && err.contains(&format!("127.0.0.1:{port}")),
        "names the endpoint it cannot reach:\n{err}"
    );
    assert!(
        err.lines().count() == 1 && !err.contains(" { ") && !err.contains("DispatchFailure("),
        "one sentence, no SDK dump:\n{err}"
    );
}

/// Ingress someone added by hand that opens the cluster to the world: the next plan must show
/// it and apply must revoke it. kcluster reads only TCP rules from IPv4 ranges or its own group
/// (src/ec2/sdk.rs `read_rules`), so an all-traffic or IPv6 rule stays, and plan says
/// "No changes".
#[test]
fn world_open_ingress_added_by_hand_is_revoked_by_apply() {
    use aws_sdk_ec2::types::{IpPermission, IpRange, Ipv6Range};
    let f = Fixture::new();
    let t = Topology::minimal("drift");
    f.apply(&t);
    let group = f.ec2.groups("drift")[0]
        .group_id()
        .expect("group")
        .to_string();
    let anywhere = || IpRange::builder().cidr_ip("0.0.0.0/0").build();
    f.ec2.authorize(
        &group,
        vec![
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(22)
                .to_port(22)
                .ip_ranges(anywhere())
                .build(),
            IpPermission::builder()
                .ip_protocol("-1")
                .ip_ranges(anywhere())
                .build(),
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(9092)
                .to_port(9092)
                .ipv6_ranges(Ipv6Range::builder().cidr_ipv6("::/0").build())
                .build(),
        ],
    );

    let plan = f
        .kc(["plan", "--detailed-exitcode", "-f", &f.file(&t)])
        .run()
        .expect_code(2);
    assert!(
        plan.stdout.contains("security_group.kcluster-drift"),
        "{}",
        plan.stdout
    );
    f.apply(&t);
    let open: Vec<String> = f.ec2.groups("drift")[0]
        .ip_permissions()
        .iter()
        .filter(|p| {
            p.ip_ranges()
                .iter()
                .any(|r| r.cidr_ip() == Some("0.0.0.0/0"))
                || p.ipv6_ranges()
                    .iter()
                    .any(|r| r.cidr_ipv6() == Some("::/0"))
        })
        .map(|p| {
            format!(
                "{:?}/{:?}-{:?}",
                p.ip_protocol(),
                p.from_port(),
                p.to_port()
            )
        })
        .collect();
    assert_eq!(
        open,
        Vec::<String>::new(),
        "ingress open to the world after apply"
    );
}

#[test]
fn missing_credentials_fail_with_one_clear_sentence() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let file: PathBuf = Topology::minimal("nocreds").write(dir.path());
    let file = file.display().to_string();
    for args in [
        vec!["plan", "-f", &file],
        vec!["apply", "--yes", "-f", &file],
        vec!["status", "-f", &file],
        vec!["check", "-f", &file],
        vec![
            "destroy",
            "--yes",
            "--cluster",
            "nocreds",
            "--region",
            "eu-west-1",
        ],
    ] {
        let run = Kc::without_credentials().args(&args).run().expect_code(1);
        let err = run.stderr.trim();
        let first = err.lines().next().unwrap_or_default();
        assert!(
            first.starts_with("error: no AWS credentials found")
                && first.contains("AWS_ACCESS_KEY_ID")
                && first.contains("profile"),
            "{args:?}: {err}"
        );
        // `check` adds one line pointing at --offline; nothing else prints more than the sentence.
        let extra: Vec<&str> = err.lines().skip(1).collect();
        assert!(
            extra.is_empty()
                || (args[0] == "check" && extra.len() == 1 && extra[0].contains("--offline")),
            "{args:?}: one sentence, no dump:\n{err}"
        );
        assert!(
            !err.contains("panicked") && !err.contains("Error {") && err.len() < 400,
            "{args:?}: no panic or SDK dump:\n{err}"
        );
    }
}

#[test]
fn strict_ec2_refuses_an_address_another_interface_holds_which_moto_accepts() {
    let f = Fixture::new();
    let subnet = f.ec2.default_subnet("eu-west-1a");
    let subnet = subnet.subnet_id().expect("a subnet id");
    f.ec2
        .try_create_interface(subnet, "172.31.0.77", None)
        .expect("the first interface on the address");
    assert_eq!(
        f.ec2.try_create_interface(subnet, "172.31.0.77", None),
        Err("InvalidIPAddress.InUse".to_string())
    );
    assert_eq!(f.mock.strict_stats()["strict"]["InvalidIPAddress.InUse"], 1);
}

#[test]
fn node_terminated_outside_kcluster_comes_back_on_the_next_apply() {
    let f = Fixture::new();
    let t = Topology::minimal("lost");
    f.apply(&t);
    let all = nodes(3, 3);
    let before = f.one_instance_per_node("lost", &all);
    let enis = f.one_interface_per_node("lost", &all);
    f.ec2.terminate(&id(&before["broker-2"]));

    // EC2 answers a launch with the last one's ClientToken with that (terminated) instance.
    f.apply(&t);
    let after = f.one_instance_per_node("lost", &all);
    assert_ne!(id(&after["broker-2"]), id(&before["broker-2"]));
    assert_eq!(f.one_interface_per_node("lost", &all), enis);
    assert_eq!(
        after["broker-2"]
            .network_interfaces()
            .first()
            .and_then(|n| n.network_interface_id()),
        Some(enis["broker-2"].0.as_str())
    );
}

/// Applies `t` through a proxy that drops EC2's answer to the first `action` (EC2 did the work;
/// the SDK retries); the apply must succeed without a second resource.
fn apply_with_dropped_answer(f: &Fixture, t: &Topology, action: &str) -> Run {
    let gate = Gate::drop_one_answer(f.mock.port(), action, 0);
    let run = Kc::new(&gate.endpoint())
        .args(["apply", "--yes", "--api-calls", "-f", &f.file(t)])
        .run();
    let counts = gate.counts();
    assert!(counts.errors.is_empty(), "the gate failed: {counts:?}");
    assert_eq!(counts.swallowed, 1, "{counts:?}");
    run.ok()
}

#[test]
fn dropped_answer_to_create_network_interface_is_retried_with_its_client_token() {
    let f = Fixture::new();
    let t = Topology::minimal("eniretry");
    apply_with_dropped_answer(&f, &t, "CreateNetworkInterface");
    // The SDK fills CreateNetworkInterface's ClientToken and sends the same one again.
    assert_eq!(f.mock.strict_stats()["strict"]["replayed"], 1);
    let all = nodes(3, 3);
    f.one_interface_per_node("eniretry", &all);
    f.one_instance_per_node("eniretry", &all);
}

#[test]
fn dropped_answer_to_create_security_group_adopts_the_group_kcluster_made() {
    let f = Fixture::new();
    let t = Topology::minimal("sgretry");
    apply_with_dropped_answer(&f, &t, "CreateSecurityGroup");
    assert_eq!(f.ec2.groups("sgretry").len(), 1);
    f.one_instance_per_node("sgretry", &nodes(3, 3));
}

#[test]
fn dropped_answer_to_authorize_ingress_counts_the_rules_as_added() {
    let f = Fixture::new();
    let t = Topology::minimal("ruleretry");
    apply_with_dropped_answer(&f, &t, "AuthorizeSecurityGroupIngress");
    f.one_instance_per_node("ruleretry", &nodes(3, 3));
    f.kc(["plan", "--detailed-exitcode", "-f", &f.file(&t)])
        .run()
        .ok();
}

#[test]
fn throttled_apply_paces_launches_to_ec2s_token_buckets_and_is_never_refused() {
    let f = Fixture::new();
    let t = Topology::minimal("paced").brokers(21);
    let started = std::time::Instant::now();
    f.apply(&t);
    let took = started.elapsed();
    f.one_instance_per_node("paced", &nodes(3, 21));
    let stats = f.mock.strict_stats();
    assert_eq!(
        stats["strict"].get("RequestLimitExceeded"),
        None,
        "kcluster waits for the bucket instead of being refused: {stats}"
    );
    // RunInstances: 24 launches from a bucket of 5 refilled at 2 per second.
    assert!(
        took >= Duration::from_secs_f64((24.0 - 5.0) / 2.0),
        "faster than EC2's RunInstances bucket allows: {took:?}"
    );
}

#[test]
fn a_second_apply_or_destroy_while_one_runs_is_refused_naming_the_holder() {
    let f = Fixture::new();
    let t = Topology::minimal("leased");
    let file = f.file(&t);
    // The first apply gets stuck: EC2 never answers its launches.
    let gate = Gate::start(f.mock.port(), "RunInstances", 0);
    let mut first = Kc::new(&gate.endpoint())
        .args(["apply", "--yes", "-f", &file])
        .start();
    gate.wait_until("the first apply to launch", Duration::from_secs(60), |c| {
        c.swallowed >= 1 || !c.errors.is_empty()
    });
    for command in ["apply", "destroy"] {
        let second = f.kc([command, "--yes", "-f", &file]).run().expect_code(1);
        for part in ["held by `kcluster apply` by ", " since ", "--break-lease"] {
            assert!(second.stderr.contains(part), "{part}: {}", second.stderr);
        }
    }
    assert!(first.is_running(), "the first apply went on undisturbed");
    first.kill();
    drop(gate);

    // The killed run's lease is left behind until someone breaks it.
    f.kc(["apply", "--yes", "-f", &file]).run().expect_code(1);
    f.kc(["apply", "--yes", "--break-lease", "-f", &file])
        .run()
        .ok();
    f.one_instance_per_node("leased", &nodes(3, 3));
    f.kc(["destroy", "--yes", "-f", &file]).run().ok();
}

#[test]
fn root_volume_goes_on_the_images_own_root_device() {
    let f = Fixture::new();
    // moto's SUSE image, whose root device is /dev/sda (AL2023's is /dev/xvda).
    let t = Topology::minimal("sles").image("ami-fa7cdd89");
    f.apply(&t);
    let instances = f.one_instance_per_node("sles", &nodes(3, 3));
    for (node, i) in &instances {
        let devices: Vec<&str> = i
            .block_device_mappings()
            .iter()
            .filter_map(|b| b.device_name())
            .collect();
        assert_eq!(devices, vec!["/dev/sda", "/dev/sdf"], "{node}");
        assert_eq!(i.root_device_name(), Some("/dev/sda"), "{node}");
    }
}

#[test]
fn plan_names_each_call_ec2_denies_before_anything_is_created() {
    let f = Fixture::with(Strictness {
        deny: vec![
            "CreateNetworkInterface",
            "RunInstances",
            "CreateVolume",
            "AttachVolume",
        ],
        ..Strictness::default()
    });
    let t = Topology::minimal("denied");
    let run = f
        .kc(["apply", "--yes", "-f", &f.file(&t)])
        .run()
        .expect_code(1);
    for op in [
        "CreateNetworkInterface",
        "RunInstances",
        "CreateVolume",
        "AttachVolume",
    ] {
        assert!(
            run.stderr
                .contains(&format!("ec2:{op} is denied to these credentials")),
            "{op}: {}",
            run.stderr
        );
    }
    assert!(
        !run.stderr.contains("CreateSecurityGroup"),
        "{}",
        run.stderr
    );
    assert!(f.ec2.groups("denied").is_empty(), "nothing was created");
}

#[test]
fn plan_refuses_an_instance_type_that_does_not_exist() {
    let f = Fixture::new();
    let t = Topology::minimal("bogus").broker_type("bogus.xlarge");
    let run = f.kc(["plan", "-f", &f.file(&t)]).run().expect_code(1);
    assert!(
        run.stderr
            .contains("instance type bogus.xlarge does not exist in eu-west-1"),
        "{}",
        run.stderr
    );
}
