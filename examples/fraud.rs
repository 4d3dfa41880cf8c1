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
//! Late and malformed records go to the dead-letter file; so do records
//! whose `country` is not two ASCII uppercase letters (an ISO 3166-1 alpha-2
//! code: `USA`, `us`, `U|S` and empty are refused, not cut to two bytes) or
//! whose amount exceeds 10^12 cents (see `weir_connectors::fields`).
//!
//! Run: `cargo run --release --example fraud -- --events 2000000`

mod common;

use std::time::Duration;

use clap::Parser;
use serde::{Deserialize, Serialize};
use weir::config::parse_duration;
use weir::Watermarks;
use weir_connectors::Transaction;
use weir_operators::process::{Context, ListState, ProcessExt, ProcessFunction};
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

/// A card's transactions within the last span: (event time, country, cents).
#[derive(Default, Serialize, Deserialize)]
struct Recent {
    txns: ListState<(u64, String, u64)>,
}

/// The many-countries rule, as a keyed process function.
struct ManyCountries {
    span_ms: u64,
    countries: usize,
}

impl ProcessFunction<u64, Transaction> for ManyCountries {
    type State = Recent;
    type Out = Alert;
    type Side = ();

    fn on_record(
        &mut self,
        ctx: &mut Context<'_, u64, Alert, ()>,
        state: &mut Recent,
        t: Transaction,
    ) {
        // A late transaction counts too: its timer fires right away.
        state.txns.push((t.ts_ms, t.country, t.amount_cents));
        ctx.register_event_timer(t.ts_ms);
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, u64, Alert, ()>, state: &mut Recent, time: u64) {
        let span = self.span_ms;
        // Older transactions can matter to no later timer.
        state
            .txns
            .retain(|(ts, _, _)| ts.saturating_add(span) > time);
        let (mut before, mut seen) = (Countries::default(), Countries::default());
        let (mut transactions, mut spend_cents) = (0, 0);
        for (ts, country, cents) in state.txns.iter().filter(|(ts, _, _)| *ts <= time) {
            if *ts < time {
                before.add(country);
            }
            seen.add(country);
            transactions += 1;
            spend_cents = cents.saturating_add(spend_cents);
        }
        // Alert when the transactions at `time` cross the threshold, not at
        // every later one while the card stays over it.
        if seen.len() >= self.countries && before.len() < self.countries {
            ctx.output(Alert {
                card: *ctx.key(),
                // At the end of time the span ends at u64::MAX itself.
                window_start_ms: time.saturating_add(1).saturating_sub(span),
                window_end_ms: time.saturating_add(1),
                transactions,
                spend_cents,
                countries: seen.joined(),
                reasons: "many-countries".into(),
            });
        }
    }
}

/// The distinct countries of a window, kept inline (no allocation per
/// card and window): up to eight two-letter codes, which is plenty for a
/// rule that fires at two.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Countries {
    codes: [[u8; 2]; 8],
    len: u8,
}

impl Countries {
    fn add(&mut self, country: &str) {
        let b = country.as_bytes();
        let code = [
            b.first().copied().unwrap_or(b'?'),
            b.get(1).copied().unwrap_or(b'?'),
        ];
        let seen = &self.codes[..self.len as usize];
        if !seen.contains(&code) && (self.len as usize) < self.codes.len() {
            self.codes[self.len as usize] = code;
            self.len += 1;
        }
    }

    fn merge(&mut self, other: Countries) {
        for code in &other.codes[..other.len as usize] {
            self.add(&String::from_utf8_lossy(code));
        }
    }

    fn len(&self) -> usize {
        self.len as usize
    }

    fn joined(&self) -> String {
        let mut names: Vec<String> = self.codes[..self.len()]
            .iter()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        names.sort();
        names.join("|")
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
    let input = args.job.input::<Transaction>(100_000)?;
    args.job.prepare("fraud")?;
    let output = args.job.clone();
    let bound = args.job.bound;
    let (window, slide) = (args.window, args.slide);
    let (max_n, max_spend) = (args.max_transactions, args.max_spend_cents);
    let span_ms = args.country_span.as_millis() as u64;
    let span_countries = args.span_countries;
    if span_ms == 0 || span_countries < 2 {
        anyhow::bail!("--country-span must be more than 0 and --span-countries at least 2");
    }

    common::finish(weir::run(&args.job.run, move |p| {
        let by_card = p
            .source("transactions", input.clone())
            .event_time(|t: &Transaction| t.ts_ms, Watermarks::bounded(bound))
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
                // The distinct countries, as a small sorted list.
                Fold::new(
                    Countries::default(),
                    |seen: &mut Countries, t: &Transaction| seen.add(&t.country),
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
            .sink("alerts", output.output());
        activity
            .late
            .dead_letter(|late| late.into_dead_letter("card_activity"));
        p.dead_letters()
            .sink("dead_letters", output.dead_letter_sink("fraud"));
    }))
}
