//! Golden tests of rendering: every file of every node of every example topology, snapshotted with
//! insta in `tests/it/snapshots/`; rendering is deterministic; `--templates` replaces one file only.
//!
//! After an intended change, review and accept the new output with
//! `INSTA_UPDATE=always cargo test --test it render_golden` and read the diff of the `.snap` files.

use std::collections::BTreeMap;
use std::path::Path;

use kcluster::render::monitoring;
use kcluster::render::{self, NodeRender, Options, Renderer};

use crate::support::{example_topologies, kcluster, load, topology};

/// The example's name: its file name without `.yaml`.
fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn render(path: &Path) -> Vec<NodeRender> {
    let cluster = load(path);
    let renderer = Renderer::new(&Options::default()).expect("built-in templates load");
    renderer.render_all(&cluster).expect("example renders")
}

/// Every file a node gets, by name, with user-data decompressed when it was gzipped.
fn node_files(n: &NodeRender) -> BTreeMap<String, String> {
    let mut files: BTreeMap<String, String> = n
        .files
        .iter()
        .map(|f| (f.name.clone(), f.content.clone()))
        .collect();
    let user_data = render::user_data_text(&n.user_data).expect("user-data is text");
    files.insert("user-data".to_string(), user_data);
    files
}

#[test]
fn every_rendered_file_of_every_example_matches_its_snapshot() {
    let examples = example_topologies();
    assert!(
        examples.len() >= 3,
        "expected minimal, production, connect and two-zones: {examples:?}"
    );
    for path in examples {
        let name = stem(&path);
        for node in render(&path) {
            for (file, content) in node_files(&node) {
                // The monitoring node's alert rules and dashboard are monitoring/'s files
                // verbatim (monitoring.rs asserts it); their snapshots would only repeat them.
                if file == monitoring::ALERTS_FILE || file == monitoring::DASHBOARD_FILE {
                    continue;
                }
                insta::assert_snapshot!(format!("{name}__{}__{file}", node.node), content);
            }
        }
    }
}

#[test]
fn every_node_gets_the_files_of_its_role() {
    for path in example_topologies() {
        for node in render(&path) {
            let names: Vec<String> = node_files(&node).into_keys().collect();
            let expected: &[&str] = if node.node.starts_with("monitoring-") {
                &[
                    "alertmanager.service",
                    "alertmanager.yml",
                    "bootstrap.sh",
                    "grafana-dashboard.json",
                    "kcluster-alerts.yml",
                    "node-exporter.service",
                    "prometheus.service",
                    "prometheus.yml",
                    "sysctl.conf",
                    "user-data",
                ]
            } else if node.node.starts_with("zookeeper-") {
                &[
                    "bootstrap.sh",
                    "jmx-exporter.yaml",
                    "myid",
                    "node-exporter.service",
                    "sysctl.conf",
                    "user-data",
                    "zookeeper.properties",
                    "zookeeper.service",
                ]
            } else if node.node.starts_with("controller-") {
                &[
                    "bootstrap.sh",
                    "controller.properties",
                    "jmx-exporter.yaml",
                    "kafka.service",
                    "node-exporter.service",
                    "sysctl.conf",
                    "user-data",
                ]
            } else if node.node.starts_with("connect-") {
                &[
                    "bootstrap.sh",
                    "connect-distributed.properties",
                    "jmx-exporter.yaml",
                    "kafka-connect.service",
                    "node-exporter.service",
                    "sysctl.conf",
                    "user-data",
                ]
            } else {
                &[
                    "bootstrap.sh",
                    "jmx-exporter.yaml",
                    "kafka.service",
                    "node-exporter.service",
                    "server.properties",
                    "sysctl.conf",
                    "user-data",
                ]
            };
            assert_eq!(names, expected, "{} of {}", node.node, path.display());
        }
    }
}

#[test]
fn rendering_twice_gives_the_same_bytes() {
    for path in example_topologies() {
        let first = render(&path);
        let second = render(&path);
        assert_eq!(first, second, "{}", path.display());
        for (a, b) in first.iter().zip(&second) {
            assert_eq!(a.user_data, b.user_data, "{} of {}", a.node, path.display());
        }
    }
}

/// Every file under `dir`, by path relative to it.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for node in std::fs::read_dir(dir).expect("render output") {
        let node = node.expect("entry").path();
        for file in std::fs::read_dir(&node).expect("node directory") {
            let file = file.expect("entry").path();
            let rel = file
                .strip_prefix(dir)
                .expect("under dir")
                .to_string_lossy()
                .into_owned();
            out.insert(rel, std::fs::read(&file).expect("readable"));
        }
    }
    out
}

#[test]
fn cli_render_writes_what_the_library_renders() {
    let out = tempfile::tempdir().expect("temp dir");
    let topo = topology("production.yaml");
    kcluster()
        .args(["render", "-f"])
        .arg(&topo)
        .arg("--out")
        .arg(out.path())
        .assert()
        .success();
    let written = tree(out.path());
    let mut expected = BTreeMap::new();
    for node in render(&topo) {
        for f in &node.files {
            expected.insert(
                format!("{}/{}", node.node, f.name),
                f.content.clone().into_bytes(),
            );
        }
        let ud = if node.user_data_gzipped {
            "user-data.gz"
        } else {
            "user-data"
        };
        expected.insert(format!("{}/{ud}", node.node), node.user_data.clone());
    }
    assert_eq!(
        written.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    assert!(written == expected, "CLI output differs from the library's");
}

#[test]
fn templates_dir_overriding_one_template_changes_only_that_file() {
    let topo = topology("minimal.yaml");
    let plain = tempfile::tempdir().expect("temp dir");
    kcluster()
        .args(["render", "-f"])
        .arg(&topo)
        .arg("--out")
        .arg(plain.path())
        .assert()
        .success();

    let templates = tempfile::tempdir().expect("temp dir");
    let marker = "# overridden by the test";
    std::fs::write(
        templates.path().join("sysctl.conf.j2"),
        format!("{marker}\nvm.swappiness=10\n"),
    )
    .expect("write template");
    let custom = tempfile::tempdir().expect("temp dir");
    kcluster()
        .args(["render", "-f"])
        .arg(&topo)
        .arg("--out")
        .arg(custom.path())
        .arg("--templates")
        .arg(templates.path())
        .assert()
        .success();

    // user-data is gzipped only past EC2's limit, which a shorter template can go back under:
    // compare it decompressed, under one name.
    let plain_text = |t: BTreeMap<String, Vec<u8>>| -> BTreeMap<String, Vec<u8>> {
        t.into_iter()
            .map(|(k, v)| match k.strip_suffix(".gz") {
                Some(name) => (
                    name.to_string(),
                    kcluster::render::user_data_text(&v).unwrap().into_bytes(),
                ),
                None => (k, v),
            })
            .collect()
    };
    let (a, b) = (
        plain_text(tree(plain.path())),
        plain_text(tree(custom.path())),
    );
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    let changed: Vec<&String> = a.keys().filter(|k| a[*k] != b[*k]).collect();
    // The template's own file changes on every node, and so does user-data, which carries it.
    let mut expected = Vec::new();
    for node in ["broker-1", "broker-2", "broker-3"].iter().chain(&[
        "zookeeper-1",
        "zookeeper-2",
        "zookeeper-3",
    ]) {
        expected.push(format!("{node}/sysctl.conf"));
        // A broker's user-data is over EC2's limit raw, so it is written gzipped.
        let gzipped = a.contains_key(&format!("{node}/user-data.gz"));
        expected.push(format!(
            "{node}/user-data{}",
            if gzipped { ".gz" } else { "" }
        ));
    }
    expected.sort();
    assert_eq!(changed, expected.iter().collect::<Vec<_>>());
    for node in ["broker-1", "zookeeper-1"] {
        let sysctl = String::from_utf8(b[&format!("{node}/sysctl.conf")].clone()).unwrap();
        assert_eq!(sysctl, format!("{marker}\nvm.swappiness=10\n"));
        let ud = match b.get(&format!("{node}/user-data.gz")) {
            Some(gz) => render::user_data_text(gz).expect("gzipped user-data"),
            None => String::from_utf8(b[&format!("{node}/user-data")].clone()).unwrap(),
        };
        assert!(
            ud.contains(marker),
            "user-data of {node} carries the new file"
        );
    }
}

#[test]
fn templates_dir_with_an_unknown_template_is_refused() {
    let templates = tempfile::tempdir().expect("temp dir");
    std::fs::write(templates.path().join("server.props.j2"), "x").expect("write");
    let out = tempfile::tempdir().expect("temp dir");
    let assert = kcluster()
        .args(["render", "-f"])
        .arg(topology("minimal.yaml"))
        .arg("--out")
        .arg(out.path())
        .arg("--templates")
        .arg(templates.path())
        .assert()
        .failure();
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(
        stderr.contains("server.props.j2 is not a kcluster template"),
        "{stderr}"
    );
}
