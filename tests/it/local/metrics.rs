//! Prometheus metrics as the nodes' exporters serve them: plain HTTP/1.0 requests (a GET of `/metrics`, or of
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
    match request(address, port, "GET", path, None)? {
        (200, body) => Ok(body),
        (status, _) => Err(format!("GET http://{address}:{port}{path}: HTTP {status}")),
    }
}

/// One HTTP/1.0 request (with a JSON body, if given); the status code and the body.
pub fn request(
    address: Ipv4Addr,
    port: u16,
    method: &str,
    path: &str,
    json: Option<&str>,
) -> Result<(u16, String), String> {
    let at = format!("{method} http://{address}:{port}{path}");
    let fail = |e: std::io::Error| format!("{at}: {e}");
    let mut stream = TcpStream::connect_timeout(&(address, port).into(), Duration::from_secs(5))
        .map_err(fail)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(fail)?;
    let body = json.unwrap_or_default();
    let headers = match json {
        Some(_) => format!(
            "Content-Type: application/json\r\nAccept: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ),
        None => String::new(),
    };
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {address}:{port}\r\n{headers}\r\n{body}"
    )
    .map_err(fail)?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(fail)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{at}: no HTTP response"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{at}: bad status line {head}"))?;
    Ok((status, body.to_string()))
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
