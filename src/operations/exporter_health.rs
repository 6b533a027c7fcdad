//! Each node's health as its own exporters tell it (for `status`; the roll's gates read Kafka's protocol in `health.rs`): `kcluster status` reads every JVM node's JMX
//! exporter (and the monitoring node's Prometheus) at its fixed address, with a timeout, and
//! turns the Prometheus text format into a few facts an operator looks at first.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::cluster::{Cluster, Node, PROMETHEUS_PORT, Role};
use crate::render::exporters::JMX_EXPORTER_PORT;

/// The most a metrics page may hold; a JMX exporter page of kcluster's rules is a few KiB.
const MAX_PAGE: u64 = 8 * 1024 * 1024;

/// One sample of the Prometheus text exposition format.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses the Prometheus text exposition format (version 0.0.4): comments and `# HELP`/`# TYPE`
/// lines are skipped, label values may hold escaped `\\`, `\"` and `\n`, values may be `NaN`,
/// `+Inf` or `-Inf`, and a timestamp may follow. A malformed line is an error naming it.
pub fn parse(text: &str) -> Result<Vec<Sample>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        out.push(parse_line(line).map_err(|e| format!("line {}: {e}: {line}", i + 1))?);
    }
    Ok(out)
}

fn parse_line(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or("no value")?;
    let name = &line[..name_end];
    let valid_name = name.chars().enumerate().all(|(i, c)| {
        c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
    });
    if name.is_empty() || !valid_name {
        return Err(format!("`{name}` is not a metric name"));
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices().peekable();
        let close;
        loop {
            while chars
                .next_if(|(_, c)| c.is_whitespace() || *c == ',')
                .is_some()
            {}
            match chars.peek() {
                Some((at, '}')) => {
                    close = *at;
                    break;
                }
                None => return Err("unclosed `{`".into()),
                _ => {}
            }
            let mut key = String::new();
            while let Some((_, c)) = chars.next_if(|(_, c)| *c != '=') {
                key.push(c);
            }
            let key = key.trim().to_string();
            if chars.next().map(|(_, c)| c) != Some('=')
                || chars.next().map(|(_, c)| c) != Some('"')
            {
                return Err(format!("label `{key}` has no quoted value"));
            }
            let mut value = String::new();
            loop {
                match chars.next() {
                    Some((_, '"')) => break,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, c)) => value.push(c),
                        None => return Err("escape at the end".into()),
                    },
                    Some((_, c)) => value.push(c),
                    None => return Err(format!("label `{key}`'s value is not closed")),
                }
            }
            labels.insert(key, value);
        }
        rest = &inner[close + 1..];
    }
    let mut words = rest.split_whitespace();
    let value = words.next().ok_or("no value")?;
    let value = match value {
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().map_err(|_| format!("`{v}` is not a number"))?,
    };
    if let Some(ts) = words.next()
        && ts.parse::<i64>().is_err()
    {
        return Err(format!("`{ts}` is not a timestamp"));
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// GETs `/metrics` from `address` over plain HTTP/1.1, everything within `timeout`.
pub fn fetch(address: SocketAddr, timeout: Duration) -> Result<String, String> {
    get(address, "/metrics", "text/plain", timeout)
}

/// GETs `path` from `address` over plain HTTP/1.1, everything within `timeout`: the body of a
/// `200` answer, or why there is none (another status is named).
pub fn get(
    address: SocketAddr,
    path: &str,
    accept: &str,
    timeout: Duration,
) -> Result<String, String> {
    let deadline = Instant::now() + timeout;
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("no answer within {} s", timeout.as_secs_f32()))
    };
    let mut stream = TcpStream::connect_timeout(&address, left()?).map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(left()?))
        .map_err(|e| e.to_string())?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        stream
            .set_read_timeout(Some(left()?))
            .map_err(|e| e.to_string())?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(format!(
                    "no complete answer within {} s",
                    timeout.as_secs_f32()
                ));
            }
            Err(e) => return Err(e.to_string()),
        }
        if raw.len() as u64 > MAX_PAGE {
            return Err(format!("the page is larger than {MAX_PAGE} bytes"));
        }
    }
    http_body(&raw)
}

/// The body of an HTTP response that must be `200`, de-chunked when sent in chunks.
fn http_body(raw: &[u8]) -> Result<String, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("not an HTTP response")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let body = &raw[split + 4..];
    let mut lines = head.lines();
    let status = lines.next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("answered `{status}`"));
    }
    let chunked = lines.any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("transfer-encoding")
                && v.trim().eq_ignore_ascii_case("chunked")
        })
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    String::from_utf8(body).map_err(|_| "the page is not UTF-8".to_string())
}

fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("a chunk is cut short")?;
        let size_text = String::from_utf8_lossy(&body[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("`{size_text}` is not a chunk size"))?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if body.len() < size {
            return Err("a chunk is cut short".into());
        }
        out.extend_from_slice(&body[..size]);
        body = body.get(size + 2..).ok_or("a chunk is cut short")?;
    }
}

/// What one node's exporter says, or why it could not be read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeHealth {
    pub node: String,
    pub role: Role,
    /// Where it was read.
    pub endpoint: String,
    /// `None` when the endpoint answered; otherwise why not.
    pub unreachable: Option<String>,
    /// Broker: partitions it leads that lack an in-sync replica.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub under_replicated: Option<f64>,
    /// Broker: ISR shrinks since it started (a rising count: replicas keep falling behind).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub isr_shrinks: Option<f64>,
    /// Broker or KRaft controller: offline partitions (in ZooKeeper mode the active controller
    /// counts them, the other brokers say 0; in KRaft mode every controller counts them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offline_partitions: Option<f64>,
    /// Broker or KRaft controller: 1 on the active controller.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_controller: Option<f64>,
    /// KRaft mode, broker or controller: the `node.id` of the metadata quorum's leader as this
    /// node knows it (`kafka_raft_current_leader`), -1 while it knows none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quorum_leader: Option<f64>,
    /// KRaft controller: seconds since the last metadata record it applied was appended; the
    /// active controller appends one at least every 500 ms, so it stays low only while the quorum
    /// commits (the leader id alone cannot tell: Kafka 4 keeps a lost leader's id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata_lag: Option<f64>,
    /// Kafka's `node.id` of this node, to tell a controller that leads the quorum.
    #[serde(skip)]
    pub node_id: u32,
    /// ZooKeeper: `leader`, `follower`, or `none` while it looks for a quorum.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zookeeper_mode: Option<String>,
    /// ZooKeeper leader: the other members serving as its followers (from their own exporters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synced_followers: Option<u32>,
    /// Connect worker: connectors and tasks it runs now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connectors: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tasks: Option<f64>,
    /// Connect worker: 1 while its group rebalances (connectors and tasks move).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rebalancing: Option<f64>,
}

impl NodeHealth {
    pub fn up(&self) -> bool {
        self.unreachable.is_none()
    }

    /// The health as a short phrase for the text table.
    pub fn summary(&self) -> String {
        if let Some(why) = &self.unreachable {
            return format!("DOWN ({why})");
        }
        let n = |v: Option<f64>| v.map_or("?".to_string(), |v| format!("{v}"));
        match self.role {
            Role::Broker => {
                let mut s = format!(
                    "up, URP {}, offline {}, ISR shrinks {}",
                    n(self.under_replicated),
                    n(self.offline_partitions),
                    n(self.isr_shrinks)
                );
                if self.active_controller == Some(1.0) {
                    s.push_str(", active controller");
                }
                if self.quorum_leader.is_some_and(|l| l < 0.0) {
                    s.push_str(", no quorum leader");
                }
                s
            }
            Role::Controller => {
                let mut s = format!("up, offline {}", n(self.offline_partitions));
                if self.active_controller == Some(1.0) {
                    s.push_str(", active controller");
                }
                let stale = self
                    .metadata_lag
                    .filter(|lag| *lag >= STALE_METADATA_SECONDS);
                match (stale, self.quorum_leader) {
                    (Some(lag), _) => s.push_str(&format!(
                        ", no quorum: last metadata applied {lag:.0} s ago"
                    )),
                    (None, Some(l)) if l < 0.0 => s.push_str(", no quorum leader"),
                    (None, Some(l)) if l == f64::from(self.node_id) => {
                        s.push_str(", quorum leader")
                    }
                    (None, Some(l)) => s.push_str(&format!(", follows quorum leader {l}")),
                    (None, None) => {}
                }
                s
            }
            Role::Zookeeper => match (self.zookeeper_mode.as_deref(), self.synced_followers) {
                (Some("leader"), Some(f)) => format!("up, leader, {f} followers synced"),
                (Some(mode), _) => format!("up, {mode}"),
                (None, _) => "up".to_string(),
            },
            Role::Connect => {
                let mut s = format!(
                    "up, {} connectors, {} tasks",
                    n(self.connectors),
                    n(self.tasks)
                );
                if self.rebalancing == Some(1.0) {
                    s.push_str(", rebalancing");
                }
                s
            }
            Role::Monitoring => "up".to_string(),
        }
    }
}

/// A controller whose last applied metadata record is this old is in no working quorum (the
/// `KRaftNoQuorum` alert's threshold).
const STALE_METADATA_SECONDS: f64 = 30.0;

/// Where a node's health is read: its JMX exporter, or the monitoring node's Prometheus.
pub fn endpoint(node: &Node) -> SocketAddr {
    let port = if node.role.info().jvm {
        JMX_EXPORTER_PORT
    } else {
        PROMETHEUS_PORT
    };
    SocketAddr::from((node.address, port))
}

/// One node's health from its page of metrics.
pub fn from_samples(node: &Node, endpoint: String, samples: &[Sample]) -> NodeHealth {
    let value = |name: &str| samples.iter().find(|s| s.name == name).map(|s| s.value);
    let mut h = NodeHealth {
        node: node.name.clone(),
        role: node.role,
        endpoint,
        unreachable: None,
        under_replicated: None,
        isr_shrinks: None,
        offline_partitions: None,
        active_controller: None,
        quorum_leader: None,
        metadata_lag: None,
        node_id: node.node_id(),
        zookeeper_mode: None,
        synced_followers: None,
        connectors: None,
        tasks: None,
        rebalancing: None,
    };
    match node.role {
        Role::Broker => {
            h.under_replicated = value("kafka_server_under_replicated_partitions");
            h.isr_shrinks = value("kafka_server_isr_shrinks_total");
            h.offline_partitions = value("kafka_controller_offline_partitions");
            h.active_controller = value("kafka_controller_active_controller_count");
            h.quorum_leader = value("kafka_raft_current_leader");
        }
        // A KRaft controller: each counts the offline partitions; the active one says 1.
        Role::Controller => {
            h.offline_partitions = value("kafka_controller_offline_partitions");
            h.active_controller = value("kafka_controller_active_controller_count");
            h.quorum_leader = value("kafka_raft_current_leader");
            h.metadata_lag = value("kafka_controller_last_applied_record_lag_seconds");
        }
        Role::Zookeeper => {
            let serving = samples
                .iter()
                .find(|s| s.name == "zookeeper_serving" && s.value == 1.0)
                .and_then(|s| s.labels.get("state").cloned());
            h.zookeeper_mode = Some(serving.unwrap_or_else(|| "none".to_string()));
        }
        // The names the rendered jmx-exporter-kafka-connect.yaml gives Connect's MBeans.
        Role::Connect => {
            h.connectors = value("kafka_connect_worker_connectors");
            h.tasks = value("kafka_connect_worker_tasks");
            h.rebalancing = value("kafka_connect_worker_rebalancing");
        }
        Role::Monitoring => {}
    }
    h
}

/// Every node's health, read at the same time (one thread per node), each within `timeout`.
/// `endpoints` replaces a node's address where the topology's cannot be reached from here (a
/// tunnel); the others are read at their fixed address.
pub fn gather(
    cluster: &Cluster,
    endpoints: &BTreeMap<String, SocketAddr>,
    timeout: Duration,
) -> Vec<NodeHealth> {
    let mut health: Vec<NodeHealth> = std::thread::scope(|scope| {
        let handles: Vec<_> = cluster
            .nodes
            .iter()
            .map(|node| {
                let address = endpoints
                    .get(&node.name)
                    .copied()
                    .unwrap_or_else(|| endpoint(node));
                scope.spawn(move || {
                    let read = fetch(address, timeout).and_then(|page| parse(&page));
                    match read {
                        Ok(samples) => from_samples(node, address.to_string(), &samples),
                        Err(why) => {
                            let mut h = from_samples(node, address.to_string(), &[]);
                            h.zookeeper_mode = None;
                            h.unreachable = Some(why);
                            h
                        }
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a health reader does not panic"))
            .collect()
    });
    let followers = health
        .iter()
        .filter(|h| h.zookeeper_mode.as_deref() == Some("follower"))
        .count() as u32;
    for h in &mut health {
        if h.zookeeper_mode.as_deref() == Some("leader") {
            h.synced_followers = Some(followers);
        }
    }
    health
}

/// The sentence `status` prints when no node's exporter answered.
pub const NONE_REACHABLE: &str = "the nodes' metrics are not reachable from here: run `kcluster status` from inside the VPC, \
     add this machine's network to `network.monitoring_cidrs` and apply, or tunnel and name the \
     endpoints with --endpoint NODE=HOST:PORT";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_text_format_with_labels_escapes_and_special_values() {
        let page = "# HELP kafka_server_under_replicated_partitions Partitions.\n\
                    # TYPE kafka_server_under_replicated_partitions gauge\n\
                    kafka_server_under_replicated_partitions 3.0\n\
                    zookeeper_serving{state=\"follower\",} 1.0\n\
                    x{a=\"q\\\"uo\\\\te\\nnl\", b=\"{,}\"} -Inf 1712345678000\n\
                    y NaN\n\
                    z{} +Inf\n";
        let s = parse(page).expect("parses");
        assert_eq!(s.len(), 5);
        assert_eq!(s[0].name, "kafka_server_under_replicated_partitions");
        assert_eq!(s[0].value, 3.0);
        assert_eq!(s[1].labels["state"], "follower");
        assert_eq!(s[2].labels["a"], "q\"uo\\te\nnl");
        assert_eq!(s[2].labels["b"], "{,}");
        assert_eq!(s[2].value, f64::NEG_INFINITY);
        assert!(s[3].value.is_nan());
        assert_eq!(s[4].value, f64::INFINITY);
    }

    #[test]
    fn a_malformed_line_is_named() {
        for bad in [
            "x{a=\"1\" 2",
            "x{a=1} 2",
            "1x 2",
            "x",
            "x abc",
            "x 1 notatime",
        ] {
            let e = parse(&format!("ok 1\n{bad}\n")).expect_err(bad);
            assert!(e.starts_with("line 2:"), "{bad}: {e}");
        }
    }

    #[test]
    fn http_bodies_plain_and_chunked() {
        assert_eq!(
            http_body(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\na 1\n").as_deref(),
            Ok("a 1\n")
        );
        assert_eq!(
            http_body(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\na \r\n2;x=y\r\n1\n\r\n0\r\n\r\n")
                .as_deref(),
            Ok("a 1\n")
        );
        assert!(http_body(b"HTTP/1.1 404 Not Found\r\n\r\n").is_err());
        assert!(
            http_body(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nab").is_err()
        );
    }

    #[test]
    fn a_closed_port_is_reported_unreachable_within_the_timeout() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        let address = listener.local_addr().expect("address");
        drop(listener);
        let started = Instant::now();
        assert!(fetch(address, Duration::from_secs(2)).is_err());
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn a_silent_server_times_out() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
        let address = listener.local_addr().expect("address");
        let started = Instant::now();
        let e = fetch(address, Duration::from_millis(500)).expect_err("silent");
        assert!(e.contains("within"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(2));
        drop(listener);
    }

    #[test]
    fn broker_and_zookeeper_facts_come_from_their_metrics() {
        let cluster = crate::check::testing::test_cluster(
            &[crate::check::testing::A],
            &[crate::check::testing::A],
            &[crate::check::testing::A],
            1,
            1,
        );
        let broker = cluster.brokers().next().expect("broker");
        let page = "kafka_server_under_replicated_partitions 2\nkafka_server_isr_shrinks_total 5\n\
                    kafka_controller_offline_partitions 0\nkafka_controller_active_controller_count 1\n";
        let h = from_samples(broker, "x".into(), &parse(page).expect("page"));
        assert_eq!(h.under_replicated, Some(2.0));
        assert_eq!(
            h.summary(),
            "up, URP 2, offline 0, ISR shrinks 5, active controller"
        );
        let zk = cluster.zookeepers().next().expect("zookeeper");
        let h = from_samples(
            zk,
            "x".into(),
            &parse("zookeeper_serving{state=\"leader\"} 1\n").expect("page"),
        );
        assert_eq!(h.zookeeper_mode.as_deref(), Some("leader"));
        let h = from_samples(zk, "x".into(), &[]);
        assert_eq!(h.zookeeper_mode.as_deref(), Some("none"));
    }

    #[test]
    fn kraft_nodes_say_which_quorum_leader_they_know() {
        let yaml = "name: t\nregion: eu-west-1\nmetadata: kraft\nzones:\n  - {name: eu-west-1a, cidr: 10.0.0.0/20}\n  - {name: eu-west-1b, cidr: 10.0.16.0/20}\n  - {name: eu-west-1c, cidr: 10.0.32.0/20}\n";
        let cluster = crate::topology::load("t.yaml", yaml.as_bytes())
            .expect("valid")
            .cluster;
        let mut controllers = cluster.nodes_of(Role::Controller);
        let (first, second) = (
            controllers.next().expect("controller"),
            controllers.next().expect("controller"),
        );
        let leader = format!("kafka_raft_current_leader {}\n", first.node_id());
        let page = |extra: &str| {
            parse(&format!("kafka_controller_offline_partitions 0\n{extra}")).expect("page")
        };
        let summary = |node, extra: &str| from_samples(node, "x".into(), &page(extra)).summary();
        assert_eq!(summary(first, &leader), "up, offline 0, quorum leader");
        assert_eq!(
            summary(second, &leader),
            format!("up, offline 0, follows quorum leader {}", first.node_id())
        );
        assert_eq!(
            summary(second, "kafka_raft_current_leader -1\n"),
            "up, offline 0, no quorum leader"
        );
        // A controller that lost its quorum keeps naming the old leader; its metadata stops.
        assert_eq!(
            summary(
                second,
                &format!("{leader}kafka_controller_last_applied_record_lag_seconds 41.2\n")
            ),
            "up, offline 0, no quorum: last metadata applied 41 s ago"
        );
        assert_eq!(
            summary(
                first,
                &format!("{leader}kafka_controller_last_applied_record_lag_seconds 0.3\n")
            ),
            "up, offline 0, quorum leader"
        );
        let broker = cluster.brokers().next().expect("broker");
        assert!(summary(broker, &leader).ends_with("ISR shrinks ?"));
        assert!(summary(broker, "kafka_raft_current_leader -1\n").ends_with(", no quorum leader"));
    }

    #[test]
    fn a_connect_workers_facts_come_from_the_names_its_rendered_rules_give() {
        let yaml = "name: t\nregion: eu-west-1\nzones:\n  - {name: eu-west-1a, cidr: 10.0.0.0/20}\n  - {name: eu-west-1b, cidr: 10.0.16.0/20}\n  - {name: eu-west-1c, cidr: 10.0.32.0/20}\nconnect: {}\n";
        let cluster = crate::topology::load("t.yaml", yaml.as_bytes())
            .expect("valid")
            .cluster;
        let worker = cluster.nodes_of(Role::Connect).next().expect("worker");
        let rules = crate::render::Renderer::new(&crate::render::Options::default())
            .expect("templates")
            .render_node(&cluster, worker)
            .expect("renders");
        let rules = &rules.file("jmx-exporter.yaml").expect("rules").content;
        for name in [
            "kafka_connect_worker_connectors",
            "kafka_connect_worker_tasks",
            "kafka_connect_worker_rebalancing",
        ] {
            assert!(rules.contains(&format!("name: {name}\n")), "{name}");
        }
        let page = "kafka_connect_worker_connectors 2\nkafka_connect_worker_tasks 5\n\
                    kafka_connect_worker_rebalancing 1\n";
        let h = from_samples(worker, "x".into(), &parse(page).expect("page"));
        assert_eq!(h.summary(), "up, 2 connectors, 5 tasks, rebalancing");
        let h = from_samples(worker, "x".into(), &[]);
        assert_eq!(h.summary(), "up, ? connectors, ? tasks");
    }
}
