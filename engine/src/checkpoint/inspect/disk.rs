//! A checkpoint directory's files: the store generations on disk and their
//! sizes.

use std::collections::BTreeMap;
use std::path::Path;

/// The store generations on disk in `dir`: generation → its worker indexes,
/// from the `gen-G/worker-W` directories.
pub fn generations_on_disk(dir: &Path) -> std::io::Result<BTreeMap<u64, Vec<usize>>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(generation) = name
            .to_str()
            .and_then(|n| n.strip_prefix("gen-"))
            .and_then(|g| g.parse::<u64>().ok())
        else {
            continue;
        };
        if !entry.path().is_dir() {
            continue;
        }
        let mut workers = Vec::new();
        for w in std::fs::read_dir(entry.path())? {
            let w = w?;
            if let Some(worker) = w
                .file_name()
                .to_str()
                .and_then(|n| n.strip_prefix("worker-"))
                .and_then(|n| n.parse::<usize>().ok())
            {
                if w.path().is_dir() {
                    workers.push(worker);
                }
            }
        }
        workers.sort_unstable();
        out.insert(generation, workers);
    }
    Ok(out)
}

/// The bytes of every file under `path` (0 if it does not exist).
pub fn disk_size(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| disk_size(&e.path()))
                .sum()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::fixtures::{sample, Memory};
    use crate::checkpoint::runtime::store_path;
    use crate::checkpoint::verify::{open_generation, verify};

    #[test]
    fn generations_open_through_the_backend() {
        let (manifest, stores) = sample();
        let dir = std::env::temp_dir().join(format!("weir-inspect-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let backend = Memory::default();
        for (w, s) in stores.iter().enumerate() {
            let path = store_path(&dir, 0, w);
            std::fs::create_dir_all(&path).expect("dir");
            std::fs::write(path.join("data"), b"12345").expect("file");
            backend.0.lock().expect("lock").insert(path, s.clone());
        }
        let opened = open_generation(&dir, 0, 3, &backend);
        assert!(opened[0].store.is_ok() && opened[1].store.is_ok());
        let missing = opened[2].store.as_ref().err().map(|e| e.to_string());
        assert!(missing.is_some_and(|e| e.contains("does not exist")));
        assert!(verify(&manifest, &opened[..2]).newest_verifies());
        assert_eq!(
            generations_on_disk(&dir).expect("read"),
            BTreeMap::from([(0, vec![0, 1])])
        );
        assert_eq!(disk_size(&store_path(&dir, 0, 0)), 5);
        assert_eq!(disk_size(&dir), 10);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
