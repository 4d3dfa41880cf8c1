//! Bad data is data: malformed records and records without an event time
//! come out of `Pipeline::dead_letters()` with the source's name, the reason,
//! the raw text and the split/offset they came from, on any worker count,
//! and the good records around them are unaffected.

use weir::testing::{run_workers, Script};
use weir::{DeadLetter, FieldValue, Origin, Watermarks};

/// (key, event time ms)
type Rec = (u32, u64);

fn dead(split: u32, offset: u64, reason: &str, raw: &str) -> DeadLetter {
    DeadLetter {
        source: "input".into(),
        origin: Origin::split(split, offset),
        reason: reason.into(),
        raw: raw.into(),
    }
}

#[test]
fn malformed_steps_become_dead_letters_with_reason_and_origin() {
    // Offsets count the records of a split, good or malformed; watermark,
    // epoch and idle steps are not records.
    let script: Script<Rec> = Script::new()
        .record((1, 100)) // split 0, offset 0
        .malformed("{\"key\": oops", "expected value at line 1 column 9") // offset 1
        .watermark(150)
        .record((2, 200)) // offset 2
        .end_epoch()
        .record((1, 300)) // offset 3
        .idle(std::time::Duration::from_millis(1))
        .malformed("", "empty line") // offset 4
        .split()
        .malformed("\u{fffd}\u{fffd}", "not UTF-8") // split 1, offset 0
        .record((3, 150)) // offset 1
        .watermark(1_000)
        .malformed("1,2,3,4", "too many fields"); // offset 2
    let expected_dead = {
        let mut v = vec![
            dead(0, 1, "expected value at line 1 column 9", "{\"key\": oops"),
            dead(0, 4, "empty line", ""),
            dead(1, 0, "not UTF-8", "\u{fffd}\u{fffd}"),
            dead(1, 2, "too many fields", "1,2,3,4"),
        ];
        v.sort();
        v
    };
    for workers in [1, 2, 4] {
        let script = script.clone();
        let out: Vec<Result<Rec, DeadLetter>> = run_workers(workers, move |p, capture| {
            let records = p
                .source("input", script.clone())
                .event_time(|r: &Rec| r.1, Watermarks::ascending())
                .map(Ok);
            let dead = p.dead_letters().map(Err);
            records.union(dead).sink("out", capture.sink());
        });
        let good: Vec<Rec> = out
            .iter()
            .filter_map(|o| o.as_ref().ok().copied())
            .collect();
        let bad: Vec<DeadLetter> = out
            .iter()
            .filter_map(|o| o.as_ref().err().cloned())
            .collect();
        assert_eq!(
            good,
            vec![(1, 100), (1, 300), (2, 200), (3, 150)],
            "{workers} workers: good records"
        );
        assert_eq!(bad, expected_dead, "{workers} workers: dead letters");
    }
}

#[test]
fn dead_letters_from_two_sources_name_their_source() {
    let a: Script<Rec> = Script::new().malformed("x", "bad a");
    let b: Script<Rec> = Script::new().record((1, 1)).malformed("y", "bad b");
    for workers in [1, 2] {
        let (a, b) = (a.clone(), b.clone());
        let out: Vec<DeadLetter> = run_workers(workers, move |p, capture| {
            let _ = p
                .source("a", a.clone())
                .event_time(|r: &Rec| r.1, Watermarks::ascending());
            let _ = p
                .source("b", b.clone())
                .event_time(|r: &Rec| r.1, Watermarks::ascending());
            p.dead_letters().sink("dead", capture.sink());
        });
        let got: Vec<(String, String, Origin)> = out
            .into_iter()
            .map(|d| (d.source, d.reason, d.origin))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a".to_string(), "bad a".to_string(), Origin::split(0, 0)),
                ("b".to_string(), "bad b".to_string(), Origin::split(0, 1)),
            ],
            "{workers} workers"
        );
    }
}

/// A record whose extractor finds no event time is a dead letter too; its
/// origin should say where it was, like a malformed step's does.
#[test]
fn a_record_without_event_time_is_a_dead_letter_with_its_origin() {
    type Maybe = (u32, Option<u64>);
    let script: Script<Maybe> = Script::new()
        .record((1, Some(100))) // split 0, offset 0
        .split()
        .record((2, Some(100))) // split 1, offset 0
        .record((2, Some(200))) // offset 1
        .watermark(150)
        .end_epoch()
        .record((3, None)) // offset 2
        .record((2, Some(300))); // offset 3
    for workers in [1, 2] {
        let script = script.clone();
        let out: Vec<Result<Maybe, DeadLetter>> = run_workers(workers, move |p, capture| {
            let records = p
                .source("input", script.clone())
                .event_time(|r: &Maybe| r.1, Watermarks::ascending())
                .map(Ok);
            let dead = p.dead_letters().map(Err);
            records.union(dead).sink("out", capture.sink());
        });
        let good: Vec<Maybe> = out
            .iter()
            .filter_map(|o| o.as_ref().ok().copied())
            .collect();
        assert_eq!(
            good,
            vec![
                (1, Some(100)),
                (2, Some(100)),
                (2, Some(200)),
                (2, Some(300))
            ],
            "{workers} workers"
        );
        let bad: Vec<DeadLetter> = out
            .iter()
            .filter_map(|o| o.as_ref().err().cloned())
            .collect();
        assert_eq!(bad.len(), 1, "{workers} workers: {bad:?}");
        let d = &bad[0];
        assert_eq!(d.source, "input");
        assert_eq!(d.reason, "the record has no event timestamp");
        assert_eq!(d.raw, "[3,null]");
        assert_eq!(
            d.origin
                .coordinate("split", "split")
                .and_then(FieldValue::as_u64),
            Some(1),
            "{workers} workers: {d:?}"
        );
        assert_eq!(
            d.origin,
            Origin::split(1, 2),
            "{workers} workers: the dead letter should name the record's offset within its split"
        );
    }
}
