//! Test fixtures shared by the checkpoint modules' tests: an in-memory
//! backend, a sample two-worker checkpoint, and a store that fails to read
//! one key.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::layout;
use super::manifest::{Entry, Flush, Manifest};
use super::runtime::Backend;
use super::store::{
    write_epoch, Batch, MemoryStore, Position, StateChange, StateStore, StoreError,
};
use super::verify::WorkerStore;
use crate::ids::{KeyGroup, SplitId};
use crate::source::position_of;

/// A backend of in-memory stores, by path; read-only opens get a copy.
#[derive(Default)]
pub(crate) struct Memory(pub(crate) Mutex<HashMap<PathBuf, MemoryStore>>);

impl Backend for Memory {
    fn open(&self, _: &Path) -> Result<Box<dyn StateStore>, StoreError> {
        Err(StoreError("inspection never opens for writing".into()))
    }
    fn open_read_only(&self, path: &Path) -> Result<Box<dyn StateStore>, StoreError> {
        let stores = self.0.lock().map_err(|_| StoreError("poisoned".into()))?;
        match stores.get(path) {
            Some(s) => Ok(Box::new(s.clone())),
            None => Err(StoreError(format!("no store at {}", path.display()))),
        }
    }
}

pub(crate) fn change(group: u16, key: &[u8], value: Option<&[u8]>) -> StateChange {
    StateChange {
        operator: "counts".into(),
        group: KeyGroup(group),
        key: [&[layout::ENTRY_KEY], key].concat(),
        value: value.map(<[u8]>::to_vec),
    }
}

pub(crate) fn position(split: u32, offset: u64) -> Position {
    let reader = position_of(&[offset + 1, offset]);
    Position {
        source: "records".into(),
        split: SplitId(split),
        position: layout::split_position(1_000 * offset, false, offset, &reader),
    }
}

/// Two workers, epochs 1..=3 complete, epoch 4 flushed by worker 0 only.
/// Worker 0 owns groups 3 and 5, worker 1 group 100.
pub(crate) fn sample() -> (Manifest, Vec<MemoryStore>) {
    let mut stores = vec![MemoryStore::default(), MemoryStore::default()];
    let mut complete = Vec::new();
    for epoch in 1..=4u64 {
        let mut flushes = Vec::new();
        for (w, store) in stores.iter_mut().enumerate() {
            if epoch == 4 && w == 1 {
                continue;
            }
            let changes: Vec<StateChange> = match (w, epoch) {
                (0, 1) => vec![change(3, b"a", Some(b"1")), change(5, b"b", Some(b"1"))],
                (0, 2) => vec![change(3, b"c", Some(b"22"))],
                (0, 3) => vec![change(3, b"a", None)],
                (1, 1) => vec![change(100, b"z", Some(b"9"))],
                _ => Vec::new(),
            };
            let mut buffered = Vec::new();
            if w == 1 && epoch == 3 {
                // A batch of 2 records buffered at stamp (3, 7000).
                let mut key = vec![layout::ENTRY_BUFFERED];
                key.extend(position_of(&[3, 7_000]));
                let mut value = position_of(&[2]);
                value.extend([0u8; 20]);
                buffered.push(StateChange {
                    operator: "counts".into(),
                    group: KeyGroup(100),
                    key,
                    value: Some(value),
                });
            }
            let all: Vec<StateChange> = changes.into_iter().chain(buffered).collect();
            let sum = write_epoch(store, epoch, "counts", &all, &[]).expect("write");
            flushes.push(Flush {
                worker: w,
                step: "counts".into(),
                checksum: sum,
            });
            let sum = write_epoch(
                store,
                epoch,
                "records",
                &[],
                &[position(w as u32, epoch * 10)],
            )
            .expect("write");
            flushes.push(Flush {
                worker: w,
                step: "records".into(),
                checksum: sum,
            });
        }
        if epoch < 4 {
            flushes.sort();
            complete.push(Entry { epoch, flushes });
        }
    }
    // Built from JSON, as the manifest file is: fields added later
    // take their defaults.
    let manifest: Manifest = serde_json::from_value(serde_json::json!({
        "format": 1,
        "workers": 2,
        "generation": 0,
        "steps": [
            {"name": "counts", "kind": "state", "version": 1},
            {"name": "records", "kind": "source", "version": 1},
        ],
        "complete": complete,
    }))
    .expect("a manifest");
    (manifest, stores)
}

pub(crate) fn open(stores: &[MemoryStore]) -> Vec<WorkerStore> {
    stores
        .iter()
        .enumerate()
        .map(|(worker, s)| WorkerStore {
            worker,
            path: PathBuf::from(format!("worker-{worker}")),
            store: Ok(Box::new(s.clone()) as Box<dyn StateStore>),
        })
        .collect()
}

/// A store whose reads fail when they reach one key (a corrupt block).
pub(crate) struct Failing {
    pub(crate) inner: MemoryStore,
    pub(crate) bad: Vec<u8>,
}

impl StateStore for Failing {
    fn write(&mut self, batch: &Batch) -> Result<(), StoreError> {
        self.inner.write(batch)
    }
    fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<(), StoreError> {
        if start <= self.bad.as_slice() && self.bad.as_slice() < end {
            return Err(StoreError("Corruption: block checksum mismatch".into()));
        }
        self.inner.scan(start, end, visit)
    }
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key)
    }
}
