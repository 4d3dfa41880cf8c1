//! The benches' figures as the report reads them: JSON lines, one object
//! per measured row, kept as JSON values (the benches own the row types)
//! with typed accessors for the fields the report uses.

use std::path::Path;

use serde_json::{json, Value};

/// Everything one `scripts/bench.sh` run measured.
pub struct Figures {
    /// How the run was made (`meta.json`), or `null`.
    pub meta: Value,
    /// `latency` bench rows.
    pub latency: Vec<Value>,
    /// Throughput rows of every throughput bench.
    pub throughput: Vec<Value>,
    /// `kafka_latency` bench rows.
    pub kafka: Vec<Value>,
    /// Inputs that were not there.
    pub missing: Vec<String>,
}

/// One latency sweep: a pipe on one side (baseline or a weir setup) over
/// the offered rates, ascending.
pub struct Sweep<'a> {
    /// `stage` or `window`.
    pub pipe: String,
    /// `baseline`, `weir -w1`, `weir -w1 ck 1s`, …
    pub side: String,
    /// The rows, by offered rate.
    pub rows: Vec<&'a Value>,
    /// The baseline's rows of the same pipe, for reference.
    pub baseline: Vec<&'a Value>,
}

impl Sweep<'_> {
    /// A file-name part.
    pub fn slug(&self) -> String {
        format!("{}-{}", self.pipe, self.side)
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect::<String>()
            .split('-')
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("-")
    }

    /// The plot's title.
    pub fn title(&self) -> String {
        format!("{} pipe, {}", self.pipe, self.side)
    }
}

/// A number field of a row (0 when absent).
pub fn num(row: &Value, field: &str) -> f64 {
    row.get(field).and_then(Value::as_f64).unwrap_or(0.0)
}

/// A string field of a row ("" when absent).
pub fn text<'a>(row: &'a Value, field: &str) -> &'a str {
    row.get(field).and_then(Value::as_str).unwrap_or("")
}

/// A boolean field of a row (false when absent).
pub fn flag(row: &Value, field: &str) -> bool {
    row.get(field).and_then(Value::as_bool).unwrap_or(false)
}

fn read_lines(path: &Path) -> Result<Option<Vec<Value>>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

impl Figures {
    /// Reads the figures in `dir`.
    pub fn read(dir: &Path) -> Result<Figures, String> {
        if !dir.is_dir() {
            return Err(format!("{} is not a directory", dir.display()));
        }
        let mut missing = Vec::new();
        let mut take = |name: &str| -> Result<Vec<Value>, String> {
            match read_lines(&dir.join(name))? {
                Some(rows) => Ok(rows),
                None => {
                    missing.push(name.to_string());
                    Ok(Vec::new())
                }
            }
        };
        let latency = take("latency.jsonl")?;
        let mut throughput = take("iot.jsonl")?;
        throughput.extend(take("nexmark.jsonl")?);
        let kafka = take("kafka.jsonl")?;
        let meta = match std::fs::read_to_string(dir.join("meta.json")) {
            Ok(t) => serde_json::from_str(&t).map_err(|e| format!("meta.json: {e}"))?,
            Err(_) => {
                missing.push("meta.json".to_string());
                Value::Null
            }
        };
        Ok(Figures {
            meta,
            latency,
            throughput,
            kafka,
            missing,
        })
    }

    /// The latency sweeps: one per pipe and side, in the order first seen.
    pub fn sweeps(&self) -> Vec<Sweep<'_>> {
        let mut sweeps: Vec<Sweep<'_>> = Vec::new();
        for row in &self.latency {
            let (pipe, side) = (text(row, "pipe"), text(row, "side"));
            match sweeps.iter_mut().find(|s| s.pipe == pipe && s.side == side) {
                Some(s) => s.rows.push(row),
                None => sweeps.push(Sweep {
                    pipe: pipe.to_string(),
                    side: side.to_string(),
                    rows: vec![row],
                    baseline: Vec::new(),
                }),
            }
        }
        let by_rate = |a: &&Value, b: &&Value| {
            num(a, "offered_per_worker").total_cmp(&num(b, "offered_per_worker"))
        };
        for s in &mut sweeps {
            s.rows.sort_by(by_rate);
            let mut base: Vec<&Value> = self
                .latency
                .iter()
                .filter(|r| text(r, "pipe") == s.pipe && text(r, "side") == "baseline")
                .collect();
            base.sort_by(by_rate);
            s.baseline = base;
        }
        sweeps.retain(|s| s.side != "baseline");
        sweeps
    }

    /// Everything, as one JSON document.
    pub fn to_json(&self) -> Value {
        json!({
            "meta": self.meta,
            "throughput": self.throughput,
            "latency": self.latency,
            "kafka": self.kafka,
            "missing": self.missing,
        })
    }
}
