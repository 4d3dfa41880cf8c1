//! What each query outputs, and the constants that define the queries, so
//! the engine side, the hand-written baseline and the tests' naive versions
//! compute the same thing.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// q2 keeps bids on auctions whose id is a multiple of this.
pub const Q2_AUCTION_SKIP: u64 = 123;
/// q3's category.
pub const Q3_CATEGORY: u64 = 10;
/// q5's window size.
pub const Q5_SIZE: Duration = Duration::from_secs(10);
/// q5's window slide.
pub const Q5_SLIDE: Duration = Duration::from_secs(2);
/// q7's window size.
pub const Q7_SIZE: Duration = Duration::from_secs(10);
/// q8's window size.
pub const Q8_SIZE: Duration = Duration::from_secs(10);

/// q3: whether a person's state is one q3 looks for.
pub fn q3_local(state: &str) -> bool {
    matches!(state, "OR" | "ID" | "CA")
}

/// What q3 keeps of a person: the id, and name, city and state if the
/// person lives where q3 looks.
pub fn q3_person(p: crate::nexmark::Person) -> (u64, Option<(String, String, String)>) {
    let local = q3_local(&p.state).then_some((p.name, p.city, p.state));
    (p.id, local)
}

/// q1's conversion: cents of dollars to cents of euros, at 0.908, rounded
/// down (integers, so every side computes exactly the same).
pub fn euros(cents: u64) -> u64 {
    cents * 908 / 1_000
}

/// A q1 row.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Q1 {
    /// Auction.
    pub auction: u64,
    /// Bidder.
    pub bidder: u64,
    /// Price in euro cents.
    pub price_eur: u64,
    /// Event time.
    pub ts_ms: u64,
}

/// A q2 row.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Q2 {
    /// Auction.
    pub auction: u64,
    /// Price (cents).
    pub price: u64,
}

/// A q3 row.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Q3 {
    /// Seller's name.
    pub name: String,
    /// Seller's city.
    pub city: String,
    /// Seller's state.
    pub state: String,
    /// Auction.
    pub auction: u64,
}

/// A q4 row: a category's closings up to and including `at_ms`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Q4 {
    /// Category.
    pub category: u64,
    /// Closing time (ms).
    pub at_ms: u64,
    /// Auctions closed with a bid so far.
    pub closed: u64,
    /// Sum of their closing prices (cents); the average is `sum / closed`.
    pub sum: u64,
}

/// A q5 row.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Q5 {
    /// Window start (ms).
    pub window_start: u64,
    /// An auction with the most bids in the window.
    pub auction: u64,
    /// Its bids in the window.
    pub bids: u64,
}

/// A q7 row.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Q7 {
    /// Window start (ms).
    pub window_start: u64,
    /// The bid's auction.
    pub auction: u64,
    /// The bidder.
    pub bidder: u64,
    /// The highest price in the window (cents).
    pub price: u64,
    /// The bid's event time.
    pub ts_ms: u64,
}

/// A q8 row.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Q8 {
    /// Person.
    pub person: u64,
    /// Name.
    pub name: String,
    /// Window start (ms).
    pub window_start: u64,
}
