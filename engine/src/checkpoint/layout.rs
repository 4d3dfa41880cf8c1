//! The byte layout of everything a checkpoint stores: one place builds every key.
//!
//! All keys start with a one-byte tag, so kinds never interleave:
//!
//! | tag | key | value |
//! |---|---|---|
//! | `b` | `b` `operator` `0x00` `key group u16 BE` `key` | the key's state at the base epoch |
//! | `d` | `d` `epoch u64 BE` `operator` `0x00` `key group u16 BE` `key` | the key's state after `epoch`: [`push_delta_value`] |
//! | `p` | `p` `epoch u64 BE` `source` `0x00` `split u32 BE` | the split's position after `epoch` |
//! | `q` | `q` `source` `0x00` `split u32 BE` | `epoch u64 LE`, then the split's newest position folded into the base |
//! | `m` | `m` `epoch u64 BE` `step` | this worker's flush marker for `epoch`: the flush's checksum, `u64 LE` |
//! | `f` | `f` | the epoch the base holds (folded through), `u64 LE` |
//!
//! Big-endian integers make byte order agree with numeric order, so one
//! RocksDB range scan reads a key-group range of one operator, and deltas
//! come out in epoch order.
//!
//! A split's position (the value of a `p` key) is [`SplitPosition`]: the
//! source operator writes it with [`split_position`] and a restore and
//! `weir-checkpoint inspect` read it with [`parse_split_position`].

use crate::ids::{KeyGroup, SplitId};
use crate::source::{position_of, position_word};

/// The first byte of an operator's own key bytes (the `key` of a base or
/// delta key): a key's state, then the encoded key.
pub const ENTRY_KEY: u8 = 0;
/// An operator's buffered records of one stamp, then the encoded stamp.
pub const ENTRY_BUFFERED: u8 = 1;
/// The highest watermark the operator had fired through, alone, in
/// [`META_GROUP`].
pub const ENTRY_WATERMARK: u8 = 2;
/// The key group of an operator's own entries: no key has it (keys' groups
/// are below `KEY_GROUPS`).
pub const META_GROUP: KeyGroup = KeyGroup(u16::MAX);

/// Separates a name from what follows; names may not contain it.
const SEP: u8 = 0;

/// The tag of base state.
pub const BASE: u8 = b'b';
/// The tag of per-epoch state deltas.
pub const DELTA: u8 = b'd';
/// The tag of per-epoch source positions.
pub const POSITION: u8 = b'p';
/// The tag of per-epoch flush markers.
pub const MARKER: u8 = b'm';
/// The tag of folded positions.
pub const BASE_POSITION: u8 = b'q';
/// The key of the folded-through epoch.
pub const FOLDED: &[u8] = b"f";

fn push_name(out: &mut Vec<u8>, name: &str) {
    out.extend_from_slice(name.as_bytes());
    out.push(SEP);
}

/// Checks that a step name can be stored (no NUL bytes).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.as_bytes().contains(&SEP)
}

/// `b` operator key-group key.
pub fn base_key(operator: &str, group: KeyGroup, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + operator.len() + 3 + key.len());
    push_base_key(&mut out, operator, group, key);
    out
}

/// Appends the base key of [`base_key`] to `out`.
pub fn push_base_key(out: &mut Vec<u8>, operator: &str, group: KeyGroup, key: &[u8]) {
    out.push(BASE);
    push_name(out, operator);
    out.extend_from_slice(&group.0.to_be_bytes());
    out.extend_from_slice(key);
}

/// `d` epoch operator key-group key.
pub fn delta_key(epoch: u64, operator: &str, group: KeyGroup, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + operator.len() + 3 + key.len());
    push_delta_key(&mut out, epoch, operator, group, key);
    out
}

/// Appends the delta key of [`delta_key`] to `out`.
pub fn push_delta_key(out: &mut Vec<u8>, epoch: u64, operator: &str, group: KeyGroup, key: &[u8]) {
    out.push(DELTA);
    out.extend_from_slice(&epoch.to_be_bytes());
    push_name(out, operator);
    out.extend_from_slice(&group.0.to_be_bytes());
    out.extend_from_slice(key);
}

/// The range of base keys of `operator` in key groups `[first, last]`.
pub fn base_range(operator: &str, first: KeyGroup, last: KeyGroup) -> (Vec<u8>, Vec<u8>) {
    (
        base_key(operator, first, &[]),
        range_end(base_key(operator, last, &[])),
    )
}

/// The range of delta keys of `epoch` and `operator` in key groups `[first, last]`.
pub fn delta_range(
    epoch: u64,
    operator: &str,
    first: KeyGroup,
    last: KeyGroup,
) -> (Vec<u8>, Vec<u8>) {
    (
        delta_key(epoch, operator, first, &[]),
        range_end(delta_key(epoch, operator, last, &[])),
    )
}

/// The range of all delta keys of one epoch.
pub fn delta_epoch_range(epoch: u64) -> (Vec<u8>, Vec<u8>) {
    let mut start = vec![DELTA];
    start.extend_from_slice(&epoch.to_be_bytes());
    let end = range_end(start.clone());
    (start, end)
}

/// `p` epoch source split.
pub fn position_key(epoch: u64, source: &str, split: SplitId) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + source.len() + 5);
    out.push(POSITION);
    out.extend_from_slice(&epoch.to_be_bytes());
    push_name(&mut out, source);
    out.extend_from_slice(&split.0.to_be_bytes());
    out
}

/// `q` source split: a split's newest position folded into the base.
pub fn base_position_key(source: &str, split: SplitId) -> Vec<u8> {
    let mut out = vec![BASE_POSITION];
    push_name(&mut out, source);
    out.extend_from_slice(&split.0.to_be_bytes());
    out
}

/// Splits a folded position key into (source, split).
pub fn parse_base_position_key(key: &[u8]) -> Option<(&str, SplitId)> {
    if key.first()? != &BASE_POSITION {
        return None;
    }
    let rest = &key[1..];
    let sep = rest.iter().position(|b| *b == SEP)?;
    let name = std::str::from_utf8(&rest[..sep]).ok()?;
    let split = u32::from_be_bytes(rest.get(sep + 1..sep + 5)?.try_into().ok()?);
    Some((name, SplitId(split)))
}

/// The range of all position keys of one epoch.
pub fn position_epoch_range(epoch: u64) -> (Vec<u8>, Vec<u8>) {
    let mut start = vec![POSITION];
    start.extend_from_slice(&epoch.to_be_bytes());
    let end = range_end(start.clone());
    (start, end)
}

/// `m` epoch step.
pub fn marker_key(epoch: u64, step: &str) -> Vec<u8> {
    let mut out = vec![MARKER];
    out.extend_from_slice(&epoch.to_be_bytes());
    out.extend_from_slice(step.as_bytes());
    out
}

/// The range of one source's position keys of one epoch.
pub fn position_range(epoch: u64, source: &str) -> (Vec<u8>, Vec<u8>) {
    let mut start = vec![POSITION];
    start.extend_from_slice(&epoch.to_be_bytes());
    push_name(&mut start, source);
    let end = range_end(start.clone());
    (start, end)
}

/// The smallest key greater than every key that starts with `prefix`, as an
/// exclusive range end: the prefix with its last byte below 0xff
/// incremented. (A prefix of all 0xff bytes has no end: `[0xff; 9]`
/// stands in, past every key this layout makes.)
pub fn range_end(mut prefix: Vec<u8>) -> Vec<u8> {
    while let Some(last) = prefix.pop() {
        if last < 0xff {
            prefix.push(last + 1);
            return prefix;
        }
    }
    vec![0xff; 9]
}

/// Splits a base or delta key back into (operator, key group, key bytes).
pub fn parse_state_key(key: &[u8]) -> Option<(&str, KeyGroup, &[u8])> {
    let rest = match *key.first()? {
        BASE => &key[1..],
        DELTA => key.get(9..)?,
        _ => return None,
    };
    let sep = rest.iter().position(|b| *b == SEP)?;
    let name = std::str::from_utf8(&rest[..sep]).ok()?;
    let group = u16::from_be_bytes([*rest.get(sep + 1)?, *rest.get(sep + 2)?]);
    Some((name, KeyGroup(group), &rest[sep + 3..]))
}

/// The epoch of a delta, position or marker key.
pub fn epoch_of(key: &[u8]) -> Option<u64> {
    match *key.first()? {
        DELTA | POSITION | MARKER => Some(u64::from_be_bytes(key.get(1..9)?.try_into().ok()?)),
        _ => None,
    }
}

/// Splits a position key back into (epoch, source, split).
pub fn parse_position_key(key: &[u8]) -> Option<(u64, &str, SplitId)> {
    if key.first()? != &POSITION {
        return None;
    }
    let epoch = epoch_of(key)?;
    let rest = key.get(9..)?;
    let sep = rest.iter().position(|b| *b == SEP)?;
    let name = std::str::from_utf8(&rest[..sep]).ok()?;
    let split = u32::from_be_bytes(rest.get(sep + 1..sep + 5)?.try_into().ok()?);
    Some((epoch, name, SplitId(split)))
}

/// Appends a delta's value: a tag byte (1: the key's state follows, 0: the
/// key's state was removed), then the state.
pub fn push_delta_value(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        Some(v) => {
            out.push(1);
            out.extend_from_slice(v);
        }
        None => out.push(0),
    }
}

/// The state in a delta's value, `None` when the delta removes the key.
pub fn parse_delta_value(value: &[u8]) -> Option<&[u8]> {
    match value.split_first() {
        Some((1, rest)) => Some(rest),
        _ => None,
    }
}

/// A split's position as the source operator checkpoints it: three
/// little-endian `u64` words — its watermark, whether it ended, its record
/// offset — then the reader's own position bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitPosition {
    /// The split's watermark (ms).
    pub watermark: u64,
    /// Whether the split had ended.
    pub done: bool,
    /// Records (good or bad) read: the offset of the next one.
    pub offset: u64,
    /// The reader's own position.
    pub reader: Vec<u8>,
}

/// The bytes of a split's position (see [`SplitPosition`]).
pub fn split_position(watermark: u64, done: bool, offset: u64, reader: &[u8]) -> Vec<u8> {
    let mut out = position_of(&[watermark, u64::from(done), offset]);
    out.extend_from_slice(reader);
    out
}

/// Decodes the bytes of [`split_position`]; too short is a fatal fault.
pub fn parse_split_position(bytes: &[u8]) -> Result<SplitPosition, crate::error::Fault> {
    Ok(SplitPosition {
        watermark: position_word(bytes, 0)?,
        done: position_word(bytes, 1)? != 0,
        offset: position_word(bytes, 2)?,
        reader: bytes.get(24..).unwrap_or_default().to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_values_round_trip() {
        for value in [None, Some(&b""[..]), Some(&b"state"[..])] {
            let mut out = Vec::new();
            push_delta_value(&mut out, value);
            assert_eq!(parse_delta_value(&out), value);
        }
    }

    #[test]
    fn split_positions_round_trip() {
        let bytes = split_position(7_000, true, 42, b"reader");
        assert_eq!(
            parse_split_position(&bytes),
            Ok(SplitPosition {
                watermark: 7_000,
                done: true,
                offset: 42,
                reader: b"reader".to_vec(),
            })
        );
        assert_eq!(
            parse_split_position(&bytes[..24]).map(|p| p.reader),
            Ok(Vec::new())
        );
        assert!(parse_split_position(&bytes[..23]).is_err());
    }

    #[test]
    fn keys_round_trip() {
        let k = base_key("windows", KeyGroup(300), b"card-7");
        assert_eq!(
            parse_state_key(&k),
            Some(("windows", KeyGroup(300), &b"card-7"[..]))
        );
        let d = delta_key(42, "windows", KeyGroup(5), b"x");
        assert_eq!(
            parse_state_key(&d),
            Some(("windows", KeyGroup(5), &b"x"[..]))
        );
        assert_eq!(epoch_of(&d), Some(42));
        let p = position_key(7, "readings", SplitId(3));
        assert_eq!(parse_position_key(&p), Some((7, "readings", SplitId(3))));
        assert_eq!(epoch_of(&marker_key(9, "op")), Some(9));
    }

    #[test]
    fn ranges_select_exactly_their_key_groups_and_epochs() {
        let (lo, hi) = base_range("op", KeyGroup(10), KeyGroup(20));
        let inside = |k: &[u8]| lo.as_slice() <= k && k < hi.as_slice();
        assert!(inside(&base_key("op", KeyGroup(10), b"")));
        assert!(inside(&base_key("op", KeyGroup(20), &[0xff; 8])));
        assert!(!inside(&base_key("op", KeyGroup(9), &[0xff; 8])));
        assert!(!inside(&base_key("op", KeyGroup(21), b"")));
        // A longer operator name sharing the prefix is another operator.
        assert!(!inside(&base_key("op2", KeyGroup(15), b"k")));
        let (lo, hi) = delta_epoch_range(5);
        let inside = |k: &[u8]| lo.as_slice() <= k && k < hi.as_slice();
        assert!(inside(&delta_key(5, "a", KeyGroup(0), b"")));
        assert!(!inside(&delta_key(4, "a", KeyGroup(127), b"zz")));
        assert!(!inside(&delta_key(6, "a", KeyGroup(0), b"")));
        // Deltas sort by epoch first.
        assert!(delta_key(1, "zz", KeyGroup(127), b"z") < delta_key(2, "a", KeyGroup(0), b""));
    }

    #[test]
    fn names_with_nul_are_rejected() {
        assert!(valid_name("card_activity"));
        assert!(!valid_name("bad\0name"));
        assert!(!valid_name(""));
    }
}
