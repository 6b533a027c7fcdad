//! One moto_server for one test, behind the strict EC2 proxy (`bench/strict_ec2.py`): each binds
//! a port the kernel picks on 127.0.0.1 (read back from its log, so parallel tests never race for
//! a port); moto validates AMIs and instance types; the proxy answers as real EC2 does where moto
//! is lenient (ClientToken replay, duplicate addresses, late interface detach, DryRun, throttling).
//! Both are killed when dropped.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support;

/// How to get moto_server, from the repository root.
pub const INSTALL: &str = "python3 -m venv .venv && .venv/bin/pip install 'moto[server]==5.2.5'";
/// How long moto_server may take to answer after it starts.
const START_LIMIT: Duration = Duration::from_secs(20);

pub struct MockEc2 {
    child: Child,
    port: u16,
    log: PathBuf,
    strict: Option<Strict>,
    _dir: tempfile::TempDir,
}

/// How strict the proxy in front of moto is.
#[derive(Debug, Clone)]
pub struct Strictness {
    /// EC2's request token buckets.
    pub throttle: bool,
    /// Seconds an interface stays attached after its instance is terminated.
    pub detach_seconds: f64,
    /// Actions answered `UnauthorizedOperation` (DryRun or not).
    pub deny: Vec<&'static str>,
    /// Instance types RunInstances has no capacity for (`InsufficientInstanceCapacity`).
    pub no_capacity: Vec<&'static str>,
}

impl Default for Strictness {
    fn default() -> Self {
        Strictness {
            throttle: true,
            detach_seconds: 2.0,
            deny: Vec::new(),
            no_capacity: Vec::new(),
        }
    }
}

/// The strict EC2 proxy's process.
struct Strict {
    child: Child,
    port: u16,
    log: PathBuf,
}

/// `$KCLUSTER_MOTO_SERVER`, else `<repo>/.venv/bin/moto_server`; a failure saying how to install
/// it when neither exists.
fn moto_server() -> PathBuf {
    let path = std::env::var_os("KCLUSTER_MOTO_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| support::repo().join(".venv/bin/moto_server"));
    assert!(
        path.is_file(),
        "moto_server not found at {}: install it from the repository root with `{INSTALL}`, \
         or set KCLUSTER_MOTO_SERVER to a moto_server 5.2.5",
        path.display()
    );
    path
}

impl MockEc2 {
    /// Starts moto_server behind the strict proxy and waits until both answer.
    pub fn strict(strictness: Strictness) -> MockEc2 {
        let mut mock = MockEc2::moto();
        mock.strict = Some(mock.start_strict(&strictness));
        mock
    }

    /// Starts moto_server alone and waits until it answers.
    fn moto() -> MockEc2 {
        let dir = tempfile::tempdir().expect("temporary directory");
        let log = dir.path().join("moto.log");
        let out = std::fs::File::create(&log).expect("moto log file");
        let err = out.try_clone().expect("moto log file");
        let child = Command::new(moto_server())
            .args(["-H", "127.0.0.1", "-p", "0"])
            .env("MOTO_ENABLE_AMI_VALIDATION", "true")
            .env("MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION", "true")
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start moto_server ({INSTALL}): {e}"));
        let mut mock = MockEc2 {
            child,
            port: 0,
            log,
            strict: None,
            _dir: dir,
        };
        mock.port = mock.wait_until_answering();
        mock
    }

    /// Starts `bench/strict_ec2.py` in front of moto; its port is read from its first line.
    fn start_strict(&self, s: &Strictness) -> Strict {
        let log = self._dir.path().join("strict.log");
        let out = std::fs::File::create(&log).expect("proxy log file");
        let err = out.try_clone().expect("proxy log file");
        let python = moto_server().with_file_name("python3");
        let mut cmd = Command::new(if python.is_file() {
            python
        } else {
            PathBuf::from("python3")
        });
        cmd.arg(support::repo().join("bench/strict_ec2.py"))
            .args(["--listen", "127.0.0.1:0", "--upstream"])
            .arg(format!("127.0.0.1:{}", self.port))
            .args(["--detach-seconds", &s.detach_seconds.to_string()]);
        if s.throttle {
            cmd.arg("--throttle");
        }
        if !s.deny.is_empty() {
            cmd.args(["--deny", &s.deny.join(",")]);
        }
        if !s.no_capacity.is_empty() {
            cmd.args(["--no-capacity", &s.no_capacity.join(",")]);
        }
        let child = cmd
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start bench/strict_ec2.py: {e}"));
        let mut strict = Strict {
            child,
            port: 0,
            log,
        };
        let deadline = Instant::now() + START_LIMIT;
        loop {
            let text = std::fs::read_to_string(&strict.log).unwrap_or_default();
            if let Some(p) = text
                .lines()
                .find_map(|l| l.split("listening on 127.0.0.1:").nth(1))
                .and_then(|p| p.split(',').next())
                .and_then(|p| p.parse::<u16>().ok())
            {
                strict.port = p;
                return strict;
            }
            if let Ok(Some(status)) = strict.child.try_wait() {
                panic!("bench/strict_ec2.py exited ({status}) at start:\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "bench/strict_ec2.py did not start within {START_LIMIT:?}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Reads the port from moto's "Running on http://127.0.0.1:PORT" line, then polls
    /// `GET /moto-api/` until it answers 200.
    fn wait_until_answering(&mut self) -> u16 {
        let deadline = Instant::now() + START_LIMIT;
        let mut port = None;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "moto_server exited ({status}) before answering; its log:\n{}",
                    self.log()
                );
            }
            if port.is_none() {
                port = self
                    .log()
                    .lines()
                    .find_map(|l| l.split("Running on http://127.0.0.1:").nth(1))
                    .and_then(|p| p.trim().parse::<u16>().ok());
            }
            if let Some(p) = port
                && answers(p)
            {
                return p;
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not answer within {START_LIMIT:?}; its log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The port of the EC2 clients talk to: the strict proxy.
    pub fn port(&self) -> u16 {
        self.strict.as_ref().map_or(self.port, |s| s.port)
    }

    /// The endpoint URL to give the AWS SDK.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port())
    }

    /// What moto_server printed so far (one line per request), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The strict proxy's counts: requests by action, and its own answers by error code.
    pub fn strict_stats(&self) -> serde_json::Value {
        self.strict_call("GET /__stats", "")
    }

    /// Gives RunInstances capacity back for every instance type.
    pub fn restore_capacity(&self) {
        self.strict_call("POST /__strict/capacity", "");
    }

    /// A request to the strict proxy's own endpoints; its JSON answer.
    fn strict_call(&self, request_line: &str, body: &str) -> serde_json::Value {
        let mut s = TcpStream::connect(("127.0.0.1", self.port())).expect("strict proxy");
        s.write_all(
            format!(
                "{request_line} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .expect("request to the strict proxy");
        let mut text = String::new();
        s.read_to_string(&mut text).expect("stats response");
        let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
        serde_json::from_str(body).unwrap_or_else(|e| panic!("stats: {e}: {text}"))
    }
}

/// Whether a moto_server on `port` answers `GET /moto-api/` with 200.
fn answers(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}

impl Drop for MockEc2 {
    fn drop(&mut self) {
        if let Some(s) = &mut self.strict {
            let _ = s.child.kill();
            let _ = s.child.wait();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
