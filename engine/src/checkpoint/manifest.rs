//! The manifest: which epochs are complete checkpoints, and of what job.
//!
//! One small JSON file, `manifest.json`, in the checkpoint directory,
//! rewritten atomically (write a temporary file, sync it, rename it over the
//! old one, sync the directory) each time an epoch completes. It carries its
//! own checksum, so a torn or edited manifest is detected rather than
//! trusted.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ids::stable_hash;

pub use super::protocol::StepKind;

/// The manifest's file name.
pub const FILE: &str = "manifest.json";

/// A stateful step (operator or source) of the job, with the version of its
/// state encoding.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Step {
    /// The step's name.
    pub name: String,
    /// How its flushes count toward an epoch's completeness.
    pub kind: StepKind,
    /// The version of its stored encoding.
    pub version: u32,
}

/// One step instance's flush of an epoch.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Flush {
    /// The worker that wrote it.
    pub worker: usize,
    /// The step.
    pub step: String,
    /// The checksum of what it wrote.
    pub checksum: u64,
}

/// A complete epoch: every step on every worker flushed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The epoch.
    pub epoch: u64,
    /// Every flush of the epoch.
    pub flushes: Vec<Flush>,
}

/// What the checkpoint directory holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The manifest format.
    pub format: u32,
    /// How many workers wrote the stores of this generation.
    pub workers: usize,
    /// The store generation (a restore on another worker count starts a new one).
    pub generation: u64,
    /// The job's stateful steps.
    pub steps: Vec<Step>,
    /// Complete epochs, oldest first.
    pub complete: Vec<Entry>,
    /// The run ended cleanly: every source reached its end (or Ctrl-C ended
    /// the input) and all output was published. Nothing is left to resume.
    #[serde(default)]
    pub finished: bool,
}

#[derive(Serialize, Deserialize)]
struct Sealed {
    checksum: u64,
    manifest: Manifest,
}

/// Why a manifest could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestError {
    /// There is none.
    Missing,
    /// It exists but is unreadable, torn or does not match its checksum.
    Corrupt(String),
}

impl std::fmt::Display for ManifestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ManifestError::Missing => write!(f, "no manifest"),
            ManifestError::Corrupt(why) => write!(f, "the manifest is corrupt: {why}"),
        }
    }
}

fn checksum_of(manifest: &Manifest) -> u64 {
    // serde_json writes struct fields in declaration order: canonical.
    stable_hash(&serde_json::to_vec(manifest).unwrap_or_default())
}

/// The manifest's path in `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// Reads and verifies the manifest in `dir`.
pub fn read(dir: &Path) -> Result<Manifest, ManifestError> {
    let text = match fs::read(path(dir)) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ManifestError::Missing),
        Err(e) => return Err(ManifestError::Corrupt(e.to_string())),
    };
    let sealed: Sealed =
        serde_json::from_slice(&text).map_err(|e| ManifestError::Corrupt(e.to_string()))?;
    let found = checksum_of(&sealed.manifest);
    if found != sealed.checksum {
        return Err(ManifestError::Corrupt(format!(
            "checksum {found:#018x}, recorded {:#018x}",
            sealed.checksum
        )));
    }
    Ok(sealed.manifest)
}

/// Writes the manifest into `dir` atomically.
pub fn write(dir: &Path, manifest: &Manifest) -> std::io::Result<()> {
    let sealed = Sealed {
        checksum: checksum_of(manifest),
        manifest: manifest.clone(),
    };
    let bytes = serde_json::to_vec_pretty(&sealed).map_err(std::io::Error::other)?;
    let tmp = dir.join(format!("{FILE}.tmp"));
    {
        let mut file = File::create(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path(dir))?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            format: 1,
            workers: 2,
            generation: 0,
            steps: vec![Step {
                name: "windows".into(),
                kind: StepKind::State,
                version: 1,
            }],
            complete: vec![Entry {
                epoch: 3,
                flushes: vec![Flush {
                    worker: 0,
                    step: "windows".into(),
                    checksum: 7,
                }],
            }],
            finished: false,
        }
    }

    #[test]
    fn round_trip_and_corruption_is_detected() {
        let dir = std::env::temp_dir().join(format!("weir-manifest-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("dir");
        assert_eq!(read(&dir), Err(ManifestError::Missing));
        write(&dir, &sample()).expect("write");
        assert_eq!(read(&dir), Ok(sample()));
        // Edit a number: the checksum no longer matches.
        let text = fs::read_to_string(path(&dir)).expect("read");
        fs::write(path(&dir), text.replace("\"epoch\": 3", "\"epoch\": 4")).expect("edit");
        assert!(matches!(read(&dir), Err(ManifestError::Corrupt(_))));
        // Truncate it: corrupt, not a panic.
        fs::write(path(&dir), &text.as_bytes()[..text.len() / 2]).expect("truncate");
        assert!(matches!(read(&dir), Err(ManifestError::Corrupt(_))));
        let _ = fs::remove_dir_all(&dir);
    }
}
