//! Runs the kcluster binary against a mock EC2: the environment holds only the endpoint, fake
//! credentials and a fast poll interval (no AWS_* variable or ~/.aws of the machine leaks in),
//! standard input is not a terminal, and every run is bounded in time.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support;

/// How long one kcluster run may take before the test fails.
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// A kcluster command line being built.
pub struct Kc {
    cmd: Command,
    _home: tempfile::TempDir,
}

impl Kc {
    /// kcluster with `endpoint` as its EC2 endpoint.
    pub fn new(endpoint: &str) -> Kc {
        let mut kc = Kc::without_credentials();
        kc.cmd
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing");
        kc
    }

    /// kcluster with no AWS settings at all: no AWS_* variables, an empty HOME, no instance
    /// metadata service.
    pub fn without_credentials() -> Kc {
        let home = tempfile::tempdir().expect("temporary HOME");
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("kcluster"));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("AWS_") {
                cmd.env_remove(&key);
            }
        }
        cmd.env("HOME", home.path())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("KCLUSTER_POLL_SECONDS", "0.1")
            .env("NO_COLOR", "1");
        Kc { cmd, _home: home }
    }

    /// Sets one environment variable of the run.
    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Kc {
        self.cmd.env(key, value);
        self
    }

    /// Removes one environment variable of the run.
    pub fn env_remove(mut self, key: &str) -> Kc {
        self.cmd.env_remove(key);
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Kc
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd.args(args);
        self
    }

    /// Runs to the end (at most `RUN_LIMIT`).
    pub fn run(mut self) -> Run {
        let shown = format!("{:?}", self.cmd);
        let out = support::run_bounded(&mut self.cmd, RUN_LIMIT);
        Run {
            shown,
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Starts it in the background, its output going to files, for tests that stop it.
    pub fn start(self) -> Started {
        self.start_with(None)
    }

    /// Runs to the end with stdout a pipe whose reading end is already closed, as in
    /// `kcluster … | true`; what it printed to stderr is in the result.
    pub fn run_with_closed_stdout(self) -> Run {
        let (reader, writer) = std::io::pipe().expect("a pipe");
        drop(reader);
        self.start_with(Some(writer.into())).wait()
    }

    /// `start`, with `stdout` instead of a file when given.
    fn start_with(mut self, stdout: Option<Stdio>) -> Started {
        let out = tempfile::tempdir().expect("temporary directory");
        let file = |name: &str| std::fs::File::create(out.path().join(name)).expect("output file");
        let shown = format!("{:?}", self.cmd);
        let child = self
            .cmd
            .stdin(Stdio::null())
            .stdout(stdout.unwrap_or_else(|| file("stdout").into()))
            .stderr(file("stderr"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
        Started {
            child,
            shown,
            out,
            _home: self._home,
        }
    }
}

/// A kcluster run in the background.
pub struct Started {
    child: Child,
    shown: String,
    out: tempfile::TempDir,
    _home: tempfile::TempDir,
}

impl Started {
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("kcluster's status").is_none()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, and what it printed until then.
    pub fn kill(mut self) -> Run {
        self.child.kill().expect("SIGKILL kcluster");
        self.wait()
    }

    /// Waits for it to end (at most `RUN_LIMIT`), and what it printed.
    pub fn wait(mut self) -> Run {
        let deadline = std::time::Instant::now() + RUN_LIMIT;
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("kcluster's status") {
                break s;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "{} did not finish within {RUN_LIMIT:?}; killed it",
                    self.shown
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let read =
            |name: &str| std::fs::read_to_string(self.out.path().join(name)).unwrap_or_default();
        Run {
            shown: self.shown.clone(),
            code: status.code(),
            stdout: read("stdout"),
            stderr: read("stderr"),
        }
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        // A test that failed before stopping it must not leave kcluster running.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A finished kcluster run.
pub struct Run {
    shown: String,
    /// `None` when a signal ended it.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Fails the test with everything the run printed unless it exited with `code`.
    pub fn expect_code(self, code: i32) -> Run {
        assert_eq!(
            self.code,
            Some(code),
            "{}\nexited {:?}, expected {code}\n--- stdout\n{}\n--- stderr\n{}",
            self.shown,
            self.code,
            self.stdout,
            self.stderr
        );
        self
    }

    pub fn ok(self) -> Run {
        self.expect_code(0)
    }

    /// Stdout as JSON (from `--output json`).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!("{}: stdout is not JSON ({e}):\n{}", self.shown, self.stdout)
        })
    }

    /// The counts of `--api-calls`' line `API calls: N (Op=n, …)`, by operation.
    pub fn api_calls(&self) -> BTreeMap<String, u64> {
        let line = self
            .stderr
            .lines()
            .find_map(|l| l.strip_prefix("API calls: "))
            .unwrap_or_else(|| panic!("{}: no `API calls:` line in:\n{}", self.shown, self.stderr));
        let (total, list) = line
            .split_once(" (")
            .unwrap_or_else(|| panic!("unexpected API calls line: {line}"));
        let calls: BTreeMap<String, u64> = list
            .trim_end_matches(')')
            .split(", ")
            .filter(|s| !s.is_empty())
            .map(|kv| {
                let (k, v) = kv
                    .split_once('=')
                    .unwrap_or_else(|| panic!("unexpected API calls entry `{kv}` in: {line}"));
                (k.to_string(), v.parse().expect("a count"))
            })
            .collect();
        assert_eq!(
            calls.values().sum::<u64>(),
            total.parse::<u64>().expect("a total"),
            "the total of `{line}` is the sum of its parts"
        );
        calls
    }
}
