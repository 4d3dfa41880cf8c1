//! The record types the generator produces, one per example domain.

use serde::{Deserialize, Deserializer, Serialize};
use weir::rng::SplitMix64;

use super::Keys;
use crate::fields::{self, CountryCode};

/// What the generator needs from a record type.
pub trait Generated: weir::Data {
    /// The CSV header line (column names, comma-separated).
    const HEADER: &'static str;
    /// Record `index` with event time `ts_ms`, drawn from `rng`.
    fn generate(index: u64, ts_ms: u64, keys: &Keys, rng: &mut SplitMix64) -> Self;
    /// The record's event time (ms), its `ts_ms` field.
    fn ts_ms(&self) -> u64;
    /// Sets the record's event time (a job taking event time from
    /// elsewhere, such as the Kafka timestamp, keeps the field true).
    fn set_ts_ms(&mut self, ts_ms: u64);
    /// A malformed CSV line of this type (for the dead-letter path).
    fn malformed(index: u64, rng: &mut SplitMix64) -> String {
        let columns: Vec<&str> = Self::HEADER.split(',').collect();
        match rng.below(3) {
            // Too few fields.
            0 => format!("{index}"),
            // Nothing parses.
            1 => vec!["x"; columns.len()].join(","),
            // Every field fine but the timestamp.
            _ => columns
                .iter()
                .map(|c| match *c {
                    "ts_ms" => "not-a-time",
                    "country" => "US",
                    "status" => "200",
                    _ => "1",
                })
                .collect::<Vec<_>>()
                .join(","),
        }
    }
}

/// A card transaction (`fraud` example).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Transaction {
    /// Card id.
    pub card: u64,
    /// Merchant id.
    pub merchant: u32,
    /// Amount in cents (at most [`fields::MAX_AMOUNT_CENTS`] when decoded).
    #[serde(deserialize_with = "amount_cents")]
    pub amount_cents: u64,
    /// ISO 3166-1 alpha-2 country code of the merchant (two ASCII uppercase
    /// letters when decoded).
    #[serde(deserialize_with = "country")]
    pub country: CountryCode,
    /// Event time (ms).
    pub ts_ms: u64,
}

const COUNTRIES: [CountryCode; 8] = [
    CountryCode::known(*b"US"),
    CountryCode::known(*b"GB"),
    CountryCode::known(*b"DE"),
    CountryCode::known(*b"FR"),
    CountryCode::known(*b"NL"),
    CountryCode::known(*b"JP"),
    CountryCode::known(*b"BR"),
    CountryCode::known(*b"IN"),
];

impl Generated for Transaction {
    const HEADER: &'static str = "card,merchant,amount_cents,country,ts_ms";
    fn ts_ms(&self) -> u64 {
        self.ts_ms
    }
    fn set_ts_ms(&mut self, ts_ms: u64) {
        self.ts_ms = ts_ms;
    }
    fn generate(_index: u64, ts_ms: u64, keys: &Keys, rng: &mut SplitMix64) -> Self {
        let card = keys.pick(rng);
        // Cards shop at home, and now and then abroad.
        let home = (card % COUNTRIES.len() as u64) as usize;
        let country = if rng.chance(0.002) {
            COUNTRIES[rng.below(COUNTRIES.len() as u64) as usize]
        } else {
            COUNTRIES[home]
        };
        // Mostly small amounts, a long tail of large ones.
        let amount_cents = if rng.chance(0.01) {
            50_000 + rng.below(500_000)
        } else {
            100 + rng.below(10_000)
        };
        Transaction {
            card,
            merchant: rng.below(5_000) as u32,
            amount_cents,
            country,
            ts_ms,
        }
    }
}

/// A service request (`metrics` example).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Request {
    /// Service name.
    pub service: String,
    /// Endpoint path.
    pub endpoint: String,
    /// HTTP status (100 to 599 when decoded).
    #[serde(deserialize_with = "status")]
    pub status: u16,
    /// Latency in microseconds (at most [`fields::MAX_LATENCY_US`] when decoded).
    #[serde(deserialize_with = "latency_us")]
    pub latency_us: u64,
    /// Event time (ms).
    pub ts_ms: u64,
}

const ENDPOINTS: [&str; 5] = ["/", "/login", "/search", "/cart", "/checkout"];

impl Generated for Request {
    const HEADER: &'static str = "service,endpoint,status,latency_us,ts_ms";
    fn ts_ms(&self) -> u64 {
        self.ts_ms
    }
    fn set_ts_ms(&mut self, ts_ms: u64) {
        self.ts_ms = ts_ms;
    }
    fn generate(_index: u64, ts_ms: u64, keys: &Keys, rng: &mut SplitMix64) -> Self {
        let service = keys.pick(rng);
        // Service 0 has bad minutes: every 7th minute its errors and latency jump.
        let degraded = service == 0 && (ts_ms / 60_000) % 7 == 3;
        let error_rate = if degraded { 0.2 } else { 0.01 };
        let status = if rng.chance(error_rate) {
            500
        } else if rng.chance(0.03) {
            404
        } else {
            200
        };
        let base = 2_000 + rng.below(8_000);
        let latency_us = if degraded || rng.chance(0.005) {
            base * (10 + rng.below(40))
        } else {
            base
        };
        Request {
            service: format!("svc-{service}"),
            endpoint: ENDPOINTS[rng.below(ENDPOINTS.len() as u64) as usize].to_string(),
            status,
            latency_us,
            ts_ms,
        }
    }
}

/// A sensor reading (`iot` example).
#[derive(Clone, Debug, PartialEq, PartialOrd, Serialize, Deserialize)]
pub struct Reading {
    /// Device id.
    pub device: u64,
    /// Event time (ms).
    pub ts_ms: u64,
    /// Measured value (e.g. °C); finite when decoded.
    #[serde(deserialize_with = "value")]
    pub value: f64,
}

impl Generated for Reading {
    const HEADER: &'static str = "device,ts_ms,value";
    fn ts_ms(&self) -> u64 {
        self.ts_ms
    }
    fn set_ts_ms(&mut self, ts_ms: u64) {
        self.ts_ms = ts_ms;
    }
    fn generate(_index: u64, ts_ms: u64, keys: &Keys, rng: &mut SplitMix64) -> Self {
        let mut device = keys.pick(rng);
        // Each device goes quiet one minute in five, so sessions of activity end.
        if (device + ts_ms / 60_000).is_multiple_of(5) {
            device = (device + 1) % keys.count();
        }
        let base = 15.0 + (device % 10) as f64;
        let value = if rng.chance(0.001) {
            // A faulty sensor spike.
            150.0 + rng.unit() * 50.0
        } else {
            // Two decimals, so values print and parse exactly.
            ((base + rng.unit() * 10.0) * 100.0).round() / 100.0
        };
        Reading {
            device,
            ts_ms,
            value,
        }
    }
}

/// An auction bid (Nexmark-style).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Bid {
    /// Auction id.
    pub auction: u64,
    /// Bidder id.
    pub bidder: u64,
    /// Bid in cents.
    pub price_cents: u64,
    /// Event time (ms).
    pub ts_ms: u64,
}

impl Generated for Bid {
    const HEADER: &'static str = "auction,bidder,price_cents,ts_ms";
    fn ts_ms(&self) -> u64 {
        self.ts_ms
    }
    fn set_ts_ms(&mut self, ts_ms: u64) {
        self.ts_ms = ts_ms;
    }
    fn generate(_index: u64, ts_ms: u64, keys: &Keys, rng: &mut SplitMix64) -> Self {
        Bid {
            auction: keys.pick(rng),
            bidder: rng.below(100_000),
            price_cents: 100 + rng.below(1_000_000),
            ts_ms,
        }
    }
}

// Field checks for decoding: a field that makes no sense for the jobs fails
// to decode, naming itself, so its record becomes a dead letter.

fn amount_cents<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    fields::amount_cents(d, "amount_cents")
}

fn country<'de, D: Deserializer<'de>>(d: D) -> Result<CountryCode, D::Error> {
    fields::country_code(d, "country")
}

fn status<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    fields::http_status(d, "status")
}

fn latency_us<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    fields::latency_us(d, "latency_us")
}

fn value<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    fields::finite(d, "value")
}
