//! The Nexmark queries checked on a small input: weir's (on 1, 2 and 4
//! workers) and the bench's hand-written baseline against naive versions
//! written here from the queries' definitions — whole-input scans and
//! nested loops, no state machines, no firing logic.

use std::collections::{BTreeMap, BTreeSet};

use weir::RunArgs;
use weir_benches::nexmark::rows::*;
use weir_benches::nexmark::{
    baseline, baseline_digest, baseline_rows, engine_digest, engine_rows, queries, Auction, Bid,
    Build, Digest, Event, Model, Nexmark, Person, Query,
};

/// 60 000 events over 30 s of event time: 3 tumbling and 15 sliding
/// windows, about 3 600 auctions of ~1 s each.
fn source() -> Nexmark {
    Nexmark::new(
        Model {
            event_rate: 2_000.0,
            ..Model::default()
        },
        60_000,
    )
}

struct Input {
    persons: Vec<Person>,
    auctions: Vec<Auction>,
    bids: Vec<Bid>,
}

fn input() -> Input {
    let mut input = Input {
        persons: Vec::new(),
        auctions: Vec::new(),
        bids: Vec::new(),
    };
    for e in source().iter() {
        match e {
            Event::Person(p) => input.persons.push(*p),
            Event::Auction(a) => input.auctions.push(*a),
            Event::Bid(b) => input.bids.push(b),
        }
    }
    input
}

fn sorted<R: Ord>(mut rows: Vec<R>) -> Vec<R> {
    rows.sort();
    rows
}

/// Window starts (multiples of `slide`) of windows of `size` that hold `ts`.
fn starts(ts: u64, size: u64, slide: u64) -> Vec<u64> {
    (0..=ts / slide)
        .rev()
        .map(|k| k * slide)
        .take_while(|s| s + size > ts)
        .collect()
}

fn naive_q3(i: &Input) -> Vec<Q3> {
    let mut rows = Vec::new();
    for a in i.auctions.iter().filter(|a| a.category == Q3_CATEGORY) {
        for p in i.persons.iter().filter(|p| p.id == a.seller) {
            if ["OR", "ID", "CA"].contains(&p.state.as_str()) {
                rows.push(Q3 {
                    name: p.name.clone(),
                    city: p.city.clone(),
                    state: p.state.clone(),
                    auction: a.id,
                });
            }
        }
    }
    sorted(rows)
}

fn naive_q4(i: &Input) -> Vec<Q4> {
    // (category, closing time, closing price)
    let mut closings = Vec::new();
    for a in &i.auctions {
        let best = i
            .bids
            .iter()
            .filter(|b| b.auction == a.id && b.ts_ms >= a.ts_ms && b.ts_ms <= a.expires)
            .map(|b| b.price)
            .max();
        if let Some(price) = best {
            closings.push((a.category, a.expires, price));
        }
    }
    let times: BTreeSet<(u64, u64)> = closings.iter().map(|c| (c.0, c.1)).collect();
    let rows = times
        .into_iter()
        .map(|(category, at_ms)| {
            let upto: Vec<u64> = closings
                .iter()
                .filter(|c| c.0 == category && c.1 <= at_ms)
                .map(|c| c.2)
                .collect();
            Q4 {
                category,
                at_ms,
                closed: upto.len() as u64,
                sum: upto.iter().sum(),
            }
        })
        .collect();
    sorted(rows)
}

fn naive_q5(i: &Input) -> Vec<Q5> {
    let (size, slide) = (Q5_SIZE.as_millis() as u64, Q5_SLIDE.as_millis() as u64);
    let all: BTreeSet<u64> = i
        .bids
        .iter()
        .flat_map(|b| starts(b.ts_ms, size, slide))
        .collect();
    let mut rows = Vec::new();
    for s in all {
        let mut counts: BTreeMap<u64, u64> = BTreeMap::new();
        for b in i.bids.iter().filter(|b| b.ts_ms >= s && b.ts_ms < s + size) {
            *counts.entry(b.auction).or_default() += 1;
        }
        let most = counts.values().max().copied().unwrap_or(0);
        for (auction, bids) in counts {
            if bids == most {
                rows.push(Q5 {
                    window_start: s,
                    auction,
                    bids,
                });
            }
        }
    }
    sorted(rows)
}

fn naive_q7(i: &Input) -> Vec<Q7> {
    let size = Q7_SIZE.as_millis() as u64;
    let all: BTreeSet<u64> = i.bids.iter().map(|b| b.ts_ms - b.ts_ms % size).collect();
    let mut rows = Vec::new();
    for s in all {
        let in_window: Vec<&Bid> = i
            .bids
            .iter()
            .filter(|b| b.ts_ms >= s && b.ts_ms < s + size)
            .collect();
        let top = in_window.iter().map(|b| b.price).max().unwrap_or(0);
        for b in in_window.into_iter().filter(|b| b.price == top) {
            rows.push(Q7 {
                window_start: s,
                auction: b.auction,
                bidder: b.bidder,
                price: b.price,
                ts_ms: b.ts_ms,
            });
        }
    }
    sorted(rows)
}

fn naive_q8(i: &Input) -> Vec<Q8> {
    let size = Q8_SIZE.as_millis() as u64;
    let mut rows = Vec::new();
    for p in &i.persons {
        let start = p.ts_ms - p.ts_ms % size;
        let opened = i
            .auctions
            .iter()
            .any(|a| a.seller == p.id && a.ts_ms >= start && a.ts_ms < start + size);
        if opened {
            rows.push(Q8 {
                person: p.id,
                name: p.name.clone(),
                window_start: start,
            });
        }
    }
    sorted(rows)
}

/// weir's rows on 1, 2 and 4 workers and the baseline's all equal `naive`,
/// which is not empty.
fn check<R: weir::Data + Ord + std::fmt::Debug>(
    name: &str,
    build: Build<R>,
    hand: impl FnOnce(std::vec::IntoIter<Event>, &mut dyn FnMut(R)),
    naive: Vec<R>,
) {
    assert!(!naive.is_empty(), "{name}: the naive version found nothing");
    let by_hand = baseline_rows(hand, &source());
    assert!(
        by_hand == naive,
        "{name}: the baseline differs from the naive version"
    );
    for workers in [1, 2, 4] {
        let rows = engine_rows(build, source(), &RunArgs::threads(workers))
            .unwrap_or_else(|e| panic!("{name} on {workers} workers failed: {e}"));
        if rows != naive {
            let missing = naive
                .iter()
                .filter(|r| !rows.contains(r))
                .take(3)
                .collect::<Vec<_>>();
            let extra = rows
                .iter()
                .filter(|r| !naive.contains(r))
                .take(3)
                .collect::<Vec<_>>();
            panic!(
                "{name} on {workers} workers: {} rows, expected {}; missing {missing:?}, extra {extra:?}",
                rows.len(),
                naive.len()
            );
        }
    }
}

#[test]
fn q0_passes_every_event_through() {
    let naive = sorted(source().iter().collect::<Vec<_>>());
    check(
        "q0",
        queries::q0,
        |e, out| baseline::q0(e, &mut |r| out(r)),
        naive,
    );
}

#[test]
fn q1_converts_every_bid() {
    let i = input();
    let naive = sorted(
        i.bids
            .iter()
            .map(|b| Q1 {
                auction: b.auction,
                bidder: b.bidder,
                price_eur: b.price * 908 / 1000,
                ts_ms: b.ts_ms,
            })
            .collect(),
    );
    check(
        "q1",
        queries::q1,
        |e, out| baseline::q1(e, &mut |r| out(r)),
        naive,
    );
}

#[test]
fn q2_selects_bids_on_every_123rd_auction() {
    let i = input();
    let naive = sorted(
        i.bids
            .iter()
            .filter(|b| b.auction % 123 == 0)
            .map(|b| Q2 {
                auction: b.auction,
                price: b.price,
            })
            .collect(),
    );
    check(
        "q2",
        queries::q2,
        |e, out| baseline::q2(e, &mut |r| out(r)),
        naive,
    );
}

#[test]
fn q3_joins_local_sellers_with_their_auctions() {
    let naive = naive_q3(&input());
    check(
        "q3",
        queries::q3,
        |e, out| baseline::q3(e, &mut |r| out(r)),
        naive,
    );
}

#[test]
fn q4_averages_closing_prices_per_category() {
    let naive = naive_q4(&input());
    check(
        "q4",
        queries::q4,
        |e, out| baseline::q4(e, &mut |r| out(r)),
        naive,
    );
}

#[test]
fn q5_finds_the_hottest_auctions_per_sliding_window() {
    let naive = naive_q5(&input());
    check(
        "q5",
        queries::q5,
        |e, out| baseline::q5(e, &mut |r| out(r)),
        naive,
    );
}

#[test]
fn q7_finds_the_highest_bids_per_window() {
    let naive = naive_q7(&input());
    check(
        "q7",
        queries::q7,
        |e, out| baseline::q7(e, &mut |r| out(r)),
        naive,
    );
}

#[test]
fn q8_finds_persons_who_opened_an_auction_in_their_first_window() {
    let naive = naive_q8(&input());
    check(
        "q8",
        queries::q8,
        |e, out| baseline::q8(e, &mut |r| out(r)),
        naive,
    );
}

#[test]
fn digests_of_engine_and_baseline_agree_and_tell_queries_apart() {
    let source = source();
    let mut seen: Vec<Digest> = Vec::new();
    for q in Query::ALL {
        let hand = baseline_digest(q, &source);
        let engine = engine_digest(q, source.clone(), &RunArgs::threads(2))
            .unwrap_or_else(|e| panic!("{} failed: {e}", q.name()));
        assert_eq!(engine, hand, "{}", q.name());
        assert!(
            !seen.contains(&hand),
            "{} has another query's digest",
            q.name()
        );
        seen.push(hand);
    }
}

fn bid(auction: u64, price: u64, ts_ms: u64) -> Event {
    Event::Bid(Bid {
        auction,
        bidder: 7,
        price,
        ts_ms,
    })
}

/// Ties are rare in generated data (one hot auction leads each window), so
/// they are scripted: every tied auction or bid is a row, on any number of
/// workers and whichever worker each tied key lands on.
#[test]
fn tied_maxima_are_all_reported() {
    use weir::testing::Script;
    // Window [0, 10 s): auctions 1 and 2 have two bids each, 3 has one; the
    // top price 500 is bid twice. Bids from 12 s on close it.
    let script = Script::new().records(&[
        bid(1, 500, 1_000),
        bid(2, 100, 2_000),
        bid(1, 200, 3_000),
        bid(3, 50, 4_000),
        bid(2, 500, 9_999),
        bid(4, 1, 12_000),
        bid(4, 1, 30_000),
    ]);
    for workers in [1, 2, 4] {
        let args = RunArgs::threads(workers);
        let q5 = engine_rows(queries::q5, script.clone(), &args).expect("q5 runs");
        let first: Vec<(u64, u64)> = q5
            .iter()
            .filter(|r| r.window_start == 0)
            .map(|r| (r.auction, r.bids))
            .collect();
        assert_eq!(first, vec![(1, 2), (2, 2)], "q5 on {workers} workers");
        let q7 = engine_rows(queries::q7, script.clone(), &args).expect("q7 runs");
        let top: Vec<(u64, u64, u64)> = q7
            .iter()
            .filter(|r| r.window_start == 0)
            .map(|r| (r.auction, r.price, r.ts_ms))
            .collect();
        assert_eq!(
            top,
            vec![(1, 500, 1_000), (2, 500, 9_999)],
            "q7 on {workers} workers"
        );
    }
}
