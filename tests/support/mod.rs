//! What the end-to-end tests share: the example binaries, scratch
//! directories, argument lists, loopback ports and reading outputs.

// Each test binary uses part of this.
#![allow(dead_code)]

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

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

/// How long one run of an example may take in a test before it counts as
/// hung (debug builds on a loaded 2-core machine are slow, but not this
/// slow).
pub const RUN_LIMIT: Duration = Duration::from_secs(300);

/// Runs example `job` with `args` to its end and returns what it printed;
/// fails the test, with its stderr, if it does not succeed or does not end
/// within [`RUN_LIMIT`].
pub fn run(job: &str, args: &[String]) -> Output {
    let child = Command::new(example(job))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the example");
    let output = wait_within(child, RUN_LIMIT);
    assert!(
        output.status.success(),
        "{job} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Runs `command` to its end like [`Command::output`], but fails the test
/// if it is still running after [`RUN_LIMIT`] ([`wait_within`]).
pub fn output_within(command: &mut Command) -> Output {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the command");
    wait_within(child, RUN_LIMIT)
}

/// Waits for `child` at most `limit` and returns what it printed (its
/// piped outputs are read as it runs, so a chatty child cannot block on a
/// full pipe). A child still running at the limit fails the test with its
/// stderr and every thread's stack (from gdb, where the machine has it),
/// then is killed: a hang shows where it is instead of stalling the run.
pub fn wait_within(mut child: Child, limit: Duration) -> Output {
    fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    }
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waits for the child") {
            break status;
        }
        if started.elapsed() > limit {
            let stacks = stacks_of(child.id());
            let _ = child.kill();
            let _ = child.wait();
            let stderr = stderr.join().unwrap_or_default();
            panic!(
                "the child did not end within {limit:?}\n--- its stderr:\n{}\n--- its threads:\n{stacks}",
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// Every thread's stack of process `pid`, from gdb, or why there are none.
fn stacks_of(pid: u32) -> String {
    match Command::new("gdb")
        .args([
            "-batch",
            "-p",
            &pid.to_string(),
            "-ex",
            "thread apply all bt",
        ])
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) => String::from_utf8_lossy(&out.stdout).into_owned(),
        Err(e) => format!("(no stacks: gdb: {e})"),
    }
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

/// Writes `dir/hosts.txt` for a cluster of two processes on free loopback
/// ports and returns its path.
pub fn two_process_hostfile(dir: &Path) -> PathBuf {
    let hostfile = dir.join("hosts.txt");
    std::fs::write(
        &hostfile,
        format!("127.0.0.1:{}\n127.0.0.1:{}\n", free_port(), free_port()),
    )
    .expect("write hostfile");
    hostfile
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
