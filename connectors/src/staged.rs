//! Staged part files: the file-only half of exactly-once output, which
//! [`crate::PartsSink`] drives through weir's sink protocol
//! ([`weir::sink_protocol`]).
//!
//! An output directory holds published parts `part-<epoch>.<ext>` (the
//! epoch zero-padded to 20 digits, so name order is epoch order) and a
//! `.pending/` folder of staged ones. The sink writes records of epoch `e` to
//! `.pending/part-<e>.<ext>` (stage); when its input has passed `e` it syncs
//! the part (prepare); when the checkpoint of `e` is complete, parts through
//! `e` are renamed out of `.pending/` (commit) — a rename is atomic, so a
//! reader sees a whole part or none.
//!
//! On restore from epoch `r`, each part is resolved by the protocol's rule
//! ([`weir::sink_protocol::resolve`]): staged parts through `r` are
//! published (a crash may have come between the manifest and the rename),
//! staged parts after `r` deleted, and published parts after `r` (a restore
//! older than the newest checkpoint, or a fresh start) withdrawn. So a kill
//! never leaves doubled or torn output.
//!
//! Every I/O failure is a [`Fault`] naming the path, transient where the
//! error may pass ([`Fault::io`]).

use std::fs;
use std::path::{Path, PathBuf};

use weir::Fault;

/// The folder of staged parts inside an output directory.
pub const PENDING: &str = ".pending";

/// The file name of the part of `epoch`.
pub fn part_name(epoch: u64, extension: &str) -> String {
    format!("part-{epoch:020}.{extension}")
}

/// Where the part of `epoch` is staged.
pub fn pending_path(dir: &Path, epoch: u64, extension: &str) -> PathBuf {
    dir.join(PENDING).join(part_name(epoch, extension))
}

/// The epoch of a part file name, if it is one.
pub fn epoch_of_part(name: &str) -> Option<u64> {
    let rest = name.strip_prefix("part-")?;
    let digits = rest.split('.').next()?;
    (digits.len() == 20).then(|| digits.parse().ok())?
}

fn io(what: &str, path: &Path, e: std::io::Error) -> Fault {
    Fault::io(format!("{what} {}: {e}", path.display()), &e)
}

/// Creates the output directory and its staging folder.
pub fn prepare_dir(dir: &Path) -> Result<(), Fault> {
    let pending = dir.join(PENDING);
    fs::create_dir_all(&pending).map_err(|e| io("cannot create", &pending, e))
}

/// The staged parts, by epoch.
fn staged(dir: &Path) -> Result<Vec<(u64, PathBuf)>, Fault> {
    let pending = dir.join(PENDING);
    let entries = match fs::read_dir(&pending) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("cannot read", &pending, e)),
    };
    let mut parts = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io("cannot read", &pending, e))?;
        let name = entry.file_name();
        if let Some(epoch) = name.to_str().and_then(epoch_of_part) {
            parts.push((epoch, entry.path()));
        }
    }
    parts.sort();
    Ok(parts)
}

/// Publishes every staged part of an epoch `<= through`, oldest first, and
/// syncs the directory. Returns how many were published.
pub fn publish_through(dir: &Path, through: u64) -> Result<usize, Fault> {
    let mut published = 0;
    for (epoch, path) in staged(dir)? {
        if epoch > through {
            break;
        }
        let Some(name) = path.file_name() else {
            continue;
        };
        let target = dir.join(name);
        fs::rename(&path, &target).map_err(|e| io("cannot publish", &target, e))?;
        published += 1;
    }
    if published > 0 {
        sync_dir(dir)?;
    }
    Ok(published)
}

/// Deletes every staged part of an epoch `> after`: output of epochs a
/// restored job replays.
pub fn discard_after(dir: &Path, after: Option<u64>) -> Result<usize, Fault> {
    let mut discarded = 0;
    for (epoch, path) in staged(dir)? {
        if after.is_some_and(|a| epoch <= a) {
            continue;
        }
        fs::remove_file(&path).map_err(|e| io("cannot remove", &path, e))?;
        discarded += 1;
    }
    Ok(discarded)
}

/// Deletes the published parts of epochs `> after`: a restore from an older
/// checkpoint than the newest (one asked for, or the newest did not verify)
/// produces them again.
pub fn unpublish_after(dir: &Path, after: u64) -> Result<usize, Fault> {
    let mut removed = 0;
    for part in published(dir)? {
        let epoch = part
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(epoch_of_part);
        if epoch.is_some_and(|e| e > after) {
            fs::remove_file(&part).map_err(|e| io("cannot remove", &part, e))?;
            removed += 1;
        }
    }
    if removed > 0 {
        sync_dir(dir)?;
    }
    Ok(removed)
}

/// Deletes every part, published or staged: a fresh run's output replaces
/// the old run's.
pub fn clear(dir: &Path) -> Result<(), Fault> {
    discard_after(dir, None)?;
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io("cannot read", dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| io("cannot read", dir, e))?;
        if entry.file_name().to_str().and_then(epoch_of_part).is_some() {
            fs::remove_file(entry.path()).map_err(|e| io("cannot remove", &entry.path(), e))?;
        }
    }
    Ok(())
}

/// Resolves every part an earlier run left in `dir`, staged or published,
/// by the sink protocol's rule for a restore from `restored` (`None`: a
/// fresh start). Returns how many parts it published, deleted and withdrew.
pub fn resolve(dir: &Path, restored: Option<u64>) -> Result<(usize, usize, usize), Fault> {
    use weir::sink_protocol::{resolve, Resolve};
    let (mut published_n, mut aborted, mut withdrawn) = (0, 0, 0);
    for (epoch, path) in staged(dir)? {
        match resolve(restored, epoch, false) {
            Resolve::Commit => {
                let Some(name) = path.file_name() else {
                    continue;
                };
                let target = dir.join(name);
                fs::rename(&path, &target).map_err(|e| io("cannot publish", &target, e))?;
                published_n += 1;
            }
            _ => {
                fs::remove_file(&path).map_err(|e| io("cannot remove", &path, e))?;
                aborted += 1;
            }
        }
    }
    for part in published(dir)? {
        let epoch = part
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(epoch_of_part);
        if let Some(epoch) = epoch {
            if resolve(restored, epoch, true) == Resolve::Withdraw {
                fs::remove_file(&part).map_err(|e| io("cannot remove", &part, e))?;
                withdrawn += 1;
            }
        }
    }
    if published_n + withdrawn > 0 {
        sync_dir(dir)?;
    }
    Ok((published_n, aborted, withdrawn))
}

/// Makes renames in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<(), Fault> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io("cannot sync", dir, e))
}

/// The published parts of `dir`, oldest first: what a reader of the output
/// should read, in order.
pub fn published(dir: &Path) -> Result<Vec<PathBuf>, Fault> {
    let mut parts = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| io("cannot read", dir, e))? {
        let entry = entry.map_err(|e| io("cannot read", dir, e))?;
        if let Some(epoch) = entry.file_name().to_str().and_then(epoch_of_part) {
            parts.push((epoch, entry.path()));
        }
    }
    parts.sort();
    Ok(parts.into_iter().map(|(_, p)| p).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("weir-staged-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn stage(dir: &Path, epoch: u64) {
        fs::write(pending_path(dir, epoch, "jsonl"), format!("{epoch}\n")).expect("stage");
    }

    fn epochs(paths: &[PathBuf]) -> Vec<u64> {
        paths
            .iter()
            .filter_map(|p| p.file_name()?.to_str().and_then(epoch_of_part))
            .collect()
    }

    #[test]
    fn part_names_sort_by_epoch_and_parse_back() {
        assert!(part_name(9, "jsonl") < part_name(10, "jsonl"));
        assert_eq!(epoch_of_part(&part_name(42, "csv")), Some(42));
        assert_eq!(epoch_of_part("part-7.jsonl"), None);
        assert_eq!(epoch_of_part("notes.txt"), None);
    }

    #[test]
    fn publish_then_restore_discards_only_later_parts() {
        let dir = temp("restore");
        prepare_dir(&dir).expect("prepare");
        for e in [3, 4, 5, 6] {
            stage(&dir, e);
        }
        assert_eq!(publish_through(&dir, 4).expect("publish"), 2);
        assert_eq!(epochs(&published(&dir).expect("list")), vec![3, 4]);
        // A restore from epoch 5: part 5 was complete, part 6 is replayed.
        assert_eq!(discard_after(&dir, Some(5)).expect("discard"), 1);
        assert_eq!(publish_through(&dir, 5).expect("publish"), 1);
        assert_eq!(epochs(&published(&dir).expect("list")), vec![3, 4, 5]);
        assert_eq!(staged(&dir).expect("staged"), Vec::new());
        // A restore from epoch 3 withdraws what was published after it.
        assert_eq!(unpublish_after(&dir, 3).expect("unpublish"), 2);
        assert_eq!(epochs(&published(&dir).expect("list")), vec![3]);
        clear(&dir).expect("clear");
        assert!(published(&dir).expect("list").is_empty());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn resolve_follows_the_sink_protocol() {
        let dir = temp("resolve");
        prepare_dir(&dir).expect("prepare");
        for e in [1, 2, 3, 4, 5] {
            stage(&dir, e);
        }
        publish_through(&dir, 2).expect("publish");
        // Published 1, 2; staged 3, 4, 5. Restore from 1: withdraw 2,
        // publish nothing staged (3.. are after it), delete 3, 4, 5.
        assert_eq!(resolve(&dir, Some(1)).expect("resolve"), (0, 3, 1));
        assert_eq!(epochs(&published(&dir).expect("list")), vec![1]);
        for e in [2, 3] {
            stage(&dir, e);
        }
        // Restore from 2: publish staged 2, delete staged 3.
        assert_eq!(resolve(&dir, Some(2)).expect("resolve"), (1, 1, 0));
        assert_eq!(epochs(&published(&dir).expect("list")), vec![1, 2]);
        // A fresh start withdraws everything.
        stage(&dir, 3);
        assert_eq!(resolve(&dir, None).expect("resolve"), (0, 1, 2));
        assert!(published(&dir).expect("list").is_empty());
        let _ = fs::remove_dir_all(&dir);
    }
}
