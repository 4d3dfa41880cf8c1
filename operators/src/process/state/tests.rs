//! The cells, their encoding and TTL.

use serde::{Deserialize, Serialize};

use super::*;

#[derive(Default, Serialize, Deserialize)]
struct S {
    value: ValueState<u32>,
    list: ListState<String>,
    map: MapState<u8, i64>,
}

fn with_ttl() -> S {
    S {
        value: ValueState::with_ttl(Duration::from_millis(100)),
        list: ListState::with_ttl(Duration::from_millis(100)),
        map: MapState::with_ttl(Duration::from_millis(100)),
    }
}

#[test]
fn cells_round_trip_with_and_without_ttl() {
    for mut s in [S::default(), with_ttl()] {
        at(50, || {
            s.value.set(7);
            s.list.push("a".into());
            s.map.insert(1, -1);
        });
        let back: S =
            bincode::deserialize(&bincode::serialize(&s).expect("encodes")).expect("decodes");
        at(60, || {
            assert_eq!(back.value.get(), Some(&7));
            assert_eq!(back.list.iter().collect::<Vec<_>>(), vec!["a"]);
            assert_eq!(back.map.get(&1), Some(&-1));
        });
        assert_eq!(back.value.ttl(), s.value.ttl());
    }
}

#[test]
fn entries_expire_ttl_after_their_write() {
    let mut s = with_ttl();
    let ((), next) = at(1_000, || {
        s.value.set(1);
        s.list.push("old".into());
        s.map.insert(1, 10);
    });
    assert_eq!(next, Some(1_100));
    let ((), next) = at(1_050, || {
        s.list.push("new".into());
        s.map.insert(2, 20);
    });
    assert_eq!(next, Some(1_150));
    at(1_099, || {
        assert_eq!(s.value.get(), Some(&1));
        assert_eq!(s.list.len(), 2);
    });
    at(1_100, || {
        assert_eq!(s.value.get(), None);
        assert!(!s.value.is_set());
        assert_eq!(s.list.iter().collect::<Vec<_>>(), vec!["new"]);
        assert_eq!(s.map.keys().copied().collect::<Vec<_>>(), vec![2]);
        assert_eq!(s.map.get(&1), None);
    });
    // Compacting drops what expired, keeps the rest and its expiry.
    assert!(compact(&s, 1_099).0.is_none(), "nothing expired yet");
    let (compacted, next) = compact(&s, 1_100);
    let compacted = compacted.expect("entries expired");
    assert_eq!(next, Some(1_150));
    assert_eq!(compacted.list.items.len(), 1);
    assert_eq!(compacted.map.entries.len(), 1);
    assert!(compacted.value.value.is_none());
    let (empty, next) = compact(&compacted, 1_150);
    let empty = empty.expect("entries expired");
    assert_eq!(next, None);
    assert!(is_default(
        &empty,
        &bincode::serialize(&with_ttl()).expect("encodes")
    ));
}

#[test]
fn writes_refresh_reads_do_not() {
    let mut s = with_ttl();
    at(0, || s.map.insert(1, 1));
    at(90, || {
        let _ = s.map.get(&1);
        let _ = s.value.get();
    });
    at(99, || {
        if let Some(v) = s.map.get_mut(&1) {
            *v += 1;
        }
    });
    at(150, || assert_eq!(s.map.get(&1), Some(&2)));
    at(198, || assert_eq!(s.map.get(&1), Some(&2)));
    at(199, || assert_eq!(s.map.get(&1), None));
    // An expired value is replaced, not updated, by get_or_insert_with.
    at(300, || *s.map.get_or_insert_with(1, || 40) += 2);
    at(301, || assert_eq!(s.map.get(&1), Some(&42)));
}

#[test]
fn ttls_near_the_end_of_time_saturate() {
    const MAX: u64 = u64::MAX;
    // (written, ttl, now, live?): an entry lives while written + ttl >
    // now, with the sum saturating at MAX (it then lives until the end
    // of time, when the watermark reaches MAX).
    let cases = [
        (0, 1, 0, true),
        (0, 1, 1, false),
        (MAX - 10, 5, MAX - 6, true),
        (MAX - 10, 5, MAX - 5, false),
        (MAX - 10, 10, MAX - 1, true),
        (MAX - 10, 10, MAX, false),
        (MAX - 10, 100, MAX - 1, true),
        (MAX - 10, 100, MAX, false),
        (MAX, 1, MAX, false),
        (1 << 63, MAX, MAX - 1, true),
        (1 << 63, MAX, MAX, false),
    ];
    for (written, ttl, now, expected) in cases {
        assert_eq!(
            live(Some(now), Some(ttl), written),
            expected,
            "written {written} ttl {ttl} now {now}"
        );
    }
    assert_eq!(
        ttl_ms(Duration::MAX),
        MAX,
        "a TTL too long for u64 ms saturates"
    );
    assert_eq!(ttl_ms(Duration::ZERO), 1);
    // A write near the end of time expires at MAX, not at a wrapped time.
    let mut s = with_ttl();
    let ((), next) = at(MAX - 10, || s.value.set(1));
    assert_eq!(next, Some(MAX));
    at(MAX - 1, || assert_eq!(s.value.get(), Some(&1)));
    at(MAX, || assert_eq!(s.value.get(), None));
    let (compacted, next) = compact(&s, MAX);
    assert!(compacted.is_some_and(|c| c.value.value.is_none()));
    assert_eq!(next, None);
}

#[test]
fn a_default_state_is_recognised_cheaply() {
    let default = encode_fresh(&S::default());
    let mut s = S::default();
    assert!(is_default(&s, &default));
    s.list.push("x".repeat(10_000));
    assert!(!is_default(&s, &default));
    s.list.clear();
    assert!(is_default(&s, &default));
}
