//! The iot job's window aggregation read from a real file, CSV and JSON
//! lines, as a user runs it (`iot --input readings.csv`).
//!
//! The input is written by this bench's own writer (not weir's generator):
//! readings `device,ts_ms,value` from 1 000 devices, 20 000 per second of
//! event time, up to 500 ms out of order, values with up to three decimals.
//! `--input PATH` reads a file of yours instead (CSV with a
//! `device,ts_ms,value` header, or JSON lines by extension). Per format, in
//! the same run:
//! - the baseline: a hand-written single-thread loop that reads the file
//!   (a buffered reader, lines split by hand for CSV, `serde_json` per line
//!   for JSON lines), parses, and keeps count/min/max/avg per device and
//!   60 s window in a hash map;
//! - weir `-w 1` and `-w 2`: `FileSource` → event time (2 s bound) →
//!   `key_by` → 60 s tumbling window, into a capturing sink.
//!
//! Every run's output is checked equal to the baseline's; the figures are
//! throughputs and their ratios.
//!
//! Run: `cargo bench -p weir-benches --bench file_input` (release build).
//! Optional: `-- --events N` (default 5 000 000), `--runs R` (default 3),
//! `--input PATH`, `--format csv|jsonl` (default both), `--only-workers N`
//! (one engine run only, for profiling), `--file-splits N` (default 8, as
//! the example jobs: the file is read as 8 splits taking turns at 1 MiB
//! chunks, so that workers share it).

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use weir::rng::SplitMix64;
use weir_benches::{arg, arg_str, engine_minute_rows, measure, ratio, Fields, MinuteWindows, Row};
use weir_connectors::{FileSource, Format, Reading};

/// Writes `events` readings to `path` in `format` (once; reused after).
fn write_input(path: &Path, format: Format, events: u64) -> std::io::Result<()> {
    if path.exists() {
        return Ok(());
    }
    let partial = path.with_extension("partial");
    let mut out = BufWriter::with_capacity(1 << 20, File::create(&partial)?);
    if format == Format::Csv {
        writeln!(out, "device,ts_ms,value")?;
    }
    let mut rng = SplitMix64::new(0x5eed_f11e);
    let start_ms = 1_767_225_600_000u64; // 2026-01-01
    for i in 0..events {
        let device = rng.below(1_000);
        let ts_ms = start_ms + i / 20 - rng.below(500).min(i / 20);
        let value = (rng.below(80_000) as f64 - 20_000.0) / 1_000.0;
        match format {
            Format::Csv => writeln!(out, "{device},{ts_ms},{value}")?,
            Format::Jsonl => writeln!(
                out,
                "{{\"device\":{device},\"ts_ms\":{ts_ms},\"value\":{value}}}"
            )?,
        }
    }
    out.flush()?;
    drop(out);
    std::fs::rename(partial, path)
}

/// The hand-written loop: read, parse, aggregate, one thread.
fn baseline(path: &Path, format: Format) -> Vec<Row> {
    let mut reader = BufReader::with_capacity(1 << 16, File::open(path).expect("input"));
    let mut line = Vec::new();
    let mut windows = MinuteWindows::default();
    let mut columns = [0usize, 1, 2];
    let mut first = format == Format::Csv;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).expect("read") == 0 {
            break;
        }
        let text = std::str::from_utf8(&line).expect("utf-8").trim_end();
        if text.is_empty() {
            continue;
        }
        let r = match format {
            Format::Jsonl => serde_json::from_str::<Reading>(text).expect("valid JSON"),
            Format::Csv if first => {
                first = false;
                let names: Vec<&str> = text.split(',').map(str::trim).collect();
                for (slot, name) in columns.iter_mut().zip(["device", "ts_ms", "value"]) {
                    *slot = names.iter().position(|n| *n == name).expect("column");
                }
                continue;
            }
            Format::Csv => {
                let mut fields = [""; 3];
                for (i, field) in text.split(',').enumerate().take(3) {
                    fields[i] = field;
                }
                Reading {
                    device: fields[columns[0]].parse().expect("device"),
                    ts_ms: fields[columns[1]].parse().expect("ts_ms"),
                    value: fields[columns[2]].parse().expect("value"),
                }
            }
        };
        windows.add(r.device, r.ts_ms, r.value);
    }
    windows.rows()
}

fn engine(path: &Path, format: Format, workers: usize) -> Vec<Row> {
    let source = FileSource::<Reading>::open(path, format)
        .expect("input")
        .splits_per_file(arg("--file-splits", 8) as u32);
    let fields = Fields {
        device: |r: &Reading| r.device,
        ts_ms: |r: &Reading| r.ts_ms,
        value: |r: &Reading| r.value,
    };
    engine_minute_rows(source, fields, workers, 100)
}

fn main() {
    let events = arg("--events", 5_000_000);
    let runs = arg("--runs", 3) as usize;
    let formats: Vec<Format> = match arg_str("--format") {
        Some(f) => vec![f.parse().expect("--format csv|jsonl")],
        None => vec![Format::Csv, Format::Jsonl],
    };
    let dir = std::env::temp_dir().join("weir-bench-input");
    std::fs::create_dir_all(&dir).expect("input directory");
    for format in formats {
        let path: PathBuf = match arg_str("--input") {
            Some(p) => PathBuf::from(p),
            None => {
                let path = dir.join(format!("readings-{events}.{format}"));
                write_input(&path, format, events).expect("writing the input");
                path
            }
        };
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        println!(
            "file_input {format}: {} ({:.0} MB), {runs} runs each",
            path.display(),
            bytes as f64 / 1e6
        );
        let expected = baseline(&path, format);
        let records: u64 = expected.iter().map(|r| r.2).sum();
        println!("{records} records, {} windows", expected.len());
        if let Some(workers) = arg_str("--only-workers") {
            // For profiling: one engine run, nothing else measured.
            let workers = workers.parse().expect("--only-workers N");
            measure(
                &format!("{format} weir -w {workers}"),
                runs,
                records,
                &expected,
                || engine(&path, format, workers),
            );
            continue;
        }
        let name = |what: &str| format!("{format} {what}");
        let base = measure(
            &name("baseline (1 thread)"),
            runs,
            records,
            &expected,
            || baseline(&path, format),
        );
        let one = measure(&name("weir -w 1"), runs, records, &expected, || {
            engine(&path, format, 1)
        });
        let two = measure(&name("weir -w 2"), runs, records, &expected, || {
            engine(&path, format, 2)
        });
        ratio(
            &format!("{format} weir -w 1 / baseline throughput"),
            &one,
            &base,
            "goal >= 0.8, first milestone 0.5",
        );
        ratio(
            &format!("{format} weir -w 2 / weir -w 1 throughput"),
            &two,
            &one,
            "goal >= 1.7",
        );
    }
}
