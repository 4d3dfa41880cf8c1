//! The report's PNG plots, drawn with plotters: latency percentiles over
//! the offered load (log–log), and throughput ratios as grouped bars.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::FontStyle;
use serde_json::Value;

use crate::figures::{flag, num, text, Sweep};

/// Where a TrueType font is looked for (the first that exists), after
/// `$WEIR_REPORT_FONT`.
const FONTS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
];

/// Registers a system font as plotters' `sans-serif`.
pub fn load_font() -> Result<(), String> {
    let wanted = std::env::var("WEIR_REPORT_FONT").ok();
    let path = wanted
        .iter()
        .map(String::as_str)
        .chain(FONTS)
        .find(|p| Path::new(p).is_file())
        .ok_or_else(|| {
            "no TrueType font found: install one (apt-get install fonts-dejavu-core) or set WEIR_REPORT_FONT to a .ttf file".to_string()
        })?;
    let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    // plotters keeps registered fonts for the life of the program.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| format!("{path} is not a font plotters can read"))
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The percentiles plotted, with their colours.
const PERCENTILES: [(&str, &str, RGBColor); 5] = [
    ("p50_ms", "p50", RGBColor(31, 119, 180)),
    ("p90_ms", "p90", RGBColor(44, 160, 44)),
    ("p99_ms", "p99", RGBColor(255, 127, 14)),
    ("p999_ms", "p99.9", RGBColor(214, 39, 40)),
    ("max_ms", "max", RGBColor(127, 127, 127)),
];

/// One sweep's latency percentiles against the offered rate per worker,
/// with the baseline's p99 dashed for reference.
pub fn latency(path: &Path, sweep: &Sweep<'_>) -> Result<(), String> {
    let root = BitMapBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let all = sweep.rows.iter().chain(&sweep.baseline);
    let rates: Vec<f64> = all.clone().map(|r| num(r, "offered_per_worker")).collect();
    let values: Vec<f64> = all
        .flat_map(|r| PERCENTILES.iter().map(|(f, _, _)| num(r, f)))
        .filter(|v| *v > 0.0)
        .collect();
    let (x0, x1) = span(&rates, 1.0);
    let (y0, y1) = span(&values, 0.001);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Latency, {} (open loop)", sweep.title()),
            ("sans-serif", 24),
        )
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("offered events/s per worker")
        .y_desc("latency (ms)")
        .x_label_formatter(&|x| rate_label(*x))
        .y_label_formatter(&|y| format!("{y}"))
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(err)?;
    for (field, name, colour) in PERCENTILES {
        let points: Vec<(f64, f64)> = sweep
            .rows
            .iter()
            .map(|r| (num(r, "offered_per_worker"), num(r, field).max(y0)))
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))
            .map_err(err)?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], colour.stroke_width(2))
            });
        chart
            .draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 4, colour.filled())),
            )
            .map_err(err)?;
    }
    let broken: Vec<(f64, f64)> = sweep
        .rows
        .iter()
        .filter(|r| flag(r, "broken"))
        .map(|r| (num(r, "offered_per_worker"), num(r, "p99_ms").max(y0)))
        .collect();
    if !broken.is_empty() {
        chart
            .draw_series(
                broken
                    .into_iter()
                    .map(|p| Cross::new(p, 9, BLACK.stroke_width(3))),
            )
            .map_err(err)?
            .label("broken (p99 > 50 ms or rate not kept)")
            .legend(|(x, y)| Cross::new((x + 12, y), 6, BLACK.stroke_width(2)));
    }
    if !sweep.baseline.is_empty() {
        let grey = RGBColor(90, 90, 90);
        let points: Vec<(f64, f64)> = sweep
            .baseline
            .iter()
            .map(|r| (num(r, "offered_per_worker"), num(r, "p99_ms").max(y0)))
            .collect();
        chart
            .draw_series(DashedLineSeries::new(points, 8, 6, grey.stroke_width(2)))
            .map_err(err)?
            .label("hand-written baseline p99")
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], grey.stroke_width(1))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

/// Throughput ratios per case (iot, q0 … q8): weir over the baseline on
/// 1 and 2 workers, with checkpoints and on 2 processes, with the goals.
pub fn ratios(path: &Path, rows: &[Value]) -> Result<(), String> {
    let mut cases: Vec<&str> = Vec::new();
    for r in rows {
        let c = text(r, "case");
        if !cases.contains(&c) {
            cases.push(c);
        }
    }
    const SIDES: [(&str, RGBColor); 4] = [
        ("weir -w 1", RGBColor(31, 119, 180)),
        ("weir -w 2", RGBColor(44, 160, 44)),
        ("weir -w 1 ck 1s", RGBColor(255, 127, 14)),
        ("weir 2 processes", RGBColor(148, 103, 189)),
    ];
    let value = |case: &str, side: &str| {
        rows.iter()
            .find(|r| text(r, "case") == case && text(r, "side") == side)
            .filter(|r| !flag(r, "timed_out"))
            .map(|r| num(r, "vs_baseline"))
    };
    let top = cases
        .iter()
        .flat_map(|c| SIDES.iter().filter_map(|(s, _)| value(c, s)))
        .fold(2.0f64, f64::max)
        * 1.1;
    let root = BitMapBackend::new(path, (1100, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let n = cases.len() as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Throughput over the hand-written single-thread baseline (same run)",
            ("sans-serif", 24),
        )
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..n, 0.0..top)
        .map_err(err)?;
    let names = cases.clone();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(cases.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.floor() as usize;
            if (x - x.floor() - 0.5).abs() < 0.01 {
                names.get(i).map(|s| s.to_string()).unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc("× baseline throughput")
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(err)?;
    let width = 0.8 / SIDES.len() as f64;
    for (k, (side, colour)) in SIDES.iter().enumerate() {
        let bars: Vec<Rectangle<(f64, f64)>> = cases
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let v = value(c, side)?;
                let x = i as f64 + 0.1 + k as f64 * width;
                Some(Rectangle::new(
                    [(x, 0.0), (x + width * 0.9, v)],
                    colour.filled(),
                ))
            })
            .collect();
        if bars.is_empty() {
            continue;
        }
        let colour = *colour;
        chart
            .draw_series(bars)
            .map_err(err)?
            .label(*side)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 16, y + 6)], colour.filled()));
    }
    for (level, label, colour) in [
        (1.0, "baseline", BLACK),
        (0.8, "goal 0.8 (weir -w 1)", RGBColor(214, 39, 40)),
    ] {
        chart
            .draw_series(DashedLineSeries::new(
                vec![(0.0, level), (n, level)],
                8,
                6,
                colour.stroke_width(1),
            ))
            .map_err(err)?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], colour));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .draw()
        .map_err(err)?;
    root.present().map_err(err)
}

/// The range of positive `values`, widened by a margin on a log scale.
fn span(values: &[f64], floor: f64) -> (f64, f64) {
    let lo = values
        .iter()
        .copied()
        .filter(|v| *v > 0.0)
        .fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(0.0f64, f64::max);
    if !lo.is_finite() || hi <= 0.0 {
        return (floor, floor * 10.0);
    }
    ((lo / 1.5).max(floor), hi * 1.5)
}

/// A rate's axis label, for 1, 2 and 5 times a power of ten only (a log
/// axis asks for every minor tick).
fn rate_label(x: f64) -> String {
    let power = 10f64.powf(x.log10().floor());
    let mantissa = (x / power).round();
    if !matches!(mantissa as u32, 1 | 2 | 5) || (x / power - mantissa).abs() > 0.01 {
        return String::new();
    }
    if x >= 1e6 {
        format!("{}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{}K", x / 1e3)
    } else {
        format!("{x}")
    }
}
