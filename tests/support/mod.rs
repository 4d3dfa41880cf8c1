//! What the end-to-end tests share: the example binaries and scratch directories.

// Each test binary uses part of this.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The path of example job `name`, built by `cargo test --workspace` next
/// to the test binaries.
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let path = dir.join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test --workspace` (which builds the examples)",
        path.display()
    );
    path
}

/// A fresh, empty directory for one test (`tag` and the process id name it).
pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weir-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// Runs example `job` with `args` to its end and returns what it printed;
/// fails the test, with its stderr, if it does not succeed.
pub fn run(job: &str, args: &[String]) -> Output {
    let output = Command::new(example(job))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("start the example");
    assert!(
        output.status.success(),
        "{job} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}
