//! Golden plans: what `plan` prints for the quickstart (`topologies/minimal.yaml`, a network
//! kcluster creates) in an empty account, and for the same cluster going from a NAT gateway per
//! zone to one, against the in-process fake EC2 (its ids are deterministic), snapshotted with
//! insta in `tests/it/snapshots/`. After an intended change:
//! `INSTA_UPDATE=always cargo test --test it plan_golden`, then read the diff of the `.snap` files.

use kcluster::ec2::fake::FakeEc2;
use kcluster::progress::Silent;
use kcluster::provision::apply::{Gates, Settings, execute};
use kcluster::provision::plan::Plan;
use kcluster::provision::workflow::make_plan;
use kcluster::render::{Options, Renderer};

use crate::support;

fn plan(ec2: &FakeEc2, yaml: &str) -> Plan {
    let cluster = match kcluster::topology::load("minimal.yaml", yaml.as_bytes()) {
        Ok(l) => l.cluster,
        Err(r) => panic!("{r}"),
    };
    let renderer = Renderer::new(&Options::default()).expect("templates");
    runtime()
        .block_on(make_plan(ec2, &cluster, &renderer))
        .unwrap_or_else(|e| panic!("{e}"))
        .0
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn quickstart() -> String {
    std::fs::read_to_string(support::topology("minimal.yaml")).expect("minimal.yaml")
}

#[test]
fn the_quickstarts_plan_in_an_empty_account_matches_its_snapshot() {
    let ec2 = FakeEc2::eu_west_1();
    let p = plan(&ec2, &quickstart());
    insta::assert_snapshot!("minimal__plan", p.render_text());
    let json = serde_json::to_string_pretty(&p.to_json()).expect("JSON");
    insta::assert_snapshot!("minimal__plan_json", json);
}

#[test]
fn going_from_a_nat_gateway_per_zone_to_one_matches_its_snapshot() {
    let ec2 = FakeEc2::eu_west_1();
    let first = plan(&ec2, &quickstart());
    let settings = Settings {
        poll: std::time::Duration::ZERO,
        ..Settings::default()
    };
    runtime()
        .block_on(ec2.while_time_passes(execute(
            &ec2,
            &first,
            &settings,
            &Gates::skipped(),
            &Silent,
        )))
        .unwrap_or_else(|e| panic!("{e}"));
    let one = quickstart().replace(
        "    cidr: 10.42.0.0/16\n",
        "    cidr: 10.42.0.0/16\n    nat: one\n",
    );
    assert!(one.contains("nat: one"), "minimal.yaml changed shape");
    insta::assert_snapshot!("minimal__plan_to_one_nat", plan(&ec2, &one).render_text());
}
