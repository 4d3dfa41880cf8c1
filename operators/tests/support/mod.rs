//! Input helpers shared by the operator oracle tests: splits written as
//! steps, mirrored into a [`Script`], the stamp each record gets, and a
//! fold collecting records' ids.

use weir::testing::Script;
use weir_operators::Fold;

/// One step of a split, mirrored into a [`Script`].
#[derive(Clone, Debug)]
pub enum Step<R> {
    Record(R),
    Watermark(u64),
    EndEpoch,
}

/// The script that reads `splits`, one split each.
pub fn to_script<R: Clone>(splits: &[Vec<Step<R>>]) -> Script<R> {
    let mut script = Script::new();
    for (i, steps) in splits.iter().enumerate() {
        if i > 0 {
            script = script.split();
        }
        for step in steps {
            script = match step {
                Step::Record(r) => script.record(r.clone()),
                Step::Watermark(w) => script.watermark(*w),
                Step::EndEpoch => script.end_epoch(),
            };
        }
    }
    script
}

/// Every record with the stamp its split gives it, computed independently
/// of the engine: the split's watermark before the record, where a record
/// raises it to its event time (`ts`) less `bound`, rounded down to
/// `quantum`, and an explicit watermark step raises it to its value.
pub fn stamp_all<R: Clone>(
    splits: &[Vec<Step<R>>],
    ts: impl Fn(&R) -> u64,
    bound: u64,
    quantum: u64,
) -> Vec<(u64, R)> {
    let mut out = Vec::new();
    for steps in splits {
        let mut watermark = 0u64;
        for step in steps {
            match step {
                Step::Record(r) => {
                    out.push((watermark, r.clone()));
                    let raw = ts(r).saturating_sub(bound);
                    watermark = watermark.max(raw / quantum * quantum);
                }
                Step::Watermark(w) => watermark = watermark.max(*w),
                Step::EndEpoch => {}
            }
        }
    }
    out
}

/// A test record's id, for the fold that collects ids.
#[allow(dead_code)] // Not every test binary that includes this module folds ids.
pub trait Id {
    fn id(&self) -> u64;
}

/// Inserts `r`'s id where it keeps `acc` sorted.
#[allow(dead_code)]
pub fn insert_id<R: Id>(acc: &mut Vec<u64>, r: &R) {
    let id = r.id();
    let at = acc.partition_point(|x| *x < id);
    acc.insert(at, id);
}

/// Merges two windows' ids, sorted.
#[allow(dead_code)]
pub fn merge_ids(acc: &mut Vec<u64>, other: Vec<u64>) {
    acc.extend(other);
    acc.sort_unstable();
}

/// A fold collecting the sorted ids of a window's records.
#[allow(dead_code)]
pub type IdsFold<R> = Fold<Vec<u64>, fn(&mut Vec<u64>, &R), fn(&mut Vec<u64>, Vec<u64>)>;

/// The fold of ids: keeps them sorted, so the result does not depend on
/// record order.
#[allow(dead_code)]
pub fn ids_fold<R: Id>() -> IdsFold<R> {
    Fold::new(Vec::new(), insert_id::<R>, merge_ids)
}
