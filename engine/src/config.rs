//! Command-line flags every weir job accepts, and the cluster they describe.
//!
//! Jobs flatten [`RunArgs`] into their own clap parser, so `-w 4`, `-n 2 -p 0`
//! and `--epoch-interval 500ms` mean the same thing in every job. Bad values are
//! refused at start with one line naming the flag.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use timely::{CommunicationConfig, WorkerConfig};

use crate::error::ConfigError;

/// Flags shared by every weir job: workers, processes, epochs, status output.
#[derive(Args, Clone, Debug)]
pub struct RunArgs {
    /// Worker threads in this process.
    #[arg(short = 'w', long = "workers", default_value_t = 1, value_name = "N")]
    pub workers: usize,

    /// Number of processes in the cluster (each started with its own -p).
    #[arg(short = 'n', long = "processes", default_value_t = 1, value_name = "N")]
    pub processes: usize,

    /// This process's index, 0..processes.
    #[arg(short = 'p', long = "process", default_value_t = 0, value_name = "I")]
    pub process: usize,

    /// File with one `host:port` per line, in process order. Without it,
    /// processes listen on 127.0.0.1 from port 2101 upwards.
    #[arg(long = "hostfile", value_name = "PATH")]
    pub hostfile: Option<PathBuf>,

    /// How often sources close an epoch (wall clock), e.g. `1s`, `250ms`.
    /// Each completed epoch is a checkpoint, so this is also the
    /// checkpoint interval (`--checkpoint-interval` is the same flag).
    #[arg(long = "epoch-interval", visible_alias = "checkpoint-interval", default_value = "1s", value_parser = parse_duration, value_name = "DURATION")]
    pub epoch_interval: Duration,

    /// How often to print a status line to stderr (`0s` turns it off).
    #[arg(long = "status-interval", default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    pub status_interval: Duration,

    /// Flow control: records a source may have unconsumed downstream before
    /// it pauses (per source, per worker). Larger absorbs scheduling hiccups
    /// between workers; smaller bounds memory tighter.
    #[arg(long = "max-in-flight", default_value_t = DEFAULT_MAX_IN_FLIGHT, value_name = "N")]
    pub max_in_flight: usize,

    /// Print nothing to stderr but errors (no status line, no summary).
    #[arg(long = "quiet")]
    pub quiet: bool,

    /// Checkpoint keyed state and source positions here at every epoch, and
    /// resume from the newest complete checkpoint found here (a run that
    /// finished starts over). The example jobs default to
    /// `weir-checkpoints/<job>`.
    #[arg(long = "checkpoint-dir", value_name = "PATH")]
    pub checkpoint_dir: Option<PathBuf>,

    /// Do not checkpoint (and do not resume).
    #[arg(long = "no-checkpoints", conflicts_with_all = ["checkpoint_dir", "fresh"])]
    pub no_checkpoints: bool,

    /// Ignore (and clear) the checkpoints in --checkpoint-dir and start over;
    /// without it an unfinished run resumes, and a changed job is refused.
    #[arg(long = "fresh")]
    pub fresh: bool,

    /// Resume from this complete checkpoint epoch instead of the newest
    /// (`weir-checkpoint list` shows them); output published after it is
    /// withdrawn and produced again.
    #[arg(long = "restore", value_name = "EPOCH", conflicts_with_all = ["fresh", "no_checkpoints"])]
    pub restore: Option<u64>,

    /// How many complete checkpoints to keep restorable.
    #[arg(long = "keep-checkpoints", default_value_t = 3, value_name = "N")]
    pub keep_checkpoints: usize,

    /// The state backend for checkpoints (set by the program, not a flag).
    #[arg(skip)]
    pub backend: Option<BackendHandle>,

    /// Lines printed to stderr once the run is set up (unless --quiet), e.g.
    /// what a job's delivery guarantee is (set by the program, not a flag).
    #[arg(skip)]
    pub start_notes: Vec<String>,

    /// The commit logs of sinks whose staged output dies with a crash
    /// (a Kafka transaction), asked before the job plans where it starts
    /// ([`crate::commit_log`]; set by the program, not a flag).
    #[arg(skip)]
    pub commit_logs: Vec<crate::commit_log::CommitLogHandle>,
}

/// A shared state backend, as [`RunArgs`] carries it.
#[derive(Clone)]
pub struct BackendHandle(pub std::sync::Arc<dyn crate::backend::Backend>);

impl fmt::Debug for BackendHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BackendHandle")
    }
}

/// The default of `--max-in-flight`.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 256 * 1024;

impl Default for RunArgs {
    fn default() -> Self {
        RunArgs {
            workers: 1,
            processes: 1,
            process: 0,
            hostfile: None,
            epoch_interval: Duration::from_secs(1),
            status_interval: Duration::from_secs(5),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            quiet: false,
            checkpoint_dir: None,
            no_checkpoints: false,
            fresh: false,
            restore: None,
            keep_checkpoints: 3,
            backend: None,
            start_notes: Vec::new(),
            commit_logs: Vec::new(),
        }
    }
}

impl RunArgs {
    /// Arguments for `workers` threads in one process, quiet: what tests use.
    pub fn threads(workers: usize) -> Self {
        RunArgs {
            workers,
            quiet: true,
            ..RunArgs::default()
        }
    }

    /// Checks the flags and builds timely's configuration.
    pub fn timely_config(&self) -> Result<timely::Config, ConfigError> {
        if self.workers == 0 {
            return Err(ConfigError::new("-w/--workers must be at least 1"));
        }
        if self.processes == 0 {
            return Err(ConfigError::new("-n/--processes must be at least 1"));
        }
        if self.process >= self.processes {
            return Err(ConfigError::new(format!(
                "-p/--process {} is out of range: with -n {} use 0..{}",
                self.process,
                self.processes,
                self.processes - 1
            )));
        }
        if self.keep_checkpoints == 0 {
            return Err(ConfigError::new("--keep-checkpoints must be at least 1"));
        }
        if self.max_in_flight == 0 {
            return Err(ConfigError::new("--max-in-flight must be at least 1"));
        }
        if self.epoch_interval.is_zero() {
            return Err(ConfigError::new("--epoch-interval must be greater than 0"));
        }
        let communication = if self.processes > 1 {
            let addresses = match &self.hostfile {
                Some(path) => read_hostfile(path, self.processes)?,
                None => (0..self.processes)
                    .map(|i| format!("127.0.0.1:{}", 2101 + i))
                    .collect(),
            };
            CommunicationConfig::Cluster {
                threads: self.workers,
                process: self.process,
                addresses,
                report: false,
                zerocopy: false,
            }
        } else if self.workers > 1 {
            CommunicationConfig::Process(self.workers)
        } else {
            CommunicationConfig::Thread
        };
        Ok(timely::Config {
            communication,
            worker: WorkerConfig::default(),
        })
    }

    /// Total workers across all processes.
    pub fn total_workers(&self) -> usize {
        self.workers * self.processes
    }
}

fn read_hostfile(path: &PathBuf, processes: usize) -> Result<Vec<String>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::new(format!(
            "--hostfile {}: cannot read it: {e}",
            path.display()
        ))
    })?;
    let hosts: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    if hosts.len() < processes {
        return Err(ConfigError::new(format!(
            "--hostfile {} lists {} hosts but -n is {}: add one host:port line per process",
            path.display(),
            hosts.len(),
            processes
        )));
    }
    if let Some(bad) = hosts.iter().find(|h| !h.contains(':')) {
        return Err(ConfigError::new(format!(
            "--hostfile {}: `{bad}` is not host:port",
            path.display()
        )));
    }
    Ok(hosts.into_iter().take(processes).collect())
}

/// Parses `1s`, `250ms`, `2m`, `1h`, `10us` or a bare number of milliseconds.
pub fn parse_duration(text: &str) -> Result<Duration, ConfigError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| {
        ConfigError::new(format!(
            "`{text}` is not a duration: write e.g. 500ms, 1s, 5m"
        ))
    })?;
    let millis = match unit.trim() {
        "" | "ms" => value,
        "us" => value / 1000.0,
        "s" => value * 1000.0,
        "m" | "min" => value * 60_000.0,
        "h" => value * 3_600_000.0,
        other => {
            return Err(ConfigError::new(format!(
                "`{other}` is not a duration unit: use us, ms, s, m or h"
            )))
        }
    };
    if !millis.is_finite() || millis < 0.0 {
        return Err(ConfigError::new(format!("`{text}` is not a duration")));
    }
    Ok(Duration::from_micros((millis * 1000.0).round() as u64))
}

/// Formats a duration the way [`parse_duration`] reads it.
pub struct ShowDuration(pub Duration);

impl fmt::Display for ShowDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms.is_multiple_of(1000) && ms > 0 {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        for (text, ms) in [
            ("1s", 1000),
            ("250ms", 250),
            ("250", 250),
            ("2m", 120_000),
            ("1.5s", 1500),
        ] {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(ms)),
                "{text}"
            );
        }
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn bad_cluster_flags_are_refused_with_the_flag_named() {
        let mut a = RunArgs::threads(0);
        assert!(a
            .timely_config()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
            .contains("--workers"));
        a = RunArgs::threads(1);
        a.processes = 2;
        a.process = 2;
        assert!(a
            .timely_config()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
            .contains("--process"));
        a.process = 1;
        a.hostfile = Some(PathBuf::from("/nonexistent/hosts"));
        assert!(a
            .timely_config()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
            .contains("--hostfile"));
    }
}
