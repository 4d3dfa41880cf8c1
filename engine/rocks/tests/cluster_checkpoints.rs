//! Checkpoints of a job on two processes — two threads of this test, joined
//! as a timely cluster over localhost. The manifest writer runs in process
//! 0; process 1 learns of every epoch it records complete through the
//! dataflow, not from process 0's memory.

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::Duration;

use weir::backend::manifest;
use weir::rng::SplitMix64;
use weir::testing::Script;
use weir::{RunArgs, Watermarks};
use weir_operators::{Count, WindowExt, Windows};

type Rec = (u32, u64); // key, event time

/// Four splits of records, an epoch ending every 50 records of a split.
fn script() -> Script<Rec> {
    let mut script = Script::new();
    for split in 0..4u64 {
        if split > 0 {
            script = script.split();
        }
        let mut rng = SplitMix64::new(split + 1);
        for i in 0..400u64 {
            script = script.record((rng.below(20) as u32, i * 25 + rng.below(200)));
            if i % 50 == 49 {
                script = script.end_epoch();
            }
        }
    }
    script
}

fn temp(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("weir-cluster-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[test]
fn every_process_learns_of_each_completed_checkpoint() {
    let dir = temp("learn");
    let hostfile = temp("hosts");
    std::fs::write(
        &hostfile,
        format!("127.0.0.1:{}\n127.0.0.1:{}\n", free_port(), free_port()),
    )
    .expect("hostfile");
    let processes: Vec<_> = (0..2)
        .map(|process| {
            let mut args = RunArgs::threads(2);
            args.processes = 2;
            args.process = process;
            args.hostfile = Some(hostfile.clone());
            args.quiet = true;
            args.epoch_interval = Duration::from_secs(3_600);
            args.checkpoint_dir = Some(dir.clone());
            args.backend = Some(weir_rocks::backend());
            std::thread::spawn(move || {
                weir::run(&args, |p| {
                    let _ = p
                        .source("records", script())
                        .event_time(
                            |r: &Rec| r.1,
                            Watermarks::bounded(Duration::from_millis(300)),
                        )
                        .key_by("by_key", |r| r.0)
                        .window("counts", Windows::tumbling(Duration::from_secs(1)), Count);
                })
            })
        })
        .collect();
    let summaries: Vec<_> = processes
        .into_iter()
        .map(|p| p.join().expect("the process thread").expect("the job runs"))
        .collect();
    let m = manifest::read(&dir).expect("a manifest");
    let newest = m.complete.last().map(|e| e.epoch);
    assert!(newest.is_some(), "checkpoints completed: {m:?}");
    for (process, summary) in summaries.iter().enumerate() {
        assert_eq!(
            summary.last_checkpoint, newest,
            "process {process}: {summary}"
        );
    }
    assert!(summaries[0].checkpoints >= m.complete.len() as u64);
    assert_eq!(
        summaries[1].checkpoints, summaries[0].checkpoints,
        "process 1 heard of every checkpoint process 0 recorded"
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&hostfile);
}
