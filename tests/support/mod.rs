//! What the end-to-end tests share: the example binaries, scratch
//! directories, argument lists, loopback ports and reading outputs.

// Each test binary uses part of this.
#![allow(dead_code)]

use std::net::TcpListener;
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

/// `a` as owned arguments.
pub fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// A loopback port free right now (for a hostfile).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The lines of an output, sorted: a file, or a checkpointing job's
/// directory of published parts (which must have nothing left staged).
pub fn sorted_lines(path: &Path) -> Vec<String> {
    let read = |p: &Path| {
        std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
    };
    let text = if path.is_dir() {
        let pending = path.join(".pending");
        let staged = std::fs::read_dir(&pending).map(|d| d.count()).unwrap_or(0);
        assert_eq!(staged, 0, "{}: parts left unpublished", pending.display());
        weir_connectors::staged::published(path)
            .unwrap_or_else(|e| panic!("{e}"))
            .iter()
            .map(|p| read(p))
            .collect()
    } else {
        read(path)
    };
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines.sort();
    lines
}

/// What a finished run wrote: its output and dead letters, sorted lines.
pub struct Run {
    pub output: Vec<String>,
    pub dead: Vec<String>,
}

impl Run {
    /// Reads the output at `output` and the dead letters at `dead`.
    pub fn read(output: &Path, dead: &Path) -> Run {
        Run {
            output: sorted_lines(output),
            dead: sorted_lines(dead),
        }
    }
}
