//! The Nexmark queries on weir: each a function from the event stream to
//! its result stream, built from the engine's operators (map, filter,
//! key_by, windows, process functions). The joins (q3, q4, q8) are the
//! simplest correct ones on the keyed-state primitive: both sides keyed by
//! the join key into one process function or window.
//!
//! Two-stage maxima (q5, q7): the first stage aggregates per key and window
//! in parallel; the second, keyed by window start, takes the maximum of
//! the first stage's results. A window result carries its window's last
//! millisecond as event time and is stamped with the watermark that fired
//! it, which is the same on every worker, so a timer at that millisecond
//! fires once every result of the window has arrived.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use weir::{Stream, Watermarks};
use weir_operators::process::{Context, ProcessExt, ProcessFunction};
use weir_operators::{Count, Fold, WindowExt, Windows};

use super::model::{Bid, Event};
use super::rows::*;

/// The event-time watermark of the event stream: ascending per split, in
/// 100 ms steps.
pub fn watermarks() -> Watermarks {
    Watermarks::ascending().quantum(Duration::from_millis(100))
}

fn bids(events: Stream<'_, Event>) -> Stream<'_, Bid> {
    events.flat_map(|e| match e {
        Event::Bid(b) => Some(b),
        _ => None,
    })
}

/// q0, pass-through: every event, unchanged, straight to the sink.
pub fn q0(events: Stream<'_, Event>) -> Stream<'_, Event> {
    events
}

/// q1, currency conversion: bids with their price in euros.
pub fn q1(events: Stream<'_, Event>) -> Stream<'_, Q1> {
    bids(events).map(|b| Q1 {
        auction: b.auction,
        bidder: b.bidder,
        price_eur: euros(b.price),
        ts_ms: b.ts_ms,
    })
}

/// q2, selection: bids on every 123rd auction.
pub fn q2(events: Stream<'_, Event>) -> Stream<'_, Q2> {
    bids(events)
        .filter(|b| b.auction % Q2_AUCTION_SKIP == 0)
        .map(|b| Q2 {
            auction: b.auction,
            price: b.price,
        })
}

/// q3, local item suggestion: auctions of category 10 by sellers living in
/// OR, ID or CA, with the seller's name, city and state. A join without a
/// window: each side waits for the other as long as it takes.
pub fn q3(events: Stream<'_, Event>) -> Stream<'_, Q3> {
    events
        .flat_map(|e| match e {
            Event::Person(p) => {
                let (id, local) = q3_person(*p);
                Some(Q3In::Person { id, local })
            }
            Event::Auction(a) if a.category == Q3_CATEGORY => Some(Q3In::Auction {
                seller: a.seller,
                id: a.id,
            }),
            _ => None,
        })
        .key_by("q3_by_person", Q3In::person)
        .process("q3_join", Q3Join)
        .main
}

/// q4, average closing price per category: an auction closes at its
/// `expires` with its highest bid made while it was open (`ts_ms ..=
/// expires`); per category, the running average of closing prices, as of
/// each closing time (one row per category and closing millisecond).
pub fn q4(events: Stream<'_, Event>) -> Stream<'_, Q4> {
    events
        .flat_map(|e| match e {
            Event::Auction(a) => Some(Q4In::Auction {
                id: a.id,
                category: a.category,
                opens: a.ts_ms,
                expires: a.expires,
            }),
            Event::Bid(b) => Some(Q4In::Bid {
                auction: b.auction,
                price: b.price,
                ts_ms: b.ts_ms,
            }),
            Event::Person(_) => None,
        })
        .key_by("q4_by_auction", Q4In::auction)
        .process("q4_closing", Closing)
        .main
        .key_by("q4_by_category", |c: &(u64, u64)| c.0)
        .process("q4_average", RunningAverage)
        .main
}

/// q5, hot items: per 10 s window sliding every 2 s, the auctions with the
/// most bids (all of them, if tied).
pub fn q5(events: Stream<'_, Event>) -> Stream<'_, Q5> {
    bids(events)
        .key_by("q5_by_auction", |b| b.auction)
        .window("q5_counts", Windows::sliding(Q5_SIZE, Q5_SLIDE), Count)
        .fired
        .map(|f| (f.window.start, f.key, f.value))
        .key_by("q5_by_window", |c: &(u64, u64, u64)| c.0)
        .process("q5_hottest", Hottest)
        .main
}

/// q7, highest bid: per 10 s tumbling window, the bids with the highest
/// price (all of them, if tied). The first stage spreads bids over 128
/// keys by price, so no hot auction or bidder loads one worker.
pub fn q7(events: Stream<'_, Event>) -> Stream<'_, Q7> {
    bids(events)
        .key_by("q7_spread", |b| b.price % 128)
        .window(
            "q7_local_max",
            Windows::tumbling(Q7_SIZE),
            Fold::new(
                Vec::new(),
                |top: &mut Vec<Bid>, b: &Bid| keep_highest(top, *b),
                merge_highest,
            ),
        )
        .fired
        .map(|f| (f.window.start, f.value))
        .key_by("q7_by_window", |m: &(u64, Vec<Bid>)| m.0)
        .process("q7_highest", Highest)
        .main
}

/// q8, new users: persons who opened an auction in the same 10 s tumbling
/// window as they registered.
pub fn q8(events: Stream<'_, Event>) -> Stream<'_, Q8> {
    events
        .flat_map(|e| match e {
            Event::Person(p) => Some((p.id, Some(p.name))),
            Event::Auction(a) => Some((a.seller, None)),
            Event::Bid(_) => None,
        })
        .key_by("q8_by_person", |r: &(u64, Option<String>)| r.0)
        .window(
            "q8_window",
            Windows::tumbling(Q8_SIZE),
            Fold::new(
                (None, false),
                |acc: &mut (Option<String>, bool), r: &(u64, Option<String>)| match &r.1 {
                    Some(name) => acc.0 = Some(name.clone()),
                    None => acc.1 = true,
                },
                |acc: &mut (Option<String>, bool), other: (Option<String>, bool)| {
                    acc.0 = acc.0.take().or(other.0);
                    acc.1 |= other.1;
                },
            ),
        )
        .fired
        .flat_map(|f| match f.value {
            (Some(name), true) => Some(Q8 {
                person: f.key,
                name,
                window_start: f.window.start,
            }),
            _ => None,
        })
}

/// q3's input, keyed by person.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Q3In {
    /// A person; `local` holds name, city and state if they live in OR, ID
    /// or CA.
    Person {
        /// Person id.
        id: u64,
        /// Name, city, state, if local.
        local: Option<(String, String, String)>,
    },
    /// An auction of category 10.
    Auction {
        /// Seller.
        seller: u64,
        /// Auction id.
        id: u64,
    },
}

impl Q3In {
    fn person(&self) -> u64 {
        match self {
            Q3In::Person { id, .. } => *id,
            Q3In::Auction { seller, .. } => *seller,
        }
    }
}

/// q3's join state for one person.
#[derive(Default, Serialize, Deserialize)]
pub struct Q3State {
    /// `Some` once the person arrived: their name, city and state if local.
    person: Option<Option<(String, String, String)>>,
    /// Auctions that arrived before their seller.
    waiting: Vec<u64>,
}

struct Q3Join;

impl ProcessFunction<u64, Q3In> for Q3Join {
    type State = Q3State;
    type Out = Q3;
    type Side = ();

    fn is_fresh(&self, state: &Q3State) -> Option<bool> {
        Some(state.person.is_none() && state.waiting.is_empty())
    }

    fn on_record(&mut self, ctx: &mut Context<'_, u64, Q3, ()>, state: &mut Q3State, r: Q3In) {
        match r {
            Q3In::Person { local, .. } => {
                if let Some((name, city, st)) = &local {
                    for auction in state.waiting.drain(..) {
                        ctx.output(Q3 {
                            name: name.clone(),
                            city: city.clone(),
                            state: st.clone(),
                            auction,
                        });
                    }
                }
                state.waiting.clear();
                state.person = Some(local);
            }
            Q3In::Auction { id, .. } => match &state.person {
                None => state.waiting.push(id),
                Some(Some((name, city, st))) => ctx.output(Q3 {
                    name: name.clone(),
                    city: city.clone(),
                    state: st.clone(),
                    auction: id,
                }),
                Some(None) => {}
            },
        }
    }
}

/// q4's input, keyed by auction.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Q4In {
    /// An auction.
    Auction {
        /// Auction id.
        id: u64,
        /// Category.
        category: u64,
        /// Opening time (ms).
        opens: u64,
        /// Closing time (ms).
        expires: u64,
    },
    /// A bid.
    Bid {
        /// Auction id.
        auction: u64,
        /// Price (cents).
        price: u64,
        /// Event time (ms).
        ts_ms: u64,
    },
}

impl Q4In {
    fn auction(&self) -> u64 {
        match self {
            Q4In::Auction { id, .. } => *id,
            Q4In::Bid { auction, .. } => *auction,
        }
    }
}

/// q4's state for one auction.
#[derive(Default, Serialize, Deserialize)]
pub struct ClosingState {
    /// (category, opens, expires) once the auction arrived.
    auction: Option<(u64, u64, u64)>,
    /// The highest bid in the open interval so far.
    best: Option<u64>,
    /// (event time, price) of bids that came before their auction.
    early: Vec<(u64, u64)>,
    /// Closed: later bids are ignored.
    closed: bool,
}

struct Closing;

impl ProcessFunction<u64, Q4In> for Closing {
    type State = ClosingState;
    /// (category, closing price)
    type Out = (u64, u64);
    type Side = ();

    fn is_fresh(&self, s: &ClosingState) -> Option<bool> {
        Some(s.auction.is_none() && s.best.is_none() && s.early.is_empty() && !s.closed)
    }

    fn on_record(
        &mut self,
        ctx: &mut Context<'_, u64, (u64, u64), ()>,
        s: &mut ClosingState,
        r: Q4In,
    ) {
        if s.closed {
            return;
        }
        match r {
            Q4In::Auction {
                category,
                opens,
                expires,
                ..
            } => {
                s.auction = Some((category, opens, expires));
                for (ts, price) in std::mem::take(&mut s.early) {
                    if (opens..=expires).contains(&ts) {
                        s.best = s.best.max(Some(price));
                    }
                }
                ctx.register_event_timer(expires);
            }
            Q4In::Bid { price, ts_ms, .. } => match s.auction {
                None => s.early.push((ts_ms, price)),
                Some((_, opens, expires)) => {
                    if (opens..=expires).contains(&ts_ms) {
                        s.best = s.best.max(Some(price));
                    }
                }
            },
        }
    }

    fn on_timer(
        &mut self,
        ctx: &mut Context<'_, u64, (u64, u64), ()>,
        s: &mut ClosingState,
        _: u64,
    ) {
        if let (Some((category, _, _)), Some(best)) = (s.auction, s.best) {
            ctx.output((category, best));
        }
        *s = ClosingState {
            closed: true,
            ..ClosingState::default()
        };
    }
}

/// q4's running average of one category.
#[derive(Default, Serialize, Deserialize)]
pub struct AverageState {
    count: u64,
    sum: u64,
    /// Closings not yet reported, by closing time: (count, sum).
    pending: std::collections::BTreeMap<u64, (u64, u64)>,
}

struct RunningAverage;

impl ProcessFunction<u64, (u64, u64)> for RunningAverage {
    type State = AverageState;
    type Out = Q4;
    type Side = ();

    fn is_fresh(&self, s: &AverageState) -> Option<bool> {
        Some(s.count == 0 && s.pending.is_empty())
    }

    fn on_record(
        &mut self,
        ctx: &mut Context<'_, u64, Q4, ()>,
        s: &mut AverageState,
        c: (u64, u64),
    ) {
        // Closings carry their closing time. One row per closing time, once
        // every closing up to it has arrived: its timer's.
        let at = ctx.timestamp();
        let p = s.pending.entry(at).or_default();
        p.0 += 1;
        p.1 += c.1;
        ctx.register_event_timer(at);
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, u64, Q4, ()>, s: &mut AverageState, at: u64) {
        let Some((n, sum)) = s.pending.remove(&at) else {
            return;
        };
        s.count += n;
        s.sum += sum;
        ctx.output(Q4 {
            category: *ctx.key(),
            at_ms: at,
            closed: s.count,
            sum: s.sum,
        });
    }
}

/// q5's second stage: the counts of one window so far.
#[derive(Default, Serialize, Deserialize)]
pub struct HottestState {
    most: u64,
    auctions: Vec<u64>,
}

struct Hottest;

impl ProcessFunction<u64, (u64, u64, u64)> for Hottest {
    type State = HottestState;
    type Out = Q5;
    type Side = ();

    fn is_fresh(&self, s: &HottestState) -> Option<bool> {
        Some(s.auctions.is_empty())
    }

    fn on_record(
        &mut self,
        ctx: &mut Context<'_, u64, Q5, ()>,
        s: &mut HottestState,
        (_, auction, count): (u64, u64, u64),
    ) {
        if count > s.most {
            s.most = count;
            s.auctions.clear();
        }
        if count == s.most {
            s.auctions.push(auction);
        }
        let at = ctx.timestamp();
        ctx.register_event_timer(at);
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, u64, Q5, ()>, s: &mut HottestState, _: u64) {
        let window_start = *ctx.key();
        for auction in std::mem::take(&mut s.auctions) {
            ctx.output(Q5 {
                window_start,
                auction,
                bids: s.most,
            });
        }
        s.most = 0;
    }
}

/// Keeps the highest-priced bids (all ties) of `top` and `b`.
pub fn keep_highest(top: &mut Vec<Bid>, b: Bid) {
    match top.first().map(|t| t.price) {
        Some(p) if p > b.price => {}
        Some(p) if p == b.price => top.push(b),
        _ => {
            top.clear();
            top.push(b);
        }
    }
}

fn merge_highest(top: &mut Vec<Bid>, other: Vec<Bid>) {
    for b in other {
        keep_highest(top, b);
    }
}

/// q7's second stage: the highest bids of one window so far.
#[derive(Default, Serialize, Deserialize)]
pub struct HighestState {
    top: Vec<Bid>,
}

struct Highest;

impl ProcessFunction<u64, (u64, Vec<Bid>)> for Highest {
    type State = HighestState;
    type Out = Q7;
    type Side = ();

    fn is_fresh(&self, s: &HighestState) -> Option<bool> {
        Some(s.top.is_empty())
    }

    fn on_record(
        &mut self,
        ctx: &mut Context<'_, u64, Q7, ()>,
        s: &mut HighestState,
        (_, bids): (u64, Vec<Bid>),
    ) {
        merge_highest(&mut s.top, bids);
        let at = ctx.timestamp();
        ctx.register_event_timer(at);
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, u64, Q7, ()>, s: &mut HighestState, _: u64) {
        let window_start = *ctx.key();
        for b in std::mem::take(&mut s.top) {
            ctx.output(Q7 {
                window_start,
                auction: b.auction,
                bidder: b.bidder,
                price: b.price,
                ts_ms: b.ts_ms,
            });
        }
    }
}
