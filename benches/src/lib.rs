//! Benches live in `benches/`; see each file for what it isolates.
