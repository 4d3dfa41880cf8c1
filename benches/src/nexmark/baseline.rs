//! The hand-written side of every Nexmark query: one thread, plain loops
//! and hash maps over the events in order, no engine. Windows fire (and
//! auctions close) when the first event past their end is read, which is
//! when the engine's watermark would pass it, and everything still open
//! fires at the end of input, as the engine's bounded runs do.
//!
//! Each function calls `out` once per output row; the bench digests the
//! rows, the tests collect them.

use std::collections::{BTreeMap, HashMap};

use weir::FastMap;

use super::model::{Bid, Event};
use super::queries::keep_highest;
use super::rows::*;

fn ms(d: std::time::Duration) -> u64 {
    d.as_millis() as u64
}

/// q0: every event.
pub fn q0(events: impl Iterator<Item = Event>, out: &mut impl FnMut(Event)) {
    for e in events {
        out(e);
    }
}

/// q1: bids in euros.
pub fn q1(events: impl Iterator<Item = Event>, out: &mut impl FnMut(Q1)) {
    for e in events {
        if let Event::Bid(b) = e {
            out(Q1 {
                auction: b.auction,
                bidder: b.bidder,
                price_eur: euros(b.price),
                ts_ms: b.ts_ms,
            });
        }
    }
}

/// q2: bids on every 123rd auction.
pub fn q2(events: impl Iterator<Item = Event>, out: &mut impl FnMut(Q2)) {
    for e in events {
        if let Event::Bid(b) = e {
            if b.auction % Q2_AUCTION_SKIP == 0 {
                out(Q2 {
                    auction: b.auction,
                    price: b.price,
                });
            }
        }
    }
}

/// q3: local sellers' category-10 auctions.
pub fn q3(events: impl Iterator<Item = Event>, out: &mut impl FnMut(Q3)) {
    // Person id -> (name, city, state) if local, `None` if not.
    let mut persons: FastMap<u64, Option<(String, String, String)>> = FastMap::default();
    let mut waiting: FastMap<u64, Vec<u64>> = FastMap::default();
    let emit = |out: &mut dyn FnMut(Q3), p: &(String, String, String), auction: u64| {
        out(Q3 {
            name: p.0.clone(),
            city: p.1.clone(),
            state: p.2.clone(),
            auction,
        })
    };
    for e in events {
        match e {
            Event::Person(p) => {
                let (id, local) = q3_person(*p);
                let auctions = waiting.remove(&id).unwrap_or_default();
                if let Some(l) = &local {
                    for a in auctions {
                        emit(out, l, a);
                    }
                }
                persons.insert(id, local);
            }
            Event::Auction(a) if a.category == Q3_CATEGORY => match persons.get(&a.seller) {
                None => waiting.entry(a.seller).or_default().push(a.id),
                Some(Some(l)) => emit(out, l, a.id),
                Some(None) => {}
            },
            _ => {}
        }
    }
}

/// q4: per category, the running average closing price at each closing
/// time.
pub fn q4(events: impl Iterator<Item = Event>, out: &mut impl FnMut(Q4)) {
    struct Open {
        category: u64,
        opens: u64,
        expires: u64,
        best: Option<u64>,
        /// Closed: later bids are ignored (kept, as the engine keeps them).
        closed: bool,
    }
    let mut open: FastMap<u64, Open> = FastMap::default();
    let mut early: FastMap<u64, Vec<(u64, u64)>> = FastMap::default();
    // Closing time -> auctions closing then.
    let mut closing: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    // Category -> (closed, sum).
    let mut totals: HashMap<u64, (u64, u64)> = HashMap::new();
    let mut close_through = |t: u64,
                             open: &mut FastMap<u64, Open>,
                             closing: &mut BTreeMap<u64, Vec<u64>>,
                             out: &mut dyn FnMut(Q4)| {
        while let Some(entry) = closing.first_entry() {
            if *entry.key() > t {
                break;
            }
            let (at, auctions) = entry.remove_entry();
            let mut changed: BTreeMap<u64, ()> = BTreeMap::new();
            for id in auctions {
                if let Some(a) = open.get_mut(&id) {
                    a.closed = true;
                    if let Some(best) = a.best.take() {
                        let total = totals.entry(a.category).or_default();
                        total.0 += 1;
                        total.1 += best;
                        changed.insert(a.category, ());
                    }
                }
            }
            for category in changed.into_keys() {
                let (closed, sum) = totals[&category];
                out(Q4 {
                    category,
                    at_ms: at,
                    closed,
                    sum,
                });
            }
        }
    };
    for e in events {
        // Everything that closes before this event's time has had all its bids.
        close_through(e.ts_ms().saturating_sub(1), &mut open, &mut closing, out);
        match e {
            Event::Auction(a) => {
                let mut best = None;
                for (ts, price) in early.remove(&a.id).unwrap_or_default() {
                    if (a.ts_ms..=a.expires).contains(&ts) {
                        best = best.max(Some(price));
                    }
                }
                closing.entry(a.expires).or_default().push(a.id);
                open.insert(
                    a.id,
                    Open {
                        category: a.category,
                        opens: a.ts_ms,
                        expires: a.expires,
                        best,
                        closed: false,
                    },
                );
            }
            Event::Bid(b) => match open.get_mut(&b.auction) {
                Some(a) => {
                    if !a.closed && (a.opens..=a.expires).contains(&b.ts_ms) {
                        a.best = a.best.max(Some(b.price));
                    }
                }
                // Auctions not seen yet (ids run at most 10 ahead).
                None => early.entry(b.auction).or_default().push((b.ts_ms, b.price)),
            },
            Event::Person(_) => {}
        }
    }
    close_through(u64::MAX, &mut open, &mut closing, out);
}

/// q5: per sliding window, the auctions with the most bids.
pub fn q5(events: impl Iterator<Item = Event>, out: &mut impl FnMut(Q5)) {
    let (size, slide) = (ms(Q5_SIZE), ms(Q5_SLIDE));
    // Window start -> auction -> bids.
    let mut windows: BTreeMap<u64, FastMap<u64, u64>> = BTreeMap::new();
    let fire =
        |windows: &mut BTreeMap<u64, FastMap<u64, u64>>, before: u64, out: &mut dyn FnMut(Q5)| {
            while let Some(entry) = windows.first_entry() {
                if entry.key() + size > before {
                    break;
                }
                let (window_start, counts) = entry.remove_entry();
                let most = counts.values().copied().max().unwrap_or(0);
                for (&auction, &bids) in &counts {
                    if bids == most {
                        out(Q5 {
                            window_start,
                            auction,
                            bids,
                        });
                    }
                }
            }
        };
    for e in events {
        let Event::Bid(b) = e else { continue };
        fire(&mut windows, b.ts_ms, out);
        let last = b.ts_ms - b.ts_ms % slide;
        let mut start = (b.ts_ms + 1).saturating_sub(size).div_ceil(slide) * slide;
        while start <= last {
            *windows
                .entry(start)
                .or_default()
                .entry(b.auction)
                .or_default() += 1;
            start += slide;
        }
    }
    fire(&mut windows, u64::MAX, out);
}

/// q7: per tumbling window, the highest bids.
pub fn q7(events: impl Iterator<Item = Event>, out: &mut impl FnMut(Q7)) {
    let size = ms(Q7_SIZE);
    let mut current: Option<(u64, Vec<Bid>)> = None;
    let emit = |(window_start, top): (u64, Vec<Bid>), out: &mut dyn FnMut(Q7)| {
        for b in top {
            out(Q7 {
                window_start,
                auction: b.auction,
                bidder: b.bidder,
                price: b.price,
                ts_ms: b.ts_ms,
            });
        }
    };
    for e in events {
        let Event::Bid(b) = e else { continue };
        let start = b.ts_ms - b.ts_ms % size;
        match &mut current {
            Some((s, top)) if *s == start => keep_highest(top, b),
            _ => {
                if let Some(done) = current.take() {
                    emit(done, out);
                }
                current = Some((start, vec![b]));
            }
        }
    }
    if let Some(done) = current {
        emit(done, out);
    }
}

/// q8: persons who opened an auction in the window they registered in.
pub fn q8(events: impl Iterator<Item = Event>, out: &mut impl FnMut(Q8)) {
    let size = ms(Q8_SIZE);
    // Person -> (name if registered in this window, opened an auction).
    let mut window: FastMap<u64, (Option<String>, bool)> = FastMap::default();
    let mut window_start = None;
    let fire =
        |start: u64, window: &mut FastMap<u64, (Option<String>, bool)>, out: &mut dyn FnMut(Q8)| {
            for (person, (name, opened)) in window.drain() {
                if let (Some(name), true) = (name, opened) {
                    out(Q8 {
                        person,
                        name,
                        window_start: start,
                    });
                }
            }
        };
    for e in events {
        let ts = e.ts_ms();
        let start = ts - ts % size;
        if window_start != Some(start) {
            if let Some(done) = window_start {
                fire(done, &mut window, out);
            }
            window_start = Some(start);
        }
        match e {
            Event::Person(p) => window.entry(p.id).or_default().0 = Some(p.name),
            Event::Auction(a) => window.entry(a.seller).or_default().1 = true,
            Event::Bid(_) => {}
        }
    }
    if let Some(done) = window_start {
        fire(done, &mut window, out);
    }
}
