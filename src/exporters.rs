//! The Prometheus exporters every node runs, pinned: the JMX exporter as a Java agent inside the
//! Kafka or ZooKeeper JVM, and node_exporter as its own service. The bootstrap script downloads
//! both and refuses a file whose SHA-256 differs from the one pinned here.

use serde::Serialize;

/// The JMX exporter agent's port on every node (the port MSK's open monitoring uses).
pub const JMX_EXPORTER_PORT: u16 = 11001;
/// node_exporter's port on every node (as MSK's open monitoring).
pub const NODE_EXPORTER_PORT: u16 = 11002;

/// JMX exporter 1.0.1: the newest release published to Maven Central (later ones are on GitHub
/// only), so nodes and the tests fetch the very same jar from the same place.
pub const JMX_EXPORTER_VERSION: &str = "1.0.1";
pub const JMX_EXPORTER_URL: &str = "https://repo1.maven.org/maven2/io/prometheus/jmx/jmx_prometheus_javaagent/1.0.1/jmx_prometheus_javaagent-1.0.1.jar";
/// SHA-256 of that jar (Maven Central publishes its SHA-1, f9c53eb0aa1828c3c9cd7647238563e43a4ed68c).
pub const JMX_EXPORTER_SHA256: &str =
    "7d61f737fd661610ccc14aea79764faa1ea94a340cbc8f0029b3d2edea3d80c1";
/// Where the bootstrap installs the agent jar on a node; the units' `KAFKA_OPTS` load it from here.
pub const JMX_EXPORTER_JAR: &str = "/opt/jmx-exporter/jmx_prometheus_javaagent-1.0.1.jar";
/// The agent's rules, rendered per role.
pub const JMX_EXPORTER_CONFIG: &str = "/etc/kafka/jmx-exporter.yaml";

/// node_exporter 1.9.1 for x86_64, the architecture of kcluster's default image.
pub const NODE_EXPORTER_VERSION: &str = "1.9.1";
pub const NODE_EXPORTER_URL: &str = "https://github.com/prometheus/node_exporter/releases/download/v1.9.1/node_exporter-1.9.1.linux-amd64.tar.gz";
/// SHA-256 of that tarball, from the release's `sha256sums.txt`.
pub const NODE_EXPORTER_SHA256: &str =
    "becb950ee80daa8ae7331d77966d94a611af79ad0d3307380907e0ec08f5b4e8";
pub const NODE_EXPORTER_BINARY: &str = "/usr/local/bin/node_exporter";

/// What the templates need to know about the exporters.
#[derive(Debug, Clone, Serialize)]
pub struct Exporters {
    pub jmx_version: &'static str,
    pub jmx_url: &'static str,
    pub jmx_sha256: &'static str,
    pub jmx_jar: &'static str,
    pub jmx_config: &'static str,
    pub node_version: &'static str,
    pub node_url: &'static str,
    pub node_sha256: &'static str,
    pub node_binary: &'static str,
}

pub const EXPORTERS: Exporters = Exporters {
    jmx_version: JMX_EXPORTER_VERSION,
    jmx_url: JMX_EXPORTER_URL,
    jmx_sha256: JMX_EXPORTER_SHA256,
    jmx_jar: JMX_EXPORTER_JAR,
    jmx_config: JMX_EXPORTER_CONFIG,
    node_version: NODE_EXPORTER_VERSION,
    node_url: NODE_EXPORTER_URL,
    node_sha256: NODE_EXPORTER_SHA256,
    node_binary: NODE_EXPORTER_BINARY,
};
