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
