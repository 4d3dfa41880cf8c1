//! What the RocksDB integration tests share.

use std::path::Path;
use std::time::Duration;

use weir::RunArgs;

/// A run on `workers` threads that checkpoints to `dir` on RocksDB, with
/// epochs only where the test's scripts close them (the timer's hour never
/// passes).
pub fn checkpointed(workers: usize, dir: &Path) -> RunArgs {
    let mut args = RunArgs::threads(workers);
    args.epoch_interval = Duration::from_secs(3_600);
    args.checkpoint_dir = Some(dir.to_path_buf());
    args.backend = Some(weir_rocks::backend());
    args
}
