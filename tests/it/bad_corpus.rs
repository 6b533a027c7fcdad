//! The corpus of bad topology files in `tests/bad/`: `kcluster validate` must refuse each one
//! (exit 1, nothing on stdout) with exactly the stderr in its sibling `.expected` file.
//!
//! To add a case, drop `tests/bad/<mistake>.yaml` (starting with a comment that names the mistake)
//! and write its expected output with `KCLUSTER_BLESS=1 cargo test --test it bad_corpus`, which
//! rewrites every `.expected` file from the current output; review the diff before committing.

use std::path::{Path, PathBuf};

use crate::support::{kcluster, repo};

fn corpus_dir() -> PathBuf {
    repo().join("tests").join("bad")
}

/// Files of the corpus with extension `ext`, sorted.
fn corpus(ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("tests/bad/ exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[test]
fn every_bad_file_is_refused_with_its_expected_output() {
    let bless = std::env::var_os("KCLUSTER_BLESS").is_some_and(|v| v == "1");
    let files = corpus("yaml");
    assert!(files.len() >= 20, "the corpus is in tests/bad/");
    let mut failures = Vec::new();
    for yaml in &files {
        let name = file_name(yaml);
        // Run inside tests/bad/ so messages name the file as `<mistake>.yaml`.
        let output = kcluster()
            .current_dir(corpus_dir())
            .args(["validate", "-f", &name])
            .output()
            .expect("kcluster runs");
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let expected_path = yaml.with_extension("expected");
        if output.status.code() != Some(1) {
            failures.push(format!(
                "{name}: exit code {:?}, expected 1\n{stderr}",
                output.status.code()
            ));
            continue;
        }
        if !output.stdout.is_empty() {
            failures.push(format!(
                "{name}: printed on stdout: {}",
                String::from_utf8_lossy(&output.stdout)
            ));
        }
        if bless {
            std::fs::write(&expected_path, &stderr).expect("write .expected");
            continue;
        }
        match std::fs::read_to_string(&expected_path) {
            Ok(expected) if expected == stderr => {}
            Ok(expected) => failures.push(format!(
                "{name}: stderr differs from {}\n--- expected\n{expected}--- actual\n{stderr}",
                file_name(&expected_path)
            )),
            Err(_) => failures.push(format!(
                "{name}: no {} (write it with KCLUSTER_BLESS=1)",
                file_name(&expected_path)
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_expected_file_has_its_bad_file() {
    let orphans: Vec<String> = corpus("expected")
        .into_iter()
        .filter(|e| !e.with_extension("yaml").exists())
        .map(|e| file_name(&e))
        .collect();
    assert!(orphans.is_empty(), "stale .expected files: {orphans:?}");
}

#[test]
fn bad_files_refuse_the_same_way_twice() {
    // Output is deterministic: no ordering by hash, no timestamps.
    for yaml in corpus("yaml") {
        let run = || {
            kcluster()
                .current_dir(corpus_dir())
                .args(["validate", "-f", &file_name(&yaml)])
                .output()
                .expect("kcluster runs")
                .stderr
        };
        assert_eq!(run(), run(), "{}", yaml.display());
    }
}

#[test]
fn bad_files_as_json_are_invalid_with_the_same_diagnostics() {
    for yaml in corpus("yaml") {
        let name = file_name(&yaml);
        let output = kcluster()
            .current_dir(corpus_dir())
            .args(["validate", "-f", &name, "--output", "json"])
            .output()
            .expect("kcluster runs");
        assert_eq!(output.status.code(), Some(1), "{name}");
        let json: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("--output json prints JSON");
        assert_eq!(json["valid"], false, "{name}");
        assert_eq!(json["file"], name.as_str());
        let errors = json["diagnostics"]
            .as_array()
            .expect("diagnostics")
            .iter()
            .filter(|d| d["severity"] == "error")
            .count();
        assert!(errors >= 1, "{name}: {json}");
    }
}
