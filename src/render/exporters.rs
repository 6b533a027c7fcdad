//! The Prometheus software kcluster installs, pinned: the JMX exporter as a Java agent inside the
//! Kafka or ZooKeeper JVM, node_exporter as its own service on every node, and Prometheus and
//! Alertmanager on the monitoring node. The bootstrap script downloads them and refuses a file
//! whose SHA-256 differs from the one pinned here; the Go programs are pinned for x86_64 (amd64)
//! and arm64 (Graviton), and the bootstrap picks by the machine's own architecture.

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

/// A release tarball of a Go program, one per CPU architecture, with its published SHA-256.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Release {
    pub version: &'static str,
    pub amd64_url: &'static str,
    pub amd64_sha256: &'static str,
    pub arm64_url: &'static str,
    pub arm64_sha256: &'static str,
}

/// node_exporter 1.9.1. The SHA-256s as openstack/kolla pins them (`kolla/common/sources.py`,
/// from the release's `sha256sums.txt`), cross-checked against other projects' independent pins.
pub const NODE_EXPORTER: Release = Release {
    version: "1.9.1",
    amd64_url: "https://github.com/prometheus/node_exporter/releases/download/v1.9.1/node_exporter-1.9.1.linux-amd64.tar.gz",
    amd64_sha256: "becb950ee80daa8ae7331d77966d94a611af79ad0d3307380907e0ec08f5b4e8",
    arm64_url: "https://github.com/prometheus/node_exporter/releases/download/v1.9.1/node_exporter-1.9.1.linux-arm64.tar.gz",
    arm64_sha256: "848f139986f63232ced83babe3cad1679efdbb26c694737edc1f4fbd27b96203",
};
pub const NODE_EXPORTER_VERSION: &str = NODE_EXPORTER.version;
pub const NODE_EXPORTER_BINARY: &str = "/usr/local/bin/node_exporter";

/// Prometheus 3.5.0, the long-term-support release (supported for a year, unlike the six-weekly
/// ones). SHA-256s as openstack/kolla pins them (from the release's `sha256sums.txt`),
/// cross-checked against other projects' independent pins.
pub const PROMETHEUS: Release = Release {
    version: "3.5.0",
    amd64_url: "https://github.com/prometheus/prometheus/releases/download/v3.5.0/prometheus-3.5.0.linux-amd64.tar.gz",
    amd64_sha256: "e811827af26d822afb09a4f28314f61b618b12cff5369835a67f674d8b46f39a",
    arm64_url: "https://github.com/prometheus/prometheus/releases/download/v3.5.0/prometheus-3.5.0.linux-arm64.tar.gz",
    arm64_sha256: "173389cc42bf09c4e6e54cb53fa07a5a835d7c261e14775d2183181d6e385d1c",
};
pub const PROMETHEUS_BINARY: &str = "/usr/local/bin/prometheus";

/// Alertmanager 0.28.1. SHA-256s as openstack/kolla pins them (from the release's
/// `sha256sums.txt`), cross-checked against other projects' independent pins.
pub const ALERTMANAGER: Release = Release {
    version: "0.28.1",
    amd64_url: "https://github.com/prometheus/alertmanager/releases/download/v0.28.1/alertmanager-0.28.1.linux-amd64.tar.gz",
    amd64_sha256: "5ac7ab5e4b8ee5ce4d8fb0988f9cb275efcc3f181b4b408179fafee121693311",
    arm64_url: "https://github.com/prometheus/alertmanager/releases/download/v0.28.1/alertmanager-0.28.1.linux-arm64.tar.gz",
    arm64_sha256: "d8832540e5b9f613d2fd759e31d603173b9c61cc7bb5e3bc7ae2f12038b1ce4f",
};
pub const ALERTMANAGER_BINARY: &str = "/usr/local/bin/alertmanager";

/// The image architectures kcluster has pinned downloads for (EC2's names for them).
pub const ARCHITECTURES: [&str; 2] = ["x86_64", "arm64"];

/// What the templates need to know about the exporters and the monitoring software.
#[derive(Debug, Clone, Serialize)]
pub struct Exporters {
    pub jmx_version: &'static str,
    pub jmx_url: &'static str,
    pub jmx_sha256: &'static str,
    pub jmx_jar: &'static str,
    pub jmx_config: &'static str,
    pub node_version: &'static str,
    pub node: Release,
    pub node_binary: &'static str,
    pub prometheus: Release,
    pub prometheus_binary: &'static str,
    pub alertmanager: Release,
    pub alertmanager_binary: &'static str,
}

pub const EXPORTERS: Exporters = Exporters {
    jmx_version: JMX_EXPORTER_VERSION,
    jmx_url: JMX_EXPORTER_URL,
    jmx_sha256: JMX_EXPORTER_SHA256,
    jmx_jar: JMX_EXPORTER_JAR,
    jmx_config: JMX_EXPORTER_CONFIG,
    node_version: NODE_EXPORTER_VERSION,
    node: NODE_EXPORTER,
    node_binary: NODE_EXPORTER_BINARY,
    prometheus: PROMETHEUS,
    prometheus_binary: PROMETHEUS_BINARY,
    alertmanager: ALERTMANAGER,
    alertmanager_binary: ALERTMANAGER_BINARY,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_release_names_its_version_and_architecture_in_its_urls() {
        for r in [NODE_EXPORTER, PROMETHEUS, ALERTMANAGER] {
            for (url, arch, sha) in [
                (r.amd64_url, "amd64", r.amd64_sha256),
                (r.arm64_url, "arm64", r.arm64_sha256),
            ] {
                assert!(url.contains(&format!("/v{}/", r.version)), "{url}");
                assert!(
                    url.ends_with(&format!("{}.linux-{arch}.tar.gz", r.version)),
                    "{url}"
                );
                assert_eq!(sha.len(), 64, "{url}");
                assert!(sha.chars().all(|c| c.is_ascii_hexdigit()), "{url}");
            }
            assert_ne!(r.amd64_sha256, r.arm64_sha256);
        }
    }
}
