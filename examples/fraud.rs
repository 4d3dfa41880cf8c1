//! Fraud detection on card transactions.
//!
//! Input: `card,merchant,amount_cents,country,ts_ms` (CSV with that header, or
//! JSON lines with those fields); by default the embedded generator.
//! Per card, a sliding window (5 min every 1 min by default) counts
//! transactions, sums spend and collects countries. A window raises an alert
//! when the card made many transactions, spent a lot, or used more than one
//! country. A keyed process function adds a second rule: a card that pays in
//! `--span-countries` (3) different countries within `--country-span` (10
//! min) raises an alert at the transaction that crosses it (each sets an
//! event-time timer; when the watermark passes it, the card's last 10 minutes
//! are complete). Output, one alert per line:
//! `card,window_start_ms,window_end_ms,transactions,spend_cents,countries,reasons`.
//! Late and malformed records go to the dead-letter file (a late
//! transaction has two dead letters, one from the windows and one from the
//! rule, which both refuse it); so do records
//! whose `country` is not two ASCII uppercase letters (an ISO 3166-1 alpha-2
//! code: `USA`, `us`, `U|S` and empty are refused, not cut to two bytes) or
//! whose amount exceeds 10^12 cents (see `weir_connectors::fields`).
//!
//! Run: `cargo run --release --example fraud -- --events 2000000`

mod common;

use std::collections::VecDeque;
use std::time::Duration;

use clap::Parser;
use serde::{Deserialize, Serialize};
use weir::config::parse_duration;
use weir::Watermarks;
use weir_connectors::fields::CountryCode;
use weir_connectors::Transaction;
use weir_operators::process::{Context, ProcessExt, ProcessFunction};
use weir_operators::{Count, Fold, Sum, WindowExt, Windows};

/// Alerts on card activity: many transactions, big spend, or a country change within a window.
#[derive(Parser, Debug)]
#[command(name = "fraud", version)]
struct Args {
    /// Window length.
    #[arg(long, value_parser = parse_duration, default_value = "5m", value_name = "DURATION")]
    window: Duration,

    /// How often a window starts.
    #[arg(long, value_parser = parse_duration, default_value = "1m", value_name = "DURATION")]
    slide: Duration,

    /// Alert at this many transactions in a window.
    #[arg(long, default_value_t = 10, value_name = "N")]
    max_transactions: u64,

    /// Alert at this much spend in a window, in cents.
    #[arg(long, default_value_t = 500_000, value_name = "CENTS")]
    max_spend_cents: u64,

    /// The span of the many-countries rule.
    #[arg(long, value_parser = parse_duration, default_value = "10m", value_name = "DURATION")]
    country_span: Duration,

    /// Alert when a card pays in this many countries within --country-span.
    #[arg(long, default_value_t = 3, value_name = "N")]
    span_countries: usize,

    #[command(flatten)]
    job: common::JobArgs,
}

/// One alert.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Alert {
    card: u64,
    window_start_ms: u64,
    window_end_ms: u64,
    transactions: u64,
    spend_cents: u64,
    /// Countries seen, `|`-separated.
    countries: String,
    /// Why: `many-transactions`, `big-spend`, `country-change` (windows) or
    /// `many-countries` (the process function), `|`-separated.
    reasons: String,
}

/// A country code (validated at the source: two ASCII uppercase letters).
type Code = [u8; 2];

/// A card's state for the many-countries rule. Each transaction costs the
/// same whatever the card's history: it is added once, counted once and
/// evicted once, and a timer looks only at the transactions of its own
/// millisecond.
#[derive(Default, Serialize, Deserialize)]
struct Recent {
    /// Transactions whose timer has not fired yet: (event time, country,
    /// cents), in event-time order.
    pending: VecDeque<(u64, Code, u64)>,
    /// The transactions of the span that ends at the last timer fired, in
    /// event-time order.
    span: VecDeque<(u64, Code, u64)>,
    /// How many transactions of `span` each of its countries has.
    countries: Vec<(Code, u32)>,
    /// The spend of `span`, exactly (no sum of u64 amounts overflows it).
    spend_cents: u128,
}

impl Recent {
    fn count(&mut self, country: Code, by: i32) {
        match self.countries.iter().position(|(c, _)| *c == country) {
            Some(i) => {
                let n = &mut self.countries[i].1;
                *n = n.saturating_add_signed(by);
                if *n == 0 {
                    self.countries.swap_remove(i);
                }
            }
            None if by > 0 => self.countries.push((country, by.unsigned_abs())),
            None => {}
        }
    }

    /// Moves the span to end at `time` (inclusive): evicts what is `span_ms`
    /// or more older, admits the pending transactions at or before it.
    /// Returns how many countries the span had before `time`'s own
    /// transactions joined it.
    fn advance(&mut self, time: u64, span_ms: u64) -> usize {
        while let Some(&(ts, country, cents)) = self.span.front() {
            if ts.saturating_add(span_ms) > time {
                break;
            }
            self.span.pop_front();
            self.count(country, -1);
            self.spend_cents -= u128::from(cents);
        }
        let mut before = self.countries.len();
        // Timers fire in time order and on-time records are never behind
        // a fired timer, so what is due is `time`'s own transactions; keep
        // `span` in order anyway.
        while let Some(&(ts, country, cents)) = self.pending.front() {
            if ts > time {
                break;
            }
            self.pending.pop_front();
            if ts < time && !self.countries.iter().any(|(c, _)| *c == country) {
                before += 1;
            }
            insert_in_order(&mut self.span, (ts, country, cents));
            self.count(country, 1);
            self.spend_cents += u128::from(cents);
        }
        before
    }

    fn joined(&self) -> String {
        let mut names: Vec<&str> = self
            .countries
            .iter()
            .map(|(c, _)| std::str::from_utf8(c).unwrap_or("??"))
            .collect();
        names.sort_unstable();
        names.join("|")
    }
}

/// Inserts `t` into `q` after every entry at or before its time: at the back
/// unless the input was out of order.
fn insert_in_order(q: &mut VecDeque<(u64, Code, u64)>, t: (u64, Code, u64)) {
    if q.back().is_none_or(|(last, _, _)| *last <= t.0) {
        q.push_back(t);
    } else {
        let at = q.partition_point(|(ts, _, _)| *ts <= t.0);
        q.insert(at, t);
    }
}

/// The many-countries rule, as a keyed process function. It refuses late
/// transactions (to the dead letters): the timers of their time have fired,
/// so whether they completed a span would depend on what arrived since.
struct ManyCountries {
    span_ms: u64,
    countries: usize,
}

impl ProcessFunction<u64, Transaction> for ManyCountries {
    type State = Recent;
    type Out = Alert;
    type Side = ();

    fn is_fresh(&self, state: &Recent) -> Option<bool> {
        // Counts and spend follow the span: empty queues are a fresh state.
        Some(state.pending.is_empty() && state.span.is_empty())
    }

    fn on_record(
        &mut self,
        ctx: &mut Context<'_, u64, Alert, ()>,
        state: &mut Recent,
        t: Transaction,
    ) {
        if ctx.is_late() {
            ctx.dead_letter_late(&t);
            return;
        }
        insert_in_order(
            &mut state.pending,
            (t.ts_ms, t.country.bytes(), t.amount_cents),
        );
        ctx.register_event_timer(t.ts_ms);
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, u64, Alert, ()>, state: &mut Recent, time: u64) {
        let span = self.span_ms;
        let before = state.advance(time, span);
        // Alert when the transactions at `time` cross the threshold, not at
        // every later one while the card stays over it.
        if state.countries.len() >= self.countries && before < self.countries {
            ctx.output(Alert {
                card: *ctx.key(),
                // At the end of time the span ends at u64::MAX itself.
                window_start_ms: time.saturating_add(1).saturating_sub(span),
                window_end_ms: time.saturating_add(1),
                transactions: state.span.len() as u64,
                spend_cents: u64::try_from(state.spend_cents).unwrap_or(u64::MAX),
                countries: state.joined(),
                reasons: "many-countries".into(),
            });
        }
    }
}

/// The distinct countries of a window: one bit per possible code (two ASCII
/// uppercase letters, as the source validates), so adding, merging and
/// comparing cost the same however many countries a card uses, with no
/// allocation, and the order they were seen in never shows.
///
/// Checkpoints store it as the list of its bit numbers (a card has few
/// countries: a few bytes, not the 88 of the whole set).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Countries {
    bits: [u64; 11],
}

impl Serialize for Countries {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = serializer.serialize_seq(Some(self.len()))?;
        for i in self.indices() {
            seq.serialize_element(&(i as u16))?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Countries {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let indices = Vec::<u16>::deserialize(deserializer)?;
        let mut countries = Countries::default();
        for i in indices {
            let i = usize::from(i);
            if i >= 26 * 26 {
                return Err(serde::de::Error::custom(format!("no country has bit {i}")));
            }
            countries.bits[i / 64] |= 1 << (i % 64);
        }
        Ok(countries)
    }
}

impl Countries {
    /// The bit of a code, if it is two ASCII uppercase letters.
    fn bit(code: Code) -> Option<usize> {
        let [a, b] = code;
        (a.is_ascii_uppercase() && b.is_ascii_uppercase())
            .then(|| usize::from(a - b'A') * 26 + usize::from(b - b'A'))
    }

    fn add(&mut self, country: CountryCode) {
        if let Some(i) = Self::bit(country.bytes()) {
            self.bits[i / 64] |= 1 << (i % 64);
        }
    }

    fn merge(&mut self, other: Countries) {
        for (mine, theirs) in self.bits.iter_mut().zip(other.bits) {
            *mine |= theirs;
        }
    }

    fn len(&self) -> usize {
        self.bits.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// The bit numbers set, in increasing (alphabetical) order.
    fn indices(&self) -> impl Iterator<Item = usize> + '_ {
        self.bits.iter().enumerate().flat_map(|(w, &word)| {
            let mut rest = word;
            std::iter::from_fn(move || {
                (rest != 0).then(|| {
                    let i = w * 64 + rest.trailing_zeros() as usize;
                    rest &= rest - 1;
                    i
                })
            })
        })
    }

    /// The codes, `|`-separated, in alphabetical order.
    fn joined(&self) -> String {
        let mut out = String::new();
        for i in self.indices() {
            if !out.is_empty() {
                out.push('|');
            }
            out.push(char::from(b'A' + (i / 26) as u8));
            out.push(char::from(b'A' + (i % 26) as u8));
        }
        out
    }
}

fn main() -> std::process::ExitCode {
    common::exit(job(Args::parse()))
}

fn job(args: Args) -> anyhow::Result<()> {
    if args.slide.is_zero() || args.window < args.slide {
        anyhow::bail!("--window must be at least --slide, and --slide more than 0");
    }
    let mut args = args;
    let input = args.job.input::<Transaction>("fraud", 100_000)?;
    args.job.prepare("fraud")?;
    let output = args.job.clone();
    let bound = args.job.bound;
    let event_time = args.job.event_time();
    let (window, slide) = (args.window, args.slide);
    let (max_n, max_spend) = (args.max_transactions, args.max_spend_cents);
    let span_ms = args.country_span.as_millis() as u64;
    let span_countries = args.span_countries;
    if span_ms == 0 || span_countries < 2 {
        anyhow::bail!("--country-span must be more than 0 and --span-countries at least 2");
    }

    common::finish(weir::run(&args.job.run, move |p| {
        let by_card = common::timed(
            p.source("transactions", input.clone()),
            event_time,
            Watermarks::bounded(bound),
        )
        .key_by("by_card", |t| t.card);
        let many_countries = by_card.clone().process(
            "many_countries",
            ManyCountries {
                span_ms,
                countries: span_countries,
            },
        );
        let activity = by_card.window(
            "card_activity",
            Windows::sliding(window, slide),
            (
                Count,
                Sum::of(|t: &Transaction| t.amount_cents),
                // The distinct countries.
                Fold::new(
                    Countries::default(),
                    |seen: &mut Countries, t: &Transaction| seen.add(t.country),
                    |seen: &mut Countries, other: Countries| seen.merge(other),
                ),
            ),
        );
        activity
            .fired
            .flat_map(move |f| {
                let (transactions, spend_cents, countries) = f.value;
                let mut reasons = Vec::new();
                if transactions >= max_n {
                    reasons.push("many-transactions");
                }
                if spend_cents >= max_spend {
                    reasons.push("big-spend");
                }
                if countries.len() > 1 {
                    reasons.push("country-change");
                }
                (!reasons.is_empty()).then(|| Alert {
                    card: f.key,
                    window_start_ms: f.window.start,
                    window_end_ms: f.window.end,
                    transactions,
                    spend_cents,
                    countries: countries.joined(),
                    reasons: reasons.join("|"),
                })
            })
            .union(many_countries.main)
            .sink(
                "alerts",
                output.output(|a: &Alert| a.card.to_string().into_bytes()),
            );
        activity
            .late
            .dead_letter(|late| late.into_dead_letter("card_activity"));
        p.dead_letters()
            .sink("dead_letters", output.dead_letter_sink("fraud"));
    }))
}
