//! Nexmark throughput: each query on weir against a hand-written
//! single-thread version of it over the same events, in the same run.
//!
//! Method:
//! - Events: the Nexmark generator (`weir_benches::nexmark::model`),
//!   100 000 events per second of event time (so a 10 s window holds 1 M
//!   events), in 4 splits for weir; the baseline calls the same generator
//!   in a loop, so both sides pay for generating the events.
//! - Sides: the baseline (one thread, plain loops and hash maps); weir on 1
//!   and 2 worker threads; weir on 1 worker with 1 s checkpoints (RocksDB in
//!   a scratch directory); weir as 2 processes of 1 worker on loopback (this
//!   bench started twice as children), timed from the later of their two
//!   dataflows' starts to the later end (wall clock): process start-up and
//!   timely's connecting them (its listener looks for peers once a second)
//!   are left out, as the in-process runs have neither.
//! - Every run's output is checked equal to the baseline's (row count and
//!   an order-independent hash of every row), so a side that drops or
//!   doubles a row fails the bench instead of looking fast.
//! - Figures: median run time over `--runs`, events per second at the
//!   median, and ratios of medians in the same run: weir over the baseline
//!   (goal ≥ 0.8 on q0, q1, q2, q7) and 2 workers over 1 (goal ≥ 1.7 on q5,
//!   q7).
//!
//! Run: `cargo bench -p weir-benches --bench nexmark`. Optional: `--
//! --events N` (default 20 000 000), `--runs R` (default 3), `--queries
//! q0,q5` (default all), `--sides baseline,w1,w2,ck,p2` (default all),
//! `--p2-timeout S` (default 60: a 2-process run not done by then is killed
//! and reported as timed out rather than waited for, see "Two processes and
//! epochs" in benches/README.md), `--json PATH` (one JSON object per figure, for
//! `scripts/bench.sh`).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use weir::RunArgs;
use weir_benches::nexmark::{
    baseline_digest, engine_digest, engine_digest_timed, Digest, Model, Nexmark, Query,
};
use weir_benches::{arg, arg_str, measure, measure_timed, ratio, write_json_lines, ThroughputRow};

/// Events per second of event time.
const EVENT_RATE: f64 = 100_000.0;

fn source(events: u64) -> Nexmark {
    Nexmark::new(
        Model {
            event_rate: EVENT_RATE,
            ..Model::default()
        },
        events,
    )
}

fn weir(query: Query, events: u64, workers: usize, checkpoints: Option<&PathBuf>) -> Digest {
    let mut args = RunArgs::threads(workers);
    if let Some(dir) = checkpoints {
        args.checkpoint_dir = Some(dir.clone());
        args.backend = Some(weir_rocks::backend());
        args.epoch_interval = Duration::from_secs(1);
        args.fresh = true;
    }
    engine_digest(query, source(events), &args)
        .unwrap_or_else(|e| panic!("{} on weir failed: {e}", query.name()))
}

/// Runs the query as two processes of one worker (this bench, as children)
/// and merges what their sinks saw; the time from the later start of their
/// dataflows to the later end. `None` if they had not ended by `deadline`
/// (then they are killed).
fn two_processes(
    query: Query,
    events: u64,
    scratch: &std::path::Path,
    deadline: Duration,
) -> Option<(Digest, Duration)> {
    let hostfile = scratch.join("hosts.txt");
    let port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port")
    };
    std::fs::write(
        &hostfile,
        format!("127.0.0.1:{}\n127.0.0.1:{}\n", port(), port()),
    )
    .expect("write the hostfile");
    let exe = std::env::current_exe().expect("this bench's path");
    let output = |p: usize| scratch.join(format!("child-{p}.out"));
    let start = |p: usize| {
        let out = std::fs::File::create(output(p)).expect("a child's output file");
        Command::new(&exe)
            .args(["--child", &p.to_string(), "--query", query.name()])
            .args(["--events", &events.to_string()])
            .arg("--hostfile")
            .arg(&hostfile)
            .stdout(Stdio::from(out))
            .spawn()
            .expect("start a child process")
    };
    let mut children = [start(0), start(1)];
    let until = Instant::now() + deadline;
    for child in &mut children {
        loop {
            match child.try_wait().expect("a child process") {
                Some(status) => {
                    assert!(status.success(), "a child process failed");
                    break;
                }
                None if Instant::now() >= until => {
                    for c in &mut children {
                        let _ = c.kill();
                        let _ = c.wait();
                    }
                    return None;
                }
                None => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
    let mut total = Digest::default();
    let (mut began, mut ended) = (0u64, 0u64);
    for p in 0..2 {
        let text = std::fs::read_to_string(output(p)).expect("a child's output");
        let words: Vec<u64> = text
            .split_whitespace()
            .skip_while(|w| *w != "digest")
            .skip(1)
            .filter_map(|w| w.parse().ok())
            .collect();
        assert_eq!(words.len(), 4, "a child printed no digest: {text}");
        total.merge(Digest {
            rows: words[0],
            sum: words[1],
        });
        began = began.max(words[2]);
        ended = ended.max(words[3]);
    }
    Some((total, Duration::from_micros(ended.saturating_sub(began))))
}

/// A child of [`two_processes`]: one process of two, one worker.
fn child(process: usize) {
    let query =
        Query::parse(&arg_str("--query").unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
    let mut args = RunArgs::threads(1);
    args.processes = 2;
    args.process = process;
    args.hostfile = arg_str("--hostfile").map(PathBuf::from);
    let (d, took) = engine_digest_timed(query, source(arg("--events", 0)), &args)
        .unwrap_or_else(|e| panic!("{} on weir failed: {e}", query.name()));
    // Unix µs of the dataflow's start and end, comparable across processes.
    let end = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970");
    let start = end.saturating_sub(took);
    println!(
        "digest {} {} {} {}",
        d.rows,
        d.sum,
        start.as_micros(),
        end.as_micros()
    );
    let _ = std::io::stdout().flush();
}

fn main() {
    if let Some(p) = arg_str("--child") {
        child(p.parse().expect("--child takes a process index"));
        return;
    }
    let events = arg("--events", 20_000_000);
    let runs = arg("--runs", 3) as usize;
    let queries: Vec<Query> = match arg_str("--queries") {
        None => Query::ALL.to_vec(),
        Some(list) => list
            .split(',')
            .map(|q| Query::parse(q.trim()).unwrap_or_else(|e| panic!("--queries: {e}")))
            .collect(),
    };
    let sides = arg_str("--sides").unwrap_or_else(|| "baseline,w1,w2,ck,p2".to_string());
    let want = |s: &str| sides.split(',').any(|x| x.trim() == s);
    let scratch = std::env::temp_dir().join(format!("weir-nexmark-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("a scratch directory");
    let json = arg_str("--json").map(PathBuf::from);
    let p2_deadline = Duration::from_secs(arg("--p2-timeout", 60));
    println!("nexmark: {events} events ({EVENT_RATE} per s of event time), {runs} runs per side");
    let mut rows = Vec::new();
    for q in queries {
        let name = q.name();
        let expected = baseline_digest(q, &source(events));
        println!("{name}: {} output rows", expected.rows);
        let label = |side: &str| format!("{name} {side}");
        let base = measure(&label("baseline"), runs, events, &expected, || {
            baseline_digest(q, &source(events))
        });
        let mut push = |m: &weir_benches::Measured, setup, one| {
            rows.push(ThroughputRow::of(
                "nexmark", name, m, setup, events, &base, one,
            ));
        };
        push(&base, (1, 1, false), None);
        let one = want("w1").then(|| {
            measure(&label("weir -w 1"), runs, events, &expected, || {
                weir(q, events, 1, None)
            })
        });
        if let Some(one) = &one {
            push(one, (1, 1, false), None);
            ratio(
                &format!("{name} weir -w 1 / baseline"),
                one,
                &base,
                "goal >= 0.8",
            );
        }
        if want("w2") {
            let two = measure(&label("weir -w 2"), runs, events, &expected, || {
                weir(q, events, 2, None)
            });
            push(&two, (2, 1, false), one.as_ref());
            if let Some(one) = &one {
                ratio(
                    &format!("{name} weir -w 2 / weir -w 1"),
                    &two,
                    one,
                    "goal >= 1.7",
                );
            }
        }
        if want("ck") {
            let dir = scratch.join(format!("checkpoints-{name}"));
            let ck = measure(&label("weir -w 1 ck 1s"), runs, events, &expected, || {
                weir(q, events, 1, Some(&dir))
            });
            push(&ck, (1, 1, true), one.as_ref());
            if let Some(one) = &one {
                ratio(
                    &format!("{name} weir ck 1s / weir -w 1"),
                    &ck,
                    one,
                    "goal >= 0.9",
                );
            }
        }
        if want("p2") {
            let side = label("weir 2 processes");
            let done: Option<Vec<(Digest, Duration)>> = (0..runs)
                .map(|_| two_processes(q, events, &scratch, p2_deadline))
                .collect();
            match done {
                Some(mut results) => {
                    let p2 = measure_timed(&side, runs, events, &expected, || {
                        results.pop().expect("one result per run")
                    });
                    push(&p2, (1, 2, false), one.as_ref());
                    if let Some(one) = &one {
                        let what = format!("{name} weir 2 processes / weir -w 1");
                        ratio(&what, &p2, one, "goal >= 1.7");
                    }
                }
                None => {
                    println!("{side:<28} timed out after {} s", p2_deadline.as_secs());
                    let once = weir_benches::Measured::once(&side, p2_deadline);
                    let mut row = ThroughputRow::of(
                        "nexmark",
                        name,
                        &once,
                        (1, 2, false),
                        events,
                        &base,
                        one.as_ref(),
                    );
                    row.timed_out = true;
                    rows.push(row);
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    if let Some(path) = json {
        write_json_lines(&path, &rows);
    }
}
