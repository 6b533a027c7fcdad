//! Processes the tests start and must never leave behind: a watchdog per process that kills it
//! when the test is done with it, fails, or dies; and the machine-wide lock held by whoever runs
//! a local cluster (they bind fixed loopback addresses and ports).

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A process run under a bash watchdog that SIGKILLs it as soon as the watchdog's stdin closes:
/// when the test stops it, when it is dropped (a failing test), or when the test process itself
/// dies for any reason, even SIGKILL. A line written to the watchdog names a signal to send (the
/// way a clean shutdown is asked for). The watchdog exits with the process's status.
pub struct Watchdog {
    child: Child,
    stdin: Option<ChildStdin>,
}

const WATCHDOG: &str = r#"
exec 3<&0
"$@" </dev/null 3<&- &
target=$!
{ while read -r signal <&3; do kill -"$signal" "$target" 2>/dev/null; done; kill -KILL "$target" 2>/dev/null; } &
wait "$target"
"#;

impl Watchdog {
    /// Starts `cmd` with its stdout and stderr appended to `log`.
    pub fn start(cmd: &Command, log: &Path) -> Watchdog {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", log.display()));
        let err = out.try_clone().expect("log file handle");
        let mut watchdog = Command::new("bash");
        watchdog
            .args(["-c", WATCHDOG, "watchdog"])
            .arg(cmd.get_program())
            .args(cmd.get_args())
            .stdin(Stdio::piped())
            .stdout(out)
            .stderr(err);
        for (key, value) in cmd.get_envs() {
            match value {
                Some(v) => watchdog.env(key, v),
                None => watchdog.env_remove(key),
            };
        }
        if let Some(dir) = cmd.get_current_dir() {
            watchdog.current_dir(dir);
        }
        let mut child = watchdog
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?} under bash: {e}"));
        let stdin = child.stdin.take();
        Watchdog { child, stdin }
    }

    /// The exit status, if the process has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Kills the process (SIGKILL: a crash, not a clean shutdown) and waits until it is gone.
    pub fn kill(mut self) {
        if let Err(e) = self.kill_and_wait() {
            panic!("{e}");
        }
    }

    /// Asks the process to shut down (SIGTERM) and waits up to `limit` for it to exit on its own;
    /// kills it after that. Returns its exit status, or `None` if it had to be killed.
    pub fn terminate(mut self, limit: Duration) -> Option<ExitStatus> {
        if let Some(stdin) = self.stdin.as_mut() {
            let _ = writeln!(stdin, "TERM");
        }
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.exited() {
                drop(self.stdin.take());
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Err(e) = self.kill_and_wait() {
            panic!("{e}");
        }
        None
    }

    fn kill_and_wait(&mut self) -> Result<(), String> {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Err(format!(
            "watchdog {} did not stop its process within 20 s",
            self.child.id()
        ))
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // No panic here: this also runs while a failing test unwinds.
        if self.stdin.is_some()
            && let Err(e) = self.kill_and_wait()
        {
            eprintln!("{e}");
        }
    }
}

/// An exclusive lock on a file in the temporary directory, held by whoever runs a local cluster:
/// clusters bind fixed addresses and ports, so one at a time on this machine, across test
/// threads and concurrent `cargo test` runs.
pub fn machine_lock() -> File {
    let path = std::env::temp_dir().join("kcluster-it-local-cluster.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    file.lock()
        .unwrap_or_else(|e| panic!("cannot lock {}: {e}", path.display()));
    file
}
