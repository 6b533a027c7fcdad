//! Kafka Connect workers of a local cluster: their REST API (a small HTTP/1.0 client), the
//! rendered bootstrap's plugin installation run for real (plugin URLs mapped to the archives
//! `scripts/fetch-kafka` fetched, as the JMX exporter jar is mapped), and what a worker's log
//! says about its group.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kcluster::cluster::{CONNECT_REST_PORT, Plugin};
use serde_json::Value;

use crate::support;

/// One request to a worker's REST API; the status code and the JSON body (`Null` when empty).
pub fn rest(
    address: Ipv4Addr,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<(u16, Value), String> {
    let json = body.map(Value::to_string).unwrap_or_else(|| "".into());
    let (status, text) =
        super::metrics::request(address, CONNECT_REST_PORT, method, path, Some(&json))?;
    let value = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).map_err(|e| {
            format!("{method} http://{address}:{CONNECT_REST_PORT}{path}: not JSON ({e}): {text}")
        })?
    };
    Ok((status, value))
}

/// Where `scripts/fetch-kafka` put a plugin archive the test topologies name, checked against
/// the plugin's own checksum by the bootstrap that installs it.
pub fn fetched_plugin(plugin: &Plugin) -> PathBuf {
    let file = plugin.url.rsplit('/').next().unwrap_or_default();
    let path = support::repo().join("target/connect-plugins").join(file);
    assert!(
        path.is_file(),
        "the connector plugin {file} is not in {}; fetch it from Maven Central: scripts/fetch-kafka",
        path.parent()
            .map(Path::display)
            .map(|d| d.to_string())
            .unwrap_or_default()
    );
    path
}

/// Runs the rendered bootstrap's `prepare_data` (which installs the worker's plugins) for real,
/// each plugin's URL replaced by `file://` of the archive fetched for the tests; everything else
/// (checksum, unpacking, the plugin directory) is the script's own. `Err` is what it said.
pub fn install_plugins(bootstrap: &str, plugins: &[(Plugin, PathBuf)]) -> Result<(), String> {
    let end = "\nmain \"$@\"\n";
    assert!(
        bootstrap.ends_with(end),
        "the bootstrap no longer ends by calling main; update the harness"
    );
    let mut script = bootstrap[..bootstrap.len() - end.len()].to_string();
    for (plugin, file) in plugins {
        assert!(
            script.contains(&plugin.url),
            "the bootstrap does not fetch {}",
            plugin.url
        );
        script = script.replace(&plugin.url, &format!("file://{}", file.display()));
    }
    script.push_str("\nprepare_data\n");
    let out = support::run_bounded(
        Command::new("bash").arg("-c").arg(&script),
        Duration::from_secs(120),
    );
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "prepare_data failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The group a worker last joined, from its log: (generation, leader's URL).
pub fn joined_group(log: &str) -> Option<(u64, String)> {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("Joined group at generation"))?;
    let generation = line
        .split("Joined group at generation ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let leader = line.split("leaderUrl='").nth(1)?.split('\'').next()?;
    Some((generation, leader.to_string()))
}

/// The `ConsumerConfig values:` block Kafka logged for the consumer with `client_id`, if any.
pub fn consumer_config_block<'a>(log: &'a str, client_id: &str) -> Option<&'a str> {
    log.split("ConsumerConfig values:")
        .skip(1)
        .map(|block| {
            // The block is the indented `key = value` lines that follow.
            let end = block
                .lines()
                .skip(1)
                .position(|l| !l.starts_with('\t') && !l.starts_with("    "))
                .map_or(block.len(), |n| {
                    block
                        .lines()
                        .take(n + 1)
                        .map(|l| l.len() + 1)
                        .sum::<usize>()
                        .min(block.len())
                });
            &block[..end]
        })
        .find(|block| {
            block
                .lines()
                .any(|l| l.trim() == format!("client.id = {client_id}"))
        })
}
