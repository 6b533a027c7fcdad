//! Real Kafka reads the rendered files: brokers booted from kcluster's `server.properties` and
//! units register with the racks the topology gives them, every rendered setting works (the
//! ZooKeeper chroot, both listeners, the inter-broker listener, JMX, the JMX exporter agent with
//! its rendered rules), and Kafka's own rack-aware
//! assignment agrees with what `kcluster check` says about it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use kcluster::cluster::{self, Cluster, Role};
use kcluster::render::JMX_PORT;
use kcluster::render::exporters::JMX_EXPORTER_PORT;
use serde_json::Value;

use crate::local::{LocalCluster, clients, metrics};
use crate::support;

/// Kafka's Admin API lists every broker with its zone's rack (its AZ ID when the topology gives
/// one) and its client listener (`described` is what [`LocalCluster::wait_for_brokers`] returns).
pub fn assert_registered_racks(cluster: &Cluster, described: &Value) {
    let port = cluster.network.client_port;
    let seen: BTreeMap<u64, (String, String)> = described["brokers"]
        .as_array()
        .expect("brokers")
        .iter()
        .map(|b| {
            let id = b["id"].as_u64().expect("id");
            let at = format!("{}:{}", b["host"].as_str().unwrap_or("?"), b["port"]);
            (id, (b["rack"].as_str().unwrap_or("(none)").to_string(), at))
        })
        .collect();
    let expected: BTreeMap<u64, (String, String)> = cluster
        .brokers()
        .map(|n| {
            let at = format!("{}:{port}", n.address);
            (u64::from(n.id), (cluster.rack_of(&n.zone).to_string(), at))
        })
        .collect();
    assert_eq!(seen, expected, "broker id → (rack, client listener)");
}

fn fixture(name: &str) -> Cluster {
    support::load(&support::repo().join("tests/it/fixtures").join(name))
}

#[test]
fn brokers_register_with_their_zones_az_id_as_rack_and_every_rendered_setting_works() {
    let cluster = fixture("kafka-3x3.yaml");
    let mut local = LocalCluster::boot(&cluster);
    let bootstrap = local.bootstrap();
    let port = cluster.network.client_port;

    // 1. Racks and advertised client listeners, as Kafka's Admin API reports them.
    let described = local.wait_for_brokers();
    assert_registered_racks(&cluster, &described);

    // 2. The registrations live under the rendered chroot, with both listeners.
    let zk = format!("{}:2181", cluster.zookeepers().next().expect("zk").address);
    let chroot = cluster
        .zookeeper_connect()
        .split_once('/')
        .map(|(_, c)| format!("/{c}"))
        .expect("zookeeper.connect has a chroot");
    for node in cluster.brokers() {
        let path = format!("{chroot}/brokers/ids/{}", node.id);
        let out = clients::zk_shell(&zk, &["get", &path]);
        let text = String::from_utf8_lossy(&out.stdout);
        let registration: Value = text
            .lines()
            .find(|l| l.starts_with('{'))
            .and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or_else(|| local.fail(&format!("no registration at {path}: {text}")));
        assert_eq!(
            registration["rack"],
            Value::from(cluster.rack_of(&node.zone)),
            "{path}"
        );
        let endpoints: BTreeSet<String> = registration["endpoints"]
            .as_array()
            .expect("endpoints")
            .iter()
            .filter_map(|e| e.as_str().map(str::to_string))
            .collect();
        assert_eq!(
            endpoints,
            BTreeSet::from([
                format!("INTERNAL://{}:9093", node.address),
                format!("CLIENT://{}:{port}", node.address),
            ]),
            "{path}"
        );
    }
    let root = clients::zk_shell(&zk, &["ls", "/brokers/ids"]);
    assert!(
        String::from_utf8_lossy(&root.stdout).contains("does not exist")
            || String::from_utf8_lossy(&root.stderr).contains("does not exist")
            || String::from_utf8_lossy(&root.stdout).contains("NoNode"),
        "brokers registered outside the chroot: {}",
        String::from_utf8_lossy(&root.stdout)
    );

    // 3. A client writes and reads on the client port; replication runs on the internal listener.
    let topic = "settings";
    clients::probe(
        &["create", &bootstrap, topic, "3", "3"],
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| local.fail(&e));
    let written = clients::write_each(&bootstrap, topic, Duration::from_secs(30))
        .unwrap_or_else(|e| local.fail(&e));
    assert_eq!(written.written, vec![0, 1, 2], "{written:?}");
    let full_isr = |c: &LocalCluster| {
        let parts = clients::describe(&c.bootstrap(), topic)?;
        if parts.iter().all(|p| p.isr.len() == 3) {
            Ok(parts)
        } else {
            Err(format!("{parts:?}"))
        }
    };
    local.wait(
        "every replica of `settings` in sync",
        Duration::from_secs(60),
        full_isr,
    );
    // Only brokers reach the internal listener (clients are given the CLIENT one), so an
    // established connection to a broker's :9093 is another broker fetching from it or the
    // controller talking to it. (On loopback the kernel picks the connection's source address,
    // so the sending side is not known here.)
    let internal = connections_to(cluster::INTERNAL_PORT);
    for node in cluster.brokers() {
        assert!(
            internal.contains(&node.address),
            "nothing is connected to {}'s internal listener ({}:{}): replication does not use \
             it. Internal listeners with connections: {internal:?}",
            node.name,
            node.address,
            cluster::INTERNAL_PORT
        );
    }
    let records = clients::read_all(&bootstrap, topic).unwrap_or_else(|e| local.fail(&e));
    assert_eq!(records.len(), 3, "{records:?}");

    // 4. The client settings `kcluster client-config` renders load into Kafka's own producer and
    //    consumer as they are, with no key Kafka does not know, and reach the cluster.
    let zone = &cluster.zones[1].name;
    for (kind, extra) in [
        (
            "producer",
            &["--write-rate", "5MB/s", "--ride-out", "30s"][..],
        ),
        ("consumer", &[][..]),
    ] {
        let fixture = support::repo().join("tests/it/fixtures/kafka-3x3.yaml");
        let kind_flag = format!("--{kind}");
        let args: Vec<&str> = std::iter::once(kind_flag.as_str())
            .chain(extra.iter().copied())
            .collect();
        let rendered = clients::client_config(&fixture, zone, &args);
        let file = local.dir().join(format!("{kind}.properties"));
        std::fs::write(&file, &rendered).expect("client properties");
        let (answer, logged) = clients::probe_logging(
            &["client", kind, &file.display().to_string(), topic],
            Duration::from_secs(60),
        )
        .unwrap_or_else(|e| local.fail(&e));
        assert_eq!(answer["partitions"], 3, "{kind}: {answer}");
        assert!(
            logged.contains("values:"),
            "{kind}: Kafka's config dump is not in the log"
        );
        assert!(!logged.contains(UNUSED), "{kind}: Kafka logged: {logged}");
        // The check can fail: the same file with a key the client does not know.
        let mut with_typo = rendered.clone();
        with_typo.extend_from_slice(b"bufer.memory=1\n");
        std::fs::write(&file, with_typo).expect("client properties");
        let (_, logged) = clients::probe_logging(
            &["client", kind, &file.display().to_string(), topic],
            Duration::from_secs(60),
        )
        .unwrap_or_else(|e| local.fail(&e));
        assert!(
            logged.contains(UNUSED),
            "{kind}: a misspelt key went unnoticed: {logged}"
        );
    }

    // 5. JMX on the rendered port of every broker, bound to the broker's own address.
    for node in local.running(Role::Broker) {
        let urp = clients::jmx_read(
            &node.address.to_string(),
            JMX_PORT,
            "kafka.server:type=ReplicaManager,name=UnderReplicatedPartitions",
            "Value",
        )
        .unwrap_or_else(|e| local.fail(&e));
        assert_eq!(urp, "0", "{}: under-replicated partitions", node.name);
    }

    // 5. The JMX exporter agent of every node serves each metric its rendered rules name, on
    //    the node's own address.
    let nodes: Vec<(String, Ipv4Addr, String)> = [Role::Zookeeper, Role::Broker]
        .into_iter()
        .flat_map(|role| local.running(role))
        .map(|n| {
            let rules = std::fs::read_to_string(n.rendered_file("jmx-exporter.yaml"))
                .expect("rendered rules");
            (n.name.clone(), n.address, rules)
        })
        .collect();
    for (name, address, rules) in nodes {
        let expected = metrics::rule_names(&rules);
        let served = local.wait(
            &format!("{name}'s JMX exporter to serve its rules' metrics"),
            Duration::from_secs(60),
            |_| {
                let served = metrics::scrape(address, JMX_EXPORTER_PORT)?;
                let missing: Vec<_> = expected.difference(&served).collect();
                if missing.is_empty() {
                    Ok(served)
                } else {
                    Err(format!("missing {missing:?}"))
                }
            },
        );
        assert!(
            served.contains("jvm_memory_used_bytes"),
            "{name}: {served:?}"
        );
    }
}

/// What Kafka 3.9's clients log for a key they do not know.
const UNUSED: &str = "were supplied but are not used yet";

/// The local addresses with an established TCP connection on `port`, from the kernel's tables
/// (Java's sockets are IPv6 ones, so IPv4 addresses appear IPv4-mapped in `tcp6`).
fn connections_to(port: u16) -> BTreeSet<Ipv4Addr> {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .flat_map(|table| {
            std::fs::read_to_string(table)
                .unwrap_or_default()
                .lines()
                .skip(1)
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // Field 3 is the state; 01 is ESTABLISHED.
            if fields.get(3) != Some(&"01") {
                return None;
            }
            let (address, local_port) = parse_socket(fields.get(1)?)?;
            (local_port == port).then_some(address)
        })
        .collect()
}

/// `0B01007F:2385` (the address in hex, little-endian; the port in hex) → 127.0.1.11, 9093;
/// the IPv4-mapped IPv6 form `0000000000000000FFFF00000B01007F:2385` likewise.
fn parse_socket(s: &str) -> Option<(Ipv4Addr, u16)> {
    let (address, port) = s.split_once(':')?;
    let address = address
        .strip_prefix("0000000000000000FFFF0000")
        .unwrap_or(address);
    if address.len() != 8 {
        return None;
    }
    let a = u32::from_str_radix(address, 16).ok()?.to_le_bytes();
    Some((
        Ipv4Addr::new(a[0], a[1], a[2], a[3]),
        u16::from_str_radix(port, 16).ok()?,
    ))
}
