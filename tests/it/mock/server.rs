//! One moto_server for one test: it binds a port the kernel picks on 127.0.0.1 (read back from
//! its log, so parallel tests never race for a port), validates AMIs and instance types, and is
//! killed when dropped.

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
    _dir: tempfile::TempDir,
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
    /// Starts moto_server and waits until it answers.
    pub fn start() -> MockEc2 {
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
            _dir: dir,
        };
        mock.port = mock.wait_until_answering();
        mock
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

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The endpoint URL to give the AWS SDK.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What moto_server printed so far (one line per request), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
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
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
