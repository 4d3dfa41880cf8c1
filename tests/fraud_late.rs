//! The fraud job's many-countries rule and late transactions: a late
//! transaction (event time behind the watermark it was read at) is refused
//! by the rule, to the dead letters, so the rule's alerts depend only on
//! on-time transactions. Rows are `card,merchant,amount_cents,country,ts_ms`;
//! card 2 only moves the watermark; the bound is the default 2 s.

mod support;

use support::{args, run, temp_dir, Run};

/// Runs the fraud job on `rows` with `workers` workers: its many-countries
/// alerts and its dead letters from the rule, each as (card or event time,
/// line).
fn many_countries(tag: &str, rows: &[&str], workers: &str) -> (Vec<String>, Vec<u64>) {
    let dir = temp_dir(&format!("fraud-late-{tag}-w{workers}"));
    let input = dir.join("transactions.csv");
    let mut text = String::from("card,merchant,amount_cents,country,ts_ms\n");
    for row in rows {
        text.push_str(row);
        text.push('\n');
    }
    std::fs::write(&input, text).expect("write input");
    let (out, dead) = (dir.join("alerts.jsonl"), dir.join("dead.jsonl"));
    let mut flags = args(&["--no-checkpoints", "--quiet", "-w", workers]);
    for (flag, path) in [
        ("--input", &input),
        ("--output", &out),
        ("--dead-letters", &dead),
    ] {
        flags.push(flag.to_string());
        flags.push(path.display().to_string());
    }
    run("fraud", &flags);
    let got = Run::read(&out, &dead);
    let alerts = got
        .output
        .into_iter()
        .filter(|l| l.contains("\"reasons\":\"many-countries\""))
        .collect();
    let refused = got
        .dead
        .iter()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a dead letter is JSON");
            // A process function's late record: late, and for no window.
            let origin = &v["origin"]["operator"];
            if origin["kind"] != "late" || origin["details"] != serde_json::json!({}) {
                return None;
            }
            assert_eq!(origin["name"], "many_countries", "{l}");
            assert_eq!(v["source"], "many_countries", "{l}");
            assert!(
                v["reason"].as_str().is_some_and(|r| r.starts_with("late")),
                "{l}"
            );
            origin["event_time"].as_u64()
        })
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    (alerts, refused)
}

/// The alert for card 1 at `time` over 10 minutes: (transactions, spend).
fn alert(time: u64, transactions: u64, countries: &str) -> String {
    format!(
        "{{\"card\":1,\"window_start_ms\":{},\"window_end_ms\":{},\"transactions\":{transactions},\"spend_cents\":{},\"countries\":\"{countries}\",\"reasons\":\"many-countries\"}}",
        time + 1 - 600_000,
        time + 1,
        transactions * 100
    )
}

#[test]
fn on_time_transactions_in_three_countries_alert_once() {
    let rows = [
        "1,1,100,US,10000000",
        "1,1,100,DE,10000001",
        "1,1,100,AT,10000002",
        "1,1,100,AT,10000003",
        "2,1,100,US,10800000",
    ];
    for workers in ["1", "2"] {
        let (alerts, refused) = many_countries("on-time", &rows, workers);
        assert_eq!(
            alerts,
            vec![alert(10_000_002, 3, "AT|DE|US")],
            "-w {workers}"
        );
        assert!(refused.is_empty(), "-w {workers}: {refused:?}");
    }
}

#[test]
fn a_late_repeat_of_a_seen_country_does_not_alert_again() {
    let rows = [
        "1,1,100,US,9999998",
        "1,1,100,DE,9999999",
        "1,1,100,AT,10000000",
        "2,1,100,US,10100000",
        "1,1,100,DE,10000000",
    ];
    for workers in ["1", "2"] {
        let (alerts, refused) = many_countries("repeat", &rows, workers);
        assert_eq!(
            alerts,
            vec![alert(10_000_000, 3, "AT|DE|US")],
            "-w {workers}"
        );
        assert_eq!(refused, vec![10_000_000], "-w {workers}");
    }
}

#[test]
fn a_late_third_country_is_a_dead_letter_not_a_silent_miss() {
    let rows = [
        "1,1,100,US,10000000",
        "1,1,100,DE,10001000",
        "2,1,100,US,10100000",
        "1,1,100,AT,10000500",
    ];
    for workers in ["1", "2"] {
        let (alerts, refused) = many_countries("third", &rows, workers);
        assert!(alerts.is_empty(), "-w {workers}: {alerts:?}");
        assert_eq!(refused, vec![10_000_500], "-w {workers}");
    }
}

#[test]
fn a_late_transaction_does_not_depend_on_an_unrelated_later_one() {
    let plain = [
        "1,1,100,US,10000000",
        "1,1,100,DE,10000001",
        "2,1,100,US,10800000",
        "1,1,100,AT,10000002",
    ];
    let with_later = [
        "1,1,100,US,10000000",
        "1,1,100,DE,10000001",
        "1,1,100,FR,10700000",
        "2,1,100,US,10800000",
        "1,1,100,AT,10000002",
    ];
    for workers in ["1", "2"] {
        for (tag, rows) in [("plain", &plain[..]), ("later", &with_later[..])] {
            let (alerts, refused) = many_countries(tag, rows, workers);
            assert!(alerts.is_empty(), "{tag} -w {workers}: {alerts:?}");
            assert_eq!(refused, vec![10_000_002], "{tag} -w {workers}");
        }
    }
}
