//! Partitions added to a topic between two checkpointed runs (RocksDB), on
//! the real broker: the restored run reads the partitions its checkpoint
//! knows from their checkpointed offsets and the new ones from their start,
//! so over both runs every message is read exactly once. Both runs are
//! bounded (`stop_at_end`).

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::copy::{batch, copy_job, events_on, Event};
use support::{checkpointed, join_within, produce, runs, spawn_job, temp_dir, topic, Control};
use weir::backend::manifest;
use weir_kafka::{add_partitions, KafkaConfig};

const LIMIT: Duration = Duration::from_secs(30);

/// What the second run must read: the old partitions after the first run's
/// 0..200, the new ones whole.
struct Second {
    old: Vec<Event>,
    new: Vec<Event>,
}

/// Adds partitions 2 and 3 to `input` and writes more to all four.
fn grow(config: &KafkaConfig, input: &str) -> Second {
    add_partitions(config, input, 4).expect("adds partitions 2 and 3");
    let (old_messages, old) = batch(0..2, 200, 250, 1);
    let (new_messages, new) = batch(2..4, 0, 70, 1);
    produce(input, &old_messages);
    produce(input, &new_messages);
    Second { old, new }
}

fn offsets(events: &[Event]) -> BTreeMap<i32, Vec<String>> {
    runs(events.iter().map(|e| (e.partition, e.seq)))
}

/// Checks the second run's output against [`Second`], independently
/// computed from the input.
fn check_second(second: &[Event], expected: &Second) {
    let mut all: Vec<Event> = expected.old.iter().chain(&expected.new).cloned().collect();
    all.sort();
    let got = offsets(second);
    assert_eq!(
        got.get(&2).zip(got.get(&3)),
        Some((&vec!["0..=69".to_string()], &vec!["0..=69".to_string()])),
        "the new partitions were read from their start: {got:?}"
    );
    assert_eq!(
        got,
        offsets(&all),
        "the old partitions from their checkpointed offsets (200), the new ones whole, each message once"
    );
    assert!(second == all, "and the very messages");
}

#[test]
fn partitions_added_after_a_checkpoint_are_read_from_their_start_and_the_rest_once() {
    let config = support::broker();
    let input = topic(&config, "added-in", 2);
    let (out1, out2) = (
        topic(&config, "added-out-1", 1),
        topic(&config, "added-out-2", 1),
    );
    let dir = temp_dir("added-partitions");
    let (first_messages, first_events) = batch(0..2, 0, 200, 1);
    produce(&input, &first_messages);

    // The first run, bounded, reads both partitions to their end, is
    // checkpointed there and killed before it finishes.
    let control = Control::default();
    control.hold_done();
    let run = spawn_job(
        checkpointed(2, &dir),
        copy_job(&config, &input, &out1, &control, true),
    );
    control.wait_read(first_events.len() as u64, LIMIT);
    control.checkpoint(LIMIT);
    control.crash();
    join_within(run, LIMIT).expect_err("the first run is crashed");
    assert_eq!(
        events_on(&config, &out1),
        first_events,
        "the first run read 2 partitions, once"
    );

    let expected = grow(&config, &input);
    let control = Control::default();
    let run = spawn_job(
        checkpointed(2, &dir),
        copy_job(&config, &input, &out2, &control, true),
    );
    join_within(run, LIMIT).expect("the restored run ends at the end of the input");
    check_second(&events_on(&config, &out2), &expected);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same after a first run that finished: its last checkpoint
/// (`--restore EPOCH`, as a finished run otherwise starts over) is
/// restored. That checkpoint records partition 0's split done (it ended
/// first) and partition 1's not; both are read again from their
/// checkpointed offsets to their new end.
#[test]
fn partitions_added_after_a_finished_bounded_run_are_read_from_their_start_and_the_rest_once() {
    let config = support::broker();
    let input = topic(&config, "added-finished-in", 2);
    let (out1, out2) = (
        topic(&config, "added-finished-out-1", 1),
        topic(&config, "added-finished-out-2", 1),
    );
    let dir = temp_dir("added-partitions-finished");
    let (first_messages, first_events) = batch(0..2, 0, 200, 1);
    produce(&input, &first_messages);
    // Checkpointed with partition 0 ended and 1 at its end but held open,
    // then let finish.
    let control = Control::default();
    control.hold_done_of(1);
    let run = spawn_job(
        checkpointed(2, &dir),
        copy_job(&config, &input, &out1, &control, true),
    );
    control.wait_read(first_events.len() as u64, LIMIT);
    let at_end = control.checkpoint(LIMIT);
    control.release_done();
    join_within(run, LIMIT).expect("the bounded first run ends");
    assert_eq!(events_on(&config, &out1), first_events);
    assert!(
        manifest::read(&dir)
            .expect("a manifest")
            .complete
            .iter()
            .any(|e| e.epoch == at_end),
        "the checkpoint at the end of the input is kept"
    );

    let expected = grow(&config, &input);
    let mut args = checkpointed(2, &dir);
    args.restore = Some(at_end);
    let control = Control::default();
    let run = spawn_job(args, copy_job(&config, &input, &out2, &control, true));
    join_within(run, LIMIT).expect("the restored run ends");
    check_second(&events_on(&config, &out2), &expected);
    let _ = std::fs::remove_dir_all(&dir);
}
