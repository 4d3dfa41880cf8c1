//! The engine's error types.

use thiserror::Error;

/// A bad flag or configuration, found before the job starts. Its message is one
/// line that says what to fix.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{0}")]
pub struct ConfigError(String);

impl ConfigError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        ConfigError(message.into())
    }
}

/// Why a job failed.
#[derive(Debug, Error)]
pub enum JobError {
    /// The job was misconfigured; nothing ran. (Transparent, so that a
    /// report of the error chain does not say it twice.)
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A source could not be opened or read.
    #[error("source `{source_name}`: {message}")]
    Source {
        /// The source's name.
        source_name: String,
        /// What went wrong.
        message: String,
    },
    /// A sink could not write.
    #[error("sink `{sink}`: {message}")]
    Sink {
        /// The sink's name.
        sink: String,
        /// What went wrong.
        message: String,
    },
    /// Writing or restoring a checkpoint failed.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// Timely could not start or a worker panicked.
    #[error("runtime: {0}")]
    Runtime(String),
}

/// Whether a connector's or backend's fault may pass if the call is tried
/// again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// It may pass (a broker that is down, a timeout): the engine retries
    /// the call with backoff, shows the fault in the status line and counts
    /// it.
    Transient,
    /// It will not pass (an unreadable file, a bad position, a rejected
    /// write): the job stops with the message.
    Fatal,
}

/// A fault a source, split reader, sink or state backend reports: what went
/// wrong, and whether trying again may help.
///
/// A `String` (or `&str`) converts into a fatal fault, so `?` on a
/// connector's own helpers that return `Result<_, String>` works.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("{message}")]
pub struct Fault {
    /// Transient or fatal.
    pub kind: FaultKind,
    /// What went wrong, one line.
    pub message: String,
}

impl Fault {
    /// A fault that will not pass: the job stops.
    pub fn fatal(message: impl Into<String>) -> Self {
        Fault {
            kind: FaultKind::Fatal,
            message: message.into(),
        }
    }

    /// A fault that may pass: the engine tries again later.
    pub fn transient(message: impl Into<String>) -> Self {
        Fault {
            kind: FaultKind::Transient,
            message: message.into(),
        }
    }

    /// A fault from an I/O error, `message` saying what failed (one line):
    /// transient if the error may pass (interrupted, timed out, would
    /// block), fatal otherwise (not found, permission denied, disk full).
    pub fn io(message: impl Into<String>, e: &std::io::Error) -> Self {
        use std::io::ErrorKind;
        match e.kind() {
            ErrorKind::Interrupted | ErrorKind::TimedOut | ErrorKind::WouldBlock => {
                Fault::transient(message)
            }
            _ => Fault::fatal(message),
        }
    }

    /// Whether trying again may help.
    pub fn is_transient(&self) -> bool {
        self.kind == FaultKind::Transient
    }
}

impl From<String> for Fault {
    fn from(message: String) -> Self {
        Fault::fatal(message)
    }
}

impl From<&str> for Fault {
    fn from(message: &str) -> Self {
        Fault::fatal(message)
    }
}

impl From<Fault> for String {
    fn from(fault: Fault) -> Self {
        fault.message
    }
}

/// A state backend's failure, as a connector-style fault: fatal (the
/// store traits still return [`StoreError`](crate::checkpoint::store::StoreError),
/// which says nothing about whether it may pass).
impl From<crate::checkpoint::store::StoreError> for Fault {
    fn from(e: crate::checkpoint::store::StoreError) -> Self {
        Fault::fatal(e.0)
    }
}

/// How long the engine waits before trying a call that failed with a
/// transient fault again, after `attempt` failures in a row (1, 2, …):
/// doubling from 50 ms, at most 5 s.
pub(crate) fn retry_delay(attempt: u32) -> std::time::Duration {
    let ms = 50u64.saturating_mul(1u64 << attempt.saturating_sub(1).min(10));
    std::time::Duration::from_millis(ms.min(5_000))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn strings_are_fatal_and_backoff_doubles_to_a_cap() {
        let f: Fault = "disk gone".into();
        assert!(!f.is_transient());
        assert!(Fault::transient("broker down").is_transient());
        assert_eq!(String::from(f), "disk gone");
        let delays: Vec<u64> = [1, 2, 3, 4, 8, 30]
            .iter()
            .map(|a| retry_delay(*a).as_millis() as u64)
            .collect();
        assert_eq!(delays, vec![50, 100, 200, 400, 5_000, 5_000]);
        assert_eq!(retry_delay(0), Duration::from_millis(50));
        let io = |kind| Fault::io("reading x", &std::io::Error::from(kind));
        assert!(io(std::io::ErrorKind::TimedOut).is_transient());
        assert!(!io(std::io::ErrorKind::NotFound).is_transient());
        assert_eq!(io(std::io::ErrorKind::NotFound).to_string(), "reading x");
    }
}
