//! The network kcluster creates (`network.create`: the quickstart, `topologies/minimal.yaml`),
//! against moto behind the strict EC2: planned, created with the nodes in its private subnets
//! behind NAT gateways, applied again without a change, finished without duplicates after an apply
//! killed while its NAT gateways were being made or after a lost answer to a creation that takes
//! no ClientToken, and destroyed in order, leaving alone a look-alike with kcluster's names but
//! not its tags. Every outcome is read from EC2 through the SDK.

use std::collections::BTreeMap;
use std::time::Duration;

use super::mock::{Gate, Kc, Topology, tag};
use super::{Fixture, apply_with_dropped_answer, nodes};

/// The cluster's network by `kcluster:network` key → id; exactly one of each key.
fn by_key(f: &Fixture, cluster: &str) -> BTreeMap<String, String> {
    let net = f.ec2.network(Some(cluster));
    let mut out = BTreeMap::new();
    let mut add = |tags: &[aws_sdk_ec2::types::Tag], id: Option<&str>| {
        let key = tag(tags, "kcluster:network")
            .unwrap_or("(none)")
            .to_string();
        let id = id.unwrap_or_default().to_string();
        assert!(
            out.insert(key.clone(), id).is_none(),
            "a second {key} in {cluster}'s network: {net:#?}"
        );
    };
    for v in &net.vpcs {
        add(v.tags(), v.vpc_id());
    }
    for s in &net.subnets {
        add(s.tags(), s.subnet_id());
    }
    for g in &net.gateways {
        add(g.tags(), g.internet_gateway_id());
    }
    for n in &net.nats {
        add(n.tags(), n.nat_gateway_id());
    }
    for t in &net.tables {
        add(t.tags(), t.route_table_id());
    }
    for e in &net.endpoints {
        add(e.tags(), e.vpc_endpoint_id());
    }
    for a in f.ec2.addresses(cluster) {
        add(a.tags(), a.allocation_id());
    }
    out
}

/// The network of a NAT gateway per zone over eu-west-1a, b and c: every `kcluster:network` key.
fn keys_per_zone() -> Vec<String> {
    let mut keys: Vec<String> = [
        "internet_gateway",
        "public_route_table",
        "s3_endpoint",
        "vpc",
    ]
    .map(String::from)
    .into();
    for zone in ["a", "b", "c"] {
        for kind in [
            "nat_address",
            "nat_gateway",
            "private_route_table",
            "private_subnet",
            "public_subnet",
        ] {
            keys.push(format!("{kind}.eu-west-1{zone}"));
        }
    }
    keys.sort();
    keys
}

#[test]
fn the_quickstart_makes_its_network_puts_its_nodes_behind_nat_and_destroy_removes_it_all() {
    let f = Fixture::new();
    // Someone's VPC, subnet, gateway and NAT gateway with the very names kcluster gives its
    // own, without the cluster's tag. moto answers DescribeNatGateways without applying the tag
    // filter, so kcluster sees that NAT gateway and must tell it from its own by its tags.
    let (look_alike, subnets) = f
        .ec2
        .create_vpc("10.42.0.0/16", &[("eu-west-1a", "10.42.0.0/20")]);
    f.ec2.tag_resource(&look_alike, &[("Name", "net-vpc")]);
    f.ec2
        .tag_resource(&subnets[0], &[("Name", "net-private-eu-west-1a")]);
    let nat = f.ec2.nat_gateway(&subnets[0]);
    f.ec2.tag_resource(&nat, &[("Name", "net-nat-eu-west-1a")]);
    let before = f.ec2.network(None);
    assert_eq!(before.nats.len(), 1);

    let t = Topology::quickstart("net");
    let plan = f.kc(["plan", "-f", &f.file(&t)]).run().ok();
    for line in [
        "+   network.vpc                              10.42.0.0/16, DNS resolution and hostnames on",
        "+   network.nat_gateway.eu-west-1b           in subnet-(new public eu-west-1b)",
        "egress eu-west-1c (subnet-(new private eu-west-1c), rtb-(new private eu-west-1c)): 0.0.0.0/0 via NAT gateway nat-(new eu-west-1c)",
        "Plan: 38 to add, 0 to change, 0 to destroy.",
    ] {
        assert!(plan.stdout.contains(line), "{line}\n{}", plan.stdout);
    }
    assert!(!plan.stdout.contains("public_address."), "{}", plan.stdout);

    let applied = f.apply(&t);
    let calls = applied.api_calls();
    for (call, n) in [
        ("CreateVpc", 1),
        ("CreateSubnet", 6),
        ("CreateNatGateway", 3),
        ("AllocateAddress", 3),
        ("CreateRouteTable", 4),
        ("CreateVpcEndpoint", 1),
    ] {
        assert_eq!(calls.get(call), Some(&n), "{call}: {calls:?}");
    }
    let keys = by_key(&f, "net");
    assert_eq!(keys.keys().cloned().collect::<Vec<_>>(), keys_per_zone());
    let net = f.ec2.network(Some("net"));
    let vpc = &keys["vpc"];
    assert_eq!(net.vpcs[0].cidr_block(), Some("10.42.0.0/16"));
    assert_eq!(
        f.ec2.vpc_dns(vpc),
        (true, true),
        "DNS support and hostnames"
    );
    assert_eq!(
        net.gateways[0]
            .attachments()
            .iter()
            .filter_map(|a| a.vpc_id())
            .collect::<Vec<_>>(),
        [vpc.as_str()]
    );
    for s in &net.subnets {
        let key = tag(s.tags(), "kcluster:network").unwrap_or_default();
        let expected = match key {
            "private_subnet.eu-west-1a" => "10.42.0.0/20",
            "private_subnet.eu-west-1b" => "10.42.16.0/20",
            "private_subnet.eu-west-1c" => "10.42.32.0/20",
            "public_subnet.eu-west-1a" => "10.42.240.0/24",
            "public_subnet.eu-west-1b" => "10.42.241.0/24",
            _ => "10.42.242.0/24",
        };
        assert_eq!(s.cidr_block(), Some(expected), "{key}");
        assert_eq!(s.vpc_id(), Some(vpc.as_str()));
    }
    for n in &net.nats {
        let zone = tag(n.tags(), "kcluster:network")
            .unwrap_or_default()
            .replace("nat_gateway.", "");
        assert_eq!(
            n.subnet_id(),
            Some(keys[&format!("public_subnet.{zone}")].as_str())
        );
        assert_eq!(
            n.nat_gateway_addresses()[0].allocation_id(),
            Some(keys[&format!("nat_address.{zone}")].as_str())
        );
    }
    for t in &net.tables {
        let key = tag(t.tags(), "kcluster:network").unwrap_or_default();
        let route = t
            .routes()
            .iter()
            .find(|r| r.destination_cidr_block() == Some("0.0.0.0/0"))
            .unwrap_or_else(|| panic!("{key} has a default route"));
        let associated: Vec<&str> = t
            .associations()
            .iter()
            .filter_map(|a| a.subnet_id())
            .collect();
        match key.strip_prefix("private_route_table.") {
            Some(zone) => {
                assert_eq!(
                    route.nat_gateway_id(),
                    Some(keys[&format!("nat_gateway.{zone}")].as_str()),
                    "{key}: its own zone's NAT gateway"
                );
                assert_eq!(
                    associated,
                    [keys[&format!("private_subnet.{zone}")].as_str()]
                );
            }
            None => {
                assert_eq!(route.gateway_id(), Some(keys["internet_gateway"].as_str()));
                assert_eq!(associated.len(), 3, "{key}");
            }
        }
    }
    let endpoint = &net.endpoints[0];
    assert_eq!(endpoint.service_name(), Some("com.amazonaws.eu-west-1.s3"));
    let mut on: Vec<&str> = endpoint
        .route_table_ids()
        .iter()
        .map(String::as_str)
        .collect();
    on.sort_unstable();
    let mut private: Vec<&str> = ["a", "b", "c"]
        .iter()
        .map(|z| keys[&format!("private_route_table.eu-west-1{z}")].as_str())
        .collect();
    private.sort_unstable();
    assert_eq!(
        on, private,
        "the S3 endpoint is on every private route table"
    );

    // The nodes: in their zone's private subnet, with no public address of their own.
    let all = nodes(3, 3);
    f.one_instance_per_node("net", &all);
    for n in f.ec2.interfaces("net") {
        let zone = n.availability_zone().unwrap_or_default();
        assert_eq!(
            n.subnet_id(),
            Some(keys[&format!("private_subnet.{zone}")].as_str()),
            "{n:?}"
        );
        assert!(n.association().is_none(), "no public address: {n:?}");
    }
    assert!(
        f.ec2
            .addresses("net")
            .iter()
            .all(|a| tag(a.tags(), "kcluster:node").is_none()),
        "only the NAT gateways have Elastic IPs"
    );

    // Again: nothing to do, nothing created.
    let again = f.apply(&t);
    let calls = again.api_calls();
    let created: Vec<&String> = calls
        .keys()
        .filter(|k| {
            k.starts_with("Create") || k.starts_with("Allocate") || k.starts_with("Associate")
        })
        .collect();
    assert!(created.is_empty(), "{created:?}");
    assert_eq!(by_key(&f, "net"), keys, "the same network");

    let gone = f.kc(["destroy", "--yes", "-f", &f.file(&t)]).run().ok();
    for line in [
        "  - nat_gateway        ",
        "  - vpc                ",
        "19 resources of the network kcluster created of cluster net.",
    ] {
        assert!(gone.stdout.contains(line), "{line}\n{}", gone.stdout);
    }
    assert_eq!(f.ec2.network(Some("net")).count(), 0, "the network is gone");
    assert!(
        f.ec2.addresses("net").is_empty(),
        "its Elastic IPs released"
    );
    let after = f.ec2.network(None);
    assert_eq!(
        (
            after.vpcs.len(),
            after.subnets.len(),
            after.gateways.len(),
            after.nats.len()
        ),
        (
            before.vpcs.len(),
            before.subnets.len(),
            before.gateways.len(),
            1
        ),
        "what was there before, the look-alike included, is still there"
    );
    assert_eq!(after.nats[0].nat_gateway_id(), Some(nat.as_str()));
    assert_eq!(
        f.ec2.all_addresses().len(),
        1,
        "the look-alike NAT gateway's address"
    );
    assert!(
        after
            .vpcs
            .iter()
            .any(|v| v.vpc_id() == Some(look_alike.as_str()))
            && after
                .subnets
                .iter()
                .any(|s| s.subnet_id() == Some(subnets[0].as_str())),
        "the look-alike is left alone"
    );
}

#[test]
fn apply_killed_while_creating_nat_gateways_is_finished_without_a_second_of_anything() {
    let f = Fixture::new();
    let t = Topology::quickstart("natkill");
    // The first NAT gateway is answered; EC2 makes the second, but kcluster never hears of it.
    let gate = Gate::start(f.mock.port(), "CreateNatGateway", 1);
    let mut child = Kc::new(&gate.endpoint())
        .args(["apply", "--yes", "--parallelism", "1", "-f", &f.file(&t)])
        .start();
    gate.wait_until(
        "kcluster to be stuck in CreateNatGateway",
        Duration::from_secs(60),
        |c| c.answered == 1 && c.swallowed == 1 || !c.errors.is_empty(),
    );
    let still_running = child.is_running();
    child.kill();
    let counts = gate.counts();
    drop(gate);
    assert!(counts.errors.is_empty(), "the gate failed: {counts:?}");
    assert!(still_running, "kcluster finished without its NAT gateway");
    let net = f.ec2.network(Some("natkill"));
    assert_eq!(
        (
            net.vpcs.len(),
            net.subnets.len(),
            net.nats.len(),
            net.tables.len()
        ),
        (1, 6, 2, 0),
        "killed between NAT gateways: {net:#?}"
    );

    let calls = f.apply_after_kill(&t).api_calls();
    assert_eq!(calls.get("CreateNatGateway"), Some(&1), "{calls:?}");
    for call in [
        "CreateVpc",
        "CreateSubnet",
        "CreateInternetGateway",
        "AllocateAddress",
    ] {
        assert_eq!(calls.get(call), None, "{call}: {calls:?}");
    }
    assert_eq!(
        by_key(&f, "natkill").keys().cloned().collect::<Vec<_>>(),
        keys_per_zone()
    );
    f.one_instance_per_node("natkill", &nodes(3, 3));
    f.kc(["plan", "--detailed-exitcode", "-f", &f.file(&t)])
        .run()
        .ok();
}

#[test]
fn a_lost_answer_to_create_vpc_or_create_subnet_adopts_what_ec2_made() {
    // Neither takes a ClientToken: resent, each would make a second one.
    for (action, cluster) in [("CreateVpc", "vpcretry"), ("CreateSubnet", "subnetretry")] {
        let f = Fixture::new();
        let t = Topology::quickstart(cluster).one_nat();
        apply_with_dropped_answer(&f, &t, action);
        let keys = by_key(&f, cluster);
        assert_eq!(keys.len(), 15, "{action}: {keys:?}");
        let all = f.ec2.network(None);
        assert_eq!(
            all.vpcs.len(),
            2,
            "{action}: the default VPC and the cluster's"
        );
        assert_eq!(
            all.subnets.len(),
            3 + 6,
            "{action}: the default subnets and the cluster's six"
        );
        f.kc(["plan", "--detailed-exitcode", "-f", &f.file(&t)])
            .run()
            .ok();
    }
}
