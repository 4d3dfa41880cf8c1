//! The fraud job as a user runs it (`fraud --input transactions.csv`),
//! against a hand-written single-thread program that computes the same
//! alerts from the same file.
//!
//! The input is written by this bench's own writer (not weir's generator):
//! `card,merchant,amount_cents,country,ts_ms`, one transaction per ms of
//! event time, up to 500 ms out of order (under the job's 2 s bound, so
//! nothing is late), each card paying mostly in its home country. Scenarios:
//! - `uniform`: 1 000 cards, equally busy;
//! - `skewed`: 300 cards, half of all transactions on 3 of them (long
//!   per-card spans: per-record cost must not grow with them);
//! - `wide`: 100 000 cards, also run with 1 s checkpoints (the cost of
//!   checkpointing many small keys).
//!
//! Per scenario, in the same run:
//! - the baseline: read the file with a buffered reader, split lines at
//!   commas, keep per card (in a `HashMap`) its 1-minute panes (count,
//!   spend, countries as a bit set), and for the many-countries rule its
//!   last 10 minutes as a time-ordered queue with per-country counts. A card
//!   catches up with the watermark when its next transaction comes, and all
//!   cards once at the end: it decides each 5-minute window from its panes
//!   once the watermark has passed the window's end, and the rule at each of
//!   its transactions' times once the watermark has passed that;
//! - weir: the `fraud` example binary, `-w 1` and `-w 2`, without
//!   checkpoints (and, for `wide`, `-w 1` with `--checkpoint-interval 1s`),
//!   timed as whole processes.
//!
//! Every run's alerts are checked equal to the baseline's (as sorted CSV
//! lines); the figures are throughputs and their ratios.
//!
//! Run: `cargo bench -p weir-benches --bench fraud` (it builds the release
//! `fraud` example first). Optional: `-- --events N` (default 1 000 000),
//! `--runs R` (default 3), `--scenario uniform|skewed|wide`, `--only
//! baseline` (one baseline run and nothing else, for profiling: run the
//! example itself under the profiler for the other side).

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use weir::rng::SplitMix64;
use weir_benches::{arg, arg_str, measure, ratio};

const WINDOW_MS: u64 = 300_000;
const SLIDE_MS: u64 = 60_000;
const SPAN_MS: u64 = 600_000;
const BOUND_MS: u64 = 2_000;
const MAX_TRANSACTIONS: u64 = 10;
const MAX_SPEND_CENTS: u64 = 500_000;
const SPAN_COUNTRIES: usize = 3;

const COUNTRIES: [&str; 12] = [
    "US", "DE", "FR", "GB", "IT", "ES", "NL", "AT", "CH", "BR", "JP", "CA",
];

struct Scenario {
    name: &'static str,
    cards: u64,
    /// The fraction of transactions that go to the hottest 1 % of cards.
    hot: f64,
    /// Also run weir with 1 s checkpoints.
    checkpoints: bool,
}

const SCENARIOS: [Scenario; 3] = [
    Scenario {
        name: "uniform",
        cards: 1_000,
        hot: 0.0,
        checkpoints: false,
    },
    Scenario {
        name: "skewed",
        cards: 300,
        hot: 0.5,
        checkpoints: false,
    },
    Scenario {
        name: "wide",
        cards: 100_000,
        hot: 0.0,
        checkpoints: true,
    },
];

/// Writes `events` transactions of `s` to `path` (once; reused after).
fn write_input(path: &Path, s: &Scenario, events: u64) -> std::io::Result<()> {
    if path.exists() {
        return Ok(());
    }
    let partial = path.with_extension("partial");
    let mut out = BufWriter::with_capacity(1 << 20, File::create(&partial)?);
    writeln!(out, "card,merchant,amount_cents,country,ts_ms")?;
    let mut rng = SplitMix64::new(0xf4a0_d5ee);
    let start_ms = 1_767_225_600_000u64; // 2026-01-01
    let hot_cards = (s.cards / 100).max(1);
    let hot = (s.hot * 1_000_000.0) as u64;
    for i in 0..events {
        let card = if rng.below(1_000_000) < hot {
            rng.below(hot_cards)
        } else {
            rng.below(s.cards)
        };
        let country = if rng.below(100) < 2 {
            COUNTRIES[rng.below(COUNTRIES.len() as u64) as usize]
        } else {
            COUNTRIES[(card % COUNTRIES.len() as u64) as usize]
        };
        let amount = if rng.below(100) == 0 {
            rng.below(1_000_000)
        } else {
            100 + rng.below(20_000)
        };
        let merchant = rng.below(5_000);
        let ts_ms = start_ms + i - rng.below(500).min(i);
        writeln!(out, "{card},{merchant},{amount},{country},{ts_ms}")?;
    }
    out.flush()?;
    drop(out);
    std::fs::rename(partial, path)
}

/// A set of two-letter country codes, one bit each.
#[derive(Clone, Copy, Default)]
struct CodeSet([u64; 11]);

fn code_index(country: &str) -> usize {
    let b = country.as_bytes();
    usize::from(b[0] - b'A') * 26 + usize::from(b[1] - b'A')
}

fn code_name(i: usize) -> [u8; 2] {
    [b'A' + (i / 26) as u8, b'A' + (i % 26) as u8]
}

impl CodeSet {
    fn insert(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn union(&mut self, other: &CodeSet) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a |= b;
        }
    }
    fn count(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }
    fn names(&self) -> String {
        let names: Vec<String> = (0..676)
            .filter(|i| self.0[i / 64] & (1 << (i % 64)) != 0)
            .map(|i| String::from_utf8_lossy(&code_name(i)).into_owned())
            .collect();
        names.join("|")
    }
}

/// One minute of one card: count, spend, countries.
#[derive(Clone, Copy, Default)]
struct Pane {
    n: u64,
    spend: u64,
    countries: CodeSet,
}

/// The many-countries rule's view of one card.
#[derive(Default)]
struct Span {
    /// (ts, country index, cents) the rule has not reached yet, by ts.
    waiting: VecDeque<(u64, usize, u64)>,
    /// The last `SPAN_MS` of transactions the rule has reached, oldest first.
    recent: VecDeque<(u64, usize, u64)>,
    /// Transactions per country in `recent`.
    per_country: HashMap<usize, u32>,
    spend: u128,
}

/// One card. Nothing is scheduled globally: a card catches up with the
/// watermark when its next transaction comes (and once more at the end),
/// since what it emits for a time depends only on its own transactions up
/// to then.
#[derive(Default)]
struct Card {
    /// One-minute panes by start, in order.
    panes: VecDeque<(u64, Pane)>,
    /// Every window ending at or before this has been decided.
    windows_done: u64,
    span: Span,
}

impl Card {
    fn add(&mut self, amount: u64, country: usize, ts: u64) {
        let pane = ts - ts % SLIDE_MS;
        let at = self.panes.partition_point(|(p, _)| *p < pane);
        if self.panes.get(at).is_none_or(|(p, _)| *p != pane) {
            self.panes.insert(at, (pane, Pane::default()));
        }
        let p = &mut self.panes[at].1;
        p.n += 1;
        p.spend += amount;
        p.countries.insert(country);
        let w = &mut self.span.waiting;
        if w.back().is_none_or(|(t, _, _)| *t <= ts) {
            w.push_back((ts, country, amount));
        } else {
            let at = w.partition_point(|(t, _, _)| *t <= ts);
            w.insert(at, (ts, country, amount));
        }
    }

    /// Emits what is due at watermark `w`: the rule at every time before
    /// it, every window ending at or before it.
    fn catch_up(&mut self, card: u64, w: u64, alerts: &mut Vec<String>) {
        while let Some(&(t, _, _)) = self.span.waiting.front() {
            if t >= w {
                break;
            }
            self.rule_at(card, t, alerts);
        }
        while let Some(&(first, _)) = self.panes.front() {
            let end = (self.windows_done + SLIDE_MS).max(first + SLIDE_MS);
            if end > w {
                break;
            }
            self.window(card, end, alerts);
            self.windows_done = end;
            // No later window starts before end - WINDOW + SLIDE.
            while self
                .panes
                .front()
                .is_some_and(|(p, _)| *p + WINDOW_MS <= end)
            {
                self.panes.pop_front();
            }
        }
    }

    fn window(&self, card: u64, end: u64, alerts: &mut Vec<String>) {
        let start = end - WINDOW_MS;
        let mut total = Pane::default();
        for (_, p) in self.panes.iter().take_while(|(p, _)| *p < end) {
            total.n += p.n;
            total.spend += p.spend;
            total.countries.union(&p.countries);
        }
        let mut reasons = Vec::new();
        if total.n >= MAX_TRANSACTIONS {
            reasons.push("many-transactions");
        }
        if total.spend >= MAX_SPEND_CENTS {
            reasons.push("big-spend");
        }
        if total.countries.count() > 1 {
            reasons.push("country-change");
        }
        if !reasons.is_empty() {
            alerts.push(format!(
                "{card},{start},{end},{},{},{},{}",
                total.n,
                total.spend,
                total.countries.names(),
                reasons.join("|")
            ));
        }
    }

    fn rule_at(&mut self, card: u64, t: u64, alerts: &mut Vec<String>) {
        let s = &mut self.span;
        while s.recent.front().is_some_and(|(ts, _, _)| ts + SPAN_MS <= t) {
            if let Some((_, country, cents)) = s.recent.pop_front() {
                s.spend -= u128::from(cents);
                if let Some(n) = s.per_country.get_mut(&country) {
                    *n -= 1;
                    if *n == 0 {
                        s.per_country.remove(&country);
                    }
                }
            }
        }
        let before = s.per_country.len();
        let at_t = s.waiting.partition_point(|(ts, _, _)| *ts <= t);
        for (ts, country, cents) in s.waiting.drain(..at_t) {
            s.recent.push_back((ts, country, cents));
            *s.per_country.entry(country).or_default() += 1;
            s.spend += u128::from(cents);
        }
        if s.per_country.len() >= SPAN_COUNTRIES && before < SPAN_COUNTRIES {
            let mut names: Vec<String> = s
                .per_country
                .keys()
                .map(|i| String::from_utf8_lossy(&code_name(*i)).into_owned())
                .collect();
            names.sort();
            alerts.push(format!(
                "{card},{},{},{},{},{},many-countries",
                t + 1 - SPAN_MS,
                t + 1,
                s.recent.len(),
                s.spend,
                names.join("|")
            ));
        }
    }
}

/// The hand-written program: read, parse, both rules, one thread; the
/// alerts as sorted CSV lines.
fn baseline(path: &Path) -> Vec<String> {
    let mut reader = BufReader::with_capacity(1 << 16, File::open(path).expect("input"));
    let mut line = String::new();
    let mut cards: HashMap<u64, Card> = HashMap::new();
    let mut alerts = Vec::new();
    let mut max_ts = 0u64;
    let mut header = true;
    loop {
        line.clear();
        if reader.read_line(&mut line).expect("read") == 0 {
            break;
        }
        if std::mem::take(&mut header) {
            continue;
        }
        let mut f = line.trim_end().split(',');
        let mut next = || f.next().expect("five fields");
        let card: u64 = next().parse().expect("card");
        let _merchant = next();
        let amount: u64 = next().parse().expect("amount");
        let country = code_index(next());
        let ts: u64 = next().parse().expect("ts_ms");
        max_ts = max_ts.max(ts);
        let c = cards.entry(card).or_default();
        c.catch_up(card, max_ts.saturating_sub(BOUND_MS), &mut alerts);
        c.add(amount, country, ts);
    }
    for (card, c) in &mut cards {
        c.catch_up(*card, u64::MAX, &mut alerts);
    }
    alerts.sort_unstable();
    alerts
}

/// The release `fraud` example, built now (so it is never stale).
fn fraud_binary() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "--example", "fraud"])
        .current_dir(root)
        .status()
        .expect("run cargo build");
    assert!(status.success(), "building the fraud example failed");
    let exe = std::env::current_exe().expect("bench path");
    let release = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/release/deps");
    release.join("examples").join("fraud")
}

/// One run of the fraud job on `path`; its alerts as sorted CSV lines.
fn weir(binary: &Path, path: &Path, workers: usize, checkpoints: bool) -> Vec<String> {
    let dir = std::env::temp_dir().join(format!("weir-bench-fraud-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    let (out, dead) = (dir.join("alerts.csv"), dir.join("dead-letters"));
    let mut cmd = Command::new(binary);
    cmd.arg("--input")
        .arg(path)
        .args(["--quiet", "-w", &workers.to_string(), "--output"])
        .arg(&out)
        .arg("--dead-letters")
        .arg(&dead);
    if checkpoints {
        cmd.args(["--fresh", "--checkpoint-interval", "1s", "--checkpoint-dir"])
            .arg(dir.join("checkpoints"));
    } else {
        cmd.arg("--no-checkpoints");
    }
    let status = cmd.status().expect("run the fraud example");
    assert!(status.success(), "the fraud job failed");
    let text = if out.is_dir() {
        let mut parts: Vec<PathBuf> = std::fs::read_dir(&out)
            .expect("output parts")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        parts.sort();
        parts
            .iter()
            .map(|p| std::fs::read_to_string(p).expect("part"))
            .collect()
    } else {
        std::fs::read_to_string(&out).expect("alerts")
    };
    let _ = std::fs::remove_dir_all(&dir);
    let mut alerts: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with("card,"))
        .map(String::from)
        .collect();
    alerts.sort_unstable();
    alerts
}

fn main() {
    let events = arg("--events", 1_000_000);
    let runs = arg("--runs", 3) as usize;
    let only = arg_str("--scenario");
    let dir = std::env::temp_dir().join("weir-bench-input");
    std::fs::create_dir_all(&dir).expect("input directory");
    let binary = if arg_str("--only").is_some() {
        PathBuf::new()
    } else {
        fraud_binary()
    };
    for s in SCENARIOS
        .iter()
        .filter(|s| only.as_deref().is_none_or(|o| o == s.name))
    {
        let path = dir.join(format!("transactions-{}-{events}.csv", s.name));
        write_input(&path, s, events).expect("writing the input");
        let expected = baseline(&path);
        if arg_str("--only").as_deref() == Some("baseline") {
            println!("{} {} alerts", s.name, expected.len());
            continue;
        }
        println!(
            "fraud {}: {} cards, {events} transactions, {} alerts, {runs} runs each",
            s.name,
            s.cards,
            expected.len()
        );
        let name = |what: &str| format!("{} {what}", s.name);
        let base = measure(
            &name("baseline (1 thread)"),
            runs,
            events,
            &expected,
            || baseline(&path),
        );
        let one = measure(&name("weir -w 1"), runs, events, &expected, || {
            weir(&binary, &path, 1, false)
        });
        let two = measure(&name("weir -w 2"), runs, events, &expected, || {
            weir(&binary, &path, 2, false)
        });
        ratio(
            &format!("fraud {} weir -w 1 / baseline throughput", s.name),
            &one,
            &base,
            "goal >= 0.5",
        );
        ratio(
            &format!("fraud {} weir -w 2 / weir -w 1 throughput", s.name),
            &two,
            &one,
            "goal >= 1.7",
        );
        if s.checkpoints {
            let saved = measure(
                &name("weir -w 1, 1 s checkpoints"),
                runs,
                events,
                &expected,
                || weir(&binary, &path, 1, true),
            );
            ratio(
                &format!("fraud {} weir with 1 s checkpoints / without", s.name),
                &saved,
                &one,
                "goal >= 0.85",
            );
        }
    }
}
