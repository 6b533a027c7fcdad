//! Real Kafka clients against a local cluster: the tests' probe (Kafka's Admin, producer and
//! consumer; `tests/kafka/Probe.java`), Kafka's own `VerifiableProducer` (the producer Kafka's
//! system tests use to prove durability), `JmxTool`, and ZooKeeper's shell.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::jvm::kafka;
use super::process::Watchdog;
use crate::support;

/// Runs one probe command and parses the JSON it prints; `Err` carries what it said instead.
pub fn probe(args: &[&str], limit: Duration) -> Result<Value, String> {
    probe_logging(args, limit).map(|(v, _)| v)
}

/// [`probe`], also returning what Kafka's clients logged (warnings and errors).
pub fn probe_logging(args: &[&str], limit: Duration) -> Result<(Value, String), String> {
    let out = support::run_bounded(kafka().tool("Probe").args(args), limit);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    if !out.status.success() {
        return Err(format!(
            "Probe {} ({}): {}{}",
            args.join(" "),
            out.status,
            stdout.trim(),
            last_lines(&String::from_utf8_lossy(&out.stderr), 5)
        ));
    }
    serde_json::from_str(stdout.trim())
        .map(|v| (v, stderr))
        .map_err(|e| format!("Probe {}: not JSON ({e}): {stdout}", args.join(" ")))
}

/// What `kcluster client-config` prints for an application in `zone` of `topology`, with `args`
/// (`--producer --write-rate …`, `--consumer`).
pub fn client_config(topology: &Path, zone: &str, args: &[&str]) -> Vec<u8> {
    let out = support::kcluster()
        .arg("client-config")
        .args(args)
        .args(["--zone", zone, "-f"])
        .arg(topology)
        .output()
        .expect("kcluster runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "client-config {args:?}: {stderr}");
    out.stdout
}

/// A partition as Kafka's metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    pub partition: u32,
    pub leader: Option<u32>,
    pub replicas: Vec<u32>,
    pub isr: Vec<u32>,
}

/// Every partition of `topic`, by partition id.
pub fn describe(bootstrap: &str, topic: &str) -> Result<Vec<Partition>, String> {
    let v = probe(&["describe", bootstrap, topic], Duration::from_secs(60))?;
    let ids = |v: &Value| -> Vec<u32> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_u64())
                    .map(|x| x as u32)
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(v["partitions"]
        .as_array()
        .ok_or_else(|| format!("describe {topic}: no partitions in {v}"))?
        .iter()
        .map(|p| Partition {
            partition: p["partition"].as_u64().unwrap_or(u64::MAX) as u32,
            leader: p["leader"].as_u64().map(|l| l as u32),
            replicas: ids(&p["replicas"]),
            isr: ids(&p["isr"]),
        })
        .collect())
}

/// Which partitions took one `acks=all` record within `timeout`, and why the others did not.
pub fn write_each(bootstrap: &str, topic: &str, timeout: Duration) -> Result<WriteEach, String> {
    let ms = timeout.as_millis().to_string();
    let v = probe(
        &["write-each", bootstrap, topic, &ms],
        timeout + Duration::from_secs(60),
    )?;
    Ok(WriteEach {
        written: v["written"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_u64)
                    .map(|p| p as u32)
                    .collect()
            })
            .unwrap_or_default(),
        failed: v["failed"]
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(p, e)| {
                        (
                            p.parse().unwrap_or(u32::MAX),
                            e.as_str().unwrap_or("").into(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
    })
}

#[derive(Debug, Clone)]
pub struct WriteEach {
    pub written: Vec<u32>,
    pub failed: Vec<(u32, String)>,
}

/// Every record of `topic` from the beginning to its end offsets: (partition, offset, value).
pub fn read_all(bootstrap: &str, topic: &str) -> Result<Vec<(u32, u64, String)>, String> {
    let v = probe(&["read-all", bootstrap, topic], Duration::from_secs(120))?;
    Ok(v["records"]
        .as_array()
        .ok_or_else(|| format!("read-all {topic}: no records in {v}"))?
        .iter()
        .map(|r| {
            (
                r[0].as_u64().unwrap_or(u64::MAX) as u32,
                r[1].as_u64().unwrap_or(u64::MAX),
                r[2].as_str().unwrap_or("").to_string(),
            )
        })
        .collect())
}

/// Kafka's `VerifiableProducer` writing a numbered stream (`0`, `1`, … under a value prefix) and
/// reporting every acknowledgement and every failure as a JSON line.
pub struct StreamProducer {
    process: Option<Watchdog>,
    output: PathBuf,
}

impl StreamProducer {
    /// Starts writing `messages` records at `per_second` into `topic` with the producer settings
    /// in `settings` (a properties file, e.g. what `kcluster client-config --producer` renders);
    /// keys cycle over `keys` values so that every partition gets records.
    pub fn start(
        bootstrap: &str,
        topic: &str,
        per_second: u32,
        messages: u32,
        keys: u32,
        settings: &[u8],
        dir: &Path,
    ) -> StreamProducer {
        let config = dir.join(format!("{topic}-producer.properties"));
        // VerifiableProducer sets `retries=0` unless the settings say otherwise; put back Kafka's
        // own default, which the rendered settings rely on.
        let mut text = settings.to_vec();
        text.extend_from_slice(
            b"\n# Kafka's default, which VerifiableProducer changes.\nretries=2147483647\n",
        );
        std::fs::write(&config, text).expect("producer config");
        let output = dir.join(format!("{topic}-producer.jsonl"));
        let mut cmd = kafka().tool("org.apache.kafka.tools.VerifiableProducer");
        cmd.args(["--bootstrap-server", bootstrap, "--topic", topic])
            .args(["--acks", "-1", "--value-prefix", "1"])
            .args(["--throughput", &per_second.to_string()])
            .args(["--max-messages", &messages.to_string()])
            .args(["--repeating-keys", &keys.to_string()])
            .arg("--producer.config")
            .arg(&config);
        // stdout and stderr both go to the output file; only JSON lines are events.
        StreamProducer {
            process: Some(Watchdog::start(&cmd, &output)),
            output,
        }
    }

    /// The events so far, in order.
    pub fn events(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.output)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with('{'))
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Whether the producer has exited.
    pub fn exited(&mut self) -> bool {
        self.process.as_mut().is_none_or(|p| p.exited().is_some())
    }

    /// The last lines the producer printed (for failure messages).
    pub fn tail(&self) -> String {
        last_lines(
            &std::fs::read_to_string(&self.output).unwrap_or_default(),
            5,
        )
    }

    /// Waits for the producer to finish its messages (it closes the producer, which waits for
    /// every record's answer) or stops it cleanly after `limit`, then returns every event.
    pub fn finish(&mut self, limit: Duration) -> Vec<Value> {
        if let Some(mut p) = self.process.take() {
            let deadline = std::time::Instant::now() + limit;
            while p.exited().is_none() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(200));
            }
            if p.exited().is_none() {
                p.terminate(Duration::from_secs(120));
            }
        }
        self.events()
    }
}

/// One attribute of one MBean read over JMX by Kafka's `JmxTool` from `address:port`.
pub fn jmx_read(address: &str, port: u16, object: &str, attribute: &str) -> Result<String, String> {
    let url = format!("service:jmx:rmi:///jndi/rmi://{address}:{port}/jmxrmi");
    let out = support::run_bounded(
        kafka()
            .tool("org.apache.kafka.tools.JmxTool")
            .args(["--jmx-url", &url, "--object-name", object])
            .args(["--attributes", attribute, "--one-time", "true"])
            .args(["--report-format", "properties"]),
        Duration::from_secs(60),
    );
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        return Err(format!(
            "JmxTool {url} {object} ({}): {stdout}{}",
            out.status,
            last_lines(&String::from_utf8_lossy(&out.stderr), 5)
        ));
    }
    // properties format: `{time=…, <object>:<attribute>=<value>}` on one line.
    let key = format!("{object}:{attribute}=");
    stdout
        .lines()
        .find_map(|l| {
            let at = l.find(&key)? + key.len();
            let rest = &l[at..];
            Some(rest[..rest.find([',', '}']).unwrap_or(rest.len())].to_string())
        })
        .ok_or_else(|| format!("JmxTool printed no {key}: {stdout}"))
}

/// Runs one command in ZooKeeper's shell (the ZooKeeper Kafka bundles) against `server`.
pub fn zk_shell(server: &str, command: &[&str]) -> std::process::Output {
    support::run_bounded(
        kafka()
            .tool("org.apache.zookeeper.ZooKeeperMain")
            .args(["-server", server])
            .args(command),
        Duration::from_secs(60),
    )
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(n)..].join("\n");
    if tail.is_empty() {
        String::new()
    } else {
        format!("\n{tail}")
    }
}
