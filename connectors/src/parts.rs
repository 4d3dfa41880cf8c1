//! Exactly-once file output: a directory of per-epoch part files.
//!
//! In a job with checkpoints, [`PartsSink`] stages the records of epoch `e`
//! in `DIR/.pending/part-<e>.<ext>`, syncs the part when the job's input has
//! passed `e`, and renames it to `DIR/part-<e>.<ext>` once the checkpoint of
//! `e` is complete: weir's two-phase commit ([`weir::sink_protocol`]) on
//! the files of [`crate::staged`]. A job
//! killed at any moment and restored leaves every record in exactly one
//! published part: read the parts in name order (`cat DIR/part-*`). Each CSV
//! part has its own header row.
//!
//! In a job without checkpoints there is nothing to restore from, so it
//! writes one part, `part-00000000000000000000.<ext>`, directly.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::path::PathBuf;

use serde::Serialize;
use weir::{Fault, Recovery, Sink, WorkerIndex};

use crate::staged;

use crate::file::Writer;
use crate::format::Format;

/// Writes records to a directory of part files, one per epoch, published
/// when the epoch's checkpoint is complete. All records go through worker 0.
pub struct PartsSink<T> {
    dir: PathBuf,
    format: Format,
    /// Parts being written: epoch → (path, file).
    open: BTreeMap<u64, (PathBuf, Writer)>,
    /// Whether the engine drives it per epoch (the job checkpoints).
    staged: bool,
    _record: PhantomData<T>,
}

impl<T> PartsSink<T> {
    /// A sink writing parts into `dir` (created when the job starts).
    pub fn new(dir: impl Into<PathBuf>, format: Format) -> Self {
        PartsSink {
            dir: dir.into(),
            format,
            open: BTreeMap::new(),
            staged: false,
            _record: PhantomData,
        }
    }

    fn extension(&self) -> String {
        self.format.to_string()
    }

    fn part(&mut self, epoch: u64) -> Result<&mut (PathBuf, Writer), Fault> {
        if !self.open.contains_key(&epoch) {
            let path = if self.staged {
                staged::pending_path(&self.dir, epoch, &self.extension())
            } else {
                self.dir.join(staged::part_name(epoch, &self.extension()))
            };
            let writer = Writer::create(&path, self.format)?;
            self.open.insert(epoch, (path, writer));
        }
        self.open
            .get_mut(&epoch)
            .ok_or_else(|| Fault::fatal("weir invariant: a part just opened is open"))
    }
}

impl<T: Serialize + 'static> Sink<T> for PartsSink<T> {
    fn open(&mut self, _worker: WorkerIndex) -> Result<(), Fault> {
        staged::prepare_dir(&self.dir)
    }

    fn write(&mut self, records: &mut Vec<T>) -> Result<(), Fault> {
        if self.open.is_empty() {
            // No checkpoints: this run's output replaces the directory's.
            staged::clear(&self.dir)?;
        }
        let (path, writer) = self.part(0)?;
        writer.write(path, records)
    }

    fn end_epoch(&mut self, _through: u64) -> Result<(), Fault> {
        for (path, writer) in self.open.values_mut() {
            writer.flush(path, false)?;
        }
        Ok(())
    }

    fn exactly_once(&self) -> bool {
        true
    }

    fn recover(&mut self, recovery: &Recovery) -> Result<(), Fault> {
        self.staged = true;
        // Parts through the restored epoch are covered by a complete
        // checkpoint; later ones are replayed; a fresh start replaces the
        // old run's output.
        staged::resolve(&self.dir, recovery.restored)?;
        Ok(())
    }

    fn write_epoch(&mut self, epoch: u64, records: &mut Vec<T>) -> Result<(), Fault> {
        if !self.staged {
            return self.write(records);
        }
        let (path, writer) = self.part(epoch)?;
        writer.write(path, records)
    }

    fn prepare(&mut self, through: u64) -> Result<(), Fault> {
        let later = match through.checked_add(1) {
            Some(next) => self.open.split_off(&next),
            None => BTreeMap::new(),
        };
        let done = std::mem::replace(&mut self.open, later);
        let synced = !done.is_empty();
        for (path, mut writer) in done.into_values() {
            writer.flush(&path, true)?;
        }
        if synced {
            staged::sync_dir(&self.dir.join(staged::PENDING))?;
        }
        Ok(())
    }

    fn commit(&mut self, through: u64) -> Result<(), Fault> {
        staged::publish_through(&self.dir, through)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("weir-parts-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn recovery(restored: Option<u64>) -> Recovery {
        Recovery {
            restored,
            worker: 0,
            workers: 1,
        }
    }

    fn published_text(dir: &std::path::Path) -> String {
        staged::published(dir)
            .expect("list")
            .iter()
            .map(|p| std::fs::read_to_string(p).expect("read"))
            .collect()
    }

    #[test]
    fn parts_are_published_through_complete_epochs_and_replayed_ones_discarded() {
        let dir = temp("publish");
        let mut sink = PartsSink::<u64>::new(&dir, Format::Jsonl);
        sink.open(WorkerIndex(0)).expect("open");
        sink.recover(&recovery(None)).expect("recover");
        for epoch in 1..=3 {
            sink.write_epoch(epoch, &mut vec![epoch * 10, epoch * 10 + 1])
                .expect("write");
        }
        sink.prepare(2).expect("prepare");
        assert_eq!(
            published_text(&dir),
            "",
            "nothing visible before a checkpoint"
        );
        sink.commit(1).expect("publish");
        assert_eq!(published_text(&dir), "10\n11\n");
        // A kill now: epoch 2 was prepared, epoch 3 was being written. The
        // restore from epoch 2 publishes 2 and discards 3.
        drop(sink);
        let mut restored = PartsSink::<u64>::new(&dir, Format::Jsonl);
        restored.open(WorkerIndex(0)).expect("open");
        restored.recover(&recovery(Some(2))).expect("recover");
        assert_eq!(published_text(&dir), "10\n11\n20\n21\n");
        restored.write_epoch(3, &mut vec![30]).expect("write");
        restored.prepare(u64::MAX).expect("prepare all");
        restored.commit(3).expect("publish");
        assert_eq!(published_text(&dir), "10\n11\n20\n21\n30\n");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
