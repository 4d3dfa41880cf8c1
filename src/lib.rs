//! weir's example jobs live in `examples/`; this crate only hosts them and the
//! end-to-end tests in `tests/` that run them as real processes.
