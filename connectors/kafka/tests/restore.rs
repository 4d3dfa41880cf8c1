//! A checkpointed Kafka job (RocksDB) crashes and is restored, on the real
//! broker: the restored run resumes every partition exactly at the offsets
//! its checkpoint holds (nothing of the checkpoint read again, nothing
//! missed), and with the at-least-once sink the only duplicates are
//! messages read after the last checkpoint.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::copy::{batch, copy_job, events_on, Event};
use support::{checkpointed, join_within, produce, spawn_job, temp_dir, topic, Control};

const PARTITIONS: i32 = 3;
const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn a_restore_resumes_every_partition_at_its_checkpointed_offset() {
    let config = support::broker();
    let input = topic(&config, "restore-in", PARTITIONS);
    let (out1, out2) = (
        topic(&config, "restore-out-1", 2),
        topic(&config, "restore-out-2", 2),
    );
    let dir = temp_dir("restore");
    // Before the checkpoint: 0..100 of each partition; after it, read
    // by the first run and lost in its crash: 100..150; written while no
    // job runs: 150..170.
    let (a_messages, a) = batch(0..PARTITIONS, 0, 100, 10);
    let (b_messages, b) = batch(0..PARTITIONS, 100, 150, 10);
    let (c_messages, c) = batch(0..PARTITIONS, 150, 170, 10);
    produce(&input, &a_messages);

    let control = Control::default();
    let first = spawn_job(
        checkpointed(2, &dir),
        copy_job(&config, &input, &out1, &control, false),
    );
    control.wait_read(a.len() as u64, LIMIT);
    control.checkpoint(LIMIT);
    produce(&input, &b_messages);
    control.wait_read((a.len() + b.len()) as u64, LIMIT);
    control.crash();
    let crashed = join_within(first, LIMIT).expect_err("the first run crashes");
    assert!(crashed.to_string().contains("simulated crash"), "{crashed}");
    produce(&input, &c_messages);

    // The restore: a bounded run from the checkpoint to the end.
    let control = Control::default();
    let second = spawn_job(
        checkpointed(2, &dir),
        copy_job(&config, &input, &out2, &control, true),
    );
    join_within(second, LIMIT).expect("the restored run ends at the end of the input");

    // Independently: the checkpoint was taken after exactly 0..100 of
    // every partition, so the restored run reads exactly 100..170 of each,
    // once each (its sink is flushed at the end of its input).
    let mut after_checkpoint: Vec<Event> = b.iter().chain(&c).cloned().collect();
    after_checkpoint.sort();
    let second_out = events_on(&config, &out2);
    let first_seq: BTreeMap<i32, i64> = second_out.iter().fold(BTreeMap::new(), |mut m, e| {
        let at = m.entry(e.partition).or_insert(e.seq);
        *at = (*at).min(e.seq);
        m
    });
    assert_eq!(
        first_seq,
        (0..PARTITIONS).map(|p| (p, 100)).collect(),
        "the restored run starts each partition at its checkpointed offset"
    );
    assert_eq!(
        second_out, after_checkpoint,
        "the restored run reads everything after the checkpoint, once"
    );

    // The first run's output: everything before the checkpoint (flushed at
    // the epoch end the checkpoint covers), and of what it read after it
    // (lost in the crash or not) nothing else.
    let first_out = events_on(&config, &out1);
    let mut before: Vec<Event> = first_out.iter().filter(|e| e.seq < 100).cloned().collect();
    before.dedup();
    assert_eq!(
        before, a,
        "output of the checkpointed epoch survives the crash"
    );
    assert!(
        first_out.iter().all(|e| (0..150).contains(&e.seq)),
        "the first run wrote only what it read"
    );

    // Overall: nothing missing, and duplicates only from after the
    // checkpoint.
    let mut all: Vec<Event> = first_out.iter().chain(&second_out).cloned().collect();
    all.sort();
    let mut counts: BTreeMap<&Event, usize> = BTreeMap::new();
    for e in &all {
        *counts.entry(e).or_default() += 1;
    }
    let mut input_events: Vec<Event> = a.iter().chain(&after_checkpoint).cloned().collect();
    input_events.sort();
    assert_eq!(
        counts.keys().copied().cloned().collect::<Vec<_>>(),
        input_events,
        "nothing missing, nothing invented"
    );
    let doubled: Vec<&&Event> = counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(e, _)| e)
        .collect();
    assert!(
        doubled.iter().all(|e| (100..150).contains(&e.seq)),
        "duplicates only from after the checkpoint: {doubled:?}"
    );
    assert!(
        counts.values().all(|n| *n <= 2),
        "at most once per run: {:?}",
        counts.iter().filter(|(_, n)| **n > 2).collect::<Vec<_>>()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
