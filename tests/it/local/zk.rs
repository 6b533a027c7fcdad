//! ZooKeeper's four-letter words (`srvr`, `mntr`), which the rendered configuration allows:
//! how the harness sees a member's role and whether it serves.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use kcluster::cluster;

/// What ZooKeeper answers to a four-letter word while it has no quorum.
pub const NOT_SERVING: &str = "This ZooKeeper instance is not currently serving requests";

/// Sends a four-letter word to a member's client port and returns the whole answer.
pub fn four_letter(address: Ipv4Addr, word: &str) -> Result<String, String> {
    let talk = || -> std::io::Result<String> {
        let to = SocketAddr::from((address, cluster::ZK_CLIENT_PORT));
        let mut stream = TcpStream::connect_timeout(&to, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.write_all(word.as_bytes())?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        Ok(answer)
    };
    talk().map_err(|e| format!("{word}: {e}"))
}

/// `mntr` as key/value pairs, or why there are none (not serving, not reachable).
pub fn mntr(address: Ipv4Addr) -> Result<BTreeMap<String, String>, String> {
    let answer = four_letter(address, "mntr")?;
    let stats: BTreeMap<String, String> = answer
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if stats.is_empty() {
        // "not currently serving requests", or "mntr is not executed because it is not in the whitelist."
        return Err(format!("mntr: {}", answer.trim()));
    }
    Ok(stats)
}

/// Whether a member answers `srvr` as part of a serving ensemble.
pub fn serving(address: Ipv4Addr) -> bool {
    four_letter(address, "srvr").is_ok_and(|a| a.contains("Mode: "))
}
