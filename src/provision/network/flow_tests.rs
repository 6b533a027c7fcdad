//! The managed network end to end against the fake EC2: planned, applied, planned again (no
//! change), interrupted and finished, changed (NAT mode, a zone, DNS, a NAT gateway deleted by
//! hand), refused (renumbering, a foreign resource with the cluster's tag), and destroyed in
//! order, leaving a look-alike that is not kcluster's alone.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::cluster::Cluster;
use crate::ec2::fake::FakeEc2;
use crate::ec2::network::{Ec2Network, NatState};
use crate::ec2::{Ec2, Tags, describe_calls, tags};
use crate::progress::Silent;
use crate::provision::apply::{Gates, Settings, execute};
use crate::provision::destroy::{Inventory, destroy};
use crate::provision::egress::Egress;
use crate::provision::plan::{Action, Plan};
use crate::provision::workflow::make_plan;
use crate::render::{Options, Renderer};

/// An account whose region has zones a, b and c (and a default VPC kcluster leaves alone).
fn fake() -> FakeEc2 {
    FakeEc2::eu_west_1()
}

fn load(yaml: &str) -> Cluster {
    match crate::topology::load("test.yaml", yaml.as_bytes()) {
        Ok(l) => l.cluster,
        Err(r) => panic!("{r}"),
    }
}

/// A cluster in a network kcluster creates, over `zones` (letters of eu-west-1).
fn managed(name: &str, nat: &str, zones: &str, brokers: u32) -> Cluster {
    let zones: String = zones
        .chars()
        .map(|z| format!("  - name: eu-west-1{z}\n"))
        .collect();
    let accept = if zones.lines().count() < 3 {
        "accept_zone_loss: true\n"
    } else {
        ""
    };
    load(&format!(
        "name: {name}\nregion: eu-west-1\n{accept}zones:\n{zones}brokers:\n  count: {brokers}\nnetwork:\n  create:\n    cidr: 10.42.0.0/16\n    nat: {nat}\n"
    ))
}

/// Short waits: the fake's time passes with every call.
fn settings() -> Settings {
    Settings {
        poll: Duration::ZERO,
        timeout: Duration::from_secs(5),
        ..Settings::default()
    }
}

async fn plan_for(ec2: &FakeEc2, c: &Cluster) -> Plan {
    let r = Renderer::new(&Options::default()).expect("templates");
    make_plan(ec2, c, &r).await.expect("plan").0
}

async fn apply(ec2: &FakeEc2, plan: &Plan) -> Result<(), crate::provision::apply::ApplyError> {
    ec2.while_time_passes(execute(ec2, plan, &settings(), &Gates::skipped(), &Silent))
        .await
        .map(|_| ())
}

async fn converge(ec2: &FakeEc2, c: &Cluster) -> Plan {
    let plan = plan_for(ec2, c).await;
    apply(ec2, &plan).await.expect("apply");
    plan
}

fn key(t: &Tags) -> String {
    t.get(tags::NETWORK).cloned().unwrap_or_default()
}

/// The network kcluster made, as key → id, exactly one of each (fails otherwise).
fn network(ec2: &FakeEc2, cluster: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let ours = |t: &Tags| t.get(tags::CLUSTER).map(String::as_str) == Some(cluster);
    let mut add = |t: &Tags, id: &str| {
        if ours(t) {
            assert!(
                out.insert(key(t), id.to_string()).is_none(),
                "a second {}",
                key(t)
            );
        }
    };
    for v in ec2.vpcs() {
        add(&v.tags, &v.id);
    }
    for s in ec2.net_subnets() {
        add(&s.tags, &s.id);
    }
    for g in ec2.internet_gateways() {
        add(&g.tags, &g.id);
    }
    for n in ec2.nat_gateways().iter().filter(|n| n.state.is_live()) {
        add(&n.tags, &n.id);
    }
    for a in ec2
        .addresses()
        .iter()
        .filter(|a| a.tags.contains_key(tags::NETWORK))
    {
        add(&a.tags, &a.allocation_id);
    }
    for t in ec2.net_route_tables() {
        add(&t.tags, &t.id);
    }
    for e in ec2.vpc_endpoints().iter().filter(|e| e.is_live()) {
        add(&e.tags, &e.id);
    }
    out
}

const PER_ZONE: [&str; 19] = [
    "internet_gateway",
    "nat_address.eu-west-1a",
    "nat_address.eu-west-1b",
    "nat_address.eu-west-1c",
    "nat_gateway.eu-west-1a",
    "nat_gateway.eu-west-1b",
    "nat_gateway.eu-west-1c",
    "private_route_table.eu-west-1a",
    "private_route_table.eu-west-1b",
    "private_route_table.eu-west-1c",
    "private_subnet.eu-west-1a",
    "private_subnet.eu-west-1b",
    "private_subnet.eu-west-1c",
    "public_route_table",
    "public_subnet.eu-west-1a",
    "public_subnet.eu-west-1b",
    "public_subnet.eu-west-1c",
    "s3_endpoint",
    "vpc",
];

#[tokio::test]
async fn plan_lists_the_whole_network_and_puts_the_nodes_in_private_subnets_behind_nat() {
    let ec2 = fake();
    let c = managed("net", "per-zone", "abc", 3);
    let plan = plan_for(&ec2, &c).await;
    let net = plan.network.as_ref().expect("a network plan");
    let created: Vec<String> = net
        .changes
        .iter()
        .filter(|c| c.action == Action::Create)
        .map(|c| c.key.tag())
        .collect();
    let mut sorted = created.clone();
    sorted.sort();
    assert_eq!(sorted, PER_ZONE);
    assert_eq!(created[0], "vpc", "in creation order");
    assert_eq!(
        plan.summary().add,
        19 + 1 + 6 + 6 + 6,
        "the network, the group, and per node an interface, a volume and an instance"
    );
    let text = plan.render_text();
    for line in [
        "+   network.vpc                              10.42.0.0/16, DNS resolution and hostnames on",
        "+   network.private_subnet.eu-west-1b        10.42.16.0/20 in eu-west-1b",
        "+   network.public_subnet.eu-west-1c         10.42.242.0/24 in eu-west-1c",
        "egress eu-west-1a (subnet-(new private eu-west-1a), rtb-(new private eu-west-1a)): 0.0.0.0/0 via NAT gateway nat-(new eu-west-1a)",
    ] {
        assert!(text.contains(line), "{line}\n{text}");
    }
    assert!(
        !text.contains("public_address."),
        "no Elastic IP per node behind NAT:\n{text}"
    );
    for e in &plan.egress {
        assert!(matches!(e.egress, Egress::NatGateway(_)), "{e}");
    }
    for n in &plan.nodes {
        assert!(!n.desired.public_address);
        assert!(
            n.desired.subnet_id.starts_with("subnet-(new private "),
            "{}",
            n.desired.subnet_id
        );
    }
    // Nothing was created by planning.
    assert!(ec2.vpcs().is_empty() && ec2.nat_gateways().is_empty());
}

#[tokio::test]
async fn apply_creates_the_network_then_the_nodes_in_it_and_a_second_plan_changes_nothing() {
    let ec2 = fake();
    let c = managed("net", "per-zone", "abc", 3);
    converge(&ec2, &c).await;
    let net = network(&ec2, "net");
    assert_eq!(net.keys().map(String::as_str).collect::<Vec<_>>(), PER_ZONE);
    // Every node's interface is in its zone's private subnet, behind its zone's NAT gateway.
    for n in ec2.interfaces() {
        let zone = n.zone.clone();
        assert_eq!(n.subnet_id, net[&format!("private_subnet.{zone}")], "{n:?}");
        assert_eq!(n.vpc_id, net["vpc"]);
    }
    assert!(
        ec2.addresses()
            .iter()
            .all(|a| a.tags.contains_key(tags::NETWORK)),
        "no node has an Elastic IP"
    );
    for t in ec2.net_route_tables() {
        let k = key(&t.tags);
        let route = t.default_route.as_ref().expect("a default route");
        let (target, subnet) = match k.strip_prefix("private_route_table.") {
            Some(zone) => (
                format!("nat_gateway.{zone}"),
                vec![net[&format!("private_subnet.{zone}")].clone()],
            ),
            None => (
                "internet_gateway".to_string(),
                ["a", "b", "c"]
                    .iter()
                    .map(|z| net[&format!("public_subnet.eu-west-1{z}")].clone())
                    .collect(),
            ),
        };
        assert_eq!(route.target, net[&target], "{k}");
        let associated: Vec<String> = t.associations.iter().map(|(_, s)| s.clone()).collect();
        assert_eq!(associated, subnet, "{k}");
    }
    for n in ec2.nat_gateways() {
        let zone = key(&n.tags).replace("nat_gateway.", "");
        assert_eq!(n.subnet_id, net[&format!("public_subnet.{zone}")]);
        assert_eq!(
            n.allocation_id.as_deref(),
            Some(net[&format!("nat_address.{zone}")].as_str())
        );
    }
    let endpoint = &ec2.vpc_endpoints()[0];
    assert_eq!(endpoint.service, "com.amazonaws.eu-west-1.s3");
    let mut private: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|z| net[&format!("private_route_table.eu-west-1{z}")].clone())
        .collect();
    private.sort();
    let mut on = endpoint.route_tables.clone();
    on.sort();
    assert_eq!(
        on, private,
        "the S3 endpoint is on every private route table"
    );
    let vpc = &ec2.vpcs()[0];
    assert_eq!(
        vpc.tags.get(tags::NAME).map(String::as_str),
        Some("net-vpc")
    );
    let dns = ec2.vpc_dns(&vpc.id).await.expect("dns");
    assert!(dns.support && dns.hostnames);

    let calls = ec2.calls();
    let again = plan_for(&ec2, &c).await;
    assert!(!again.has_changes(), "{}", again.render_text());
    let mutating: u64 = ec2
        .calls()
        .iter()
        .filter(|(k, _)| {
            !k.starts_with("Describe") && k.as_str() != "DryRun" && k.as_str() != "GetParameter"
        })
        .map(|(k, v)| v - calls.get(k).copied().unwrap_or(0))
        .sum();
    assert_eq!(mutating, 0, "planning changes nothing");
}

#[tokio::test]
async fn one_nat_gateway_carries_every_zone_and_switching_modes_adds_or_removes_the_others() {
    let ec2 = fake();
    let one = managed("nat1", "one", "abc", 3);
    converge(&ec2, &one).await;
    let net = network(&ec2, "nat1");
    let nats: Vec<&String> = net.keys().filter(|k| k.starts_with("nat_")).collect();
    assert_eq!(nats, ["nat_address.eu-west-1a", "nat_gateway.eu-west-1a"]);
    for t in ec2.net_route_tables() {
        if key(&t.tags).starts_with("private_route_table.") {
            assert_eq!(
                t.default_route.map(|r| r.target),
                Some(net["nat_gateway.eu-west-1a"].clone())
            );
        }
    }

    // one → per-zone: two NAT gateways more, and the routes of b and c move to them.
    let per_zone = managed("nat1", "per-zone", "abc", 3);
    let plan = plan_for(&ec2, &per_zone).await;
    let text = plan.render_text();
    assert!(
        text.contains("~   network.private_route_table.eu-west-1b (rtb-")
            && text.contains("0.0.0.0/0 → nat-(new eu-west-1b) (was nat-"),
        "{text}"
    );
    assert_eq!(plan.summary().add, 4, "{text}");
    assert_eq!(plan.summary().change, 2, "{text}");
    apply(&ec2, &plan).await.expect("apply");
    let net = network(&ec2, "nat1");
    assert_eq!(net.keys().filter(|k| k.starts_with("nat_")).count(), 6);
    assert!(!plan_for(&ec2, &per_zone).await.has_changes());

    // per-zone → one: routes move back first, then the two gateways and their addresses go.
    let plan = plan_for(&ec2, &one).await;
    assert_eq!(plan.summary().destroy, 4, "{}", plan.render_text());
    apply(&ec2, &plan).await.expect("apply");
    let after = network(&ec2, "nat1");
    assert_eq!(after.keys().filter(|k| k.starts_with("nat_")).count(), 2);
    assert_eq!(
        ec2.nat_gateways()
            .iter()
            .filter(|n| n.state == NatState::Deleted)
            .count(),
        2
    );
    assert!(!plan_for(&ec2, &one).await.has_changes());
}

#[tokio::test]
async fn an_apply_interrupted_while_creating_the_network_is_finished_without_duplicates() {
    for (operation, ok) in [
        ("CreateSubnet", 4),
        ("CreateNatGateway", 1),
        ("CreateRouteTable", 2),
        ("CreateRoute", 2),
        ("AssociateRouteTable", 3),
        ("CreateVpcEndpoint", 0),
        ("AttachInternetGateway", 0),
        ("ModifyVpcAttribute", 1),
    ] {
        let ec2 = fake();
        let c = managed("halted", "per-zone", "abc", 3);
        ec2.fail_after(operation, ok);
        let plan = plan_for(&ec2, &c).await;
        let e = apply(&ec2, &plan).await.expect_err("fails");
        assert!(e.to_string().contains(operation), "{operation}: {e}");
        converge(&ec2, &c).await;
        let net = network(&ec2, "halted");
        assert_eq!(
            net.keys().map(String::as_str).collect::<Vec<_>>(),
            PER_ZONE,
            "{operation}"
        );
        let again = plan_for(&ec2, &c).await;
        assert!(!again.has_changes(), "{operation}: {}", again.render_text());
        assert_eq!(ec2.instances().len(), 6, "{operation}");
    }
}

#[tokio::test]
async fn a_lost_answer_to_a_creation_without_client_token_adopts_what_ec2_made() {
    for operation in [
        "CreateVpc",
        "CreateSubnet",
        "CreateInternetGateway",
        "AllocateAddress",
    ] {
        let ec2 = fake();
        let c = managed("lost", "one", "abc", 3);
        ec2.lose_answer(operation);
        converge(&ec2, &c).await;
        // `network` fails on a second one of any key.
        assert_eq!(network(&ec2, "lost").len(), 15, "{operation}");
        assert_eq!(ec2.vpcs().len(), 1, "{operation}");
        assert!(!plan_for(&ec2, &c).await.has_changes(), "{operation}");
    }
}

#[tokio::test]
async fn a_nat_gateway_deleted_by_hand_is_made_again_with_a_new_token_and_routes_follow() {
    let ec2 = fake();
    let c = managed("mended", "per-zone", "abc", 3);
    converge(&ec2, &c).await;
    let old = network(&ec2, "mended")["nat_gateway.eu-west-1b"].clone();
    ec2.delete_nat_by_hand(&old);
    for _ in 0..5 {
        ec2.find_nat_gateways("mended").await.expect("time passes");
    }
    let plan = plan_for(&ec2, &c).await;
    let text = plan.render_text();
    assert!(
        text.contains("+   network.nat_gateway.eu-west-1b")
            && text.contains("1 earlier one deleted or failed")
            && text.contains(&format!("0.0.0.0/0 → nat-(new eu-west-1b) (was {old})")),
        "{text}"
    );
    apply(&ec2, &plan).await.expect("apply");
    let new = network(&ec2, "mended")["nat_gateway.eu-west-1b"].clone();
    assert_ne!(
        new, old,
        "EC2 would answer the old token with the deleted gateway"
    );
    assert!(!plan_for(&ec2, &c).await.has_changes());
}

#[tokio::test]
async fn dns_hostnames_turned_off_by_hand_are_turned_on_again() {
    let ec2 = fake();
    let c = managed("dns", "one", "abc", 3);
    converge(&ec2, &c).await;
    let vpc = ec2.vpcs()[0].id.clone();
    ec2.disable_dns_hostnames(&vpc);
    let plan = plan_for(&ec2, &c).await;
    assert!(
        plan.render_text()
            .contains(&format!("~   network.vpc ({vpc})")),
        "{}",
        plan.render_text()
    );
    apply(&ec2, &plan).await.expect("apply");
    assert!(ec2.vpc_dns(&vpc).await.expect("dns").hostnames);
}

#[tokio::test]
async fn a_zone_taken_out_loses_its_nodes_then_its_subnets_tables_and_nat_gateway() {
    let ec2 = fake();
    converge(&ec2, &managed("shrink", "per-zone", "abc", 3)).await;
    let two = managed("shrink", "per-zone", "ab", 2);
    let plan = plan_for(&ec2, &two).await;
    let orphans: Vec<String> = plan
        .network
        .as_ref()
        .expect("network")
        .orphans
        .iter()
        .map(|o| o.key.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        orphans,
        [
            "public_subnet.eu-west-1c",
            "private_subnet.eu-west-1c",
            "nat_address.eu-west-1c",
            "nat_gateway.eu-west-1c",
            "private_route_table.eu-west-1c"
        ]
    );
    // broker-3 leaves with its zone; no Kafka runs behind the fake to drain it.
    let lossy = Gates {
        moves: crate::operations::drain::Moves {
            accept_data_loss: true,
            ..Default::default()
        },
        ..Gates::skipped()
    };
    ec2.while_time_passes(execute(&ec2, &plan, &settings(), &lossy, &Silent))
        .await
        .expect("apply");
    let net = network(&ec2, "shrink");
    assert!(!net.keys().any(|k| k.ends_with("eu-west-1c")), "{net:?}");
    assert!(!plan_for(&ec2, &two).await.has_changes());
}

#[tokio::test]
async fn another_cidr_is_refused_kcluster_does_not_renumber_a_network() {
    let ec2 = fake();
    converge(&ec2, &managed("fixed", "one", "abc", 3)).await;
    let moved = load(
        "name: fixed\nregion: eu-west-1\nzones:\n  - name: eu-west-1a\n  - name: eu-west-1b\n  - name: eu-west-1c\nnetwork:\n  create:\n    cidr: 10.50.0.0/16\n    nat: one\n",
    );
    let r = Renderer::new(&Options::default()).expect("templates");
    let e = make_plan(&ec2, &moved, &r).await.expect_err("refused");
    let text = e.to_string();
    assert!(
        text.contains("network.create.cidr: the cluster's VPC vpc-")
            && text.contains(
                "is 10.42.0.0/16, not 10.50.0.0/16; kcluster does not renumber a network"
            ),
        "{text}"
    );
}

#[tokio::test]
async fn a_network_resource_with_the_cluster_tag_that_kcluster_did_not_make_is_refused() {
    let ec2 = fake();
    let c = managed("guarded", "one", "abc", 3);
    converge(&ec2, &c).await;
    let stray = ec2.insert_vpc(
        "10.99.0.0/16",
        Tags::from([
            (tags::CLUSTER.to_string(), "guarded".to_string()),
            (tags::NAME.to_string(), "guarded-vpc".to_string()),
        ]),
    );
    let r = Renderer::new(&Options::default()).expect("templates");
    let e = make_plan(&ec2, &c, &r).await.expect_err("refused");
    assert!(
        e.to_string().contains(&format!(
            "VPC {stray} (Name guarded-vpc) carries kcluster:cluster=guarded without the kcluster:network tag"
        )),
        "{e}"
    );
    let inv = Inventory::read(&ec2, "guarded").await.expect("inventory");
    assert_eq!(inv.foreign_network.len(), 1);
    assert!(!inv.network.vpcs.iter().any(|v| v.id == stray));
}

#[tokio::test]
async fn destroy_removes_the_network_in_order_and_leaves_a_look_alike_alone() {
    let ec2 = fake();
    let c = managed("gone", "per-zone", "abc", 3);
    converge(&ec2, &c).await;
    // Someone's VPC with the very Name kcluster gives its own, but not its tags.
    let look_alike = ec2.insert_vpc(
        "10.42.0.0/16",
        Tags::from([(tags::NAME.to_string(), "gone-vpc".to_string())]),
    );
    let inv = Inventory::read(&ec2, "gone").await.expect("inventory");
    let text = inv.render_text();
    assert_eq!(inv.network.count(), 19, "{text}");
    for kind in [
        "vpc_endpoint",
        "nat_gateway",
        "elastic_ip",
        "internet_gateway",
        "subnet",
        "route_table",
        "vpc",
    ] {
        assert!(text.contains(&format!("  - {kind:<18} ")), "{kind}\n{text}");
    }
    assert!(
        text.contains(
            "1 security group, 19 resources of the network kcluster created of cluster gone."
        ),
        "{text}"
    );
    assert!(!text.contains(&look_alike), "{text}");
    ec2.while_time_passes(destroy(&ec2, &inv, &settings(), &Silent))
        .await
        .expect("destroy");
    assert!(network(&ec2, "gone").is_empty());
    assert!(
        Inventory::read(&ec2, "gone")
            .await
            .expect("inventory")
            .is_empty()
    );
    assert_eq!(
        ec2.vpcs().iter().map(|v| v.id.as_str()).collect::<Vec<_>>(),
        [look_alike.as_str()],
        "only the look-alike is left"
    );
    assert!(
        ec2.addresses().is_empty(),
        "the NAT gateways' Elastic IPs are released"
    );
}

#[tokio::test]
async fn destroy_must_wait_for_the_nat_gateways_to_be_deleted_before_releasing_their_addresses() {
    // With the wait taken out, EC2 refuses to release an address its NAT gateway still holds.
    let ec2 = fake();
    converge(&ec2, &managed("hasty", "one", "abc", 3)).await;
    let inv = Inventory::read(&ec2, "hasty").await.expect("inventory");
    let hasty = Settings {
        skip_detach_wait: true,
        ..settings()
    };
    let e = ec2
        .while_time_passes(destroy(&ec2, &inv, &hasty, &Silent))
        .await
        .expect_err("refused");
    assert!(
        e.to_string()
            .contains("ReleaseAddress: AuthFailure: You do not have permission"),
        "{e}"
    );
    let inv = Inventory::read(&ec2, "hasty").await.expect("inventory");
    ec2.while_time_passes(destroy(&ec2, &inv, &settings(), &Silent))
        .await
        .expect("destroy with the wait");
    assert!(network(&ec2, "hasty").is_empty());
}

#[tokio::test]
async fn plan_makes_the_same_describe_calls_for_6_and_30_nodes_in_a_managed_network() {
    let mut counts = Vec::new();
    for brokers in [3, 27] {
        let ec2 = fake();
        let c = managed("sized", "per-zone", "abc", brokers);
        converge(&ec2, &c).await;
        let before = describe_calls(&ec2.calls());
        assert!(!plan_for(&ec2, &c).await.has_changes());
        counts.push(describe_calls(&ec2.calls()) - before);
    }
    assert_eq!(
        counts,
        vec![18, 18],
        "groups, interfaces, instances, volumes, addresses, zones; VPCs, its two DNS attributes, subnets, internet gateways, NAT gateways, route tables, endpoints; image, type offerings, types, interfaces holding the nodes' addresses"
    );
}

#[tokio::test]
async fn preflight_dry_runs_the_network_calls_and_names_each_one_denied() {
    let ec2 = fake();
    ec2.deny("CreateNatGateway");
    ec2.deny("CreateVpcEndpoint");
    let c = managed("denied", "one", "abc", 3);
    let r = Renderer::new(&Options::default()).expect("templates");
    let e = make_plan(&ec2, &c, &r)
        .await
        .expect_err("refused")
        .to_string();
    for op in ["CreateNatGateway", "CreateVpcEndpoint"] {
        assert!(
            e.contains(&format!("ec2:{op} is denied to these credentials")),
            "{op}: {e}"
        );
    }
    assert!(ec2.vpcs().is_empty(), "nothing was created");
}
