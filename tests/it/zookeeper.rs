//! A real ZooKeeper ensemble — the ZooKeeper Kafka bundles, started the way the rendered unit
//! starts it — booted from the `zookeeper.properties` and `myid` kcluster renders: the quorum
//! forms, replicates, survives losing a minority and stops serving when it loses the majority.

use kcluster::cluster::Role;

use crate::local::{LIMIT, LocalCluster, clients, zk};
use crate::support;

#[test]
fn three_node_ensemble_survives_losing_one_member_and_stops_serving_without_two() {
    prove_ensemble("zookeeper-3.yaml", 3);
}

#[test]
fn five_node_ensemble_survives_losing_two_members_and_stops_serving_without_three() {
    prove_ensemble("zookeeper-5.yaml", 5);
}

/// Boots the fixture's ensemble, then: a quorum forms; a write through one member reads back from
/// every other; the leader is killed again and again while a majority is left, and each time a new
/// leader takes over with every write so far intact; after the loss that leaves a minority, the
/// remaining members say they are not serving.
fn prove_ensemble(fixture: &str, size: usize) {
    let cluster = support::load(&support::repo().join("tests/it/fixtures").join(fixture));
    let mut ensemble = LocalCluster::render(&cluster);
    ensemble.start_role(Role::Zookeeper);
    assert_eq!(
        ensemble.running(Role::Zookeeper).len(),
        size,
        "{fixture}: ensemble size"
    );

    let mut leader = ensemble.wait_for_zookeeper_quorum();
    let mut written = vec![write_and_read_back(
        &mut ensemble,
        "/kcluster-test",
        "hello",
        &leader,
    )];

    let tolerated = (size - 1) / 2;
    for loss in 1..=tolerated {
        ensemble.kill(&leader);
        let old = leader;
        leader = ensemble.wait_for_zookeeper_quorum();
        assert_ne!(leader, old);
        for (path, data) in &written {
            for m in members(&ensemble) {
                wait_to_read(&mut ensemble, &m, path, data);
            }
        }
        let path = format!("/kcluster-after-loss-{loss}");
        written.push(write_and_read_back(
            &mut ensemble,
            &path,
            "still-serving",
            &leader,
        ));
    }

    ensemble.kill(&leader);
    ensemble.wait("the remaining members to stop serving", LIMIT, |e| {
        let answers: Vec<(String, Result<String, String>)> = e
            .running(Role::Zookeeper)
            .iter()
            .map(|m| (m.name.clone(), zk::four_letter(m.address, "srvr")))
            .collect();
        if answers
            .iter()
            .all(|(_, a)| a.as_deref().is_ok_and(|a| a.trim() == zk::NOT_SERVING))
        {
            Ok(())
        } else {
            Err(format!("{answers:?}"))
        }
    });
}

fn members(ensemble: &LocalCluster) -> Vec<String> {
    ensemble
        .running(Role::Zookeeper)
        .iter()
        .map(|m| m.name.clone())
        .collect()
}

fn server(ensemble: &LocalCluster, member: &str) -> String {
    format!("{}:2181", ensemble.node(member).address)
}

/// Creates `path` with `data` through a running member other than `avoid` (so a follower
/// forwards it to the leader), then reads it back from every other running member.
fn write_and_read_back(
    ensemble: &mut LocalCluster,
    path: &str,
    data: &str,
    avoid: &str,
) -> (String, String) {
    let live = members(ensemble);
    let writer = live
        .iter()
        .find(|m| *m != avoid)
        .expect("two running members")
        .clone();
    let out = clients::zk_shell(&server(ensemble, &writer), &["create", path, data]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() || !text.contains(&format!("Created {path}")) {
        ensemble.fail(&format!(
            "zkCli create {path} through {writer} failed ({}):\n{text}",
            out.status
        ));
    }
    for m in live.iter().filter(|m| **m != writer) {
        wait_to_read(ensemble, m, path, data);
    }
    (path.to_string(), data.to_string())
}

/// Waits until `path` reads as `data` through `member` (followers apply commits shortly after
/// the leader acknowledges them, so the first read may be early).
fn wait_to_read(ensemble: &mut LocalCluster, member: &str, path: &str, data: &str) {
    let what = format!("{path} to read \"{data}\" through {member}");
    let server = server(ensemble, member);
    ensemble.wait(&what, LIMIT, |_| {
        let out = clients::zk_shell(&server, &["get", path]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        if out.status.success() && stdout.lines().any(|l| l == data) {
            Ok(())
        } else {
            Err(format!(
                "{}: {stdout}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    })
}
