//! The binary as a shell sees it, without AWS: a closed stdout, environment knobs, and the
//! `--templates` directory's limits.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support;

/// `kcluster ARGS` with stdout a pipe nobody reads (`kcluster … | true`), bounded in time.
fn with_closed_stdout(args: &[&str]) -> std::process::Output {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let child = Command::new(assert_cmd::cargo::cargo_bin("kcluster"))
        .args(args)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .expect("kcluster runs");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut child = child;
    while child.try_wait().expect("status").is_none() {
        assert!(Instant::now() < deadline, "{args:?} did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

/// Regression: 13 of 16 command forms panicked (exit 101) when stdout was closed, e.g.
/// `kcluster schema | head -1`. A closed pipe is a quiet, normal end.
#[test]
fn closed_stdout_is_not_a_panic() {
    let minimal = support::topology("minimal.yaml").display().to_string();
    let out = tempfile::tempdir().expect("temporary directory");
    let out = out.path().display().to_string();
    for args in [
        vec!["schema"],
        vec!["validate", "-f", &minimal],
        vec!["validate", "--output", "json", "-f", &minimal],
        vec!["check", "--offline", "-f", &minimal],
        vec!["check", "--offline", "--output", "json", "-f", &minimal],
        vec!["render", "--out", &out, "-f", &minimal],
        vec!["--help"],
        vec!["--version"],
    ] {
        let o = with_closed_stdout(&args);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(
            o.status.code() == Some(0) && !stderr.contains("panicked"),
            "{args:?}: exit {:?}\n{stderr}",
            o.status.code()
        );
    }
}

/// Regression: `KCLUSTER_POLL_SECONDS=nan` panicked in `Duration::from_secs_f64`. Every knob
/// an environment variable sets is refused like a bad flag, naming the variable.
#[test]
fn environment_knobs_are_validated_like_flags() {
    let minimal = support::topology("minimal.yaml").display().to_string();
    for (var, value) in [
        ("KCLUSTER_POLL_SECONDS", "nan"),
        ("KCLUSTER_POLL_SECONDS", "-1"),
        ("KCLUSTER_WAIT_SECONDS", "inf"),
        ("KCLUSTER_WAIT_SECONDS", "0"),
        ("KCLUSTER_AWS_TIMEOUT_SECONDS", "soon"),
    ] {
        for command in ["plan", "apply", "status", "check"] {
            let o = support::kcluster()
                .args([command, "-f", &minimal])
                .env(var, value)
                .env("AWS_ACCESS_KEY_ID", "testing")
                .env("AWS_SECRET_ACCESS_KEY", "testing")
                .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
                .timeout(Duration::from_secs(60))
                .output()
                .expect("kcluster runs");
            let stderr = String::from_utf8_lossy(&o.stderr);
            assert_eq!(
                o.status.code(),
                Some(2),
                "{var}={value} {command}: {stderr}"
            );
            assert!(
                stderr.contains(var) && stderr.contains(&format!("`{value}`")),
                "{var}={value} {command}: names the variable and the value:\n{stderr}"
            );
        }
    }
}
