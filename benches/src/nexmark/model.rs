//! The Nexmark event model and its generator.
//!
//! Follows the standard Nexmark generator (as in Apache Beam's and Flink's
//! Nexmark suites): event `n` is a person, an auction or a bid in the
//! 1 : 3 : 46 mix (`n % 50`: 0 is a person, 1..=3 auctions, the rest bids);
//! ids are dense and derived from `n` (person and auction ids start at
//! 1 000), so every event is a pure function of `(seed, n)` and any split can
//! generate its share without the others.
//!
//! * **Hot items.** A bid's auction is, with probability 1/2, the current
//!   "hot" auction (the latest id rounded down to a multiple of 100), else one
//!   of the 100 auctions in flight (or up to 10 ids ahead of the latest). Its
//!   bidder is, with probability 3/4, the hot bidder (latest person id rounded
//!   down to 100), else one of the 1 000 active persons (or up to 10 ahead).
//!   An auction's seller is hot the same way, with probability 3/4.
//! * **Prices** follow the Nexmark law: `round(10^(6u) * 100)` cents for a
//!   uniform `u` in `[0, 1)`, log-uniform from $1 to $1 000 000. An auction's
//!   reserve is its initial bid plus another such price.
//! * **Categories**: 5, ids 10 to 14, uniform.
//! * **Event time advances with the rate**: event `n`'s time is
//!   `start_ms + n / event_rate` seconds, to the millisecond, so event time
//!   is in order and a window of 10 s holds `10 × event_rate` events. An
//!   auction lasts a random time up to twice the time it takes for 100 more
//!   auctions to start (the "in flight" horizon).
//!
//! Where this differs from the standard model, on purpose: no `extra`
//! padding fields and no bid `channel`/`url` (they pad events to average
//! byte sizes; weir's records travel in memory, so padding would only
//! measure `memcpy`); the randomness is [`SplitMix64`] per event, not
//! `java.util.Random`, so the events are not byte-for-byte those of Beam's
//! generator (the distributions are); and event time has no out-of-order
//! delay (the queries are checked against exact expectations).

use serde::{Deserialize, Serialize};
use weir::rng::SplitMix64;

/// First person id.
pub const FIRST_PERSON_ID: u64 = 1_000;
/// First auction id.
pub const FIRST_AUCTION_ID: u64 = 1_000;
/// First category id.
pub const FIRST_CATEGORY_ID: u64 = 10;
/// Number of categories.
pub const CATEGORIES: u64 = 5;

const PROPORTION: u64 = 50;
const PERSON_SHARE: u64 = 1;
const AUCTION_SHARE: u64 = 3;
const ACTIVE_PEOPLE: u64 = 1_000;
const IN_FLIGHT_AUCTIONS: u64 = 100;
const ID_LEAD: u64 = 10;
const HOT_AUCTION_RATIO: u64 = 2;
const HOT_SELLER_RATIO: u64 = 4;
const HOT_BIDDER_RATIO: u64 = 4;
const HOT_ROUNDING: u64 = 100;

const FIRST_NAMES: [&str; 11] = [
    "Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter",
];
const LAST_NAMES: [&str; 9] = [
    "Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris",
];
/// The states persons live in.
pub const US_STATES: [&str; 6] = ["AZ", "CA", "ID", "OR", "WA", "WY"];
const US_CITIES: [&str; 10] = [
    "Phoenix",
    "Los Angeles",
    "San Francisco",
    "Boise",
    "Portland",
    "Bend",
    "Redmond",
    "Seattle",
    "Kent",
    "Cheyenne",
];

/// A new user of the auction site.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Person {
    /// Person id.
    pub id: u64,
    /// Full name.
    pub name: String,
    /// E-mail address.
    pub email: String,
    /// Credit card number.
    pub credit_card: String,
    /// City.
    pub city: String,
    /// US state.
    pub state: String,
    /// Event time (ms).
    pub ts_ms: u64,
}

/// A new auction.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Auction {
    /// Auction id.
    pub id: u64,
    /// Item name.
    pub item_name: String,
    /// Opening bid (cents).
    pub initial_bid: u64,
    /// Reserve price (cents).
    pub reserve: u64,
    /// Event time (ms): when it opens.
    pub ts_ms: u64,
    /// When it closes (ms, after `ts_ms`).
    pub expires: u64,
    /// Seller's person id.
    pub seller: u64,
    /// Category id.
    pub category: u64,
}

/// A bid on an auction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Bid {
    /// Auction id.
    pub auction: u64,
    /// Bidder's person id.
    pub bidder: u64,
    /// Price (cents).
    pub price: u64,
    /// Event time (ms).
    pub ts_ms: u64,
}

/// One Nexmark event. Persons and auctions are boxed so that the common
/// case, a bid, stays small.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Event {
    /// A new person.
    Person(Box<Person>),
    /// A new auction.
    Auction(Box<Auction>),
    /// A bid.
    Bid(Bid),
}

impl Event {
    /// The event time (ms).
    pub fn ts_ms(&self) -> u64 {
        match self {
            Event::Person(p) => p.ts_ms,
            Event::Auction(a) => a.ts_ms,
            Event::Bid(b) => b.ts_ms,
        }
    }
}

/// What the generator draws from.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    /// Seed of all randomness.
    pub seed: u64,
    /// Events per second of event time.
    pub event_rate: f64,
    /// Event time of event 0 (ms).
    pub start_ms: u64,
}

impl Default for Model {
    fn default() -> Self {
        Model {
            seed: 7,
            event_rate: 1_000_000.0,
            start_ms: 1_700_000_000_000,
        }
    }
}

impl Model {
    /// The event time of event `n` (ms).
    pub fn ts_ms(&self, n: u64) -> u64 {
        self.start_ms + (n as f64 * 1_000.0 / self.event_rate) as u64
    }

    /// Event `n`.
    pub fn event(&self, n: u64) -> Event {
        let mut rng = SplitMix64::for_item(self.seed, n);
        let ts_ms = self.ts_ms(n);
        let offset = n % PROPORTION;
        if offset < PERSON_SHARE {
            Event::Person(Box::new(self.person(n, ts_ms, &mut rng)))
        } else if offset < PERSON_SHARE + AUCTION_SHARE {
            Event::Auction(Box::new(self.auction(n, ts_ms, &mut rng)))
        } else {
            Event::Bid(self.bid(n, ts_ms, &mut rng))
        }
    }

    fn person(&self, n: u64, ts_ms: u64, rng: &mut SplitMix64) -> Person {
        let id = last_person(n) + FIRST_PERSON_ID;
        let first = pick(&FIRST_NAMES, rng);
        let last = pick(&LAST_NAMES, rng);
        let card: Vec<String> = (0..4)
            .map(|_| format!("{:04}", rng.below(10_000)))
            .collect();
        Person {
            id,
            name: format!("{first} {last}"),
            email: format!("{}@{}.com", word(rng, 7), word(rng, 5)),
            credit_card: card.join(" "),
            city: pick(&US_CITIES, rng).to_string(),
            state: pick(&US_STATES, rng).to_string(),
            ts_ms,
        }
    }

    fn auction(&self, n: u64, ts_ms: u64, rng: &mut SplitMix64) -> Auction {
        let id = last_auction(n) + FIRST_AUCTION_ID;
        let seller = if rng.below(HOT_SELLER_RATIO) > 0 {
            last_person(n) / HOT_ROUNDING * HOT_ROUNDING
        } else {
            next_person(n, rng)
        } + FIRST_PERSON_ID;
        let category = FIRST_CATEGORY_ID + rng.below(CATEGORIES);
        let initial_bid = price(rng);
        let reserve = initial_bid + price(rng);
        // Up to twice the time it takes for the in-flight auctions to turn over.
        let horizon_events = IN_FLIGHT_AUCTIONS * PROPORTION / AUCTION_SHARE;
        let horizon_ms = self.ts_ms(n + horizon_events) - ts_ms;
        let expires = ts_ms + 1 + rng.below((2 * horizon_ms).max(1));
        Auction {
            id,
            item_name: word(rng, 8),
            initial_bid,
            reserve,
            ts_ms,
            expires,
            seller,
            category,
        }
    }

    fn bid(&self, n: u64, ts_ms: u64, rng: &mut SplitMix64) -> Bid {
        let auction = if rng.below(HOT_AUCTION_RATIO) > 0 {
            last_auction(n) / HOT_ROUNDING * HOT_ROUNDING
        } else {
            next_auction(n, rng)
        } + FIRST_AUCTION_ID;
        let bidder = if rng.below(HOT_BIDDER_RATIO) > 0 {
            last_person(n) / HOT_ROUNDING * HOT_ROUNDING
        } else {
            next_person(n, rng)
        } + FIRST_PERSON_ID;
        Bid {
            auction,
            bidder,
            price: price(rng),
            ts_ms,
        }
    }
}

/// The 0-based id of the latest person created at or before event `n`.
/// Persons open each group of 50 events (one, at offset 0), so it is the
/// last person of `n`'s group.
fn last_person(n: u64) -> u64 {
    n / PROPORTION * PERSON_SHARE + PERSON_SHARE - 1
}

/// The 0-based id of the latest auction created at or before event `n`
/// (0 before the first one).
fn last_auction(n: u64) -> u64 {
    let epoch = n / PROPORTION;
    let offset = n % PROPORTION;
    let within = if offset < PERSON_SHARE {
        // Before this epoch's auctions: the previous epoch's last.
        return (epoch * AUCTION_SHARE).saturating_sub(1);
    } else if offset >= PERSON_SHARE + AUCTION_SHARE {
        AUCTION_SHARE - 1
    } else {
        offset - PERSON_SHARE
    };
    epoch * AUCTION_SHARE + within
}

/// A 0-based person id among the active ones (or a little ahead).
fn next_person(n: u64, rng: &mut SplitMix64) -> u64 {
    let people = last_person(n) + 1;
    let active = people.min(ACTIVE_PEOPLE);
    people - active + rng.below(active + ID_LEAD)
}

/// A 0-based auction id among those in flight (or a little ahead).
fn next_auction(n: u64, rng: &mut SplitMix64) -> u64 {
    let last = last_auction(n);
    let first = last.saturating_sub(IN_FLIGHT_AUCTIONS);
    first + rng.below(last - first + 1 + ID_LEAD)
}

/// The Nexmark price law: log-uniform from 100 to 100 000 000 cents.
fn price(rng: &mut SplitMix64) -> u64 {
    (10f64.powf(rng.unit() * 6.0) * 100.0).round() as u64
}

fn pick<'a>(items: &[&'a str], rng: &mut SplitMix64) -> &'a str {
    items[rng.below(items.len() as u64) as usize]
}

/// A lower-case word of `len` letters.
fn word(rng: &mut SplitMix64, len: usize) -> String {
    (0..len)
        .map(|_| char::from(b'a' + rng.below(26) as u8))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_is_one_person_three_auctions_forty_six_bids_per_fifty() {
        let model = Model::default();
        let (mut persons, mut auctions, mut bids) = (0, 0, 0);
        for n in 0..50_000 {
            match model.event(n) {
                Event::Person(_) => persons += 1,
                Event::Auction(_) => auctions += 1,
                Event::Bid(_) => bids += 1,
            }
        }
        assert_eq!((persons, auctions, bids), (1_000, 3_000, 46_000));
    }

    #[test]
    fn ids_are_dense_and_bids_name_recent_auctions_and_persons() {
        let model = Model::default();
        let mut next_person = FIRST_PERSON_ID;
        let mut next_auction = FIRST_AUCTION_ID;
        for n in 0..20_000 {
            match model.event(n) {
                Event::Person(p) => {
                    assert_eq!(p.id, next_person);
                    next_person += 1;
                }
                Event::Auction(a) => {
                    assert_eq!(a.id, next_auction);
                    assert!(a.expires > a.ts_ms);
                    assert!(
                        (FIRST_CATEGORY_ID..FIRST_CATEGORY_ID + CATEGORIES).contains(&a.category)
                    );
                    assert!(a.seller < next_person + ID_LEAD);
                    next_auction += 1;
                }
                Event::Bid(b) => {
                    assert!(b.auction + IN_FLIGHT_AUCTIONS + 1 >= next_auction);
                    assert!(b.auction < next_auction + ID_LEAD);
                    assert!(b.bidder < next_person + ID_LEAD);
                    assert!((100..=100_000_000).contains(&b.price));
                }
            }
        }
    }

    #[test]
    fn half_the_bids_go_to_the_hot_auction() {
        let model = Model::default();
        let bids: Vec<Bid> = (0..100_000)
            .filter_map(|n| match model.event(n) {
                Event::Bid(b) => Some(b),
                _ => None,
            })
            .collect();
        let hot = bids
            .iter()
            .filter(|b| b.auction % HOT_ROUNDING == 0)
            .count();
        let share = hot as f64 / bids.len() as f64;
        assert!((0.48..0.56).contains(&share), "hot share {share}");
    }

    #[test]
    fn event_time_advances_with_the_rate_and_events_are_pure() {
        let model = Model {
            event_rate: 1_000.0,
            ..Model::default()
        };
        assert_eq!(model.ts_ms(0), model.start_ms);
        assert_eq!(model.ts_ms(1_000), model.start_ms + 1_000);
        assert_eq!(model.event(12_345), model.event(12_345));
        assert_ne!(model.event(51), model.event(52));
    }
}
