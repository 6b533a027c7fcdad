//! The rendered files put through the programs that read them: cloud-init's schema check,
//! `systemd-analyze verify`, `shellcheck`, bash, and Kafka's own broker config definitions; for
//! every example topology and a generated 99-node cluster. Each check reports every problem at once.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kcluster::cluster::Cluster;
use kcluster::kafka::config::BrokerConfigs;
use kcluster::render::exporters;
use kcluster::render::{self, NodeFile, NodeRender, Options, Renderer};

use crate::support;

/// EC2's user-data limit: 16 KiB as sent, before base64 (gzipped user-data counts compressed).
const EC2_USER_DATA_LIMIT: usize = 16_384;
/// How long one run of a checking tool may take.
const TOOL_LIMIT: Duration = Duration::from_secs(120);

/// One topology and everything its nodes get.
struct Rendered {
    /// Where the topology came from, for messages.
    source: String,
    cluster: Cluster,
    nodes: Vec<NodeRender>,
}

/// Every example topology, a 99-node cluster (3 ZooKeeper nodes, 96 brokers, and 2 monitoring nodes), a cluster whose
/// brokers' user-data is only small enough gzipped, and one with values full of characters that
/// are special somewhere; rendered as `kcluster render` does.
fn corpus() -> Vec<Rendered> {
    let examples = support::example_topologies();
    assert!(!examples.is_empty(), "topologies/ has no example topology");
    let mut clusters: Vec<(String, Cluster)> = examples
        .iter()
        .map(|p| (p.display().to_string(), support::load(p)))
        .collect();
    clusters.push(("a generated 99-node cluster".into(), ninety_nine_nodes()));
    clusters.push((
        "a generated cluster with gzipped user-data".into(),
        long_cipher_list(),
    ));
    clusters.push((
        "a generated cluster with awkward values".into(),
        awkward_values(),
    ));
    let renderer = Renderer::new(&Options::default()).expect("templates load");
    clusters
        .into_iter()
        .map(|(source, cluster)| {
            let nodes = renderer
                .render_all(&cluster)
                .unwrap_or_else(|e| panic!("{source}: {e}"));
            Rendered {
                source,
                cluster,
                nodes,
            }
        })
        .collect()
}

/// 3 ZooKeeper nodes and 96 brokers, watched by 2 monitoring nodes (whose Prometheus
/// configuration lists all 101 nodes).
fn ninety_nine_nodes() -> Cluster {
    let cluster = support::load_str(
        "\
name: ninety-nine
region: eu-west-1
zones:
  - {name: eu-west-1a, cidr: 172.31.0.0/20}
  - {name: eu-west-1b, cidr: 172.31.16.0/20}
  - {name: eu-west-1c, cidr: 172.31.32.0/20}
zookeeper:
  count: 3
brokers:
  count: 96
monitoring:
  count: 2
",
    );
    assert_eq!(cluster.nodes.len(), 101);
    cluster
}

/// A cluster whose brokers' `server.properties` carry a 12 KB cipher list: their user-data is
/// over EC2's limit raw, so kcluster gzips it.
fn long_cipher_list() -> Cluster {
    let suites = ["TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"; 320].join(",");
    support::load_str(&format!(
        "\
name: gzipped
region: eu-west-1
zones:
  - {{name: eu-west-1a, cidr: 172.31.0.0/20}}
  - {{name: eu-west-1b, cidr: 172.31.16.0/20}}
  - {{name: eu-west-1c, cidr: 172.31.32.0/20}}
brokers:
  overrides:
    ssl.cipher.suites: {suites}
"
    ))
}

/// Values that the topology accepts and that are special to bash, Java properties or YAML.
const AWKWARD_URL: &str = "https://mirror.example/kafka.tgz?sig=a$b&x=`id`&q=\"'\\";
const AWKWARD_VALUE: &str =
    " leading blank, tab\there, back\\slash, new\nline, é, 日本, 🙂, \u{7}bell, # = : !";

/// A cluster whose Kafka URL and a broker override hold `AWKWARD_URL` and `AWKWARD_VALUE`.
fn awkward_values() -> Cluster {
    let quoted = |s: &str| serde_json::to_string(s).expect("JSON string");
    let cluster = support::load_str(&format!(
        "\
name: awkward
region: eu-west-1
zones:
  - {{name: eu-west-1a, cidr: 172.31.0.0/20}}
  - {{name: eu-west-1b, cidr: 172.31.16.0/20}}
  - {{name: eu-west-1c, cidr: 172.31.32.0/20}}
kafka:
  url: {}
  sha512: {}
brokers:
  overrides:
    sasl.kerberos.service.name: {}
",
        quoted(AWKWARD_URL),
        "ab".repeat(64),
        quoted(AWKWARD_VALUE),
    ));
    assert_eq!(cluster.kafka.url, AWKWARD_URL);
    assert_eq!(
        cluster.broker_settings["sasl.kerberos.service.name"],
        AWKWARD_VALUE
    );
    cluster
}

/// Every rendered file called `name`, labelled `<source> <node>`.
fn files_named<'a>(corpus: &'a [Rendered], name: &str) -> Vec<(String, &'a NodeFile)> {
    corpus
        .iter()
        .flat_map(|r| {
            r.nodes.iter().filter_map(move |n| {
                n.file(name)
                    .map(|f| (format!("{} {}", r.source, n.node), f))
            })
        })
        .collect()
}

/// Fails with every problem found, one per line.
fn assert_no_problems(check: &str, problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{check}: {} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

// ---- cloud-init -------------------------------------------------------------------------------

const CLOUD_INIT: &str = "apt-get install --no-install-recommends cloud-init";

#[test]
fn every_user_data_passes_cloud_init_schema_and_fits_ec2() {
    let cloud_init = support::require_tool("cloud-init", CLOUD_INIT);
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut problems = Vec::new();
    let (mut checked, mut gzipped) = (0, 0);
    for (i, r) in corpus().iter().enumerate() {
        for node in &r.nodes {
            let label = format!("{} {}", r.source, node.node);
            gzipped += usize::from(node.user_data_gzipped);
            if node.user_data.len() > EC2_USER_DATA_LIMIT {
                problems.push(format!(
                    "{label}: user-data is {} bytes; EC2 takes at most {EC2_USER_DATA_LIMIT}",
                    node.user_data.len()
                ));
            }
            if node.user_data_gzipped != node.user_data.starts_with(&[0x1f, 0x8b]) {
                problems.push(format!("{label}: gzipped flag does not match the bytes"));
            }
            // cloud-init decompresses gzipped user-data itself; its schema check does not.
            let text = match render::user_data_text(&node.user_data) {
                Ok(t) => t,
                Err(e) => {
                    problems.push(format!("{label}: user-data does not decode: {e}"));
                    continue;
                }
            };
            let file = dir.path().join(format!("{i}-{}.user-data", node.node));
            std::fs::write(&file, text).expect("write user-data");
            if let Some(problem) = cloud_init_schema(&cloud_init, &file) {
                problems.push(format!("{label}: {problem}"));
            }
            checked += 1;
        }
    }
    assert!(checked >= 99, "only {checked} user-data documents checked");
    assert!(gzipped > 0, "no gzipped user-data was checked");
    assert_no_problems("cloud-init schema", &problems);
}

/// What `cloud-init schema` says about a user-data file, unless it says exactly that it is valid.
fn cloud_init_schema(cloud_init: &Path, file: &Path) -> Option<String> {
    let out = support::run_bounded(
        Command::new(cloud_init)
            .args(["schema", "--config-file"])
            .arg(file),
        TOOL_LIMIT,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let valid = format!("Valid cloud-config: {}\n", file.display());
    if out.status.success() && stdout == valid && stderr.is_empty() {
        None
    } else {
        Some(format!("{}: {stdout}{stderr}", out.status))
    }
}

/// cloud-init writes what the YAML says, so the YAML must say exactly the rendered files: the
/// literal blocks' indentation and chomping must give back each file byte for byte.
#[test]
fn every_user_data_writes_exactly_the_rendered_files_then_runs_the_bootstrap() {
    let mut problems = Vec::new();
    for r in corpus() {
        for node in &r.nodes {
            let label = format!("{} {}", r.source, node.node);
            let text = render::user_data_text(&node.user_data).expect("user-data decodes");
            let doc: serde_yaml::Value = match serde_yaml::from_str(&text) {
                Ok(d) => d,
                Err(e) => {
                    problems.push(format!("{label}: not YAML: {e}"));
                    continue;
                }
            };
            let written: Vec<(String, String, String)> = doc["write_files"]
                .as_sequence()
                .map(|entries| {
                    entries
                        .iter()
                        .map(|e| {
                            let s = |k: &str| e[k].as_str().unwrap_or("<missing>").to_string();
                            (s("path"), s("permissions"), s("content"))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let expected: Vec<(String, String, String)> = node
                .files
                .iter()
                .map(|f| (f.path.clone(), f.mode.clone(), f.content.clone()))
                .collect();
            if written != expected {
                problems.push(format!(
                    "{label}: write_files differ from the rendered files:\n  written:  {written:?}\n  rendered: {expected:?}"
                ));
            }
            let runcmd = serde_yaml::to_string(&doc["runcmd"]).unwrap_or_default();
            let expected_runcmd = format!("- - {}\n", render::BOOTSTRAP_PATH);
            if runcmd != expected_runcmd {
                problems.push(format!(
                    "{label}: runcmd is {runcmd:?}, expected {expected_runcmd:?}"
                ));
            }
        }
    }
    assert_no_problems("user-data contents", &problems);
}

// ---- systemd ----------------------------------------------------------------------------------

const SYSTEMD: &str = "apt-get install --no-install-recommends systemd";
/// The systemd units shipped with the OS, needed under the verification root.
const HOST_UNITS: &str = "/usr/lib/systemd/system";
/// The scripts of Kafka's `bin/` that kcluster's units run; the bootstrap installs them from the
/// Kafka tarball, so the verification root gets stand-ins (a misspelled name still fails).
const KAFKA_SCRIPTS: &[&str] = &[
    "connect-distributed.sh",
    "kafka-run-class.sh",
    "kafka-server-start.sh",
    "kafka-server-stop.sh",
    "zookeeper-server-start.sh",
    "zookeeper-server-stop.sh",
];

#[test]
fn every_unit_passes_systemd_analyze_verify_silently() {
    let analyze = support::require_tool("systemd-analyze", SYSTEMD);
    let root = SystemdRoot::new();
    let corpus = corpus();
    let mut units = files_named(&corpus, "kafka.service");
    units.extend(files_named(&corpus, "zookeeper.service"));
    let workers = files_named(&corpus, "kafka-connect.service");
    assert!(workers.len() >= 3, "only {} Connect units", workers.len());
    units.extend(workers);
    units.extend(files_named(&corpus, "node-exporter.service"));
    let monitoring = files_named(&corpus, "prometheus.service").len();
    units.extend(files_named(&corpus, "prometheus.service"));
    units.extend(files_named(&corpus, "alertmanager.service"));
    assert!(monitoring >= 3, "only {monitoring} monitoring nodes");
    assert!(
        units.len() >= 198 + 3 * monitoring,
        "only {} units",
        units.len()
    );
    let problems: Vec<String> = units
        .iter()
        .filter_map(|(label, unit)| {
            root.verify(&analyze, unit)
                .map(|p| format!("{label} {}:\n{p}", unit.name))
        })
        .collect();
    assert_no_problems("systemd-analyze verify", &problems);
}

/// A directory that `systemd-analyze verify --root` treats as the node's filesystem: the OS's
/// units, and stand-ins for the Kafka scripts and node_exporter the rendered units run.
struct SystemdRoot {
    dir: tempfile::TempDir,
}

impl SystemdRoot {
    fn new() -> SystemdRoot {
        let host_units = support::require_file(HOST_UNITS, SYSTEMD);
        let dir = tempfile::tempdir().expect("temporary directory");
        copy_tree(
            &host_units,
            &dir.path().join(HOST_UNITS.trim_start_matches('/')),
        );
        let bin = dir
            .path()
            .join(render::KAFKA_HOME.trim_start_matches('/'))
            .join("bin");
        std::fs::create_dir_all(&bin).expect("stand-in directory");
        let go_binaries = [
            exporters::NODE_EXPORTER_BINARY,
            exporters::PROMETHEUS_BINARY,
            exporters::ALERTMANAGER_BINARY,
        ]
        .map(|b| dir.path().join(b.trim_start_matches('/')));
        for b in &go_binaries {
            std::fs::create_dir_all(b.parent().expect("a directory")).expect("bin dir");
        }
        for path in KAFKA_SCRIPTS
            .iter()
            .map(|script| bin.join(script))
            .chain(go_binaries)
        {
            std::fs::write(&path, "#!/bin/sh\nexit 0\n").expect("stand-in");
            set_mode(&path, 0o755);
        }
        SystemdRoot { dir }
    }

    /// Installs `unit` at its path under the root, verifies it, removes it again. Any output
    /// at all is a problem.
    fn verify(&self, analyze: &Path, unit: &NodeFile) -> Option<String> {
        let path = self.dir.path().join(unit.path.trim_start_matches('/'));
        std::fs::create_dir_all(path.parent().expect("unit has a directory")).expect("unit dir");
        std::fs::write(&path, &unit.content).expect("write unit");
        let out = support::run_bounded(
            Command::new(analyze)
                .arg("verify")
                .arg(format!("--root={}", self.dir.path().display()))
                .arg(&path),
            TOOL_LIMIT,
        );
        std::fs::remove_file(&path).expect("remove unit");
        let output = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() && output.is_empty() {
            None
        } else {
            Some(format!("{}: {output}", out.status))
        }
    }
}

/// Copies a directory tree, keeping symlinks as symlinks.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("{}: {e}", to.display()));
    let entries = std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    for entry in entries {
        let entry = entry.expect("directory entry");
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().expect("file type");
        if kind.is_symlink() {
            let link = std::fs::read_link(&source).expect("read link");
            std::os::unix::fs::symlink(link, &target).expect("symlink");
        } else if kind.is_dir() {
            copy_tree(&source, &target);
        } else {
            std::fs::copy(&source, &target).unwrap_or_else(|e| panic!("{}: {e}", source.display()));
        }
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

// ---- shell ------------------------------------------------------------------------------------

const SHELLCHECK: &str = "apt-get install --no-install-recommends shellcheck";

#[test]
fn every_bootstrap_script_passes_shellcheck() {
    let shellcheck = support::require_tool("shellcheck", SHELLCHECK);
    let dir = tempfile::tempdir().expect("temporary directory");
    let corpus = corpus();
    let scripts: Vec<PathBuf> = files_named(&corpus, "bootstrap.sh")
        .iter()
        .enumerate()
        .map(|(i, (label, f))| {
            let path = dir
                .path()
                .join(format!("{i}-{}", label.replace(['/', ' '], "_")));
            std::fs::write(&path, &f.content).expect("write script");
            path
        })
        .collect();
    assert!(scripts.len() >= 99, "only {} scripts", scripts.len());
    if let Some(findings) = shellcheck_findings(&shellcheck, &scripts) {
        panic!("shellcheck:\n{findings}");
    }
}

/// shellcheck's findings at every severity (ignoring any `.shellcheckrc`), if there are any.
fn shellcheck_findings(shellcheck: &Path, scripts: &[PathBuf]) -> Option<String> {
    let out = support::run_bounded(
        Command::new(shellcheck)
            .args(["--norc", "--severity=style", "--format=gcc"])
            .args(scripts),
        TOOL_LIMIT,
    );
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && output.is_empty() {
        None
    } else {
        Some(format!("{}:\n{output}", out.status))
    }
}

/// The bootstrap's settings, as bash evaluates them, are exactly the topology's values, whatever
/// characters those contain (a URL may hold `$`, quotes or backquotes).
#[test]
fn bootstrap_settings_evaluate_to_the_topology_values() {
    let bash = support::require_tool("bash", "apt-get install bash");
    let corpus = corpus();
    let mut problems = Vec::new();
    for r in &corpus {
        for node in &r.nodes {
            let script = &node.file("bootstrap.sh").expect("bootstrap.sh").content;
            // The settings are the script's `readonly NAME=value` lines; evaluate just those.
            let settings: Vec<&str> = script
                .lines()
                .filter(|l| l.starts_with("readonly "))
                .collect();
            let (show, expected) = bootstrap_settings(r, node);
            let out = support::run_bounded(
                Command::new(&bash).arg("-c").arg(format!(
                    "set -eu\n{}\nprintf '%s\\n' {show}",
                    settings.join("\n")
                )),
                TOOL_LIMIT,
            );
            let expected: String = expected.iter().map(|v| format!("{v}\n")).collect();
            let got = String::from_utf8_lossy(&out.stdout);
            if !out.status.success() || got != expected {
                problems.push(format!(
                    "{} {}: bash evaluates the settings to {got:?} ({}; {}), expected {expected:?}",
                    r.source,
                    node.node,
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
    }
    assert_no_problems("bootstrap settings", &problems);
}

/// The settings a node's bootstrap holds (as shell words to print) and the values they must have.
fn bootstrap_settings(r: &Rendered, node: &NodeRender) -> (String, Vec<String>) {
    let role = r.cluster.node(&node.node).map(|n| n.role);
    let jvm = role.is_some_and(|r| r.info().jvm);
    // A node with a data volume mounts it at DATA_DIR; a Connect worker has none and installs
    // its plugins under PLUGIN_DIR instead.
    let dir = match role.and_then(|role| r.cluster.role_spec(role)) {
        Some(spec) if spec.volume.is_none() => ("PLUGIN_DIR", kcluster::kafka::connect::PLUGIN_DIR),
        _ => ("DATA_DIR", kcluster::cluster::DATA_DIR),
    };
    let node_exporter = exporters::NODE_EXPORTER;
    let mut pairs: Vec<(&str, String)> = if jvm {
        vec![
            ("KAFKA_URL", r.cluster.kafka.url.clone()),
            ("KAFKA_SHA512", r.cluster.kafka.sha512.clone()),
            ("KAFKA_HOME", render::KAFKA_HOME.into()),
            (dir.0, dir.1.into()),
            ("JMX_EXPORTER_URL", exporters::JMX_EXPORTER_URL.into()),
            ("JMX_EXPORTER_SHA256", exporters::JMX_EXPORTER_SHA256.into()),
            ("JMX_EXPORTER_JAR", exporters::JMX_EXPORTER_JAR.into()),
        ]
    } else {
        let (p, a) = (exporters::PROMETHEUS, exporters::ALERTMANAGER);
        vec![
            ("DATA_DIR", kcluster::cluster::DATA_DIR.into()),
            ("PROMETHEUS_URL", p.amd64_url.into()),
            ("PROMETHEUS_SHA256", p.amd64_sha256.into()),
            ("PROMETHEUS_URL_ARM64", p.arm64_url.into()),
            ("PROMETHEUS_SHA256_ARM64", p.arm64_sha256.into()),
            ("ALERTMANAGER_URL", a.amd64_url.into()),
            ("ALERTMANAGER_SHA256", a.amd64_sha256.into()),
            ("ALERTMANAGER_URL_ARM64", a.arm64_url.into()),
            ("ALERTMANAGER_SHA256_ARM64", a.arm64_sha256.into()),
        ]
    };
    pairs.extend([
        ("NODE_EXPORTER_URL", node_exporter.amd64_url.into()),
        ("NODE_EXPORTER_SHA256", node_exporter.amd64_sha256.into()),
        ("NODE_EXPORTER_URL_ARM64", node_exporter.arm64_url.into()),
        (
            "NODE_EXPORTER_SHA256_ARM64",
            node_exporter.arm64_sha256.into(),
        ),
        (
            "NODE_EXPORTER_BINARY",
            exporters::NODE_EXPORTER_BINARY.into(),
        ),
    ]);
    let show = pairs
        .iter()
        .map(|(k, _)| format!("\"${k}\""))
        .collect::<Vec<_>>()
        .join(" ");
    (show, pairs.into_iter().map(|(_, v)| v).collect())
}

// ---- Kafka's config definitions ---------------------------------------------------------------

/// Kafka reads every `server.properties` (and a KRaft controller's `controller.properties`, the
/// same kind of file) as the topology says: each key is a broker config of
/// the cluster's Kafka version with a value it accepts, none is set twice, and every setting
/// reads back (as Java's `Properties.load` reads it) exactly as written in the topology.
#[test]
fn every_server_properties_is_read_by_kafka_as_the_topology_says() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for r in corpus() {
        let version = &r.cluster.kafka.version;
        let Some(configs) = BrokerConfigs::for_version(version) else {
            problems.push(format!(
                "{}: no broker config table for Kafka {version}",
                r.source
            ));
            continue;
        };
        for node in &r.nodes {
            let Some(file) = node
                .file("server.properties")
                .or_else(|| node.file("controller.properties"))
            else {
                continue;
            };
            checked += 1;
            let label = format!("{} {}", r.source, node.node);
            problems.extend(
                server_properties_problems(configs, &r.cluster, file.content.as_bytes())
                    .into_iter()
                    .map(|p| format!("{label}: {p}")),
            );
        }
    }
    assert!(checked >= 96, "only {checked} server.properties checked");
    assert_no_problems("server.properties", &problems);
}

/// Every worker's `connect-distributed.properties` is read by Connect as the topology says: no
/// key set twice; each a Connect worker config (or a `producer.`/`consumer.` one of the client
/// tables) with a value Kafka accepts, except the top-level `client.rack` Connect passes to the
/// readers of its own topics; the per-worker keys name the worker; every setting reads back as
/// the topology gives it.
#[test]
fn every_connect_distributed_properties_is_read_by_connect_as_the_topology_says() {
    let mut problems = Vec::new();
    let mut checked = 0;
    for r in corpus() {
        for node in &r.nodes {
            let Some(file) = node.file("connect-distributed.properties") else {
                continue;
            };
            checked += 1;
            let label = format!("{} {}", r.source, node.node);
            let entries = match java_properties(file.content.as_bytes()) {
                Ok(e) => e,
                Err(e) => {
                    problems.push(format!("{label}: Java cannot load it: {e}"));
                    continue;
                }
            };
            let mut seen = std::collections::BTreeMap::new();
            for (key, value) in &entries {
                if seen.insert(key.as_str(), value.as_str()).is_some() {
                    problems.push(format!("{label}: `{key}` is set twice"));
                }
                if key != "client.rack"
                    && let Err(problem) = kcluster::kafka::connect::check_override(key, value)
                {
                    problems.push(format!("{label}: {key}={value:?}: {problem}"));
                }
            }
            let n = r.cluster.node(&node.node).expect("rendered node");
            let mut expected: Vec<(String, String)> = r
                .cluster
                .connect
                .as_ref()
                .expect("workers")
                .settings
                .clone()
                .into_iter()
                .collect();
            expected.extend([
                ("bootstrap.servers".into(), r.cluster.bootstrap_servers()),
                ("client.rack".into(), n.zone.clone()),
                ("consumer.client.rack".into(), n.zone.clone()),
                ("rest.advertised.host.name".into(), n.address.to_string()),
                (
                    "listeners".into(),
                    format!(
                        "http://{}:{}",
                        n.address,
                        kcluster::cluster::CONNECT_REST_PORT
                    ),
                ),
            ]);
            for (key, value) in expected {
                match seen.get(key.as_str()) {
                    Some(read) if *read == value => {}
                    other => {
                        problems.push(format!("{label}: `{key}` reads {other:?}, not {value:?}"))
                    }
                }
            }
        }
    }
    assert!(
        checked >= 3,
        "only {checked} connect-distributed.properties checked"
    );
    assert_no_problems("connect-distributed.properties", &problems);
}

/// Reads `server.properties` as Kafka does (`Properties.load` of the bytes) and returns what is
/// wrong: keys set twice, keys that are no broker config of the cluster's Kafka version or whose
/// value it rejects, and cluster settings that read back different from the topology's.
fn server_properties_problems(
    configs: &BrokerConfigs,
    cluster: &Cluster,
    bytes: &[u8],
) -> Vec<String> {
    let entries = match java_properties(bytes) {
        Ok(e) => e,
        Err(e) => return vec![format!("Java cannot load it: {e}")],
    };
    let mut problems = Vec::new();
    let mut seen = std::collections::BTreeMap::new();
    for (key, value) in &entries {
        if seen.insert(key.as_str(), value.as_str()).is_some() {
            problems.push(format!(
                "`{key}` is set twice; Kafka silently keeps the last"
            ));
        }
        if let Err(problem) = configs.check(key, value) {
            problems.push(format!("{key}={value:?}: {problem}"));
        }
    }
    for (key, value) in &cluster.broker_settings {
        match seen.get(key.as_str()) {
            Some(read) if read == value => {}
            Some(read) => problems.push(format!("`{key}` reads back as {read:?}, not {value:?}")),
            None => problems.push(format!("`{key}` from the topology is missing")),
        }
    }
    problems
}

/// Parses a `.properties` file as `java.util.Properties.load(InputStream)` does: ISO-8859-1
/// bytes; `#`/`!` comment lines; lines continued by an odd number of trailing backslashes; the
/// key ends at the first unescaped `=`, `:` or blank; escapes `\t \n \r \f \uXXXX` (UTF-16 code
/// units), any other `\c` is `c`. Returns the entries in file order, duplicates included.
fn java_properties(bytes: &[u8]) -> Result<Vec<(String, String)>, String> {
    let text: String = bytes.iter().map(|&b| char::from(b)).collect();
    let is_blank = |c: char| matches!(c, ' ' | '\t' | '\u{c}');
    // Natural lines end at \n, \r or \r\n.
    let text = text.replace("\r\n", "\n");
    let natural: Vec<&str> = text.split(['\n', '\r']).collect();
    let mut entries = Vec::new();
    let mut i = 0;
    while i < natural.len() {
        let first = natural[i].trim_start_matches(is_blank);
        i += 1;
        if first.is_empty() || first.starts_with(['#', '!']) {
            continue;
        }
        // Join continuation lines: an odd number of trailing backslashes continues the line.
        let mut logical = String::new();
        let mut line = first;
        loop {
            let trailing = line.chars().rev().take_while(|&c| c == '\\').count();
            if trailing % 2 == 1 && i < natural.len() {
                logical.push_str(&line[..line.len() - 1]);
                line = natural[i].trim_start_matches(is_blank);
                i += 1;
            } else {
                logical.push_str(if trailing % 2 == 1 {
                    &line[..line.len() - 1]
                } else {
                    line
                });
                break;
            }
        }
        // Split key and value at the first unescaped separator.
        let chars: Vec<char> = logical.chars().collect();
        let mut k = 0;
        while k < chars.len() && !(matches!(chars[k], '=' | ':') || is_blank(chars[k])) {
            k += if chars[k] == '\\' { 2 } else { 1 };
        }
        let k = k.min(chars.len());
        let key: String = chars[..k].iter().collect();
        let mut v = k;
        while v < chars.len() && is_blank(chars[v]) {
            v += 1;
        }
        if v < chars.len() && matches!(chars[v], '=' | ':') {
            v += 1;
        }
        while v < chars.len() && is_blank(chars[v]) {
            v += 1;
        }
        let value: String = chars[v..].iter().collect();
        entries.push((unescape(&key)?, unescape(&value)?));
    }
    Ok(entries)
}

/// Java properties escapes, producing UTF-16 code units that must form valid text.
fn unescape(s: &str) -> Result<String, String> {
    let mut units: Vec<u16> = Vec::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0u16; 2];
            units.extend_from_slice(c.encode_utf16(&mut buf));
            continue;
        }
        let unit = match chars.next() {
            Some('t') => '\t' as u16,
            Some('n') => '\n' as u16,
            Some('r') => '\r' as u16,
            Some('f') => 0x0c,
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                if hex.len() != 4 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(format!("malformed \\uxxxx encoding in {s:?}"));
                }
                u16::from_str_radix(&hex, 16).expect("four hex digits")
            }
            Some(other) => other as u16,
            // A lone trailing backslash (only possible at the end of the file) is dropped.
            None => break,
        };
        units.push(unit);
    }
    String::from_utf16(&units).map_err(|_| format!("unpaired UTF-16 surrogate in {s:?}"))
}

#[test]
fn java_properties_reads_what_java_reads() {
    // The examples of the `Properties.load` Javadoc, and the corner cases Kafka config can hit.
    let file = "\
# comment
  ! comment too
Truth = Beauty
 Truth:Beauty
Truth                    :Beauty
fruits                           apple, banana, pear, \\
                                  cantaloupe, watermelon, \\
                                  kiwi, mango
cheeses
key\\ with\\ blanks\\=and\\:seps = v
odd=ends\\\\
next=\\ lead \\u00e9\\uD83D\\uDE42 \\q
crlf=a\\\r\n  b\r\nlast=x\\
";
    let parsed = java_properties(file.as_bytes()).expect("parses");
    let want = [
        ("Truth", "Beauty"),
        ("Truth", "Beauty"),
        ("Truth", "Beauty"),
        (
            "fruits",
            "apple, banana, pear, cantaloupe, watermelon, kiwi, mango",
        ),
        ("cheeses", ""),
        ("key with blanks=and:seps", "v"),
        ("odd", "ends\\"),
        ("next", " lead é🙂 q"),
        ("crlf", "ab"),
        ("last", "x"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(parsed, want);
    // Bytes are ISO-8859-1, as `Properties.load(InputStream)` reads them: UTF-8 é is two chars.
    assert_eq!(
        java_properties("k=é".as_bytes()).expect("parses"),
        [("k".to_string(), "Ã©".to_string())]
    );
    assert!(java_properties(b"k=\\u12").is_err());
    assert!(java_properties(b"k=\\u+123").is_err());
    assert!(java_properties(b"k=\\uD83D").is_err());
}

// ---- the checks themselves --------------------------------------------------------------------

/// Each check above fails on a file with a known defect, so a tool that accepts everything (or a
/// harness that never runs it) cannot make them pass.
#[test]
fn the_checks_catch_known_defects() {
    let dir = tempfile::tempdir().expect("temporary directory");

    let cloud_init = support::require_tool("cloud-init", CLOUD_INIT);
    let user_data = dir.path().join("user-data");
    std::fs::write(
        &user_data,
        "#cloud-config\nwrite_files:\n  - path: /x\n    permisions: \"0644\"\n",
    )
    .expect("write");
    let found = cloud_init_schema(&cloud_init, &user_data).expect("cloud-init finds the typo");
    assert!(found.contains("permisions"), "{found}");

    let analyze = support::require_tool("systemd-analyze", SYSTEMD);
    let root = SystemdRoot::new();
    let unit = |body: &str| NodeFile {
        name: "kafka.service".into(),
        path: "/etc/systemd/system/kafka.service".into(),
        mode: "0644".into(),
        content: format!("[Unit]\nDescription=x\n\n[Service]\n{body}\n"),
    };
    let good = "ExecStart=/opt/kafka/bin/kafka-server-start.sh /etc/kafka/server.properties";
    assert_eq!(root.verify(&analyze, &unit(good)), None);
    for (defect, expected) in [
        (
            "ExecStart=/opt/kafka/bin/kafka-sever-start.sh",
            "kafka-sever-start.sh",
        ),
        (&format!("{good}\nRestartSecs=10"), "RestartSecs"),
        (&format!("{good}\nUser=kafka user"), "kafka user"),
    ] {
        let found = root
            .verify(&analyze, &unit(defect))
            .unwrap_or_else(|| panic!("systemd-analyze accepted {defect:?}"));
        assert!(found.contains(expected), "{found}");
    }

    let shellcheck = support::require_tool("shellcheck", SHELLCHECK);
    let script = dir.path().join("script.sh");
    std::fs::write(&script, "#!/bin/bash\necho $1\n").expect("write");
    let found = shellcheck_findings(&shellcheck, &[script]).expect("shellcheck finds SC2086");
    assert!(found.contains("SC2086"), "{found}");

    let configs = BrokerConfigs::for_version("3.9.1").expect("config table");
    let cluster = support::load(&support::topology("minimal.yaml"));
    let found = server_properties_problems(
        configs,
        &cluster,
        b"num.partitions=0\nnum.partitons=3\nnum.partitions=6\n",
    )
    .join("\n");
    for expected in [
        "num.partitions=\"0\"",
        "num.partitons=\"3\"",
        "`num.partitions` is set twice",
        "`default.replication.factor` from the topology is missing",
    ] {
        assert!(found.contains(expected), "{expected} not in:\n{found}");
    }
}
