//! Keyed process functions: per-key state, timers and side outputs, for
//! logic that windows do not express.
//!
//! You implement [`ProcessFunction`] for a keyed stream's records and run it
//! with [`ProcessExt::process`]. For every record, `on_record` gets the
//! record, the record's key's state and a [`Context`]; for every timer the key
//! set, `on_timer` (event time) or `on_processing_timer` (wall clock) gets the
//! same. Results go to the main output ([`Context::output`]) or the side
//! output ([`Context::side`]), typically for records the function rejects.
//!
//! * **State** is one value of the function's `State` type per key: a struct
//!   of [`ValueState`], [`ListState`] and [`MapState`] cells (or any
//!   serializable fields). A key without state has a fresh one
//!   ([`ProcessFunction::new_state`], by default `Default`); a state back at
//!   fresh is dropped. State is checkpointed per key and
//!   restores on any number of workers.
//! * **TTL**: a cell made `with_ttl(ttl)` forgets each write `ttl` of event
//!   time (watermark) after it; reads see nothing, and the entry leaves
//!   memory and later checkpoints (see [`state`]).
//! * **Event-time timers** are per key and time: `register_event_timer(t)`
//!   twice is one timer. A timer fires exactly once, when the watermark
//!   passes `t`, after every on-time record with event time `<= t` and
//!   before any record stamped later; per key in time order, across keys at
//!   the same time in key order. Timers are checkpointed with their key, so
//!   a timer fires once across a crash and restore. A timer registered for a
//!   time the watermark has passed fires right after the current stamp. When
//!   a bounded input ends, the watermark jumps to the end of time and every
//!   timer fires, including those timers set meanwhile: a timer that always
//!   sets a later one keeps such a job from ending.
//! * **The end of time**: every time is a `u64` of milliseconds and nothing
//!   here wraps. A timer for `u64::MAX` (which no watermark passes) fires
//!   at the end of time, once per key; a TTL that would run past `u64::MAX`
//!   lasts until the end of time. A record far in the future moves its
//!   split's watermark there (see `weir::watermark`), so later records of
//!   that split are late (`Context::is_late`). Arithmetic in a function's
//!   own code (`ts + span`) is the function's: use `saturating_add`.
//! * **Order**: records are applied in the order of the watermark they were
//!   stamped with at their source; within one stamp, by key, event time and
//!   then encoded record (bincode; a record type whose encoding is not stable,
//!   such as one holding a `HashMap`, loses that last tie-break), so the
//!   arrival order across workers never shows.
//!   Everything a function sees — records, the watermark, timer firings,
//!   expiry — depends only on the input: results are the same on 1, 2 or 4
//!   workers and across restores, as long as the function keeps its per-key
//!   state in `State` (fields of the function itself are neither per key nor
//!   checkpointed: use them for configuration and scratch space).
//! * **Processing-time timers** are the exception: they fire by the wall
//!   clock (or all at once when the input ends), so what they do is not
//!   deterministic. They are checkpointed too, as wall-clock times.
//!
//! Records of a stamp are applied once the watermark has passed it, so a
//! process function adds one watermark step of latency.
//!
//! # Late records
//!
//! A record is *late* when its event time is behind the watermark it was
//! stamped with at its source ([`Context::is_late`]): timers for its time
//! may have fired already, and state that such timers pruned is gone. What a
//! late record means is the function's to say, as in Flink's
//! `ProcessFunction`: the operator delivers it to `on_record` like any
//! other, and the context tells the function that it is late and at which
//! watermark ([`Context::watermark`]). A function refuses one with
//! [`Context::dead_letter_late`]: it goes to the job's dead letters with its
//! event time, its watermark and the step's name, and counts as late in the
//! job's summary, so nothing is lost and nothing is silent.
//!
//! A function whose result must cover every record of a span (the fraud
//! job's "three countries in ten minutes") should refuse late records:
//! then its output depends only on the on-time records, which are complete
//! for a time once its timer fires, and never on what arrived later or what
//! a later record pruned. A function that is indifferent to order (a count,
//! a deduplication) may take them.
//!
//! Why the operator does not refuse late records itself, as windows do:
//! results of a window step are behind the watermark by construction (a
//! window fires once the watermark has passed its end plus its allowed
//! lateness, and its result carries the window's last millisecond), so they
//! are late by this definition, and a process step after a window would
//! refuse every one of them. Do not refuse late records in a function that
//! reads a window's results.
//!
//! # Examples
//!
//! Alert when a card makes transactions in three different countries within
//! 10 minutes. Each transaction sets a timer at its own time; when the
//! watermark passes it, every transaction up to that time has arrived, and
//! the timer counts the countries of the 10 minutes that end there. Late
//! transactions go to the side output.
//!
//! ```
//! use std::collections::BTreeSet;
//! use std::time::Duration;
//!
//! use serde::{Deserialize, Serialize};
//! use weir::testing::{run_workers, Script};
//! use weir::Watermarks;
//! use weir_operators::process::{Context, ListState, ProcessExt, ProcessFunction};
//!
//! const TEN_MINUTES: u64 = 10 * 60 * 1_000;
//!
//! /// (card, country, event time ms)
//! type Txn = (u32, String, u64);
//!
//! #[derive(Default, Serialize, Deserialize)]
//! struct Recent {
//!     /// (event time, country) of the card's recent transactions.
//!     txns: ListState<(u64, String)>,
//! }
//!
//! struct ThreeCountries;
//!
//! impl ProcessFunction<u32, Txn> for ThreeCountries {
//!     type State = Recent;
//!     /// (card, time, countries)
//!     type Out = (u32, u64, Vec<String>);
//!     /// Late transactions.
//!     type Side = Txn;
//!
//!     fn on_record(&mut self, ctx: &mut Context<'_, u32, Self::Out, Txn>, state: &mut Recent, txn: Txn) {
//!         if ctx.is_late() {
//!             ctx.side(txn);
//!             return;
//!         }
//!         state.txns.push((txn.2, txn.1));
//!         ctx.register_event_timer(txn.2);
//!     }
//!
//!     fn on_timer(&mut self, ctx: &mut Context<'_, u32, Self::Out, Txn>, state: &mut Recent, time: u64) {
//!         // Older transactions can matter to no later timer.
//!         state.txns.retain(|(ts, _)| ts + TEN_MINUTES > time);
//!         let countries: BTreeSet<&String> =
//!             state.txns.iter().filter(|(ts, _)| *ts <= time).map(|(_, c)| c).collect();
//!         if countries.len() >= 3 {
//!             let card = *ctx.key();
//!             let countries = countries.into_iter().cloned().collect();
//!             ctx.output((card, time, countries));
//!         }
//!     }
//! }
//!
//! let txn = |card: u32, country: &str, ts: u64| (card, country.to_string(), ts);
//! let script = Script::new()
//!     .records(&[
//!         txn(1, "FR", 0),
//!         txn(2, "FR", 0),
//!         txn(1, "DE", 60_000),
//!         txn(1, "IT", 120_000), // card 1: three countries in 2 minutes
//!         txn(2, "DE", 300_000),
//!         txn(2, "IT", 660_000), // card 2: FR is 11 minutes old by now
//!     ])
//!     .watermark(1_800_000)
//!     .record(txn(3, "US", 1_000)); // far behind the watermark
//!
//! for workers in [1, 2, 4] {
//!     let script = script.clone();
//!     let out = run_workers(workers, move |p, capture| {
//!         let checked = p
//!             .source("txns", script.clone())
//!             .event_time(|t: &Txn| t.2, Watermarks::bounded(Duration::from_secs(5)))
//!             .key_by("by_card", |t| t.0)
//!             .process("three_countries", ThreeCountries);
//!         checked
//!             .main
//!             .map(|(card, at, countries)| format!("alert {card} at {at}: {}", countries.join(",")))
//!             .union(checked.side.map(|t| format!("late {t:?}")))
//!             .sink("out", capture.sink());
//!     });
//!     assert_eq!(out, vec!["alert 1 at 120000: DE,FR,IT", "late (3, \"US\", 1000)"]);
//! }
//! ```

mod context;
mod operator;
pub mod state;

use std::time::SystemTime;

use serde::de::DeserializeOwned;
use serde::Serialize;
use weir::{Data, Key, KeyedStream, Stream};

pub use context::Context;
pub use state::{ListState, MapState, ValueState};

use context::Emitted;
use operator::ProcessOperator;

/// Per-key logic with state and timers, run by [`ProcessExt::process`].
/// See the [module docs](self) for what it may rely on.
pub trait ProcessFunction<K, D>: 'static {
    /// The state of one key: typically a struct of [`ValueState`],
    /// [`ListState`] and [`MapState`] cells. A key's state starts as
    /// [`new_state`](Self::new_state) (the default unless overridden) and is
    /// dropped once it is back at it.
    type State: Serialize + DeserializeOwned + Default + 'static;
    /// What the main output carries.
    type Out: Data;
    /// What the side output carries (`()` if unused).
    type Side: Data;

    /// A fresh state for a key the operator holds nothing for: where cells
    /// get their TTLs when those come from the job's configuration. Must
    /// not depend on anything but the function's own settings. Default:
    /// `Self::State::default()`.
    fn new_state(&self) -> Self::State {
        Self::State::default()
    }

    /// Whether `state` is back at a fresh one (equal to
    /// [`new_state`](Self::new_state)), so the operator can drop it. The
    /// default compares encodings, which costs a partial encoding per
    /// callback; a function on a hot path can answer from its fields (it
    /// must say `true` only for a state that equals a fresh one, or that
    /// key's state is lost).
    fn is_fresh(&self, state: &Self::State) -> Option<bool> {
        let _ = state;
        None
    }

    /// Handles one record of `ctx.key()`.
    fn on_record(
        &mut self,
        ctx: &mut Context<'_, K, Self::Out, Self::Side>,
        state: &mut Self::State,
        record: D,
    );

    /// An event-time timer of `ctx.key()` for `time` fired: the watermark
    /// has passed `time`. Does nothing unless overridden.
    fn on_timer(
        &mut self,
        ctx: &mut Context<'_, K, Self::Out, Self::Side>,
        state: &mut Self::State,
        time: u64,
    ) {
        let _ = (ctx, state, time);
    }

    /// A processing-time timer of `ctx.key()` set for `at` fired: the wall
    /// clock has passed it, or the input ended. Not deterministic. Does
    /// nothing unless overridden.
    fn on_processing_timer(
        &mut self,
        ctx: &mut Context<'_, K, Self::Out, Self::Side>,
        state: &mut Self::State,
        at: SystemTime,
    ) {
        let _ = (ctx, state, at);
    }
}

/// A process function's outputs.
pub struct Processed<'s, O, X> {
    /// What the function sent with [`Context::output`].
    pub main: Stream<'s, O>,
    /// What the function sent with [`Context::side`].
    pub side: Stream<'s, X>,
}

/// Process functions on keyed streams.
pub trait ProcessExt<'s, K, D> {
    /// Runs `function` per key. `name` names the step and its checkpointed
    /// state. Results carry the event time of the callback that sent them:
    /// the record's, or the timer's.
    ///
    /// # Examples
    ///
    /// Clicks per user so far, forgetting a user after a minute (of event
    /// time, by the watermark) without clicks.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// use serde::{Deserialize, Serialize};
    /// use weir::testing::{run_workers, Script};
    /// use weir::Watermarks;
    /// use weir_operators::process::{Context, ProcessExt, ProcessFunction, ValueState};
    ///
    /// #[derive(Serialize, Deserialize)]
    /// struct Clicks {
    ///     count: ValueState<u32>,
    /// }
    ///
    /// impl Default for Clicks {
    ///     fn default() -> Self {
    ///         Clicks { count: ValueState::with_ttl(Duration::from_secs(60)) }
    ///     }
    /// }
    ///
    /// struct Count;
    ///
    /// impl ProcessFunction<u32, (u32, u64)> for Count {
    ///     type State = Clicks;
    ///     type Out = (u32, u32);
    ///     type Side = ();
    ///
    ///     fn on_record(&mut self, ctx: &mut Context<'_, u32, (u32, u32), ()>, state: &mut Clicks, _: (u32, u64)) {
    ///         let n = state.count.get().copied().unwrap_or(0) + 1;
    ///         state.count.set(n);
    ///         ctx.output((*ctx.key(), n));
    ///     }
    /// }
    ///
    /// // (user, event time ms). User 1's last click is stamped with the
    /// // watermark 100 s, more than a minute after its previous write.
    /// let script = Script::new().records(&[(1u32, 0u64), (1, 10_000), (2, 100_000), (1, 200_000)]);
    /// let counts = run_workers(2, move |p, capture| {
    ///     p.source("clicks", script.clone())
    ///         .event_time(|c: &(u32, u64)| c.1, Watermarks::ascending())
    ///         .key_by("by_user", |c| c.0)
    ///         .process("counts", Count)
    ///         .main
    ///         .sink("out", capture.sink());
    /// });
    /// assert_eq!(counts, vec![(1, 1), (1, 1), (1, 2), (2, 1)]);
    /// ```
    fn process<F: ProcessFunction<K, D>>(
        self,
        name: &str,
        function: F,
    ) -> Processed<'s, F::Out, F::Side>;
}

impl<'s, K: Key, D: Data> ProcessExt<'s, K, D> for KeyedStream<'s, K, D> {
    fn process<F: ProcessFunction<K, D>>(
        self,
        name: &str,
        function: F,
    ) -> Processed<'s, F::Out, F::Side> {
        // The function decides what is late for it (see the module docs);
        // what it refuses goes to the job's dead letters.
        let (results, refused) = self.keyed(name, ProcessOperator::new(name, function));
        refused.dead_letter(|letter| letter);
        let main = results.clone().flat_map(|r| match r {
            Emitted::Main(v) => Some(v),
            Emitted::Side(_) => None,
        });
        let side = results.flat_map(|r| match r {
            Emitted::Side(v) => Some(v),
            Emitted::Main(_) => None,
        });
        Processed { main, side }
    }
}
