//! Fault injection for tests of checkpoint recovery, set by the environment.
//!
//! `WEIR_FAILPOINT=torn-flush:W:E` makes worker `W` stop the whole process
//! (`abort`, as `kill -9` would) when it is about to flush epoch `E` of a
//! stateful step, once epoch `E - 1` is recorded complete (waiting at most
//! 20 s, so a loaded machine cannot make the test see an older checkpoint)
//! and after giving the other workers time to flush theirs: the checkpoint
//! of `E` is then torn, held by some workers and not others.
//!
//! `WEIR_FAILPOINT=lost-commit:E` makes an exactly-once sink worker stop
//! the process when it is about to commit epochs through `E` or later
//! (never the end of the run), that is after the checkpoint of that epoch
//! is complete and before the commit: a Kafka transaction is then lost.
//! Unset (always, outside such tests), every check is one relaxed load.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::checkpoint::runtime::Plan;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Point {
    TornFlush { worker: usize, epoch: u64 },
    LostCommit { epoch: u64 },
}

fn parse(text: &str) -> Option<Point> {
    if let Some(epoch) = text.strip_prefix("lost-commit:") {
        return epoch.parse().ok().map(|epoch| Point::LostCommit { epoch });
    }
    let mut parts = text.strip_prefix("torn-flush:")?.split(':');
    let worker = parts.next()?.parse().ok()?;
    let epoch = parts.next()?.parse().ok()?;
    parts
        .next()
        .is_none()
        .then_some(Point::TornFlush { worker, epoch })
}

fn configured() -> Option<Point> {
    static POINT: OnceLock<Option<Point>> = OnceLock::new();
    *POINT.get_or_init(|| {
        let text = std::env::var("WEIR_FAILPOINT").ok()?;
        let point = parse(&text);
        if point.is_none() {
            eprintln!("weir: ignoring WEIR_FAILPOINT={text}: expected torn-flush:WORKER:EPOCH or lost-commit:EPOCH");
        }
        point
    })
}

/// Called by an exactly-once sink worker before it commits `through`.
pub(crate) fn before_sink_commit(through: u64) {
    if let Some(Point::LostCommit { epoch }) = configured() {
        if through >= epoch && through != u64::MAX {
            eprintln!("weir: failpoint: the sink dies before committing epochs through {through}");
            std::process::abort();
        }
    }
}

/// Whether a torn-flush failpoint is set.
pub(crate) fn tears_flushes() -> bool {
    matches!(configured(), Some(Point::TornFlush { .. }))
}

/// Called by a stateful step before it flushes `epoch` on `worker`.
pub(crate) fn before_state_flush(worker: usize, epoch: u64, plan: &Plan) {
    if configured() == Some(Point::TornFlush { worker, epoch }) {
        let started = Instant::now();
        while plan.last_complete() < epoch.checked_sub(1)
            && started.elapsed() < Duration::from_secs(20)
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(500));
        eprintln!("weir: failpoint: worker {worker} dies before flushing epoch {epoch}");
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failpoints_parse() {
        assert_eq!(
            parse("torn-flush:1:5"),
            Some(Point::TornFlush {
                worker: 1,
                epoch: 5
            })
        );
        assert_eq!(parse("lost-commit:7"), Some(Point::LostCommit { epoch: 7 }));
        assert_eq!(parse("lost-commit:x"), None);
        assert_eq!(parse("torn-flush:1"), None);
        assert_eq!(parse("torn-flush:1:5:9"), None);
        assert_eq!(parse("other:1:5"), None);
    }
}
