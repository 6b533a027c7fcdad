//! Prometheus metrics as the nodes' exporters serve them: a plain HTTP GET (of `/metrics`, or of
//! Prometheus's API), the metric names of the text exposition format, and the names a rendered
//! JMX exporter rules file promises.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::Duration;

/// The names of the samples `address:port/metrics` serves (labels and values dropped).
pub fn scrape(address: Ipv4Addr, port: u16) -> Result<BTreeSet<String>, String> {
    let body = get(address, port, "/metrics")?;
    Ok(body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect())
}

/// An HTTP/1.0 GET; the body when the status is 200.
pub fn get(address: Ipv4Addr, port: u16, path: &str) -> Result<String, String> {
    let fail = |e: std::io::Error| format!("GET http://{address}:{port}{path}: {e}");
    let mut stream = TcpStream::connect_timeout(&(address, port).into(), Duration::from_secs(5))
        .map_err(fail)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(fail)?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {address}:{port}\r\n\r\n"
    )
    .map_err(fail)?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(fail)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("GET http://{address}:{port}{path}: no HTTP response"))?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(format!(
            "GET http://{address}:{port}{path}: {}",
            head.lines().next().unwrap_or("")
        ));
    }
    Ok(body.to_string())
}

/// The metric names a rendered JMX exporter rules file gives its rules.
pub fn rule_names(rules_file: &str) -> BTreeSet<String> {
    let doc: serde_yaml::Value = serde_yaml::from_str(rules_file).expect("rules file is YAML");
    doc["rules"]
        .as_sequence()
        .expect("rules file has rules")
        .iter()
        .map(|r| r["name"].as_str().expect("every rule is named").to_string())
        .collect()
}
