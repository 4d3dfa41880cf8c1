//! Files in and out: CSV and JSON lines, one file or a directory of them.
//!
//! A [`FileSource`] has one split per file (a directory's regular files, in
//! name order, hidden files skipped). Malformed lines, unparsable or missing
//! timestamps and oversized records become dead letters naming the file, line
//! and byte offset. A [`FileSink`] writes records to one file from worker 0
//! (at-least-once across a restore); [`crate::PartsSink`] writes a directory
//! of per-epoch parts, exactly once.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;
use weir::source::{position_of, position_word};
use weir::{
    DeadLetter, Origin, ReadItem, ReadStatus, Sink, Source, SplitId, SplitReader, WorkerIndex,
};

use crate::format::{decode_csv_record, Format, MAX_RECORD_BYTES};

/// Reads records of type `T` from a file or a directory of files.
#[derive(Clone, Debug)]
pub struct FileSource<T> {
    files: Vec<PathBuf>,
    format: Format,
    _record: PhantomData<T>,
}

impl<T> FileSource<T> {
    /// Lists the input: `path` is a file, or a directory whose files are read.
    /// Fails (with a message naming the path) if it does not exist or holds no files.
    pub fn open(path: impl AsRef<Path>, format: Format) -> Result<Self, String> {
        let path = path.as_ref();
        let meta = std::fs::metadata(path)
            .map_err(|e| format!("input {}: {}", path.display(), describe_io(&e)))?;
        let files = if meta.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| format!("input {}: {}", path.display(), describe_io(&e)))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .filter(|p| {
                    !p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with('.'))
                })
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(format!(
                    "input {}: the directory has no files",
                    path.display()
                ));
            }
            files
        } else {
            vec![path.to_path_buf()]
        };
        Ok(FileSource {
            files,
            format,
            _record: PhantomData,
        })
    }

    /// The files, one per split.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }
}

pub(crate) fn describe_io(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

impl<T: DeserializeOwned + 'static> Source for FileSource<T> {
    type Item = T;

    fn splits(&self) -> u32 {
        self.files.len() as u32
    }

    fn open(&mut self, split: SplitId) -> Result<Box<dyn SplitReader<T>>, String> {
        self.open_at(split, &position_of(&[0, 0]))
    }

    fn open_at(
        &mut self,
        split: SplitId,
        position: &[u8],
    ) -> Result<Box<dyn SplitReader<T>>, String> {
        let path = self
            .files
            .get(split.0 as usize)
            .ok_or_else(|| format!("no file for {split}"))?
            .clone();
        let (offset, line) = (position_word(position, 0)?, position_word(position, 1)?);
        let io = |what: &str, e: std::io::Error| {
            format!("{}: {what}{}", path.display(), describe_io(&e))
        };
        let file = File::open(&path).map_err(|e| io("", e))?;
        let mut reader = FileReader {
            reader: BufReader::with_capacity(1 << 16, file),
            display: path.display().to_string(),
            format: self.format,
            headers: None,
            line: 0,
            offset: 0,
            buf: Vec::new(),
            _record: PhantomData::<T>,
        };
        if offset > 0 {
            // A CSV file's header is its first line: read it, then seek.
            if self.format == Format::Csv {
                reader
                    .reader
                    .read_until(b'\n', &mut reader.buf)
                    .map_err(|e| io("reading the header: ", e))?;
                let _ = reader.decode(0);
            }
            reader
                .reader
                .seek(SeekFrom::Start(offset))
                .map_err(|e| io("seeking to the checkpointed offset: ", e))?;
            reader.offset = offset;
            reader.line = line;
        }
        Ok(Box::new(reader))
    }
}

struct FileReader<T> {
    reader: BufReader<File>,
    display: String,
    format: Format,
    headers: Option<csv::StringRecord>,
    /// Lines read so far.
    line: u64,
    /// Byte offset of the next line.
    offset: u64,
    buf: Vec<u8>,
    _record: PhantomData<T>,
}

impl<T: DeserializeOwned> FileReader<T> {
    fn dead(&self, offset: u64, reason: String, raw: &[u8]) -> ReadItem<T> {
        let mut raw = String::from_utf8_lossy(raw).into_owned();
        if raw.len() > 4096 {
            // Keep dead letters small: a prefix is enough to find the record.
            let mut cut = 4096;
            while !raw.is_char_boundary(cut) {
                cut -= 1;
            }
            raw.truncate(cut);
            raw.push('…');
        }
        ReadItem::Bad(DeadLetter {
            source: String::new(),
            origin: Origin::File {
                path: self.display.clone(),
                line: self.line,
                offset,
            },
            reason,
            raw,
        })
    }

    fn decode(&mut self, offset: u64) -> Option<ReadItem<T>> {
        let mut bytes: &[u8] = &self.buf;
        while let Some((last, rest)) = bytes.split_last() {
            if *last == b'\n' || *last == b'\r' {
                bytes = rest;
            } else {
                break;
            }
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        if bytes.len() > MAX_RECORD_BYTES {
            return Some(self.dead(
                offset,
                format!(
                    "record of {} bytes exceeds the {MAX_RECORD_BYTES}-byte limit",
                    bytes.len()
                ),
                bytes,
            ));
        }
        match self.format {
            Format::Jsonl => Some(match serde_json::from_slice::<T>(bytes) {
                Ok(record) => ReadItem::Record(record),
                Err(e) => self.dead(offset, format!("malformed JSON: {e}"), bytes),
            }),
            Format::Csv => {
                let mut reader = csv::ReaderBuilder::new()
                    .has_headers(false)
                    .flexible(true)
                    .from_reader(bytes);
                let mut record = csv::StringRecord::new();
                let parsed = match reader.read_record(&mut record) {
                    Ok(_) => Ok(record),
                    Err(e) => Err(format!("malformed CSV: {e}")),
                };
                match (&self.headers, parsed) {
                    (None, Ok(record)) => {
                        self.headers = Some(record.iter().map(str::trim).collect());
                        None
                    }
                    (None, Err(reason)) => {
                        Some(self.dead(offset, format!("bad header: {reason}"), bytes))
                    }
                    (Some(headers), Ok(record)) => {
                        Some(match decode_csv_record::<T>(headers, &record) {
                            Ok(r) => ReadItem::Record(r),
                            Err(reason) => self.dead(offset, reason, bytes),
                        })
                    }
                    (Some(_), Err(reason)) => Some(self.dead(offset, reason, bytes)),
                }
            }
        }
    }
}

impl<T: DeserializeOwned> SplitReader<T> for FileReader<T> {
    fn position(&self) -> Vec<u8> {
        position_of(&[self.offset, self.line])
    }

    fn read(&mut self, max: usize, out: &mut Vec<ReadItem<T>>) -> Result<ReadStatus, String> {
        let mut produced = 0;
        while produced < max {
            self.buf.clear();
            let n = self
                .reader
                .read_until(b'\n', &mut self.buf)
                .map_err(|e| format!("{}: read failed: {}", self.display, describe_io(&e)))?;
            if n == 0 {
                return Ok(ReadStatus::Done);
            }
            let offset = self.offset;
            self.offset += n as u64;
            self.line += 1;
            if let Some(item) = self.decode(offset) {
                out.push(item);
                produced += 1;
            }
        }
        Ok(ReadStatus::Ready)
    }
}

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
    pub(crate) fn create(path: &Path, format: Format) -> Result<Self, String> {
        let file = File::create(path)
            .map_err(|e| format!("cannot create {}: {}", path.display(), describe_io(&e)))?;
        let buffered = BufWriter::with_capacity(1 << 16, file);
        Ok(match format {
            Format::Csv => Writer::Csv(Box::new(csv::Writer::from_writer(buffered))),
            Format::Jsonl => Writer::Jsonl(buffered),
        })
    }

    /// Writes every record, draining `records`.
    pub(crate) fn write<T: Serialize>(
        &mut self,
        path: &Path,
        records: &mut Vec<T>,
    ) -> Result<(), String> {
        let fail = |e: &dyn std::fmt::Display| format!("writing {}: {e}", path.display());
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

    /// Flushes buffered bytes to the file; with `sync`, to the disk.
    pub(crate) fn flush(&mut self, path: &Path, sync: bool) -> Result<(), String> {
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
        result.map_err(|e| format!("flushing {}: {}", path.display(), describe_io(&e)))
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
    fn open(&mut self, _worker: WorkerIndex) -> Result<(), String> {
        self.writer = Some(Writer::create(&self.path, self.format)?);
        Ok(())
    }

    fn write(&mut self, records: &mut Vec<T>) -> Result<(), String> {
        match &mut self.writer {
            None => Err(format!(
                "writing {}: the file is not open",
                self.path.display()
            )),
            Some(w) => w.write(&self.path, records),
        }
    }

    fn flush(&mut self) -> Result<(), String> {
        match &mut self.writer {
            None => Ok(()),
            Some(w) => w.flush(&self.path, false),
        }
    }
}

/// Writes records to stdout as JSON lines or CSV, from worker 0. Output is
/// flushed as batches complete.
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
    fn write(&mut self, records: &mut Vec<T>) -> Result<(), String> {
        match self.format {
            Format::Jsonl => {
                let stdout = std::io::stdout();
                let mut lock = stdout.lock();
                for r in records.drain(..) {
                    let line = serde_json::to_string(&r).map_err(|e| e.to_string())?;
                    if let Err(e) = writeln!(lock, "{line}") {
                        // A closed pipe (`| head`) ends output quietly.
                        if e.kind() == std::io::ErrorKind::BrokenPipe {
                            return Ok(());
                        }
                        return Err(format!("writing stdout: {e}"));
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
                        .map_err(|e| format!("writing stdout: {e}"))
                })
            }
        }
    }

    fn flush(&mut self) -> Result<(), String> {
        if let Some(w) = &mut self.csv {
            let _ = w.flush();
        }
        let _ = std::io::stdout().flush();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, Serialize, PartialEq, Clone)]
    struct Rec {
        id: u64,
        ts_ms: u64,
    }

    fn temp(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("weir-file-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    fn read_split(source: &mut FileSource<Rec>, split: u32) -> Vec<ReadItem<Rec>> {
        let mut reader = Source::open(source, SplitId(split)).expect("opens");
        let mut out = Vec::new();
        while reader.read(3, &mut out).expect("reads") != ReadStatus::Done {}
        out
    }

    #[test]
    fn jsonl_with_bad_and_oversized_lines() {
        let dir = temp("jsonl");
        let path = dir.join("in.jsonl");
        let huge = format!(
            "{{\"id\": 9, \"ts_ms\": 1, \"pad\": \"{}\"}}",
            "x".repeat(MAX_RECORD_BYTES)
        );
        std::fs::write(
            &path,
            format!(
                "{{\"id\":1,\"ts_ms\":10}}\n\n{{\"id\":2}}\n{huge}\n{{\"id\":3,\"ts_ms\":30}}\n"
            ),
        )
        .expect("write");
        let mut source = FileSource::<Rec>::open(&path, Format::Jsonl).expect("exists");
        let items = read_split(&mut source, 0);
        let good: Vec<u64> = items
            .iter()
            .filter_map(|i| match i {
                ReadItem::Record(r) => Some(r.id),
                _ => None,
            })
            .collect();
        assert_eq!(good, vec![1, 3]);
        let bad: Vec<(u64, String)> = items
            .iter()
            .filter_map(|i| match i {
                ReadItem::Bad(d) => match &d.origin {
                    Origin::File { line, .. } => Some((*line, d.reason.clone())),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert_eq!(bad[0].0, 3);
        assert!(bad[0].1.contains("missing field `ts_ms`"), "{bad:?}");
        assert_eq!(bad[1].0, 4);
        assert!(bad[1].1.contains("exceeds"), "{bad:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_csv_file_resumes_mid_file_from_its_position() {
        let dir = temp("resume");
        let path = dir.join("in.csv");
        let mut text = String::from("ts_ms,id\n");
        for i in 0..50 {
            text.push_str(&format!("{},{}\n", i * 10, i));
            if i == 20 {
                text.push_str("bad,line\n");
            }
        }
        std::fs::write(&path, text).expect("write");
        let mut source = FileSource::<Rec>::open(&path, Format::Csv).expect("exists");
        let straight = read_split(&mut source, 0);
        let mut reader = Source::open(&mut source, SplitId(0)).expect("opens");
        let mut resumed = Vec::new();
        reader.read(25, &mut resumed).expect("reads");
        let position = reader.position();
        let mut reader = source.open_at(SplitId(0), &position).expect("reopens");
        while reader.read(7, &mut resumed).expect("reads") != ReadStatus::Done {}
        // Same records, and the dead letter after the resume names the same line.
        assert_eq!(resumed, straight);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_directory_is_one_split_per_file_in_name_order() {
        let dir = temp("dir");
        std::fs::write(dir.join("b.csv"), "ts_ms,id\n20,2\n").expect("write");
        std::fs::write(dir.join("a.csv"), "id,ts_ms\n1,10\n").expect("write");
        std::fs::write(dir.join(".hidden.csv"), "garbage").expect("write");
        let mut source = FileSource::<Rec>::open(&dir, Format::Csv).expect("exists");
        assert_eq!(source.splits(), 2);
        let first = read_split(&mut source, 0);
        let second = read_split(&mut source, 1);
        assert_eq!(first, vec![ReadItem::Record(Rec { id: 1, ts_ms: 10 })]);
        assert_eq!(second, vec![ReadItem::Record(Rec { id: 2, ts_ms: 20 })]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn missing_input_and_empty_directory_are_refused_with_the_path() {
        let e = FileSource::<Rec>::open("/nonexistent/x.csv", Format::Csv).expect_err("missing");
        assert!(
            e.contains("/nonexistent/x.csv") && e.contains("no such file"),
            "{e}"
        );
        let dir = temp("empty");
        let e = FileSource::<Rec>::open(&dir, Format::Csv).expect_err("empty");
        assert!(e.contains("no files"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn file_sink_writes_csv_and_jsonl() {
        let dir = temp("sink");
        for (format, expected) in [
            (Format::Csv, "id,ts_ms\n1,10\n2,20\n"),
            (
                Format::Jsonl,
                "{\"id\":1,\"ts_ms\":10}\n{\"id\":2,\"ts_ms\":20}\n",
            ),
        ] {
            let path = dir.join(format!("out.{format}"));
            let mut sink = FileSink::<Rec>::create(&path, format);
            sink.open(WorkerIndex(0)).expect("open");
            let mut batch = vec![Rec { id: 1, ts_ms: 10 }, Rec { id: 2, ts_ms: 20 }];
            sink.write(&mut batch).expect("write");
            sink.flush().expect("flush");
            assert_eq!(std::fs::read_to_string(&path).expect("read"), expected);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
