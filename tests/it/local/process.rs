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
/// dies for any reason, even SIGKILL. A line written to the watchdog names a signal to send, or is
/// `STOP`: SIGTERM, after which the process is not restarted (a clean shutdown asked for). Given a restart delay, the watchdog starts the process
/// again when it exits with a failure, as systemd's `Restart=on-failure` does (at most
/// [`MAX_RESTARTS`] times). The watchdog exits with the process's last status.
pub struct Watchdog {
    child: Child,
    stdin: Option<ChildStdin>,
}

/// More failures than this in a row is a crash loop: the watchdog gives up and exits.
pub const MAX_RESTARTS: u32 = 5;

const WATCHDOG: &str = r#"
exec 3<&0
state=$(mktemp -d)
{ while read -r signal <&3; do
    if [ "$signal" = STOP ]; then touch "$state/stop"; signal=TERM; fi
    kill -"$signal" "$(cat "$state/pid")" 2>/dev/null
  done
  touch "$state/stop"; kill -KILL "$(cat "$state/pid")" 2>/dev/null; } &
restarts=0
while :; do
  "$@" </dev/null 3<&- &
  echo "$!" >"$state/pid"
  wait "$!"
  status=$?
  if [ -e "$state/stop" ] || [ -z "$RESTART_DELAY" ] || [ "$status" -eq 0 ]      || [ "$restarts" -ge "$MAX_RESTARTS" ]; then
    exit "$status"
  fi
  restarts=$((restarts + 1))
  echo "watchdog: exited with status $status; starting it again in ${RESTART_DELAY}s, as systemd's Restart=on-failure would (restart $restarts)"
  sleep "$RESTART_DELAY"
  [ -e "$state/stop" ] && exit "$status"
done
"#;

impl Watchdog {
    /// Starts `cmd` with its stdout and stderr appended to `log`.
    pub fn start(cmd: &Command, log: &Path) -> Watchdog {
        Watchdog::spawn(cmd, log, None)
    }

    /// Starts `cmd` like [`Watchdog::start`], and starts it again `delay` after it exits with a
    /// failure (systemd's `Restart=on-failure` with `RestartSec`).
    pub fn start_restarting(cmd: &Command, log: &Path, delay: Duration) -> Watchdog {
        Watchdog::spawn(cmd, log, Some(delay))
    }

    fn spawn(cmd: &Command, log: &Path, restart: Option<Duration>) -> Watchdog {
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
        match restart {
            Some(delay) => watchdog.env("RESTART_DELAY", format!("{:.1}", delay.as_secs_f64())),
            None => watchdog.env_remove("RESTART_DELAY"),
        };
        watchdog.env("MAX_RESTARTS", MAX_RESTARTS.to_string());
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
    /// kills it after that. Returns its exit status, or `None` if it had to be killed. A stop,
    /// as `systemctl stop` is: the restart policy does not start it again, whatever its status.
    pub fn terminate(mut self, limit: Duration) -> Option<ExitStatus> {
        if let Some(stdin) = self.stdin.as_mut() {
            let _ = writeln!(stdin, "STOP");
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
