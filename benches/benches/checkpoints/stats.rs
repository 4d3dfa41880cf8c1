//! Small measurement helpers: environment knobs, sizes, histograms and
//! their quantiles, correlation.

use std::path::Path;

use hdrhistogram::Histogram;

/// `CK_EPOCH_MS` (default 1000): the epoch, so the checkpoint, interval.
pub(crate) fn epoch_ms() -> u64 {
    env("CK_EPOCH_MS", 1_000).max(1)
}

pub(crate) fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace(['_', ' '], "").parse().ok())
        .unwrap_or(default)
}

pub(crate) fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

pub(crate) fn quantiles(h: &Histogram<u64>, unit: f64) -> String {
    if h.is_empty() {
        return "-".into();
    }
    format!(
        "p50 {:>8.2}  p99 {:>8.2}  max {:>8.2}",
        h.value_at_quantile(0.5) as f64 / unit,
        h.value_at_quantile(0.99) as f64 / unit,
        h.max() as f64 / unit
    )
}

/// The correlation of two series.
pub(crate) fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len()) as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va.sqrt() * vb.sqrt()).max(f64::MIN_POSITIVE)
}

pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::<u64>::new(3).expect("valid histogram")
}

pub(crate) fn dir_size(path: &Path) -> u64 {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::read_dir(path)
            .map(|entries| entries.flatten().map(|e| dir_size(&e.path())).sum())
            .unwrap_or(0),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}
