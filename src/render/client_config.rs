//! Client settings for an application in one zone (`kcluster client-config`): where to connect,
//! which rack to fetch from, and for producers durable defaults and a send buffer sized to ride
//! out a disruption — each value explained in a comment, each key checked against Kafka's own
//! producer or consumer configuration table.

use std::fmt::Write as _;

use crate::cluster::{Cluster, Role};
use crate::kafka::config::{BrokerConfigs, ClientTable};

/// Which client the settings are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    Producer,
    Consumer,
    Admin,
}

/// What a producer must ride out: its write rate and the longest disruption (a zone's loss, a
/// leader election) during which `send()` should neither block nor fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disruption {
    pub bytes_per_second: u64,
    pub seconds: u64,
}

/// The rendered properties and what the user should know about them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    pub properties: String,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientConfigError {
    #[error("zone `{zone}` is not one of the cluster's zones ({known})")]
    UnknownZone { zone: String, known: String },
    #[error("the cluster has no brokers")]
    NoBrokers,
    #[error("a producer's buffer is sized from --write-rate and --ride-out; give both")]
    MissingSizing,
    #[error("kcluster rendered `{key}={value}`, which Kafka would refuse: {problem}")]
    Invalid {
        key: String,
        value: String,
        problem: String,
    },
}

/// Kafka's defaults the sizing starts from.
const DEFAULT_BUFFER: u64 = 32 * MIB;
const DEFAULT_DELIVERY_TIMEOUT_MS: u64 = 120_000;
const REQUEST_TIMEOUT_MS: u64 = 30_000;
const MIB: u64 = 1024 * 1024;
/// Brokers per zone listed in `bootstrap.servers`: any one answers with the whole cluster; two
/// per zone keep the first connection working with a broker or a zone down.
const BOOTSTRAP_PER_ZONE: usize = 2;
/// The share of the heap a producer's buffer may take before the sizing warns.
const HEAP_SHARE: u64 = 4;

/// Renders the settings for a `kind` client running in `zone`. `disruption` sizes a producer's
/// buffer; `heap_bytes` is the application's JVM heap, if known, to warn when the buffer does
/// not fit.
pub fn render(
    cluster: &Cluster,
    zone: &str,
    kind: ClientKind,
    disruption: Option<Disruption>,
    heap_bytes: Option<u64>,
) -> Result<ClientConfig, ClientConfigError> {
    if !cluster.zones.iter().any(|z| z.name == zone) {
        return Err(ClientConfigError::UnknownZone {
            zone: zone.to_string(),
            known: cluster.zone_names().join(", "),
        });
    }
    let mut out = Settings::default();
    let kind_name = match kind {
        ClientKind::Producer => "producer",
        ClientKind::Consumer => "consumer",
        ClientKind::Admin => "admin client",
    };
    out.comment(&format!(
        "Kafka {kind_name} settings for an application in zone {zone} of cluster {}; rendered by kcluster.",
        cluster.name
    ));
    out.comment("Add the application's own settings (serializers, group.id, ...) below.");
    out.blank();
    out.comment(&format!(
        "Brokers to make the first connection through, up to {BOOTSTRAP_PER_ZONE} per zone and \
         this zone's first; any one of them returns the whole cluster."
    ));
    out.set("bootstrap.servers", &bootstrap_servers(cluster, zone)?);
    let mut warnings = Vec::new();
    match kind {
        ClientKind::Consumer => {
            out.comment(
                "Fetch from a replica in this zone when it has one (the brokers run \
                 RackAwareReplicaSelector): no cross-zone traffic, and reads go on while \
                 another zone is down.",
            );
            out.set("client.rack", cluster.rack_of(zone));
        }
        ClientKind::Producer => {
            let d = disruption.ok_or(ClientConfigError::MissingSizing)?;
            producer(&mut out, d, heap_bytes, &mut warnings);
        }
        ClientKind::Admin => {}
    }
    if let Some(table) = match kind {
        ClientKind::Producer => Some(ClientTable::Producer),
        ClientKind::Consumer => Some(ClientTable::Consumer),
        ClientKind::Admin => None,
    } {
        check(table.configs(), &out.pairs)?;
    }
    Ok(ClientConfig {
        properties: out.text,
        warnings,
    })
}

/// The durable producer settings and the buffer that rides out `d`.
fn producer(out: &mut Settings, d: Disruption, heap: Option<u64>, warnings: &mut Vec<String>) {
    out.comment("Durability: a record counts as written once every in-sync replica has it.");
    out.set("acks", "all");
    out.comment("No duplicates or reordering from retries (needs acks=all).");
    out.set("enable.idempotence", "true");
    out.comment(
        "Producers always write to the partition leader, in whatever zone it is: client.rack \
         is a consumer setting.",
    );
    out.blank();

    let needed = d.bytes_per_second.saturating_mul(d.seconds);
    let buffer = needed
        .div_ceil(MIB)
        .max(1)
        .saturating_mul(MIB)
        .max(DEFAULT_BUFFER);
    let block_ms = d.seconds.saturating_mul(1000);
    // A record may wait the whole disruption in the buffer, then the blocking time, then one
    // request; Kafka also requires delivery.timeout.ms >= linger.ms + request.timeout.ms.
    let delivery_ms = (2 * block_ms + REQUEST_TIMEOUT_MS).max(DEFAULT_DELIVERY_TIMEOUT_MS);
    out.comment(&format!(
        "While no broker can take records (a leader election, a zone going down) send() only \
         appends them to this buffer. {} for {} s is {}; the buffer holds that (at least \
         Kafka's default 32 MiB), so send() does not block for a disruption that short.",
        human_rate(d.bytes_per_second),
        d.seconds,
        human_bytes(needed)
    ));
    out.set("buffer.memory", &buffer.to_string());
    out.comment(&format!(
        "If the disruption outlasts the buffer, send() blocks at most this long (the same {} s) \
         and then throws, instead of Kafka's default 60 s: the application learns it is behind.",
        d.seconds
    ));
    out.set("max.block.ms", &block_ms.to_string());
    out.comment(
        "A buffered record is retried until this much time after send(): the disruption, the \
         blocking time and one request more (never below Kafka's 2-minute default), so nothing \
         buffered expires while the cluster recovers.",
    );
    out.set("delivery.timeout.ms", &delivery_ms.to_string());
    if let Some(heap) = heap
        && buffer.saturating_mul(HEAP_SHARE) > heap
    {
        warnings.push(format!(
            "buffer.memory {} is more than a quarter of the {} heap: the producer's buffer \
             competes with the application for memory; give the JVM at least {} or accept a \
             shorter --ride-out",
            human_bytes(buffer),
            human_bytes(heap),
            human_bytes(buffer.saturating_mul(HEAP_SHARE))
        ));
    }
}

/// Up to [`BOOTSTRAP_PER_ZONE`] brokers of each zone, `zone` first, then the other zones in file
/// order; brokers by id.
fn bootstrap_servers(cluster: &Cluster, zone: &str) -> Result<String, ClientConfigError> {
    let port = cluster.network.client_port;
    let order =
        std::iter::once(zone).chain(cluster.zone_names().into_iter().filter(|z| *z != zone));
    let mut servers = Vec::new();
    for z in order {
        let mut in_zone: Vec<_> = cluster.brokers().filter(|b| b.zone == z).collect();
        in_zone.sort_by_key(|b| b.id);
        servers.extend(
            in_zone
                .iter()
                .take(BOOTSTRAP_PER_ZONE)
                .map(|b| format!("{}:{port}", b.address)),
        );
    }
    if servers.is_empty() {
        return Err(ClientConfigError::NoBrokers);
    }
    debug_assert!(cluster.nodes.iter().any(|n| n.role == Role::Broker));
    Ok(servers.join(","))
}

/// Every rendered key and value, checked against Kafka's own table.
fn check(table: &BrokerConfigs, pairs: &[(String, String)]) -> Result<(), ClientConfigError> {
    for (key, value) in pairs {
        table
            .check(key, value)
            .map_err(|problem| ClientConfigError::Invalid {
                key: key.clone(),
                value: value.clone(),
                problem: problem.to_string(),
            })?;
    }
    Ok(())
}

/// A properties file being written: comments wrapped at 100 columns, `key=value` lines.
#[derive(Default)]
struct Settings {
    text: String,
    pairs: Vec<(String, String)>,
}

impl Settings {
    fn comment(&mut self, text: &str) {
        let mut line = String::from("#");
        for word in text.split_whitespace() {
            if line.len() + 1 + word.len() > 100 {
                let _ = writeln!(self.text, "{line}");
                line = String::from("#");
            }
            line.push(' ');
            line.push_str(word);
        }
        let _ = writeln!(self.text, "{line}");
    }

    fn set(&mut self, key: &str, value: &str) {
        let _ = writeln!(self.text, "{key}={value}");
        self.pairs.push((key.to_string(), value.to_string()));
    }

    fn blank(&mut self) {
        self.text.push('\n');
    }
}

fn human_bytes(bytes: u64) -> String {
    if bytes >= 1024 * MIB && bytes.is_multiple_of(1024 * MIB) {
        format!("{} GiB", bytes / (1024 * MIB))
    } else if bytes >= MIB {
        format!("{:.0} MiB", bytes as f64 / MIB as f64)
    } else {
        format!("{bytes} bytes")
    }
}

fn human_rate(bytes_per_second: u64) -> String {
    format!("{}/s", human_bytes(bytes_per_second))
}

/// Parses a rate such as `50MB/s`, `50MiB/s`, `800KB/s` or `1000000` (bytes per second). MB and
/// MiB are both read as MiB: the buffer errs on the larger side.
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let t = t.strip_suffix("/s").unwrap_or(t);
    parse_size(t).map_err(|_| {
        format!("`{text}` is not a write rate; write it like `50MB/s`, `800KiB/s` or `1000000`")
    })
}

/// Parses a size such as `2g`, `512m`, `2GiB`, `50MB` or `1000` (bytes).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size; write it like `2g`, `512MiB` or `1000`"))?;
    let factor = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => MIB,
        "g" | "gb" | "gib" => 1024 * MIB,
        _ => {
            return Err(format!(
                "`{text}` has an unknown unit `{unit}`; use k, m or g (KiB, MiB, GiB)"
            ));
        }
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// Parses a duration in whole seconds: `30s`, `2m` or `30`.
pub fn parse_seconds(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let bad = || format!("`{text}` is not a duration; write it like `30s` or `2m`");
    if let Some(m) = t.strip_suffix('m') {
        return m.parse::<u64>().map(|m| m * 60).map_err(|_| bad());
    }
    t.strip_suffix('s').unwrap_or(t).parse().map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> Cluster {
        let yaml = "name: demo\nregion: eu-west-1\nzones:\n  - {name: eu-west-1a, cidr: 10.0.1.0/24}\n  - {name: eu-west-1b, cidr: 10.0.2.0/24}\n  - {name: eu-west-1c, cidr: 10.0.3.0/24}\nbrokers:\n  count: 6\n";
        match crate::topology::load("test.yaml", yaml.as_bytes()) {
            Ok(l) => l.cluster,
            Err(r) => panic!("{r}"),
        }
    }

    fn value<'a>(properties: &'a str, key: &str) -> Option<&'a str> {
        properties
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
    }

    const FIFTY_FOR_THIRTY: Disruption = Disruption {
        bytes_per_second: 50 * MIB,
        seconds: 30,
    };

    #[test]
    fn producer_buffer_holds_the_disruption_and_blocks_no_longer_than_it() {
        let c = render(
            &cluster(),
            "eu-west-1b",
            ClientKind::Producer,
            Some(FIFTY_FOR_THIRTY),
            None,
        )
        .expect("renders");
        let p = &c.properties;
        assert_eq!(value(p, "acks"), Some("all"));
        assert_eq!(value(p, "enable.idempotence"), Some("true"));
        assert_eq!(value(p, "buffer.memory"), Some("1572864000"), "1500 MiB");
        assert_eq!(value(p, "max.block.ms"), Some("30000"));
        assert_eq!(value(p, "delivery.timeout.ms"), Some("120000"));
        assert_eq!(value(p, "client.rack"), None, "a consumer setting");
        assert!(p.contains("50 MiB/s for 30 s is 1500 MiB"), "{p}");
        assert!(c.warnings.is_empty());
    }

    #[test]
    fn small_rates_keep_kafkas_default_buffer_and_long_ones_extend_delivery() {
        let slow = Disruption {
            bytes_per_second: 1000,
            seconds: 10,
        };
        let c = render(
            &cluster(),
            "eu-west-1a",
            ClientKind::Producer,
            Some(slow),
            None,
        )
        .expect("renders");
        assert_eq!(value(&c.properties, "buffer.memory"), Some("33554432"));
        let long = Disruption {
            bytes_per_second: MIB,
            seconds: 300,
        };
        let c = render(
            &cluster(),
            "eu-west-1a",
            ClientKind::Producer,
            Some(long),
            None,
        )
        .expect("renders");
        assert_eq!(value(&c.properties, "delivery.timeout.ms"), Some("630000"));
    }

    #[test]
    fn a_heap_that_cannot_hold_the_buffer_is_warned_about() {
        let c = render(
            &cluster(),
            "eu-west-1a",
            ClientKind::Producer,
            Some(FIFTY_FOR_THIRTY),
            Some(2 * 1024 * MIB),
        )
        .expect("renders");
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(
            c.warnings[0]
                .starts_with("buffer.memory 1500 MiB is more than a quarter of the 2 GiB heap")
        );
        let roomy = render(
            &cluster(),
            "eu-west-1a",
            ClientKind::Producer,
            Some(FIFTY_FOR_THIRTY),
            Some(8 * 1024 * MIB),
        )
        .expect("renders");
        assert!(roomy.warnings.is_empty());
    }

    #[test]
    fn consumer_fetches_from_its_zone_and_bootstraps_through_every_zone_its_own_first() {
        let c =
            render(&cluster(), "eu-west-1c", ClientKind::Consumer, None, None).expect("renders");
        assert_eq!(value(&c.properties, "client.rack"), Some("eu-west-1c"));
        assert_eq!(
            value(&c.properties, "bootstrap.servers"),
            Some(
                "10.0.3.103:9092,10.0.3.106:9092,10.0.1.101:9092,10.0.1.104:9092,10.0.2.102:9092,10.0.2.105:9092"
            )
        );
        assert_eq!(value(&c.properties, "acks"), None);
    }

    #[test]
    fn a_consumer_in_a_zone_with_an_az_id_fetches_by_that_id_as_the_brokers_rack() {
        let yaml = "name: demo\nregion: eu-west-1\nzones:\n  - {name: eu-west-1a, cidr: 10.0.1.0/24, id: euw1-az3}\n  - {name: eu-west-1b, cidr: 10.0.2.0/24, id: euw1-az1}\n  - {name: eu-west-1c, cidr: 10.0.3.0/24, id: euw1-az2}\n";
        let cluster = match crate::topology::load("test.yaml", yaml.as_bytes()) {
            Ok(l) => l.cluster,
            Err(r) => panic!("{r}"),
        };
        let c = render(&cluster, "eu-west-1a", ClientKind::Consumer, None, None).expect("renders");
        assert_eq!(value(&c.properties, "client.rack"), Some("euw1-az3"));
    }

    #[test]
    fn unknown_zone_and_missing_sizing_are_refused() {
        assert_eq!(
            render(&cluster(), "eu-west-1d", ClientKind::Consumer, None, None),
            Err(ClientConfigError::UnknownZone {
                zone: "eu-west-1d".into(),
                known: "eu-west-1a, eu-west-1b, eu-west-1c".into()
            })
        );
        assert_eq!(
            render(&cluster(), "eu-west-1a", ClientKind::Producer, None, None),
            Err(ClientConfigError::MissingSizing)
        );
    }

    #[test]
    fn every_rendered_key_is_in_kafkas_table_and_the_check_catches_one_that_is_not() {
        for kind in [ClientKind::Producer, ClientKind::Consumer] {
            render(&cluster(), "eu-west-1a", kind, Some(FIFTY_FOR_THIRTY), None).expect("valid");
        }
        let bad = [("client.rack".to_string(), "eu-west-1a".to_string())];
        let err = check(ClientTable::Producer.configs(), &bad).expect_err("not a producer config");
        assert!(
            err.to_string().contains("not a Kafka 3.9 producer config"),
            "{err}"
        );
        let bad = [("max.block.ms".to_string(), "-1".to_string())];
        assert!(check(ClientTable::Producer.configs(), &bad).is_err());
    }

    #[test]
    fn rates_sizes_and_durations_parse_with_their_units() {
        assert_eq!(parse_rate("50MB/s"), Ok(50 * MIB));
        assert_eq!(parse_rate("800KiB/s"), Ok(800 * 1024));
        assert_eq!(parse_rate("1000"), Ok(1000));
        assert!(parse_rate("fast").is_err());
        assert_eq!(parse_size("2g"), Ok(2 * 1024 * MIB));
        assert!(parse_size("2x").is_err());
        assert_eq!(parse_seconds("30s"), Ok(30));
        assert_eq!(parse_seconds("2m"), Ok(120));
        assert!(parse_seconds("soon").is_err());
    }
}
