//! How nodes reach the internet, against moto behind the strict EC2: a subnet routed to an
//! internet gateway gets one tagged Elastic IP per node interface (found again by tag, never a
//! second, released by destroy), a NAT gateway needs none, a zone with no way out is refused by
//! plan, and an Elastic IP with the cluster's tag that kcluster did not make is left alone.

use std::collections::BTreeMap;

use super::mock::{Topology, tag};
use super::{Fixture, apply_with_dropped_answer, nodes};

/// node → (allocation id, the interface it is associated with), of the cluster's Elastic IPs;
/// exactly one per node.
fn address_per_node(f: &Fixture, cluster: &str) -> BTreeMap<String, (String, String)> {
    let mut out = BTreeMap::new();
    for a in f.ec2.addresses(cluster) {
        let node = tag(a.tags(), "kcluster:node")
            .unwrap_or("(none)")
            .to_string();
        let v = (
            a.allocation_id().unwrap_or_default().to_string(),
            a.network_interface_id().unwrap_or("(none)").to_string(),
        );
        assert!(
            out.insert(node.clone(), v).is_none(),
            "{node} of {cluster} has a second Elastic IP"
        );
    }
    out
}

#[test]
fn quickstart_nodes_each_get_an_elastic_ip_on_their_interface_and_destroy_releases_them() {
    // Regression: every node launched on an interface made beforehand, which EC2 gives no public
    // address; in a default VPC (internet gateway, no NAT) no node could install Kafka.
    let f = Fixture::new();
    let t = Topology::minimal("egress");
    let plan = f.kc(["plan", "-f", &f.file(&t)]).run().ok();
    assert!(
        plan.stdout.contains("0.0.0.0/0 via internet gateway igw-")
            && plan.stdout.contains("+   public_address.broker-1 "),
        "{}",
        plan.stdout
    );
    f.apply(&t);
    let all = nodes(3, 3);
    let enis = f.one_interface_per_node("egress", &all);
    let addresses = address_per_node(&f, "egress");
    assert_eq!(
        addresses.keys().collect::<Vec<_>>(),
        enis.keys().collect::<Vec<_>>()
    );
    for (node, (_, eni)) in &addresses {
        assert_eq!(eni, &enis[node].0, "{node}'s address is on its interface");
    }
    for n in f.ec2.interfaces("egress") {
        assert!(
            n.association().and_then(|a| a.public_ip()).is_some(),
            "{n:?} has a public address"
        );
    }

    // Found again by tag: a second apply allocates nothing.
    let again = f.apply(&t);
    assert_eq!(again.api_calls().get("AllocateAddress"), None);
    assert_eq!(address_per_node(&f, "egress"), addresses);

    let run = f.kc(["destroy", "--yes", "-f", &f.file(&t)]).run().ok();
    assert!(
        run.stdout.contains("elastic_ip ")
            && run
                .stdout
                .contains("6 network interfaces, 6 Elastic IPs, 1 security group"),
        "{}",
        run.stdout
    );
    assert!(f.ec2.addresses("egress").is_empty());
    assert!(
        f.ec2.all_addresses().is_empty(),
        "released, not only untagged"
    );
}

#[test]
fn zones_behind_a_nat_gateway_need_no_elastic_ip() {
    let f = Fixture::new();
    let vpc = f.ec2.default_vpc();
    let public = f.ec2.default_subnet("eu-west-1a");
    let public = public.subnet_id().expect("a subnet id");
    let nat = f.ec2.nat_gateway(public);
    for zone in ["eu-west-1b", "eu-west-1c"] {
        let s = f.ec2.default_subnet(zone);
        f.ec2
            .route_subnet(&vpc, s.subnet_id().expect("a subnet id"), Some(&nat));
    }
    let before = f.ec2.all_addresses().len();
    let t = Topology::minimal("natted");
    f.apply(&t);
    assert_eq!(
        address_per_node(&f, "natted").keys().collect::<Vec<_>>(),
        ["broker-1", "zookeeper-1"],
        "only eu-west-1a routes to the internet gateway"
    );
    assert_eq!(f.ec2.all_addresses().len(), before + 2);
}

#[test]
fn a_zone_without_a_route_to_the_internet_is_refused_by_plan_and_nothing_is_created() {
    let f = Fixture::new();
    let vpc = f.ec2.default_vpc();
    let c = f.ec2.default_subnet("eu-west-1c");
    let c = c.subnet_id().expect("a subnet id");
    f.ec2.route_subnet(&vpc, c, None);
    let t = Topology::minimal("island");
    let file = f.file(&t);
    for args in [
        vec!["plan", "-f", &file],
        vec!["apply", "--yes", "-f", &file],
    ] {
        let run = f.kc([]).args(&args).run().expect_code(1);
        let line =
            format!("zone eu-west-1c: subnet {c} has no route to the internet (route table rtb-");
        assert!(run.stderr.contains(&line), "{args:?}: {}", run.stderr);
        assert!(
            run.stderr
                .contains("add a 0.0.0.0/0 route to a NAT gateway"),
            "{}",
            run.stderr
        );
    }
    assert!(f.ec2.groups("island").is_empty(), "nothing was created");
    assert!(f.ec2.all_addresses().is_empty());
}

#[test]
fn dropped_answer_to_allocate_address_adopts_the_address_ec2_made() {
    // AllocateAddress takes no ClientToken: resent after a lost answer, it makes a second one.
    let f = Fixture::new();
    let t = Topology::minimal("eipretry");
    apply_with_dropped_answer(&f, &t, "AllocateAddress");
    assert_eq!(address_per_node(&f, "eipretry").len(), 6);
    assert_eq!(f.ec2.all_addresses().len(), 6, "no untagged second address");
    f.kc(["plan", "--detailed-exitcode", "-f", &f.file(&t)])
        .run()
        .ok();
}

#[test]
fn an_elastic_ip_with_the_cluster_tag_that_kcluster_did_not_make_is_refused_and_kept() {
    let f = Fixture::new();
    let t = Topology::minimal("guarded");
    f.apply(&t);
    let stray = f
        .ec2
        .allocate_address(&[("kcluster:cluster", "guarded"), ("Name", "bastion-ip")]);
    let file = f.file(&t);
    for args in [
        vec!["plan", "-f", &file],
        vec!["apply", "--yes", "-f", &file],
        vec!["destroy", "--yes", "-f", &file],
    ] {
        let run = f.kc([]).args(&args).run().expect_code(1);
        assert!(
            run.stderr
                .contains(&format!("Elastic IP {stray} (Name bastion-ip, "))
                && run
                    .stderr
                    .contains("kcluster will not adopt, change or delete them"),
            "{args:?}: {}",
            run.stderr
        );
    }
    assert!(
        f.ec2
            .all_addresses()
            .iter()
            .any(|a| a.allocation_id() == Some(stray.as_str())),
        "the stray address is kept"
    );
    // The node's six, and the stray one (under "(none)": it names no node).
    assert_eq!(address_per_node(&f, "guarded").len(), 7);
}
