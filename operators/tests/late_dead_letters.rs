//! Late records sent to the dead letters name the window they missed and the
//! watermark they were stamped with.

// Results and dead letters share one captured stream as `Result`s.
#![allow(clippy::result_large_err)]

use std::time::Duration;

use weir::testing::{run_workers, Script};
use weir::{DeadLetter, Fields, Origin, Watermarks};
use weir_operators::{Count, WindowExt, Windows};

/// (key, event time ms)
type Rec = (u32, u64);

#[test]
fn late_records_become_dead_letters() {
    // Ascending, quantum 100: stamps 0, 100, 1200, 1200.
    let script: Script<Rec> = Script::new()
        .records(&[(1, 100), (1, 1_250), (1, 50), (1, 1_300)])
        .malformed("garbage", "cannot parse");
    for workers in [1, 2] {
        let script = script.clone();
        let out: Vec<Result<(u32, u64, u64), DeadLetter>> =
            run_workers(workers, move |p, capture| {
                let w = p
                    .source("input", script.clone())
                    .event_time(|r: &Rec| r.1, Watermarks::ascending())
                    .key_by("by_key", |r: &Rec| r.0)
                    .window(
                        "per_second",
                        Windows::tumbling(Duration::from_secs(1)),
                        Count,
                    );
                w.late.dead_letter(|l| l.into_dead_letter("per_second"));
                let fired = w.fired.map(|f| Ok((f.key, f.window.start, f.value)));
                let dead = p.dead_letters().map(Err);
                fired.union(dead).sink("out", capture.sink());
            });
        let mut expected = vec![
            Ok((1, 0, 1)),
            Ok((1, 1_000, 2)),
            Err(DeadLetter {
                source: "per_second".into(),
                origin: Origin::Operator {
                    name: "per_second".into(),
                    kind: "late".into(),
                    event_time: None,
                    watermark: Some(1_200),
                    details: Fields::new()
                        .with("window_start", 0u64)
                        .with("window_end", 1_000u64),
                },
                reason:
                    "late: the watermark (1200 ms) had passed the window's end plus allowed lateness"
                        .into(),
                raw: "[1,50]".into(),
            }),
            Err(DeadLetter {
                source: "input".into(),
                origin: Origin::split(0, 4),
                reason: "cannot parse".into(),
                raw: "garbage".into(),
            }),
        ];
        expected.sort();
        assert_eq!(out, expected, "{workers} workers");
    }
}
