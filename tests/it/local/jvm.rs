//! The real Kafka programs on this machine (fetched from Maven Central by `scripts/fetch-kafka`)
//! and how a rendered systemd unit starts them: the JVM command line Kafka's own start scripts
//! (`kafka-server-start.sh`, `zookeeper-server-start.sh`, `connect-distributed.sh`,
//! `kafka-run-class.sh`) build from the unit's `Environment=` lines, so the tests run each node
//! the way its unit would.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use crate::support;

/// The Kafka version the harness runs unless a cluster asks for another: kcluster's default for
/// ZooKeeper clusters.
pub const KAFKA_VERSION: &str = "3.9.2";

const JAVA_INSTALL: &str = "apt-get install --no-install-recommends openjdk-17-jdk-headless";

/// Kafka's jars for one version, the tests' probe compiled against them, and the JMX exporter
/// agent jar the rendered units load.
pub struct Kafka {
    pub version: &'static str,
    lib: PathBuf,
    probe: PathBuf,
    java: PathBuf,
    jmx_exporter: PathBuf,
}

/// The version the tools and clients use: the version of the local cluster that runs now (set
/// by [`use_version`] while the cluster holds the machine lock), [`KAFKA_VERSION`] before any.
fn active() -> &'static Mutex<&'static str> {
    static ACTIVE: OnceLock<Mutex<&'static str>> = OnceLock::new();
    ACTIVE.get_or_init(|| Mutex::new(KAFKA_VERSION))
}

/// Makes `version` the one [`kafka`] returns: a local cluster's clients and tools are those of
/// the Kafka it runs.
pub fn use_version(version: &str) {
    let loaded = kafka_version(version);
    *active().lock().unwrap_or_else(|e| e.into_inner()) = loaded.version;
}

/// The Kafka the tests' clients and tools run now (see [`use_version`]).
pub fn kafka() -> &'static Kafka {
    let version = *active().lock().unwrap_or_else(|e| e.into_inner());
    kafka_version(version)
}

/// Kafka `version`, checked once per test process; fails with the command that fetches it when
/// the jars are not there.
pub fn kafka_version(version: &str) -> &'static Kafka {
    static LOADED: OnceLock<Mutex<BTreeMap<String, &'static Kafka>>> = OnceLock::new();
    let mut loaded = LOADED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(k) = loaded.get(version) {
        return k;
    }
    let version: &'static str = Box::leak(version.to_string().into_boxed_str());
    let k: &'static Kafka = Box::leak(Box::new(Kafka::load(version)));
    loaded.insert(version.to_string(), k);
    k
}

impl Kafka {
    /// Kafka 4 logs through log4j 2; 3.9 through log4j 1 (reload4j).
    pub fn log4j2(&self) -> bool {
        !self.version.starts_with("3.")
    }

    fn load(version: &'static str) -> Kafka {
        let java = support::require_tool("java", JAVA_INSTALL);
        let javac = support::require_tool("javac", JAVA_INSTALL);
        let home = support::repo().join("target/kafka").join(version);
        let lib = home.join("lib");
        assert!(
            home.join("complete").exists(),
            "Kafka {version}'s jars are not in {}; fetch them from Maven Central: \
             scripts/fetch-kafka {version}",
            lib.display()
        );
        // Compiled once per test process into a directory of its own, then moved into place, so
        // concurrent test processes never see a half-written class.
        let probe = home.join("probe");
        let source = support::repo().join("tests/kafka/Probe.java");
        let fresh = |dir: &Path| {
            let class = dir.join("Probe.class");
            let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
            modified(&class).is_some() && modified(&class) >= modified(&source)
        };
        if !fresh(&probe) {
            let staging = home.join(format!("probe.{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&staging);
            let out = support::run_bounded(
                Command::new(&javac)
                    .arg("-d")
                    .arg(&staging)
                    .arg("-cp")
                    .arg(lib.join("*"))
                    .arg(&source),
                std::time::Duration::from_secs(120),
            );
            assert!(
                out.status.success(),
                "javac {} failed:\n{}",
                source.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            let _ = std::fs::remove_dir_all(&probe);
            if std::fs::rename(&staging, &probe).is_err() && !fresh(&probe) {
                panic!("cannot move the compiled probe into {}", probe.display());
            }
            let _ = std::fs::remove_dir_all(&staging);
        }
        Kafka {
            version,
            lib,
            probe,
            java,
            jmx_exporter: jmx_exporter_jar(),
        }
    }

    /// A JVM running `main` from Kafka's jars (and the probe), with a small heap: for tools.
    pub fn tool(&self, main: &str) -> Command {
        self.tool_with_heap(main, "128m")
    }

    /// [`Kafka::tool`] with a heap of `heap` (`-Xmx`), for a client holding a large buffer.
    pub fn tool_with_heap(&self, main: &str, heap: &str) -> Command {
        let mut cmd = Command::new(&self.java);
        cmd.arg(format!("-Xmx{heap}"))
            .args(["-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"])
            .arg(self.log4j_option(false))
            .arg("-cp")
            .arg(self.classpath())
            .arg(main);
        cmd
    }

    /// The option that points the JVM's logging at the tests' configuration: for the nodes
    /// (`node`: INFO to stdout) or for tools (warnings to stderr).
    fn log4j_option(&self, node: bool) -> String {
        if self.log4j2() {
            let file = if node {
                "tests/kafka/log4j2-node.xml"
            } else {
                "tests/kafka/log4j2-tool.xml"
            };
            format!(
                "-Dlog4j2.configurationFile={}",
                support::repo().join(file).display()
            )
        } else {
            let file = if node { log4j_console() } else { log4j_quiet() };
            format!("-Dlog4j.configuration=file:{}", file.display())
        }
    }

    fn classpath(&self) -> String {
        format!("{}:{}", self.lib.join("*").display(), self.probe.display())
    }

    /// The JVM a rendered systemd unit starts, as Kafka's start scripts build it: `unit` is the
    /// rendered unit, `config` where the test put the node's rendered properties file,
    /// `agent_config` where it put the rendered JMX exporter rules, `log_dir` the directory that
    /// stands in for the unit's `LOG_DIR`.
    pub fn service(
        &self,
        unit: &str,
        config: &Path,
        agent_config: &Path,
        log_dir: &Path,
    ) -> Command {
        let service = Unit::parse(unit);
        let (main, name) = match service.start_script.as_str() {
            "kafka-server-start.sh" => ("kafka.Kafka", "kafkaServer"),
            "zookeeper-server-start.sh" => (
                "org.apache.zookeeper.server.quorum.QuorumPeerMain",
                "zookeeper",
            ),
            // connect-distributed.sh: kafka-run-class.sh with `-name connectDistributed`.
            "connect-distributed.sh" => (
                "org.apache.kafka.connect.cli.ConnectDistributed",
                "connectDistributed",
            ),
            other => panic!("the unit starts {other}, which this harness does not know"),
        };
        let env = |key: &str| service.env.get(key).cloned();
        // kafka-server-start.sh / zookeeper-server-start.sh: a 1 GB (512 MB) heap unless set.
        let heap = env("KAFKA_HEAP_OPTS").unwrap_or_else(|| "-Xmx1G -Xms1G".into());
        // kafka-run-class.sh's defaults for what the unit does not set.
        let performance = env("KAFKA_JVM_PERFORMANCE_OPTS").unwrap_or_else(|| {
            "-server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
             -XX:+ExplicitGCInvokesConcurrent -XX:MaxInlineLevel=15 -Djava.awt.headless=true"
                .into()
        });
        let gc_log = format!(
            "-Xlog:gc*:file={}/{name}-gc.log:time,tags:filecount=10,filesize=100M",
            log_dir.display()
        );
        let mut jmx = env("KAFKA_JMX_OPTS").unwrap_or_else(|| {
            "-Dcom.sun.management.jmxremote -Dcom.sun.management.jmxremote.authenticate=false \
             -Dcom.sun.management.jmxremote.ssl=false"
                .into()
        });
        if let Some(port) = env("JMX_PORT") {
            jmx.push_str(&format!(" -Dcom.sun.management.jmxremote.port={port}"));
            if !jmx.contains("-Dcom.sun.management.jmxremote.rmi.port=") {
                jmx.push_str(&format!(" -Dcom.sun.management.jmxremote.rmi.port={port}"));
            }
        }
        // The start scripts point log4j at the tarball's config/log4j.properties (Kafka 4:
        // config/log4j2.yaml); the tests use their own, which logs to stdout (the node's log file
        // here).
        let log4j = format!(
            "{} -Dkafka.logs.dir={}",
            self.log4j_option(true),
            log_dir.display()
        );
        let mut cmd = Command::new(&self.java);
        for opts in [&heap, &performance, &gc_log, &jmx, &log4j] {
            cmd.args(opts.split_whitespace());
        }
        cmd.arg("-cp").arg(self.classpath());
        if let Some(opts) = env("KAFKA_OPTS") {
            // The unit loads the JMX exporter agent from where the bootstrap installs it on a
            // node, with the rules where the node's files put them; here those two paths (and
            // nothing else of the option) are mapped to the jar fetched for the tests and the
            // node's rendered rules, as the data directory is moved.
            let agent = format!(
                "-javaagent:{}=",
                kcluster::render::exporters::JMX_EXPORTER_JAR
            );
            assert!(
                opts.contains(&agent)
                    && opts.contains(kcluster::render::exporters::JMX_EXPORTER_CONFIG),
                "the unit's KAFKA_OPTS does not load the JMX exporter agent as installed: {opts}"
            );
            let opts = opts
                .replace(
                    &agent,
                    &format!("-javaagent:{}=", self.jmx_exporter.display()),
                )
                .replace(
                    kcluster::render::exporters::JMX_EXPORTER_CONFIG,
                    &agent_config.display().to_string(),
                );
            cmd.args(opts.split_whitespace());
        }
        cmd.arg(main).arg(config);
        cmd
    }
}

/// The JMX exporter agent jar `scripts/fetch-kafka` put in `target/jmx-exporter/`, checked
/// against kcluster's pinned SHA-256 (the one every node's bootstrap verifies).
fn jmx_exporter_jar() -> PathBuf {
    use sha2::{Digest, Sha256};
    let version = kcluster::render::exporters::JMX_EXPORTER_VERSION;
    let jar = support::repo()
        .join("target/jmx-exporter")
        .join(version)
        .join(format!("jmx_prometheus_javaagent-{version}.jar"));
    let bytes = std::fs::read(&jar).unwrap_or_else(|e| {
        panic!(
            "the JMX exporter agent {version} is not at {} ({e}); fetch it from Maven Central: \
             scripts/fetch-kafka",
            jar.display()
        )
    });
    assert_eq!(
        hex::encode(Sha256::digest(&bytes)),
        kcluster::render::exporters::JMX_EXPORTER_SHA256,
        "{} is not the jar kcluster pins",
        jar.display()
    );
    jar
}

/// What the harness reads from a rendered systemd unit.
#[derive(Debug)]
pub struct Unit {
    /// `Environment=` assignments, in order (a later one wins, as in systemd).
    pub env: BTreeMap<String, String>,
    /// The script `ExecStart=` runs, by file name (`kafka-server-start.sh`).
    pub start_script: String,
    /// The file `ExecStart=` passes the script (`/etc/kafka/server.properties`).
    pub config: String,
    /// `Restart=on-failure`: systemd starts the service again when it exits with a failure.
    pub restart_on_failure: bool,
    /// `RestartSec=`: how long systemd waits before that.
    pub restart_delay: std::time::Duration,
}

impl Unit {
    pub fn parse(unit: &str) -> Unit {
        let mut env = BTreeMap::new();
        let mut exec = None;
        let mut restart_on_failure = false;
        // systemd's default RestartSec.
        let mut restart_delay = std::time::Duration::from_millis(100);
        for line in unit.lines() {
            if let Some(assignment) = line.strip_prefix("Environment=") {
                let assignment = assignment
                    .strip_prefix('"')
                    .and_then(|a| a.strip_suffix('"'))
                    .unwrap_or(assignment);
                let (key, value) = assignment
                    .split_once('=')
                    .unwrap_or_else(|| panic!("unit line without `=`: {line}"));
                env.insert(key.to_string(), value.to_string());
            } else if let Some(command) = line.strip_prefix("ExecStart=") {
                exec = Some(command.to_string());
            } else if let Some(policy) = line.strip_prefix("Restart=") {
                restart_on_failure = matches!(policy, "on-failure" | "always");
            } else if let Some(seconds) = line.strip_prefix("RestartSec=") {
                let seconds: u64 = seconds
                    .parse()
                    .unwrap_or_else(|_| panic!("RestartSec is not whole seconds: {line}"));
                restart_delay = std::time::Duration::from_secs(seconds);
            }
        }
        let exec = exec.unwrap_or_else(|| panic!("the unit has no ExecStart:\n{unit}"));
        let words: Vec<&str> = exec.split_whitespace().collect();
        let [script, config] = words[..] else {
            panic!("ExecStart is not `<script> <config>`: {exec}");
        };
        Unit {
            env,
            start_script: script.rsplit('/').next().unwrap_or(script).to_string(),
            config: config.to_string(),
            restart_on_failure,
            restart_delay,
        }
    }
}

/// log4j settings for the nodes: everything from INFO to stdout, as the tarball's
/// config/log4j.properties would send it to files.
fn log4j_console() -> PathBuf {
    support::repo().join("tests/kafka/log4j-node.properties")
}

/// log4j settings for tools: warnings and errors only, to stderr.
fn log4j_quiet() -> PathBuf {
    support::repo().join("tests/kafka/log4j-tool.properties")
}
