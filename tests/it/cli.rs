//! The binary as a shell sees it, without AWS: a closed stdout, environment knobs, the
//! `--templates` directory's limits, and `status --health-only` reading metrics endpoints.

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
        vec!["monitoring", "--out", &out, "-f", &minimal],
        vec![
            "client-config",
            "--consumer",
            "--zone",
            "eu-west-1a",
            "-f",
            &minimal,
        ],
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

/// `kcluster render` of minimal.yaml with `templates` as the `--templates` directory, bounded
/// to 20 s; returns (exit code, stderr).
fn render_with(templates: &std::path::Path) -> (Option<i32>, String) {
    let out = tempfile::tempdir().expect("temporary directory");
    let o = support::run_bounded(
        Command::new(assert_cmd::cargo::cargo_bin("kcluster")).args([
            "render".as_ref(),
            "-f".as_ref(),
            support::topology("minimal.yaml").as_os_str(),
            "--templates".as_ref(),
            templates.as_os_str(),
            "--out".as_ref(),
            out.path().as_os_str(),
        ]),
        Duration::from_secs(20),
    );
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Regression: a strict-undefined error said "undefined value" without naming what was undefined
/// (in release builds; see the unit test in src/render/mod.rs).
#[test]
fn undefined_template_variable_is_named() {
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(dir.path().join("myid.j2"), "{{ node.idd }}\n").expect("template");
    let (code, stderr) = render_with(dir.path());
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("myid.j2") && stderr.contains("`node.idd` is undefined"),
        "{stderr}"
    );
}

/// Regression: a directory called `myid.j2` was reported as a problem with the templates
/// directory itself ("cannot read templates directory …: Is a directory").
#[test]
fn directory_named_like_a_template_is_reported_as_that_entry() {
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::create_dir(dir.path().join("myid.j2")).expect("directory");
    let (code, stderr) = render_with(dir.path());
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}: a directory, not a template file",
            dir.path().join("myid.j2").display()
        )) && !stderr.contains("cannot read templates directory"),
        "{stderr}"
    );
}

/// Regression: a template linked to /dev/zero grew to 1 GB of memory, a FIFO hung, and a huge
/// file was read whole. Only regular files up to 256 KiB are read.
#[test]
fn template_files_are_bounded_in_kind_and_size() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let t = dir.path().join("myid.j2");
    std::os::unix::fs::symlink("/dev/zero", &t).expect("symlink");
    let (code, stderr) = render_with(dir.path());
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("not a regular file"), "/dev/zero: {stderr}");

    std::fs::remove_file(&t).expect("unlink");
    let made = Command::new("mkfifo").arg(&t).status().expect("mkfifo");
    assert!(made.success());
    let (code, stderr) = render_with(dir.path());
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("not a regular file"), "FIFO: {stderr}");

    std::fs::remove_file(&t).expect("unlink");
    std::fs::write(&t, vec![b'x'; 3 * 1024 * 1024]).expect("big template");
    let (code, stderr) = render_with(dir.path());
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("is 3145728 bytes; a template is at most 262144"),
        "big: {stderr}"
    );
}

/// Regression: a template with nested loops rendered for longer than 20 s. Rendering work is
/// bounded (minijinja's fuel), and the error says so.
#[test]
fn runaway_template_stops_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(
        dir.path().join("myid.j2"),
        "{% for a in range(100000) %}{% for b in range(100000) %}{{ a }}{% endfor %}{% endfor %}\n",
    )
    .expect("template");
    let started = Instant::now();
    let (code, stderr) = render_with(dir.path());
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(
        stderr.contains("myid.j2") && stderr.contains("more rendering work"),
        "{stderr}"
    );
}

/// A one-page metrics server on 127.0.0.1 answering `n` requests with `page`, then closing.
fn metrics_server(page: &'static str, n: usize) -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    let address = listener.local_addr().expect("address");
    std::thread::spawn(move || {
        for stream in listener.incoming().take(n) {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{page}",
                page.len()
            );
        }
    });
    address
}

/// Where the topology's addresses cannot be reached, status says so plainly, within the
/// timeout; a node given with --endpoint is read there, and its health shown.
#[test]
fn status_health_says_plainly_when_metrics_are_not_reachable_and_reads_given_endpoints() {
    let topology = support::repo().join("topologies/minimal.yaml");
    // The example's 10.42.x.x addresses: nothing answers there from a test machine.
    let started = Instant::now();
    let out = support::status_health(&topology, &["--health-timeout", "2"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        text.contains("not reachable from here: run `kcluster status` from inside the VPC"),
        "{text}"
    );
    assert!(text.contains("not reachable (10.42.0.101:11001)"), "{text}");

    let page = "# TYPE kafka_server_under_replicated_partitions gauge\n\
                kafka_server_under_replicated_partitions{cluster=\"x\",} 4.0\n\
                kafka_server_isr_shrinks_total 9.0\n\
                kafka_controller_offline_partitions 0.0\n\
                kafka_controller_active_controller_count 1.0\n";
    let broker = metrics_server(page, 1);
    let endpoint = format!("broker-1={broker}");
    let out = support::status_health(
        &topology,
        &[
            "--health-timeout",
            "2",
            "--output",
            "json",
            "--endpoint",
            &endpoint,
        ],
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let node = |name: &str| support::status_node(&json, name).clone();
    let b1 = node("broker-1");
    assert_eq!(b1["health"]["endpoint"], broker.to_string());
    assert!(b1["health"]["unreachable"].is_null(), "{b1}");
    assert_eq!(b1["health"]["under_replicated"], 4.0);
    assert_eq!(b1["health"]["isr_shrinks"], 9.0);
    assert_eq!(b1["health"]["active_controller"], 1.0);
    assert!(!node("broker-2")["health"]["unreachable"].is_null());
    assert_eq!(json["metrics_reachable"], true);

    let out = support::status_health(&topology, &["--endpoint", "broker-9=127.0.0.1:1"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the topology has no node broker-9"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
