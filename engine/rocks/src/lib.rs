//! # weir-rocks
//!
//! The RocksDB state backend for weir's checkpoints: [`RocksStore`]
//! implements the engine's [`StateStore`] (which never imports RocksDB) on one
//! RocksDB database per worker. Batches are written with a synced WAL, so a
//! batch that returned is on disk, and a crash never leaves half of one.
#![deny(missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::{Options, WriteBatch, WriteOptions, DB};
use weir::backend::{Backend, BackgroundWriter, Batch, Op, StateStore, StoreError};
use weir::config::BackendHandle;

/// The RocksDB backend: one database per worker.
pub struct Rocks;

impl Backend for Rocks {
    fn open(&self, path: &Path) -> Result<Box<dyn StateStore>, StoreError> {
        Ok(Box::new(RocksStore::open(path)?))
    }
    fn open_read_only(&self, path: &Path) -> Result<Box<dyn StateStore>, StoreError> {
        Ok(Box::new(RocksStore::open_read_only(path)?))
    }
}

/// The RocksDB backend, ready for `RunArgs::backend`.
pub fn backend() -> BackendHandle {
    BackendHandle(Arc::new(Rocks))
}

/// A worker's checkpoint store in a RocksDB database.
pub struct RocksStore {
    db: Arc<DB>,
    path: PathBuf,
    sync: WriteOptions,
    /// Opened for writing (a read-only store has no background writer).
    writable: bool,
}

impl RocksStore {
    /// Opens (creating if needed) the database at `path` for writing.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let mut options = Options::default();
        options.create_if_missing(true);
        // Checkpoint data is written once and read on restore: keep the
        // memory footprint small.
        options.set_max_open_files(64);
        options.set_keep_log_file_num(2);
        let db = DB::open(&options, &path).map_err(|e| error(&path, "open", e))?;
        Ok(RocksStore {
            db: Arc::new(db),
            path,
            sync: synced(),
            writable: true,
        })
    }

    /// Opens an existing database read-only (restore reads other workers'
    /// stores this way while they may be open elsewhere).
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let options = Options::default();
        let db = DB::open_for_read_only(&options, &path, false)
            .map_err(|e| error(&path, "open read-only", e))?;
        Ok(RocksStore {
            db: Arc::new(db),
            path,
            sync: WriteOptions::default(),
            writable: false,
        })
    }

    /// Where the database lives.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Write options that sync the WAL before returning.
fn synced() -> WriteOptions {
    let mut sync = WriteOptions::default();
    sync.set_sync(true);
    sync
}

/// Writes to a [`RocksStore`]'s database from another thread (RocksDB takes
/// writes from several threads at once).
struct RocksWriter {
    db: Arc<DB>,
    path: PathBuf,
}

impl BackgroundWriter for RocksWriter {
    fn write(&mut self, batch: &Batch) -> Result<(), StoreError> {
        write_with(&self.db, &self.path, batch, &synced())
    }

    fn write_unsynced(&mut self, batch: &Batch) -> Result<(), StoreError> {
        write_with(&self.db, &self.path, batch, &WriteOptions::default())
    }
}

fn error(path: &Path, what: &str, e: rocksdb::Error) -> StoreError {
    StoreError(format!("{what} {}: {e}", path.display()))
}

/// Applies `batch` to `db` with `options`.
fn write_with(
    db: &DB,
    path: &Path,
    batch: &Batch,
    options: &WriteOptions,
) -> Result<(), StoreError> {
    // Sized up front: growing a batch copies it again and again.
    let mut rocks = WriteBatch::with_capacity_bytes(batch.size_in_bytes() + 16 * batch.len() + 64);
    for op in batch.ops() {
        match op {
            Op::Put(k, v) => rocks.put(k, v),
            Op::Delete(k) => rocks.delete(k),
            Op::DeleteRange(s, e) => rocks.delete_range(s, e),
        }
    }
    db.write_opt(rocks, options)
        .map_err(|e| error(path, "write", e))
}

impl StateStore for RocksStore {
    fn write(&mut self, batch: &Batch) -> Result<(), StoreError> {
        write_with(&self.db, &self.path, batch, &self.sync)
    }

    fn write_unsynced(&mut self, batch: &Batch) -> Result<(), StoreError> {
        // WAL on, no sync: the next synced write syncs the log up to it.
        write_with(&self.db, &self.path, batch, &WriteOptions::default())
    }

    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<(), StoreError> {
        let mut options = rocksdb::ReadOptions::default();
        options.set_iterate_upper_bound(end.to_vec());
        let iter = self.db.iterator_opt(
            rocksdb::IteratorMode::From(start, rocksdb::Direction::Forward),
            options,
        );
        for item in iter {
            let (k, v) = item.map_err(|e| error(&self.path, "scan", e))?;
            visit(&k, &v);
        }
        Ok(())
    }

    fn background_writer(&self) -> Option<Box<dyn BackgroundWriter>> {
        self.writable.then(|| {
            Box::new(RocksWriter {
                db: Arc::clone(&self.db),
                path: self.path.clone(),
            }) as Box<dyn BackgroundWriter>
        })
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.db.get(key).map_err(|e| error(&self.path, "get", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir::backend::check_store;

    #[test]
    fn the_rocks_store_conforms() {
        let root = std::env::temp_dir().join(format!("weir-rocks-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let mut n = 0;
        check_store(&mut || {
            n += 1;
            Box::new(RocksStore::open(root.join(format!("db-{n}"))).expect("open"))
        });
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn a_batch_survives_reopening_and_reads_back_read_only() {
        let root = std::env::temp_dir().join(format!("weir-rocks-reopen-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        {
            let mut store = RocksStore::open(&root).expect("open");
            let mut batch = Batch::default();
            batch.put(b"a", b"1");
            batch.put(b"b", b"2");
            store.write(&batch).expect("write");
        }
        let store = RocksStore::open_read_only(&root).expect("reopen");
        assert_eq!(store.get(b"b").expect("get"), Some(b"2".to_vec()));
        let mut seen = Vec::new();
        store
            .scan(b"a", b"c", &mut |k, v| seen.push((k.to_vec(), v.to_vec())))
            .expect("scan");
        assert_eq!(seen.len(), 2);
        let e = RocksStore::open_read_only(root.join("missing"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("missing"), "{e}");
        let _ = std::fs::remove_dir_all(&root);
    }
}
