//! File and stdout sinks: records out as CSV or JSON lines.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use serde::Serialize;
use weir::{Fault, Sink, WorkerIndex};

use super::describe_io;
use crate::format::Format;

/// Writes records to a file, as CSV (header from the first record's field
/// names) or JSON lines. All records go through worker 0.
pub struct FileSink<T> {
    path: PathBuf,
    format: Format,
    writer: Option<Writer>,
    _record: PhantomData<T>,
}

/// An open output file in either format.
pub(crate) enum Writer {
    Csv(Box<csv::Writer<BufWriter<File>>>),
    Jsonl(BufWriter<File>),
}

impl Writer {
    /// Creates (or truncates) `path`.
    /// Creating the file again is harmless, so a fault that may pass is
    /// transient.
    pub(crate) fn create(path: &Path, format: Format) -> Result<Self, Fault> {
        let file = File::create(path).map_err(|e| {
            Fault::io(
                format!("cannot create {}: {}", path.display(), describe_io(&e)),
                &e,
            )
        })?;
        let buffered = BufWriter::with_capacity(1 << 16, file);
        Ok(match format {
            Format::Csv => Writer::Csv(Box::new(csv::Writer::from_writer(buffered))),
            Format::Jsonl => Writer::Jsonl(buffered),
        })
    }

    /// Writes every record, draining `records`. A fault is fatal: the
    /// records before it are already written and drained.
    pub(crate) fn write<T: Serialize>(
        &mut self,
        path: &Path,
        records: &mut Vec<T>,
    ) -> Result<(), Fault> {
        let fail =
            |e: &dyn std::fmt::Display| Fault::fatal(format!("writing {}: {e}", path.display()));
        match self {
            Writer::Csv(w) => records
                .drain(..)
                .try_for_each(|r| w.serialize(r).map_err(|e| fail(&e))),
            Writer::Jsonl(w) => records.drain(..).try_for_each(|r| {
                serde_json::to_writer(&mut *w, &r).map_err(|e| fail(&e))?;
                w.write_all(b"\n").map_err(|e| fail(&e))
            }),
        }
    }

    /// Flushes buffered bytes to the file; with `sync`, to the disk. A
    /// fault is fatal (a buffered writer that failed may have written part
    /// of its buffer).
    pub(crate) fn flush(&mut self, path: &Path, sync: bool) -> Result<(), Fault> {
        let result = match self {
            Writer::Csv(w) => w.flush().and_then(|()| {
                if sync {
                    w.get_ref().get_ref().sync_all()
                } else {
                    Ok(())
                }
            }),
            Writer::Jsonl(w) => {
                w.flush()
                    .and_then(|()| if sync { w.get_ref().sync_all() } else { Ok(()) })
            }
        };
        result
            .map_err(|e| Fault::fatal(format!("flushing {}: {}", path.display(), describe_io(&e))))
    }
}

impl<T> FileSink<T> {
    /// A sink that will create (or truncate) `path` when the job starts.
    pub fn create(path: impl Into<PathBuf>, format: Format) -> Self {
        FileSink {
            path: path.into(),
            format,
            writer: None,
            _record: PhantomData,
        }
    }
}

impl<T: Serialize + 'static> Sink<T> for FileSink<T> {
    fn open(&mut self, _worker: WorkerIndex) -> Result<(), Fault> {
        self.writer = Some(Writer::create(&self.path, self.format)?);
        Ok(())
    }

    fn write(&mut self, records: &mut Vec<T>) -> Result<(), Fault> {
        match &mut self.writer {
            None => Err(Fault::fatal(format!(
                "writing {}: the file is not open",
                self.path.display()
            ))),
            Some(w) => w.write(&self.path, records),
        }
    }

    fn end_epoch(&mut self, _through: u64) -> Result<(), Fault> {
        match &mut self.writer {
            None => Ok(()),
            Some(w) => w.flush(&self.path, false),
        }
    }
}

/// Writes records to stdout as JSON lines or CSV, from worker 0. Output is
/// flushed at every epoch end.
pub struct StdoutSink<T> {
    format: Format,
    csv: Option<csv::Writer<std::io::Stdout>>,
    _record: PhantomData<T>,
}

impl<T> StdoutSink<T> {
    /// A stdout sink in `format`.
    pub fn new(format: Format) -> Self {
        StdoutSink {
            format,
            csv: None,
            _record: PhantomData,
        }
    }
}

impl<T: Serialize + 'static> Sink<T> for StdoutSink<T> {
    fn write(&mut self, records: &mut Vec<T>) -> Result<(), Fault> {
        match self.format {
            Format::Jsonl => {
                let stdout = std::io::stdout();
                let mut lock = stdout.lock();
                for r in records.drain(..) {
                    let line =
                        serde_json::to_string(&r).map_err(|e| Fault::fatal(e.to_string()))?;
                    if let Err(e) = writeln!(lock, "{line}") {
                        // A closed pipe (`| head`) ends output quietly.
                        if e.kind() == std::io::ErrorKind::BrokenPipe {
                            return Ok(());
                        }
                        return Err(Fault::fatal(format!("writing stdout: {e}")));
                    }
                }
                Ok(())
            }
            Format::Csv => {
                let writer = self
                    .csv
                    .get_or_insert_with(|| csv::Writer::from_writer(std::io::stdout()));
                records.drain(..).try_for_each(|r| {
                    writer
                        .serialize(r)
                        .map_err(|e| Fault::fatal(format!("writing stdout: {e}")))
                })
            }
        }
    }

    fn end_epoch(&mut self, _through: u64) -> Result<(), Fault> {
        if let Some(w) = &mut self.csv {
            let _ = w.flush();
        }
        let _ = std::io::stdout().flush();
        Ok(())
    }
}
