//! Shared helpers for the integration tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file under `topologies/`.
pub fn topology(name: &str) -> PathBuf {
    repo().join("topologies").join(name)
}

/// The example topologies, sorted by name.
pub fn example_topologies() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo().join("topologies"))
        .expect("topologies/ exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    v.sort();
    v
}

/// The kcluster binary, as a command ready for arguments.
pub fn kcluster() -> assert_cmd::Command {
    assert_cmd::Command::cargo_bin("kcluster").expect("the kcluster binary is built")
}

/// Loads a topology file into a `Cluster`, panicking with the report if it is invalid.
pub fn load(path: &Path) -> kcluster::cluster::Cluster {
    let bytes = std::fs::read(path).expect("topology readable");
    match kcluster::topology::load(&path.display().to_string(), &bytes) {
        Ok(l) => l.cluster,
        Err(report) => panic!("{report}"),
    }
}

/// Loads a topology given as YAML text.
pub fn load_str(yaml: &str) -> kcluster::cluster::Cluster {
    match kcluster::topology::load("test.yaml", yaml.as_bytes()) {
        Ok(l) => l.cluster,
        Err(report) => panic!("{report}"),
    }
}

/// The path of the program `name` on `PATH`. Tests that need an external tool call this first:
/// a missing tool fails the test with `install_hint` instead of silently skipping it.
#[track_caller]
pub fn require_tool(name: &str, install_hint: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate));
    match found {
        Some(program) => program,
        None => panic!("`{name}` is not installed (not found on PATH); install it: {install_hint}"),
    }
}

/// `path` if it exists, else a failure saying how to install what provides it (see `require_tool`).
#[track_caller]
pub fn require_file(path: &str, install_hint: &str) -> PathBuf {
    let p = PathBuf::from(path);
    assert!(
        p.exists(),
        "{path} does not exist; install it: {install_hint}"
    );
    p
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The output of a command that must finish within `limit` (it is killed, and the test fails,
/// if it does not).
pub fn run_bounded(
    cmd: &mut std::process::Command,
    limit: std::time::Duration,
) -> std::process::Output {
    use std::process::Stdio;
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    let read = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let stdout = read(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = read(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{shown} did not finish within {limit:?}; killed it");
            }
            Err(e) => panic!("cannot wait for {shown}: {e}"),
        }
    };
    std::process::Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// `kcluster status --health-only -f TOPOLOGY ARGS…`, run to its end.
pub fn status_health(topology: &Path, args: &[&str]) -> std::process::Output {
    kcluster()
        .args(["status", "--health-only", "-f"])
        .arg(topology)
        .args(args)
        .output()
        .expect("kcluster status runs")
}

/// One node's entry of a `status --output json` document (null when absent).
pub fn status_node<'a>(status: &'a serde_json::Value, node: &str) -> &'a serde_json::Value {
    status["nodes"]
        .as_array()
        .and_then(|nodes| nodes.iter().find(|n| n["node"] == node))
        .unwrap_or(&serde_json::Value::Null)
}
