//! `groupcast sim` and `groupcast demo`: run scenarios (`groupcast_sim::Scenario`)
//! and print what they cost.

use groupcast_sim::scenario::{CSV_COLUMNS, csv_row};
use groupcast_sim::{Outcome, Scenario};
use indicatif::{ProgressBar, ProgressStyle};

use crate::sim_args::{DemoArgs, SimArgs};

fn run(args: &SimArgs, show_progress: bool) -> Result<(Scenario, Outcome), String> {
    let scenario = args.scenario();
    let o = run_scenario(&scenario, show_progress)?;
    Ok((scenario, o))
}

fn run_scenario(scenario: &Scenario, show_progress: bool) -> Result<Outcome, String> {
    let bar = if show_progress {
        let bar = ProgressBar::new(scenario.receivers as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} receivers complete {pos}/{len} {bar:30} {msg} [{elapsed}]",
            )
            .expect("valid template"),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let o = scenario.run(|t, done, packets| {
        bar.set_position(done as u64);
        bar.set_message(format!("simulated {t:.2} s, {packets} packets sent"));
    });
    bar.finish_and_clear();
    o
}

fn json(s: &Scenario, o: &Outcome) -> serde_json::Value {
    let mut v = serde_json::to_value(s.row(o)).expect("a row serialises");
    // The process's high-water mark, so far: for a lone run, the run's.
    v["peak_rss_bytes"] = crate::output::peak_rss_bytes().into();
    v
}

/// `groupcast sim`.
pub fn sim(args: &SimArgs) -> Result<(), String> {
    if let Some(path) = &args.scenario {
        return suite(args, path);
    }
    let (s, o) = run(args, !(args.json || args.csv))?;
    if args.json {
        println!("{}", json(&s, &o));
    } else if args.csv {
        println!("{}", CSV_COLUMNS.join(","));
        println!("{}", csv_row(&json(&s, &o)));
    } else {
        summary(&s, &o);
    }
    o.check()
}

/// `groupcast sim --scenario FILE.toml`: every run of a suite, one output
/// line (or summary) per run.
fn suite(base: &SimArgs, path: &std::path::Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read scenario file {}: {e}", path.display()))?;
    let runs = groupcast_sim::suite::expand(&text, &base.scenario())
        .map_err(|e| format!("scenario file {}: {e}", path.display()))?;
    if base.csv {
        println!("{}", CSV_COLUMNS.join(","));
    }
    let mut failures = Vec::new();
    for (i, (name, s)) in runs.iter().enumerate() {
        if !(base.json || base.csv) {
            println!("== run {}/{}: {name}", i + 1, runs.len());
        }
        let o = run_scenario(s, false).map_err(|e| format!("{name}: {e}"))?;
        let mut v = json(s, &o);
        v["scenario"] = name.clone().into();
        if base.json {
            println!("{v}");
        } else if base.csv {
            println!("{}", csv_row(&v));
        } else {
            summary(s, &o);
        }
        if let Err(e) = o.check() {
            failures.push(format!("{name}: {e}"));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} of {} runs failed:\n  {}",
            failures.len(),
            runs.len(),
            failures.join("\n  ")
        ))
    }
}

fn summary(s: &Scenario, o: &Outcome) {
    let r = &o.report;
    let loss = s.mean_loss();
    let bound = s.size as f64 / (1.0 - loss);
    let checked = if r.bytes_verified {
        "byte-identical"
    } else {
        "whole (model codec: bytes not checked)"
    };
    println!(
        "{} receivers, {:.1}% mean loss, {} bytes, {} mode, {} codec: {} completed, {} {checked}{}",
        r.receivers,
        loss * 100.0,
        s.size,
        s.mode.core().name(),
        o.codecs.name(),
        r.completed_receivers,
        r.identical_receivers,
        if r.left_receivers > 0 {
            format!(", {} left early", r.left_receivers)
        } else {
            String::new()
        }
    );
    println!(
        "needed {} symbols for {} source symbols ({:.3} transmissions per symbol), {} bytes = {:.3} x the bound size/(1-loss), headers of {} bytes per packet included",
        r.symbols_sent,
        r.source_symbols,
        r.transmissions_per_symbol(),
        r.bytes_sent,
        r.bytes_sent as f64 / bound.max(1.0),
        groupcast::wire::DATA_OVERHEAD
    );
    if r.nacks_sent > 0 || r.status_sent > 0 {
        println!(
            "feedback: {} NACK packets ({:.2} per block), {} block requests suppressed, {} STATUS packets ({} unasked); \
             at the sender {:.4} feedback packets per DATA packet; group size estimated {}",
            r.nacks_sent,
            r.nacks_sent as f64 / s.blocks(o).max(1) as f64,
            r.nacks_suppressed,
            r.status_sent,
            r.status_unasked,
            (r.status_received + r.nacks_received) as f64 / r.symbols_sent_total.max(1) as f64,
            r.group_estimate,
        );
    }
    if let (Some(p50), Some(p99), Some(max)) = (
        r.completion_quantile(0.5),
        r.completion_quantile(0.99),
        r.completion_quantile(1.0),
    ) {
        println!(
            "completion (simulated): p50 {p50:.3} s, p99 {p99:.3} s, max {max:.3} s; wall time {:.2} s, peak memory {} MB",
            o.wall.as_secs_f64(),
            crate::output::peak_rss_bytes() >> 20
        );
    }
}

/// `groupcast demo`.
pub fn demo(args: &DemoArgs) -> Result<(), String> {
    let sim_args = SimArgs::from(args);
    println!(
        "groupcast demo: {} bytes to {} receivers, each losing {:.0}% of packets independently.",
        args.size,
        args.receivers,
        args.loss * 100.0
    );
    println!(
        "Real RaptorQ, real packets and real BLAKE3 verification, over a simulated network.\n"
    );
    let (_, o) = run(&sim_args, true)?;
    let r = &o.report;
    let k_total = r.source_symbols;
    println!(
        "{:>8}  {:>12}  {:>10}  {:>10}  {:>9}  {:>9}",
        "receiver", "complete at", "received", "needed", "overhead", "identical"
    );
    let rows: Vec<usize> = if r.per_receiver.len() <= 40 {
        (0..r.per_receiver.len()).collect()
    } else {
        // Show the slowest and fastest few of a large group.
        let mut idx: Vec<usize> = (0..r.per_receiver.len()).collect();
        idx.sort_by(|&a, &b| {
            let t = |i: usize| r.per_receiver[i].completion_time_s.unwrap_or(f64::INFINITY);
            t(a).total_cmp(&t(b))
        });
        let mut v: Vec<usize> = idx[..5].to_vec();
        v.extend_from_slice(&idx[idx.len() - 5..]);
        v
    };
    for (n, &i) in rows.iter().enumerate() {
        if r.per_receiver.len() > 40 && n == 5 {
            println!("{:>8}", "...");
        }
        let p = &r.per_receiver[i];
        println!(
            "{:>8}  {:>12}  {:>10}  {:>10}  {:>8.2}%  {:>9}",
            i,
            p.completion_time_s
                .map_or("-".to_string(), |t| format!("{t:.3} s")),
            p.symbols_accepted,
            k_total,
            (p.symbols_accepted as f64 / k_total.max(1) as f64 - 1.0) * 100.0,
            if p.identical { "yes" } else { "NO" }
        );
    }
    let bound = args.size as f64 / (1.0 - args.loss);
    println!();
    println!(
        "received: distinct symbols each receiver decoded from; needed: the object's source symbols (K); \
overhead: received/needed - 1."
    );
    println!(
        "Until the packet that completed the last receiver, the sender sent {} bytes in {} packets: \
{:.3} x the bound size/(1-loss) = {:.0} bytes (headers of {} bytes per packet included).",
        r.bytes_sent,
        r.packets_sent,
        r.bytes_sent as f64 / bound,
        bound,
        groupcast::wire::DATA_OVERHEAD
    );
    println!(
        "Simulated time {:.3} s at 1 Gbit/s; wall time {:.2} s.",
        r.sim_time_s,
        o.wall.as_secs_f64()
    );
    o.check()?;
    println!(
        "All {} receivers hold a byte-identical, BLAKE3-verified copy.",
        r.receivers
    );
    Ok(())
}
