//! The file source's tests: JSON lines and CSV with bad, blank, binary and
//! oversized records, directories, resuming, any split layout, and the
//! file sinks.

use super::*;
use crate::format::MAX_RECORD_BYTES;
use serde::{Deserialize, Serialize};
use weir::{DeadLetter, FieldValue, Raw, Sink, WorkerIndex};

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
    let mut reader = source.open_split(SplitId(split), None).expect("opens");
    let mut out = Vec::new();
    while reader.poll(3, &mut out).expect("reads") != ReadStatus::Done {}
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
        format!("{{\"id\":1,\"ts_ms\":10}}\n\n{{\"id\":2}}\n{huge}\n{{\"id\":3,\"ts_ms\":30}}\n"),
    )
    .expect("write");
    let mut source = FileSource::<Rec>::open(&path, Format::Jsonl).expect("exists");
    let items = read_all(&mut source, 3);
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
            ReadItem::Bad(d) => d
                .origin
                .coordinate("file", "line")
                .and_then(FieldValue::as_u64)
                .map(|line| (line, d.reason.clone())),
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
    let mut reader = source.open_split(SplitId(0), None).expect("opens");
    let mut resumed = Vec::new();
    reader.poll(25, &mut resumed).expect("reads");
    let position = reader.position();
    let mut reader = source
        .open_split(SplitId(0), Some(&position))
        .expect("reopens");
    while reader.poll(7, &mut resumed).expect("reads") != ReadStatus::Done {}
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
    let source = FileSource::<Rec>::open(&dir, Format::Csv).expect("exists");
    assert_eq!(
        source.splits(),
        2 * FileSource::<Rec>::DEFAULT_SPLITS_PER_FILE
    );
    let mut source = source.splits_per_file(1);
    assert_eq!(source.splits(), 2);
    let first = read_split(&mut source, 0);
    let second = read_split(&mut source, 1);
    assert_eq!(first, vec![ReadItem::Record(Rec { id: 1, ts_ms: 10 })]);
    assert_eq!(second, vec![ReadItem::Record(Rec { id: 2, ts_ms: 20 })]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_input_and_empty_directory_are_refused_with_the_path() {
    let e = FileSource::<Rec>::open("/nonexistent/x.csv", Format::Csv)
        .expect_err("missing")
        .to_string();
    assert!(
        e.contains("/nonexistent/x.csv") && e.contains("no such file"),
        "{e}"
    );
    let dir = temp("empty");
    let e = FileSource::<Rec>::open(&dir, Format::Csv)
        .expect_err("empty")
        .to_string();
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
        sink.end_epoch(u64::MAX).expect("flush");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), expected);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every item of every split of `source`, split after split, read `batch` at a time.
fn read_all(source: &mut FileSource<Rec>, batch: usize) -> Vec<ReadItem<Rec>> {
    let mut out = Vec::new();
    for split in 0..source.splits() {
        let mut reader = source.open_split(SplitId(split), None).expect("opens");
        while reader.poll(batch, &mut out).expect("reads") != ReadStatus::Done {}
    }
    out
}

fn bad_lines(items: &[ReadItem<Rec>]) -> Vec<(u64, u64, Vec<u8>)> {
    items
        .iter()
        .filter_map(|i| match i {
            ReadItem::Bad(d) => {
                let at = |name| d.origin.coordinate("file", name)?.as_u64();
                Some((at("line")?, at("offset")?, d.raw.as_bytes().to_vec()))
            }
            _ => None,
        })
        .collect()
}

/// A file of `rows` records with a bad record every 7th row, blank and
/// CRLF lines mixed in; returns the text and the (line, offset, bytes)
/// of each bad record, computed independently of the reader.
fn mixed_file(format: Format, rows: u64) -> (String, Vec<(u64, u64, Vec<u8>)>) {
    let mut text = String::new();
    let mut bad = Vec::new();
    let mut line = 1;
    if format == Format::Csv {
        text.push_str("id,ts_ms\n");
        line += 1;
    }
    for i in 0..rows {
        let row = if i % 7 == 3 {
            let row = match format {
                Format::Csv => format!("{i},late{i}"),
                Format::Jsonl => format!("{{\"id\":{i},\"ts_ms\":\"x\"}}"),
            };
            bad.push((line, text.len() as u64, row.clone().into_bytes()));
            row
        } else {
            match format {
                Format::Csv => format!("{i},{}", i * 10),
                Format::Jsonl => format!("{{\"id\":{i},\"ts_ms\":{}}}", i * 10),
            }
        };
        text.push_str(&row);
        text.push_str(if i % 5 == 0 { "\r\n" } else { "\n" });
        line += 1;
        if i % 11 == 0 {
            text.push('\n');
            line += 1;
        }
    }
    (text, bad)
}

#[test]
fn ranges_of_any_size_read_every_record_once_with_exact_lines_and_offsets() {
    let dir = temp("ranges");
    for format in [Format::Csv, Format::Jsonl] {
        let (text, expected_bad) = mixed_file(format, 300);
        let path = dir.join(format!("in.{format}"));
        std::fs::write(&path, &text).expect("write");
        let expected_good: Vec<u64> = (0..300).filter(|i| i % 7 != 3).collect();
        let mut expected_bad = expected_bad.clone();
        expected_bad.sort();
        for (splits, chunk) in [
            (1, 1),
            (8, 1 << 20),
            (2, 1),
            (3, 7),
            (8, 64),
            (2, 100),
            (5, 1000),
        ] {
            let mut source = FileSource::<Rec>::open(&path, format)
                .expect("exists")
                .splits_per_file(splits)
                .chunk_bytes(chunk);
            assert_eq!(source.splits(), splits);
            for batch in [1, 4096] {
                let items = read_all(&mut source, batch);
                let mut good: Vec<u64> = items
                    .iter()
                    .filter_map(|i| match i {
                        ReadItem::Record(r) => Some(r.id),
                        _ => None,
                    })
                    .collect();
                good.sort_unstable();
                let what = format!("{format}, {splits} splits of {chunk}-byte chunks");
                assert_eq!(good, expected_good, "{what}");
                let mut bad = bad_lines(&items);
                bad.sort();
                assert_eq!(bad, expected_bad, "{what}, batch {batch}");
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn quoted_line_breaks_are_one_record_and_a_split_through_one_fails_loudly() {
    #[derive(Debug, Deserialize, PartialEq)]
    struct Note {
        id: u64,
        text: String,
    }
    let dir = temp("quoted");
    let path = dir.join("in.csv");
    let text = "id,text\n1,\"two\nlines\"\n2,\"say \"\"hi\"\"\"\n3,x\n4,\"a,b\"\n";
    std::fs::write(&path, text).expect("write");
    let source = FileSource::<Note>::open(&path, Format::Csv).expect("exists");
    let mut reader = source.open_split(SplitId(0), None).expect("opens");
    let mut items = Vec::new();
    while reader.poll(10, &mut items).expect("reads") != ReadStatus::Done {}
    let notes: Vec<Note> = items
        .into_iter()
        .filter_map(|i| match i {
            ReadItem::Record(r) => Some(r),
            _ => None,
        })
        .collect();
    let note = |id: u64, text: &str| Note {
        id,
        text: text.into(),
    };
    assert_eq!(
        notes,
        vec![
            note(1, "two\nlines"),
            note(2, "say \"hi\""),
            note(3, "x"),
            note(4, "a,b")
        ]
    );
    // A range boundary inside the quoted line break: the split owning
    // the record fails the job instead of letting the next one decode
    // half of it.
    let boundary = text.find("lines").expect("in text") as u64;
    let source = FileSource::<Note>::open(&path, Format::Csv)
        .expect("exists")
        .splits_per_file(2)
        .chunk_bytes(boundary);
    let mut reader = source.open_split(SplitId(0), None).expect("opens");
    let mut items = Vec::new();
    let error = loop {
        match reader.poll(10, &mut items) {
            Ok(ReadStatus::Done) => panic!("split 0 ended without noticing"),
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    assert!(error.message.contains("--file-splits 1"), "{error}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn binary_garbage_is_kept_byte_for_byte_and_oversized_records_are_cut_at_the_cap() {
    let dir = temp("binary");
    for format in [Format::Csv, Format::Jsonl] {
        let path = dir.join(format!("in.{format}"));
        let garbage: Vec<u8> = vec![0xff, 0xfe, b',', 0x00, 0xc3, b'(', b'\r'];
        let huge_len = MAX_RECORD_BYTES + 12_345;
        let huge = vec![b'7'; huge_len];
        let mut bytes = Vec::new();
        if format == Format::Csv {
            bytes.extend_from_slice(b"id,ts_ms\n1,10\n");
        } else {
            bytes.extend_from_slice(b"{\"id\":1,\"ts_ms\":10}\n");
        }
        let garbage_at = bytes.len() as u64;
        bytes.extend_from_slice(&garbage);
        bytes.push(b'\n');
        let huge_at = bytes.len() as u64;
        bytes.extend_from_slice(&huge);
        bytes.push(b'\n');
        if format == Format::Csv {
            bytes.extend_from_slice(b"2,20\n");
        } else {
            bytes.extend_from_slice(b"{\"id\":2,\"ts_ms\":20}\n");
        }
        std::fs::write(&path, &bytes).expect("write");
        let mut source = FileSource::<Rec>::open(&path, format).expect("exists");
        let items = read_all(&mut source, 3);
        let (mut good, mut bad) = (Vec::new(), Vec::new());
        for item in items {
            match item {
                ReadItem::Record(r) => good.push(r.id),
                ReadItem::Bad(d) => bad.push(d),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(good, vec![1, 2], "{format}");
        assert_eq!(bad.len(), 2, "{format}: {bad:?}");
        let first_line = if format == Format::Csv { 3 } else { 2 };
        assert_eq!(
            bad[0].origin,
            origin(&path.display().to_string(), first_line, garbage_at)
        );
        // The exact bytes, less the line end, survive JSON and back.
        let json = serde_json::to_string(&bad[0]).expect("json");
        let back: DeadLetter = serde_json::from_str(&json).expect("back");
        assert_eq!(
            back.raw.as_bytes(),
            &garbage[..garbage.len() - 1],
            "{format}"
        );
        assert!(json.contains("\"raw_encoding\":\"base64\""), "{json}");
        assert!(bad[1].reason.contains("exceeds"), "{}", bad[1].reason);
        assert_eq!(bad[1].raw.original_len(), huge_len as u64, "{format}");
        assert_eq!(bad[1].raw.as_bytes(), &huge[..Raw::CAP]);
        assert_eq!(
            bad[1].origin,
            origin(&path.display().to_string(), first_line + 1, huge_at)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_split_resumes_from_any_position_within_and_across_its_chunks() {
    let dir = temp("resume-range");
    for format in [Format::Csv, Format::Jsonl] {
        let (text, _) = mixed_file(format, 200);
        let path = dir.join(format!("in.{format}"));
        std::fs::write(&path, &text).expect("write");
        let source = FileSource::<Rec>::open(&path, format)
            .expect("exists")
            .splits_per_file(3)
            .chunk_bytes(300);
        for split in 0..source.splits() {
            let mut straight = Vec::new();
            let mut reader = source.open_split(SplitId(split), None).expect("opens");
            while reader.poll(4096, &mut straight).expect("reads") != ReadStatus::Done {}
            // Reopen from the position after every read.
            let mut resumed = Vec::new();
            let mut reader = source.open_split(SplitId(split), None).expect("opens");
            while reader.poll(3, &mut resumed).expect("reads") != ReadStatus::Done {
                let position = reader.position();
                reader = source
                    .open_split(SplitId(split), Some(&position))
                    .expect("reopens");
            }
            assert_eq!(resumed, straight, "{format} split {split}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_file_without_line_breaks_is_one_oversized_dead_letter_in_any_split_layout() {
    let dir = temp("no-newline");
    for format in [Format::Csv, Format::Jsonl] {
        let path = dir.join(format!("in.{format}"));
        let len = 3 * MAX_RECORD_BYTES + 17;
        std::fs::write(&path, vec![b'x'; len]).expect("write");
        for (splits, chunk) in [(1, 1 << 20), (8, 1 << 16), (3, 4096)] {
            let mut source = FileSource::<Rec>::open(&path, format)
                .expect("exists")
                .splits_per_file(splits)
                .chunk_bytes(chunk);
            let items = read_all(&mut source, 10);
            let what = format!("{format}, {splits} splits of {chunk}");
            assert_eq!(items.len(), 1, "{what}: {items:?}");
            let ReadItem::Bad(d) = &items[0] else {
                panic!("{what}: {items:?}");
            };
            assert_eq!(d.raw.original_len(), len as u64, "{what}");
            assert!(d.reason.contains("exceeds"), "{what}: {}", d.reason);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn plain_lines_decode_as_the_csv_parser_decodes_them_quoted() {
    #[derive(Debug, Deserialize, PartialEq)]
    struct Row {
        id: u64,
        name: String,
        value: f64,
        note: Option<String>,
    }
    let dir = temp("plain-vs-quoted");
    let mut rng = weir::rng::SplitMix64::new(7);
    let (mut plain, mut quoted) = (String::new(), String::new());
    plain.push_str("id,name,value,note\n");
    quoted.push_str("\"id\",\"name\",\"value\",\"note\"\r\n");
    for i in 0..2_000u64 {
        let name = ["a", "b c", " spaced ", "é", "x;y"][rng.below(5) as usize];
        let value = ["1.5", "-0", "1e3", " 7 ", "nan?", ""][rng.below(6) as usize];
        let note = ["", "n", "q q"][rng.below(3) as usize];
        let id = if rng.below(50) == 0 {
            "x".to_string()
        } else {
            i.to_string()
        };
        plain.push_str(&format!("{id},{name},{value},{note}\n"));
        quoted.push_str(&format!("\"{id}\",\"{name}\",\"{value}\",\"{note}\"\r\n"));
    }
    let read = |name: &str, text: &str| -> Vec<Result<Row, String>> {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        let source = FileSource::<Row>::open(&path, Format::Csv)
            .expect("exists")
            .splits_per_file(1);
        let mut reader = source.open_split(SplitId(0), None).expect("opens");
        let mut items = Vec::new();
        while reader.poll(100, &mut items).expect("reads") != ReadStatus::Done {}
        items
            .into_iter()
            .map(|item| match item {
                ReadItem::Record(r) => Ok(r),
                ReadItem::Bad(d) => Err(d.reason),
                other => panic!("{other:?}"),
            })
            .collect()
    };
    let from_plain = read("plain.csv", &plain);
    let from_quoted = read("quoted.csv", &quoted);
    assert_eq!(from_plain.len(), 2_000);
    assert!(from_plain.iter().any(Result::is_err) && from_plain.iter().any(Result::is_ok));
    assert_eq!(from_plain, from_quoted);
    let _ = std::fs::remove_dir_all(&dir);
}
