//! Flow control: a source far faster than the job must not run unboundedly
//! ahead of what the job has consumed.
//!
//! Two workers; every record goes to one key on worker 1, whose stateful
//! operator is slow. Without flow control worker 0's source would push nearly
//! all of its records into the exchange before worker 1 consumed them; with
//! it, the gap between records read and records consumed stays near the
//! in-flight bound.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use weir::source::SplitStart;
use weir::stateful::{Emit, KeyedLogic};
use weir::testing::run_with;
use weir::{
    EventTime, Fault, KeyGroup, ReadItem, ReadStatus, RunArgs, Source, SplitReader, Watermarks,
};

const RECORDS: u64 = 300_000;
const MAX_IN_FLIGHT: usize = 32 * 1024;

#[derive(Clone)]
struct Counting {
    read: Arc<AtomicU64>,
}

struct CountingSplit {
    next: u64,
    end: u64,
    read: Arc<AtomicU64>,
}

impl Source for Counting {
    type Item = u64;
    fn splits(&self) -> u32 {
        1
    }
    fn open_splits(
        &mut self,
        splits: &[SplitStart<'_>],
    ) -> Result<Vec<Box<dyn SplitReader<u64>>>, Fault> {
        splits
            .iter()
            .map(|s| {
                let next = match s.position {
                    None => 0,
                    Some(position) => weir::source::position_word(position, 0)?,
                };
                Ok(Box::new(CountingSplit {
                    next,
                    end: RECORDS,
                    read: Arc::clone(&self.read),
                }) as Box<dyn SplitReader<u64>>)
            })
            .collect()
    }
}

impl SplitReader<u64> for CountingSplit {
    fn position(&self) -> Vec<u8> {
        self.next.to_le_bytes().to_vec()
    }
    fn poll(&mut self, max: usize, out: &mut Vec<ReadItem<u64>>) -> Result<ReadStatus, Fault> {
        let n = (max as u64).min(self.end - self.next);
        out.extend((self.next..self.next + n).map(ReadItem::Record));
        self.next += n;
        self.read.fetch_add(n, Ordering::SeqCst);
        Ok(if self.next == self.end {
            ReadStatus::Done
        } else {
            ReadStatus::Ready
        })
    }
}

/// Consumes slowly and records the largest gap between read and consumed.
struct Slow {
    read: Arc<AtomicU64>,
    consumed: u64,
    max_gap: Arc<AtomicU64>,
}

impl KeyedLogic<u64, u64> for Slow {
    type Out = u64;
    type Late = u64;
    fn on_record(&mut self, _: u64, _: EventTime, _: u64, _: EventTime, _: &mut Emit<u64, u64>) {
        let until = Instant::now() + Duration::from_micros(3);
        while Instant::now() < until {
            std::hint::spin_loop();
        }
        self.consumed += 1;
        let gap = self
            .read
            .load(Ordering::SeqCst)
            .saturating_sub(self.consumed);
        self.max_gap.fetch_max(gap, Ordering::SeqCst);
    }
    fn on_watermark(&mut self, watermark: EventTime, emit: &mut Emit<u64, u64>) {
        if watermark == EventTime::END && self.consumed > 0 {
            emit.output(watermark, EventTime(0), self.consumed);
            self.consumed = 0;
        }
    }
    fn next_fire(&self) -> Option<EventTime> {
        (self.consumed > 0).then_some(EventTime::END)
    }
    fn track_changes(&mut self, _: bool) {}
    fn take_changes(&mut self, _: &mut weir::stateful::Changes<u64>) {}
    fn restore(&mut self, _: u64, _: &[u8]) -> Result<(), String> {
        Ok(())
    }
}

#[test]
fn a_fast_source_waits_for_a_slow_consumer() {
    // A key that lives on worker 1 of 2.
    let key = (0u64..)
        .find(|k| KeyGroup::of(k).worker(2).0 == 1)
        .expect("some key");
    let read = Arc::new(AtomicU64::new(0));
    let max_gap = Arc::new(AtomicU64::new(0));
    let (r, g) = (Arc::clone(&read), Arc::clone(&max_gap));
    let args = RunArgs {
        max_in_flight: MAX_IN_FLIGHT,
        ..RunArgs::threads(2)
    };
    let out: Vec<u64> = run_with(args, move |p, capture| {
        let source = Counting {
            read: Arc::clone(&r),
        };
        let slow = Slow {
            read: Arc::clone(&r),
            consumed: 0,
            max_gap: Arc::clone(&g),
        };
        let (done, _) = p
            .source("numbers", source)
            // One ms of event time per record, stamps every 10 ms: flow
            // control can retire records as the watermark moves.
            .event_time(
                |n: &u64| *n,
                Watermarks::ascending().quantum(Duration::from_millis(10)),
            )
            .key_by("one_key", move |_| key)
            .stateful("slow", slow);
        done.sink("out", capture.sink());
    })
    .into_iter()
    .map(|(_, n)| n)
    .collect();
    assert_eq!(
        out.iter().sum::<u64>(),
        RECORDS,
        "every record consumed once"
    );
    let gap = max_gap.load(Ordering::SeqCst);
    // The bound is 32 Ki records in flight per source, plus what one
    // activation reads past it; without flow control the gap nears RECORDS.
    assert!(
        gap < MAX_IN_FLIGHT as u64 + 20_000,
        "the source ran {gap} records ahead of the consumer (of {RECORDS})"
    );
    assert!(gap > 0, "the test measured nothing");
}
