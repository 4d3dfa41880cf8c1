//! `weir-bench-report DIR`: turns the JSON-lines figures that
//! `scripts/bench.sh` collected in `DIR` into `DIR/report.md`,
//! `DIR/figures.json` (everything in one document) and PNG plots: one
//! latency-percentile plot per sweep (pipe, workers, checkpoints) and one
//! chart of throughput ratios.
//!
//! Inputs, each optional (a missing file leaves its section out, saying so):
//! `meta.json` (how the run was made), `latency.jsonl` (the `latency`
//! bench), `nexmark.jsonl` and `iot.jsonl` (throughput benches),
//! `kafka.jsonl` (the `kafka_latency` bench).

mod figures;
mod markdown;
mod plot;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use figures::Figures;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = match args.as_slice() {
        [dir] if dir != "--help" && dir != "-h" => PathBuf::from(dir),
        _ => {
            eprintln!("usage: weir-bench-report DIR  (the directory scripts/bench.sh writes)");
            return ExitCode::from(2);
        }
    };
    match report(&dir) {
        Ok(written) => {
            for path in written {
                println!("{}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("weir-bench-report: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Writes the report of `dir`; the paths written.
fn report(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let figures = Figures::read(dir)?;
    let mut written = Vec::new();
    plot::load_font()?;
    let mut images = Vec::new();
    for sweep in figures.sweeps() {
        let path = dir.join(format!("latency-{}.png", sweep.slug()));
        plot::latency(&path, &sweep)?;
        images.push((sweep.title(), path.clone()));
        written.push(path);
    }
    let ratio_chart = dir.join("throughput-ratios.png");
    let has_ratios = !figures.throughput.is_empty();
    if has_ratios {
        plot::ratios(&ratio_chart, &figures.throughput)?;
        written.push(ratio_chart.clone());
    }
    let md = markdown::report(
        &figures,
        &images,
        has_ratios.then_some(ratio_chart.as_path()),
    );
    let md_path = dir.join("report.md");
    std::fs::write(&md_path, md).map_err(|e| format!("{}: {e}", md_path.display()))?;
    written.push(md_path);
    let json_path = dir.join("figures.json");
    let json = serde_json::to_string_pretty(&figures.to_json()).map_err(|e| e.to_string())?;
    std::fs::write(&json_path, json + "\n").map_err(|e| format!("{}: {e}", json_path.display()))?;
    written.push(json_path);
    Ok(written)
}
