//! Kafka Connect workers: kcluster's defaults for `connect-distributed.properties`, the keys it
//! sets per worker, and how a worker override is checked against Kafka's own config tables.

use std::collections::BTreeMap;

use crate::kafka::config::{ClientTable, ConfigProblem};

/// Where the bootstrap unpacks connector plugins, one directory per plugin (`plugin.path`).
pub const PLUGIN_DIR: &str = "/opt/kafka-connect/plugins";

/// The internal topics' names (Kafka's sample `connect-distributed.properties` uses the same).
pub const CONFIG_TOPIC: &str = "connect-configs";
pub const OFFSET_TOPIC: &str = "connect-offsets";
pub const STATUS_TOPIC: &str = "connect-status";

/// The worker group of a cluster: one per cluster, named after it.
pub fn group_id(cluster: &str) -> String {
    format!("{cluster}-connect")
}

/// Worker settings before the user's overrides. The internal topics are replicated like the
/// cluster's own (3, or every broker when there are fewer) and compacted (Connect creates them
/// so); the config topic always has exactly one partition (Connect refuses any other, so it has
/// no setting); the offset and status topics keep Kafka's partition counts.
pub fn worker_settings(brokers: u32) -> BTreeMap<String, String> {
    let rf = brokers.clamp(1, 3).to_string();
    let json = "org.apache.kafka.connect.json.JsonConverter";
    let mut s = BTreeMap::new();
    let mut set = |k: &str, v: &str| {
        s.insert(k.to_string(), v.to_string());
    };
    set("config.storage.topic", CONFIG_TOPIC);
    set("config.storage.replication.factor", &rf);
    set("offset.storage.topic", OFFSET_TOPIC);
    set("offset.storage.replication.factor", &rf);
    set("offset.storage.partitions", "25");
    set("status.storage.topic", STATUS_TOPIC);
    set("status.storage.replication.factor", &rf);
    set("status.storage.partitions", "5");
    set("key.converter", json);
    set("value.converter", json);
    set("key.converter.schemas.enable", "true");
    set("value.converter.schemas.enable", "true");
    set("offset.flush.interval.ms", "10000");
    // Kafka waits 5 minutes for a lost worker to come back before handing its connectors and
    // tasks to the others (incremental cooperative rebalancing). A restarting worker is back in
    // well under a minute; a lost zone is not coming back soon, so the rest take over after one.
    set("scheduled.rebalance.max.delay.ms", "60000");
    s
}

/// Keys kcluster sets for each worker: its identity, its group, where it finds the brokers and
/// its plugins, where it listens, and the zone its consumers fetch from.
pub const MANAGED_KEYS: &[&str] = &[
    "admin.bootstrap.servers",
    "admin.listeners",
    "bootstrap.servers",
    "client.rack",
    "consumer.bootstrap.servers",
    "consumer.client.rack",
    "group.id",
    "listeners",
    "plugin.path",
    "producer.bootstrap.servers",
    "rest.advertised.host.name",
    "rest.advertised.listener",
    "rest.advertised.port",
];

/// Prefixes of settings Connect hands to something whose configs kcluster has no table for
/// (the admin client, the converters, config providers, REST extensions): passed as written.
const UNCHECKED_PREFIXES: &[&str] = &[
    "admin.",
    "config.providers.",
    "header.converter.",
    "key.converter.",
    "value.converter.",
];

/// The Kafka release line of the Connect, producer and consumer tables a worker override is
/// checked against. kcluster has these tables for 3.9 only (Kafka 4's documentation tables
/// shipped with it are the broker's), so a worker of any Kafka version is checked against 3.9's.
pub const TABLES_LINE: &str = "3.9";

/// What an override problem adds when the cluster's Kafka is not of the line the tables
/// document, so the message names the version checked; empty for a 3.9.x cluster.
pub fn checked_against(kafka_version: &str) -> String {
    let line = kafka_version
        .split('.')
        .take(2)
        .collect::<Vec<_>>()
        .join(".");
    if line == TABLES_LINE {
        return String::new();
    }
    format!(
        " (checked against Kafka {TABLES_LINE}'s Connect, producer and consumer config tables: \
         kcluster has none for Kafka {kafka_version}, which this cluster runs)"
    )
}

/// Checks one `connect-distributed.properties` override as Kafka 3.9 reads it: a worker config
/// against the Connect table, a `producer.` / `consumer.` one against the producer / consumer
/// table (Connect hands those to its tasks' clients with the prefix removed).
pub fn check_override(key: &str, value: &str) -> Result<(), ConfigProblem> {
    let connect = ClientTable::Connect.configs();
    if connect.get(key).is_some() {
        return connect.check(key, value);
    }
    for (prefix, table) in [
        ("producer.", ClientTable::Producer),
        ("consumer.", ClientTable::Consumer),
    ] {
        if let Some(rest) = key.strip_prefix(prefix) {
            return table
                .configs()
                .check(rest, value)
                .map_err(|problem| match problem {
                    ConfigProblem::UnknownKey {
                        version,
                        suggestions,
                    } => ConfigProblem::UnknownKey {
                        version,
                        suggestions: suggestions
                            .into_iter()
                            .map(|s| format!("{prefix}{s}"))
                            .collect(),
                    },
                    other => other,
                });
        }
    }
    if UNCHECKED_PREFIXES.iter().any(|p| key.starts_with(p)) {
        return Ok(());
    }
    connect.check(key, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_worker_configs_and_replicate_like_the_cluster() {
        let s = worker_settings(5);
        for (k, v) in &s {
            assert_eq!(check_override(k, v), Ok(()), "{k}={v}");
            assert!(!MANAGED_KEYS.contains(&k.as_str()), "{k}");
        }
        assert_eq!(s["offset.storage.replication.factor"], "3");
        assert_eq!(worker_settings(2)["status.storage.replication.factor"], "2");
        assert_eq!(worker_settings(1)["config.storage.replication.factor"], "1");
    }

    #[test]
    fn prefixed_overrides_are_checked_against_the_client_tables() {
        assert_eq!(check_override("producer.linger.ms", "5"), Ok(()));
        assert_eq!(check_override("consumer.max.poll.records", "100"), Ok(()));
        let e = check_override("consumer.max.poll.record", "100").expect_err("unknown");
        assert_eq!(
            e.to_string(),
            "not a Kafka 3.9 consumer config; did you mean `consumer.max.poll.records`?"
        );
        let e = check_override("producer.acks", "most").expect_err("not an acks value");
        assert!(e.to_string().contains("found `most`"), "{e}");
        assert_eq!(check_override("admin.request.timeout.ms", "1"), Ok(()));
        assert!(
            check_override("rest.port", "8084").is_err(),
            "not a 3.9 key"
        );
    }

    #[test]
    fn a_problem_names_the_tables_version_when_the_cluster_runs_another() {
        assert_eq!(checked_against("3.9.2"), "");
        assert_eq!(checked_against("3.9"), "");
        for version in ["4.3.1", "3.8.1", "3.10.0"] {
            let note = checked_against(version);
            assert!(
                note.contains("Kafka 3.9's Connect") && note.contains(&format!("Kafka {version},")),
                "{note}"
            );
        }
    }
}
