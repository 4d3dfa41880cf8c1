//! What may flow through a weir stream.

use std::hash::Hash;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A record type: cloneable, sendable between threads, and serializable so it
/// can cross process boundaries. Implemented for every such type.
pub trait Data: Clone + Send + Serialize + DeserializeOwned + 'static {}
impl<T: Clone + Send + Serialize + DeserializeOwned + 'static> Data for T {}

/// A key type: [`Data`] that is also hashable (to route it to its key group)
/// and totally ordered (so results can be emitted in a stable order).
pub trait Key: Data + Hash + Eq + Ord {}
impl<T: Data + Hash + Eq + Ord> Key for T {}
