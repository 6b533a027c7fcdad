//! The topology's `connect` section beyond what every role has: connector plugins (URL and
//! checksum, each its own directory under `plugin.path`) and worker overrides, checked against
//! Kafka's Connect, producer and consumer config tables and against the brokers there are.

use std::collections::{BTreeMap, BTreeSet};

use super::raw::{RawConnect, RawPlugin};
use super::validate::{Checker, p, property_text};
use crate::cluster::{ConnectGroup, Plugin};
use crate::kafka::connect;
use crate::topology::diagnostic::Diagnostic;

/// File name endings the bootstrap knows how to install.
const PLUGIN_KINDS: [&str; 4] = [".tar.gz", ".tgz", ".zip", ".jar"];

impl Checker {
    /// The worker group's shared settings and plugins; `None` when the section has no workers.
    pub(super) fn connect(
        &mut self,
        raw: Option<&RawConnect>,
        workers: u32,
        brokers: u32,
        kafka_version: &str,
    ) -> Option<ConnectGroup> {
        let raw = raw?;
        let plugins = self.plugins(raw.plugins.as_deref().unwrap_or(&[]));
        let settings = self.worker_settings(raw.overrides.as_ref(), brokers, kafka_version);
        (workers > 0).then_some(ConnectGroup { settings, plugins })
    }

    fn plugins(&mut self, raw: &[RawPlugin]) -> Vec<Plugin> {
        let mut out = Vec::new();
        let mut names = BTreeMap::new();
        for (i, plugin) in raw.iter().enumerate() {
            let path = p(&["connect", "plugins"]).index(i);
            let Some(url) = plugin.url.as_deref() else {
                self.error(
                    path.key("url"),
                    "missing",
                    "give the plugin archive's https URL",
                );
                continue;
            };
            let file = url
                .split(['?', '#'])
                .next()
                .and_then(|u| u.rsplit('/').next())
                .unwrap_or("");
            let kind = PLUGIN_KINDS.iter().find(|k| file.ends_with(*k));
            if !url.starts_with("https://") || url.chars().any(char::is_whitespace) {
                self.error(
                    path.key("url"),
                    format!("`{url}` is not an https URL"),
                    "serve the plugin over https",
                );
                continue;
            }
            let Some(kind) = kind else {
                self.error(
                    path.key("url"),
                    format!("`{file}` is not a plugin archive kcluster can install"),
                    "point at a `.tar.gz`, `.tgz` or `.zip` archive, or a single `.jar`",
                );
                continue;
            };
            let stem = &file[..file.len() - kind.len()];
            let name: String = stem
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            if name.is_empty() || name.starts_with('.') {
                self.error(
                    path.key("url"),
                    format!("`{file}` gives the plugin no directory name"),
                    "name the file after the plugin, e.g. `my-connector-1.2.0.tar.gz`",
                );
                continue;
            }
            if let Some(first) = names.insert(name.clone(), i) {
                self.error(
                    path.key("url"),
                    format!("installs into `{name}`, as connect.plugins[{first}] does"),
                    "list each plugin once; two files of one name cannot share a directory",
                );
                continue;
            }
            let (algorithm, digits, sum) = match (&plugin.sha256, &plugin.sha512) {
                (Some(s), None) => ("sha256", 64, s),
                (None, Some(s)) => ("sha512", 128, s),
                (Some(_), Some(_)) => {
                    self.error(
                        path.clone(),
                        "both `sha256` and `sha512` given",
                        "keep one: the bootstrap checks exactly one checksum",
                    );
                    continue;
                }
                (None, None) => {
                    self.error(
                        path.key("sha256"),
                        "missing: the bootstrap installs no plugin it cannot verify",
                        "add `sha256:` (or `sha512:`) with the file's published checksum",
                    );
                    continue;
                }
            };
            let sum = sum.trim().to_ascii_lowercase();
            if sum.len() != digits || !sum.chars().all(|c| c.is_ascii_hexdigit()) {
                self.error(
                    path.key(algorithm),
                    format!(
                        "not a {} ({digits} hex digits)",
                        algorithm.to_uppercase().replace("SHA", "SHA-")
                    ),
                    format!("compute it with `{algorithm}sum FILE`, or copy the published one"),
                );
                continue;
            }
            out.push(Plugin {
                name,
                url: url.to_string(),
                algorithm: algorithm.to_string(),
                checksum: sum,
            });
        }
        out
    }

    /// The worker settings; each override is checked against Kafka's tables (3.9's: see
    /// `connect::TABLES_LINE`), and a problem says which version it was checked against when
    /// the cluster runs another.
    fn worker_settings(
        &mut self,
        overrides: Option<&BTreeMap<String, serde_yaml::Value>>,
        brokers: u32,
        kafka_version: &str,
    ) -> BTreeMap<String, String> {
        let mut settings = connect::worker_settings(brokers);
        let over = |k: &str| p(&["connect", "overrides"]).key(k.to_string());
        for (key, value) in overrides.into_iter().flatten() {
            if connect::MANAGED_KEYS.contains(&key.as_str()) {
                self.error(
                    over(key),
                    format!("`{key}` is set by kcluster for each worker"),
                    "remove it; kcluster derives it from the topology",
                );
                continue;
            }
            let Some(text) = property_text(value) else {
                self.error(
                    over(key),
                    "expected a single value or a list of values",
                    "write e.g. `offset.flush.interval.ms: 10000`",
                );
                continue;
            };
            if let Err(problem) = connect::check_override(key, &text) {
                let checked = connect::checked_against(kafka_version);
                self.diagnostics
                    .push(Diagnostic::error(over(key), format!("{problem}{checked}")));
                continue;
            }
            settings.insert(key.clone(), text);
        }
        let number = |k: &str| settings.get(k).and_then(|v| v.trim().parse::<i64>().ok());
        let topics: BTreeSet<&str> = ["config", "offset", "status"]
            .iter()
            .filter_map(|t| settings.get(&format!("{t}.storage.topic")))
            .map(|v| v.trim())
            .collect();
        if topics.len() < 3 {
            self.error(
                p(&["connect", "overrides"]),
                "the config, offset and status topics must be three different topics",
                "give `config.storage.topic`, `offset.storage.topic` and `status.storage.topic` distinct names",
            );
        }
        for t in ["config", "offset", "status"] {
            let key = format!("{t}.storage.replication.factor");
            if let Some(rf) = number(&key) {
                if rf == 0 || rf < -1 {
                    self.error(
                        over(&key),
                        format!("replication factor {rf}"),
                        "use a positive number, or -1 for the brokers' default",
                    );
                } else if rf > i64::from(brokers) && brokers > 0 {
                    self.error(
                        over(&key),
                        format!("replication factor {rf} is larger than the {brokers} brokers: Connect cannot create its {t} topic and the workers do not start"),
                        format!("use at most {brokers}"),
                    );
                } else if rf == 1 && brokers > 1 {
                    self.warn(
                        over(&key),
                        format!(
                            "one replica of the {t} topic: losing its broker loses Connect's {t}s"
                        ),
                        format!("use {}", brokers.min(3)),
                    );
                }
            }
        }
        for t in ["offset", "status"] {
            let key = format!("{t}.storage.partitions");
            if let Some(n) = number(&key)
                && (n == 0 || n < -1)
            {
                self.error(
                    over(&key),
                    format!("{n} partitions"),
                    "use a positive number, or -1 for the brokers' default",
                );
            }
        }
        settings
    }
}

#[cfg(test)]
mod tests {
    use crate::cluster::{CONNECT_REST_PORT, Role};
    use crate::ec2::Source;
    use crate::topology::diagnostic::{Report, Severity};
    use crate::topology::{Loaded, load};

    const BASE: &str = "name: demo\nregion: eu-west-1\nzones:\n  - {name: eu-west-1a, cidr: 10.0.0.0/24}\n  - {name: eu-west-1b, cidr: 10.0.1.0/24}\n  - {name: eu-west-1c, cidr: 10.0.2.0/24}\n";

    fn accepted(extra: &str) -> Loaded {
        load("t.yaml", format!("{BASE}{extra}").as_bytes())
            .unwrap_or_else(|r| panic!("expected a valid cluster, got:\n{r}"))
    }

    fn refused(extra: &str) -> Report {
        match load("t.yaml", format!("{BASE}{extra}").as_bytes()) {
            Ok(_) => panic!("expected errors for:\n{extra}"),
            Err(r) => r,
        }
    }

    /// The one error of a report: its path, message and help.
    fn one_error(r: &Report) -> (String, String, String) {
        assert_eq!(r.diagnostics.len(), 1, "{r}");
        let d = &r.diagnostics[0];
        assert_eq!(d.severity, Severity::Error, "{r}");
        (
            d.path.to_string(),
            d.message.clone(),
            d.help.clone().unwrap_or_default(),
        )
    }

    fn rest_sources(l: &Loaded) -> Vec<Source> {
        crate::provision::desired::group_rules(&l.cluster)
            .into_iter()
            .filter(|r| {
                r.ports == Some((i32::from(CONNECT_REST_PORT), i32::from(CONNECT_REST_PORT)))
            })
            .map(|r| r.source)
            .collect()
    }

    #[test]
    fn no_section_no_workers_and_no_rest_port() {
        let l = accepted("network:\n  admin_cidrs: [10.8.0.0/24]\n");
        assert_eq!(l.cluster.nodes_of(Role::Connect).count(), 0);
        assert!(l.cluster.connect.is_none());
        assert!(rest_sources(&l).is_empty(), "no workers, no REST rule");
        let l = accepted("connect:\n  count: 0\n");
        assert_eq!(l.cluster.nodes_of(Role::Connect).count(), 0);
        assert!(l.cluster.connect.is_none());
    }

    #[test]
    fn a_section_without_count_has_two_workers_in_two_zones() {
        let l = accepted("connect: {}\n");
        let zones: Vec<&str> = l
            .cluster
            .nodes_of(Role::Connect)
            .map(|n| n.zone.as_str())
            .collect();
        assert_eq!(zones, ["eu-west-1a", "eu-west-1b"]);
        assert!(l.cluster.connect.is_some());
    }

    #[test]
    fn workers_spread_round_robin_in_their_block_without_a_data_volume() {
        let l =
            accepted("connect:\n  count: 4\n  heap: 1g\nnetwork:\n  admin_cidrs: [10.8.0.0/24]\n");
        let workers: Vec<_> = l.cluster.nodes_of(Role::Connect).collect();
        let placed: Vec<(String, String, String)> = workers
            .iter()
            .map(|n| (n.name.clone(), n.zone.clone(), n.address.to_string()))
            .collect();
        let w = |n: &str, z: &str, a: &str| (n.to_string(), z.to_string(), a.to_string());
        assert_eq!(
            placed,
            [
                w("connect-1", "eu-west-1a", "10.0.0.61"),
                w("connect-2", "eu-west-1b", "10.0.1.62"),
                w("connect-3", "eu-west-1c", "10.0.2.63"),
                w("connect-4", "eu-west-1a", "10.0.0.64"),
            ]
        );
        let spec = &l.cluster.roles[&Role::Connect];
        assert_eq!((spec.heap.as_str(), spec.volume.as_ref()), ("1g", None));
        let settings = &l.cluster.connect.as_ref().expect("connect").settings;
        assert_eq!(settings["config.storage.replication.factor"], "3");
        assert_eq!(
            rest_sources(&l),
            [Source::Group, Source::Cidr("10.8.0.0/24".parse().unwrap())]
        );
    }

    #[test]
    fn a_volume_is_refused_and_the_rest_api_is_never_open_to_everyone() {
        let r = refused("connect:\n  count: 2\n  volume: {size_gib: 10}\n");
        assert!(r.to_string().contains("unknown key `volume`"), "{r}");
        let (path, message, _) = one_error(&refused(
            "connect:\n  count: 2\nnetwork:\n  admin_cidrs: [0.0.0.0/0]\n",
        ));
        assert_eq!(path, "network.admin_cidrs");
        assert!(message.contains("unauthenticated"), "{message}");
    }

    #[test]
    fn overrides_are_checked_against_kafkas_tables_and_the_brokers() {
        let l = accepted(
            "connect:\n  count: 2\n  overrides:\n    offset.flush.interval.ms: 5000\n    consumer.max.poll.records: 100\n",
        );
        let settings = &l.cluster.connect.as_ref().expect("connect").settings;
        assert_eq!(settings["offset.flush.interval.ms"], "5000");
        assert_eq!(settings["consumer.max.poll.records"], "100");
        let cases = [
            (
                "group.id: other",
                "connect.overrides.group.id",
                "`group.id` is set by kcluster for each worker",
            ),
            (
                "consumer.client.rack: x",
                "connect.overrides.consumer.client.rack",
                "`consumer.client.rack` is set by kcluster for each worker",
            ),
            (
                "offset.flush.interval: 5",
                "connect.overrides.offset.flush.interval",
                "not a Kafka 3.9 Connect worker config; did you mean `offset.flush.interval.ms`?",
            ),
            (
                "producer.ack: all",
                "connect.overrides.producer.ack",
                "not a Kafka 3.9 producer config; did you mean `producer.acks`?",
            ),
            (
                "status.storage.replication.factor: 4",
                "connect.overrides.status.storage.replication.factor",
                "replication factor 4 is larger than the 3 brokers: Connect cannot create its status topic and the workers do not start",
            ),
            (
                "offset.storage.partitions: 0",
                "connect.overrides.offset.storage.partitions",
                "0 partitions",
            ),
            (
                "status.storage.topic: connect-offsets",
                "connect.overrides",
                "the config, offset and status topics must be three different topics",
            ),
        ];
        for (line, path, message) in cases {
            let r = refused(&format!("connect:\n  count: 2\n  overrides:\n    {line}\n"));
            let (p, m, _) = one_error(&r);
            assert_eq!((p.as_str(), m.as_str()), (path, message), "{line}");
        }
    }

    #[test]
    fn overrides_of_a_kafka_4_cluster_are_checked_against_3_9s_tables_and_say_so() {
        let kraft = "kafka:\n  version: 4.3.1\nconnect:\n  count: 2\n  overrides:\n";
        let l = accepted(&format!("{kraft}    offset.flush.interval.ms: 5000\n"));
        assert_eq!(
            l.cluster.connect.as_ref().expect("connect").settings["offset.flush.interval.ms"],
            "5000"
        );
        for (line, path, problem) in [
            (
                "offset.flush.interval: 5",
                "connect.overrides.offset.flush.interval",
                "not a Kafka 3.9 Connect worker config; did you mean `offset.flush.interval.ms`?",
            ),
            (
                "producer.acks: most",
                "connect.overrides.producer.acks",
                "found `most`",
            ),
        ] {
            let r = refused(&format!("{kraft}    {line}\n"));
            let (p, m, _) = one_error(&r);
            assert_eq!(p, path, "{line}");
            assert!(
                m.contains(problem)
                    && m.ends_with(
                        " (checked against Kafka 3.9's Connect, producer and consumer config tables: kcluster has none for Kafka 4.3.1, which this cluster runs)"
                    ),
                "{line}: {m}"
            );
        }
    }

    #[test]
    fn plugins_need_an_https_archive_and_exactly_one_checksum() {
        let sha = "ab".repeat(32);
        let l = accepted(&format!(
            "connect:\n  count: 2\n  plugins:\n    - {{url: 'https://example.com/dl/jdbc-connector-10.7.tar.gz?x=1', sha256: {}}}\n    - {{url: https://example.com/s3.zip, sha512: {}}}\n",
            sha.to_uppercase(),
            "cd".repeat(64)
        ));
        let plugins = &l.cluster.connect.as_ref().expect("connect").plugins;
        let got: Vec<(&str, &str, &str)> = plugins
            .iter()
            .map(|p| (p.name.as_str(), p.algorithm.as_str(), p.checksum.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("jdbc-connector-10.7", "sha256", sha.as_str()),
                ("s3", "sha512", "cd".repeat(64).as_str())
            ]
        );
        let cases = [
            (
                format!("{{url: http://example.com/a.jar, sha256: {sha}}}"),
                "connect.plugins[0].url",
                "`http://example.com/a.jar` is not an https URL",
            ),
            (
                format!("{{url: https://example.com/a.rpm, sha256: {sha}}}"),
                "connect.plugins[0].url",
                "`a.rpm` is not a plugin archive kcluster can install",
            ),
            (
                "{url: https://example.com/a.jar}".to_string(),
                "connect.plugins[0].sha256",
                "missing: the bootstrap installs no plugin it cannot verify",
            ),
            (
                "{url: https://example.com/a.jar, sha256: abc}".to_string(),
                "connect.plugins[0].sha256",
                "not a SHA-256 (64 hex digits)",
            ),
            (
                format!("{{url: https://example.com/a.jar, sha256: {sha}, sha512: {sha}}}"),
                "connect.plugins[0]",
                "both `sha256` and `sha512` given",
            ),
        ];
        for (plugin, path, message) in cases {
            let r = refused(&format!(
                "connect:\n  count: 2\n  plugins:\n    - {plugin}\n"
            ));
            let (p, m, _) = one_error(&r);
            assert_eq!((p.as_str(), m.as_str()), (path, message), "{plugin}");
        }
        let twice = format!(
            "connect:\n  count: 2\n  plugins:\n    - {{url: https://a.example/x.jar, sha256: {sha}}}\n    - {{url: https://b.example/x.zip, sha256: {sha}}}\n"
        );
        let (p, m, _) = one_error(&refused(&twice));
        assert_eq!(
            (p.as_str(), m.as_str()),
            (
                "connect.plugins[1].url",
                "installs into `x`, as connect.plugins[0] does"
            )
        );
    }
}
