//! The example topologies in `topologies/`: each says what it shows in its opening comment, and
//! `kcluster validate` accepts each with exactly the warnings it is meant to show (its own and
//! the rack-awareness rules of `check`).

use crate::support::{example_topologies, kcluster, repo};
use kcluster::cluster::Role;

#[test]
fn every_example_opens_with_a_comment_saying_what_it_shows() {
    for path in example_topologies() {
        let text = std::fs::read_to_string(&path).expect("readable");
        assert!(
            text.starts_with("# "),
            "{} has no opening comment",
            path.display()
        );
    }
}

#[test]
fn every_example_validates_with_exactly_its_documented_warnings() {
    for path in example_topologies() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let output = kcluster()
            .current_dir(repo().join("topologies"))
            .args(["validate", "-f", &name])
            .output()
            .expect("kcluster runs");
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(output.status.code(), Some(0), "{name}:\n{stderr}");
        let expected = match name.as_str() {
            "two-zones.yaml" => "\
two-zones.yaml:10:1: warning: zones: only 2 availability zones: whichever zone holds the ZooKeeper majority takes the quorum down with it (accepted: `accept_zone_loss: true`)
  help: use 3 zones so that ZooKeeper and acks=all writes survive losing any one
two-zones.yaml:18:5: warning: brokers.overrides.default.replication.factor: replication factor 3 is greater than the 2 availability zones: some partitions keep two replicas in one zone
  help: add a zone, or accept that losing that zone takes two replicas of those partitions
two-zones.yaml: warning: [writes-survive-az-loss] losing us-west-1b or us-west-1c can take 2 of a partition's 3 replicas, leaving 1, below min.insync.replicas=2: acks=all producers to such a partition get NotEnoughReplicas until the AZ is back (accepted: `accept_zone_loss: true`)
  help: spread brokers evenly over at least 3 AZs so no AZ holds more than 1 replica of a partition, or lower min.insync.replicas to 1 (fewer copies guaranteed per write)
two-zones.yaml: 0 errors, 3 warnings
",
            _ => "",
        };
        assert_eq!(stderr, expected, "{name}");
    }
}

#[test]
fn production_example_is_the_shape_it_claims() {
    let c = crate::support::load(&crate::support::topology("production.yaml"));
    assert_eq!(c.zookeepers().count(), 3);
    assert_eq!(c.brokers().count(), 6);
    assert_eq!(c.zones.len(), 3);
    assert!(c.network.vpc_id.is_some());
    assert!(c.zones.iter().all(|z| z.subnet_id.is_some()));
    for zone in c.zone_names() {
        assert_eq!(c.brokers().filter(|b| b.zone == zone).count(), 2, "{zone}");
    }
    let volume = c.roles[&Role::Broker]
        .volume
        .as_ref()
        .expect("brokers have a data volume");
    assert!(volume.iops > 3000 && volume.throughput_mibps > 125);
    assert!(c.network.ssh.as_ref().is_some_and(|s| !s.cidrs.is_empty()));
    assert!(!c.tags.is_empty());
}

/// `validate` and `check --offline` give every example, and the two-zone layout without its
/// acceptance, the same verdict: a file `validate` calls valid is one `apply`'s closing check
/// passes, and a layout `check` fails is refused before anything is built.
#[test]
fn validate_and_check_agree_on_every_example_and_on_an_unaccepted_two_zone_layout() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let unaccepted = dir.path().join("two-zones-unaccepted.yaml");
    let two_zones =
        std::fs::read_to_string(repo().join("topologies/two-zones.yaml")).expect("example");
    std::fs::write(
        &unaccepted,
        two_zones.replace("accept_zone_loss: true\n", ""),
    )
    .expect("file");
    let mut files = example_topologies();
    files.push(unaccepted.clone());
    for path in files {
        let code = |args: &[&str]| {
            kcluster()
                .args(args)
                .arg("-f")
                .arg(&path)
                .output()
                .expect("kcluster runs")
                .status
                .code()
        };
        let validate = code(&["validate"]);
        let check = code(&["check", "--offline"]);
        let render = code(&[
            "render",
            "--out",
            &dir.path().join("out").display().to_string(),
        ]);
        assert_eq!(
            validate,
            check,
            "{}: validate and check --offline disagree",
            path.display()
        );
        assert_eq!(
            validate,
            render,
            "{}: validate and render disagree",
            path.display()
        );
        let expected = if path == unaccepted { 1 } else { 0 };
        assert_eq!(validate, Some(expected), "{}", path.display());
    }
}
