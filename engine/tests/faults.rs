//! Typed faults: a transient fault of a split reader or a sink is retried
//! (counted, and nothing is lost or doubled); a fatal one stops the job
//! with its message. Sources here are boxed (`Box<dyn Source>` is a source).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use weir::source::SplitStart;
use weir::testing::{Capture, Script};
use weir::{
    Fault, ReadItem, ReadStatus, RunArgs, Sink, Source, SplitReader, Watermarks, WorkerIndex,
};

type Rec = (u64, u64);

fn script() -> Script<Rec> {
    let mut script = Script::new();
    for split in 0..3u64 {
        if split > 0 {
            script = script.split();
        }
        for i in 0..50u64 {
            script = script.record((split, i * 10));
        }
    }
    script
}

fn expected() -> Vec<Rec> {
    let mut all: Vec<Rec> = (0..3u64)
        .flat_map(|s| (0..50u64).map(move |i| (s, i * 10)))
        .collect();
    all.sort();
    all
}

/// A source whose readers fail `faults` times (each) before each read
/// succeeds, with the fault kind given.
#[derive(Clone)]
struct Flaky {
    inner: Script<Rec>,
    faults: u64,
    transient: bool,
}

struct FlakyReader {
    inner: Box<dyn SplitReader<Rec>>,
    left: u64,
    transient: bool,
}

impl Source for Flaky {
    type Item = Rec;
    fn splits(&self) -> u32 {
        self.inner.splits()
    }
    fn open_splits(
        &mut self,
        splits: &[SplitStart<'_>],
    ) -> Result<Vec<Box<dyn SplitReader<Rec>>>, Fault> {
        let readers = self.inner.open_splits(splits)?;
        Ok(readers
            .into_iter()
            .map(|inner| {
                Box::new(FlakyReader {
                    inner,
                    left: self.faults,
                    transient: self.transient,
                }) as Box<dyn SplitReader<Rec>>
            })
            .collect())
    }
}

impl SplitReader<Rec> for FlakyReader {
    fn poll(&mut self, max: usize, out: &mut Vec<ReadItem<Rec>>) -> Result<ReadStatus, Fault> {
        if self.left > 0 {
            self.left -= 1;
            return Err(if self.transient {
                Fault::transient("the broker is down")
            } else {
                Fault::fatal("the topic was deleted")
            });
        }
        self.inner.poll(max, out)
    }
    fn position(&self) -> Vec<u8> {
        self.inner.position()
    }
}

/// A sink whose writes fail transiently `faults` times before each batch
/// goes through to the capture.
struct FlakySink {
    inner: Box<dyn Sink<Rec>>,
    faults: Arc<AtomicU64>,
}

impl Sink<Rec> for FlakySink {
    fn open(&mut self, worker: WorkerIndex) -> Result<(), Fault> {
        self.inner.open(worker)
    }
    fn write(&mut self, records: &mut Vec<Rec>) -> Result<(), Fault> {
        self.inner.write(records)
    }
    fn write_epoch(&mut self, epoch: u64, records: &mut Vec<Rec>) -> Result<(), Fault> {
        if self
            .faults
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(Fault::transient("the disk is busy"));
        }
        self.inner.write_epoch(epoch, records)
    }
}

fn run(source: Flaky, sink_faults: u64) -> (Result<weir::Summary, weir::JobError>, Vec<Rec>) {
    let capture: Capture<Rec> = Capture::new();
    let inner = capture.clone();
    let faults = Arc::new(AtomicU64::new(sink_faults));
    let mut args = RunArgs::threads(2);
    args.quiet = true;
    let result = weir::run(&args, move |p| {
        // A boxed source is a source.
        let boxed: Box<dyn Source<Item = Rec>> = Box::new(source.clone());
        p.source("flaky", boxed)
            .event_time(|r: &Rec| r.1, Watermarks::ascending())
            .sink(
                "out",
                FlakySink {
                    inner: Box::new(inner.sink()),
                    faults: Arc::clone(&faults),
                },
            );
    });
    let mut out = capture.records();
    out.sort();
    (result, out)
}

#[test]
fn transient_faults_are_retried_counted_and_lose_nothing() {
    let source = Flaky {
        inner: script(),
        faults: 2,
        transient: true,
    };
    let (result, out) = run(source, 3);
    let summary = result.expect("the job runs through transient faults");
    assert_eq!(out, expected());
    // Two faults per split reader (3 splits) and three of the sink.
    assert_eq!(summary.retries, 2 * 3 + 3, "{summary}");
    assert!(summary.to_string().contains("9 retries"), "{summary}");
}

#[test]
fn a_fatal_fault_stops_the_job_with_its_message() {
    let source = Flaky {
        inner: script(),
        faults: 1,
        transient: false,
    };
    let (result, _) = run(source, 0);
    let error = result.expect_err("a fatal fault stops the job").to_string();
    assert!(
        error.contains("source `flaky`") && error.contains("the topic was deleted"),
        "{error}"
    );
}

#[test]
fn a_sink_exactly_once_only_through_checkpoints_is_refused_without_them() {
    let dir = std::env::temp_dir().join(format!("weir-faults-refused-{}", std::process::id()));
    let mut args = RunArgs::threads(2);
    args.quiet = true;
    let sink = weir::testing::StagedFiles::<Rec>::new(&dir);
    let result = weir::run(&args, move |p| {
        p.source("numbers", script())
            .event_time(|r: &Rec| r.1, Watermarks::ascending())
            .sink("out", sink.clone());
    });
    let error = result.expect_err("refused at start").to_string();
    assert!(
        error.contains("sink `out`") && error.contains("--checkpoint-dir"),
        "{error}"
    );
    assert!(!error.contains('\n'), "one line: {error}");
    assert!(
        !dir.join("committed").exists(),
        "nothing was written: the sink never opened"
    );
}
