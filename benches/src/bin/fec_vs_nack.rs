//! The FEC-versus-NACK suite: runs the simulator over a grid of receivers,
//! loss rates, block sizes and modes, and writes the tables (into
//! docs/results.md, between the suite markers), a CSV of every run and SVG
//! plots (docs/suite/). Each table stands beside the analytic ARQ and
//! ideal-FEC values.
//!
//! ```text
//! cargo run --release -p groupcast-benches --bin fec-vs-nack            # everything, ~15 min on 2 cores
//! cargo run --release -p groupcast-benches --bin fec-vs-nack -- --quick # a small grid, ~1 min
//! cargo run --release -p groupcast-benches --bin fec-vs-nack -- --completion # the completion table alone
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use groupcast::Mode;
use groupcast_sim::analytic::{arq, ideal_fec};
use groupcast_sim::{Burst, Scenario, SimReport, scenario};
use plotters::prelude::*;

/// Symbol size of every run: small, since E\[M\] does not depend on it and the
/// simulator's cost grows with it.
const T: usize = 64;
const LOSSES: [f64; 4] = [0.01, 0.05, 0.10, 0.25];
const KS: [u32; 4] = [7, 20, 100, 1000];
const MODES: [Mode; 3] = [Mode::Nack, Mode::Carousel, Mode::Hybrid];

struct Opts {
    quick: bool,
    /// Only the completion table (section 2), spliced in place.
    completion: bool,
    out: PathBuf,
    results: PathBuf,
}

#[derive(Clone, Copy)]
struct Case {
    mode: Mode,
    receivers: usize,
    loss: f64,
    k: u32,
    burst: Option<Burst>,
    interleave: u32,
    symbols: usize,
    seed: u64,
}

struct Row {
    case: Case,
    report: SimReport,
    wall: Duration,
}

/// A run's figures as the previous suite recorded them in its runs.csv.
#[derive(Clone, Copy)]
struct Before {
    em: f64,
    p99: Option<f64>,
    nacks: u64,
}

/// The previous suite's runs, keyed by [`case_key`] and the source symbols: read from the runs.csv
/// this run replaces, so that the tables can say what moved.
type Previous = std::collections::HashMap<String, Before>;

/// The columns of runs.csv that name a case: mode, receivers, loss, burst
/// enter and leave, k and interleave.
fn case_key(c: &Case) -> String {
    format!(
        "{},{},{},{},{},{},{}",
        mode_name(c.mode),
        c.receivers,
        c.loss,
        c.burst.map_or(String::new(), |b| b.p_enter.to_string()),
        c.burst.map_or(String::new(), |b| b.p_leave.to_string()),
        c.k,
        c.interleave
    )
}

/// Reads a runs.csv written by an earlier suite; an absent or unreadable file
/// gives no previous figures (the tables then say so).
fn read_previous(path: &Path) -> Previous {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Previous::new();
    };
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            if f.len() < 15 {
                return None;
            }
            let before = Before {
                em: f[9].parse().ok()?,
                p99: f[13].parse().ok(),
                nacks: f[14].parse().ok()?,
            };
            Some((f[..8].join(","), before))
        })
        .collect()
}

/// The previous figures of the same case over the same number of source
/// symbols (a `--quick` grid does not compare with a full one).
fn before<'a>(previous: &'a Previous, row: &Row) -> Option<&'a Before> {
    previous.get(&format!(
        "{},{}",
        case_key(&row.case),
        row.report.source_symbols
    ))
}

/// `now` against the previous figure, as a signed percentage.
fn moved(now: Option<f64>, before: Option<f64>) -> String {
    match (now, before) {
        (Some(n), Some(b)) if b > 0.0 => format!("{:+.1}%", (n / b - 1.0) * 100.0),
        _ => "-".into(),
    }
}

fn mode_name(m: Mode) -> &'static str {
    m.name()
}

/// Source symbols per run: enough for stable averages, fewer for large groups.
fn symbols_for(receivers: usize, quick: bool) -> usize {
    let s = match receivers {
        0..=100 => 20_000,
        101..=1000 => 8_000,
        _ => 3_000,
    };
    if quick { s / 4 } else { s }
}

/// The run a case stands for, as a simulator scenario: T = 64, 80 Mbit/s,
/// 10 ms links, the model codec, and the data split into objects of 200
/// blocks so that every block keeps K symbols.
fn scenario(c: &Case) -> Scenario {
    let blocks = c.symbols.div_ceil(c.k as usize).max(1);
    Scenario {
        mode: match c.mode {
            Mode::Carousel => scenario::Mode::Carousel,
            Mode::Nack => scenario::Mode::Nack,
            Mode::Hybrid => scenario::Mode::Hybrid,
        },
        receivers: c.receivers,
        loss: c.loss,
        size: (blocks * c.k as usize * T) as u64,
        symbol_size: Some(T as u16),
        block_symbols: c.k,
        rate: 80_000_000,
        seed: c.seed,
        interleave: c.interleave,
        delay_ms: 10.0,
        codec: scenario::CodecChoice::Model,
        burst: c.burst.map(|b| (b.p_enter, b.p_leave)),
        split_blocks: Some(200),
        ..Scenario::default()
    }
}

fn run(c: Case) -> Row {
    let o = scenario(&c).run(|_, _, _| {}).expect("runs");
    assert_eq!(
        o.report.completed_receivers,
        c.receivers,
        "{} R={} p={} k={}: not every receiver completed",
        mode_name(c.mode),
        c.receivers,
        c.loss,
        c.k
    );
    Row {
        case: c,
        report: o.report,
        wall: o.wall,
    }
}

fn main() {
    let mut opts = Opts {
        quick: false,
        completion: false,
        out: PathBuf::from("docs/suite"),
        results: PathBuf::from("docs/results.md"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => opts.quick = true,
            "--completion" => opts.completion = true,
            "--out" => opts.out = PathBuf::from(args.next().expect("--out DIR")),
            "--results" => opts.results = PathBuf::from(args.next().expect("--results FILE")),
            "-h" | "--help" => {
                println!(
                    "fec-vs-nack [--quick] [--completion] [--out DIR] [--results FILE]\n\n\
                     Runs the FEC-versus-NACK suite through groupcast-sim (model codec) and writes\n\
                     DIR/runs.csv, DIR/*.svg and the tables between the suite markers of FILE\n\
                     (defaults: docs/suite, docs/results.md). --quick runs a smaller grid.\n\
                     --completion runs the completion-time table alone (1000 receivers, about\n\
                     2 min), prints it and replaces that table in FILE, leaving the rest."
                );
                return;
            }
            other => {
                eprintln!("fec-vs-nack: unknown argument '{other}' (try --help)");
                std::process::exit(2);
            }
        }
    }
    std::fs::create_dir_all(&opts.out).expect("create output directory");
    let previous = read_previous(&opts.out.join("runs.csv"));
    let started = Instant::now();
    if opts.completion {
        let times = completion_runs(false, started);
        let md = completion_table(&times, started.elapsed());
        print!("{md}");
        splice_completion(&opts.results, &md);
        return;
    }
    let receivers: Vec<usize> = if opts.quick {
        vec![1, 10, 100, 1000]
    } else {
        vec![1, 10, 100, 1000, 10_000]
    };

    // 1. E[M] against receivers, per loss, mode and k.
    let mut em = Vec::new();
    for &p in &LOSSES {
        for &r in &receivers {
            for mode in MODES {
                let ks: &[u32] = if mode == Mode::Nack { &[1] } else { &KS };
                for &k in ks {
                    let case = Case {
                        mode,
                        receivers: r,
                        loss: p,
                        // nack mode does not code: its "block" only groups packets.
                        k: if mode == Mode::Nack { 100 } else { k },
                        burst: None,
                        interleave: 16,
                        symbols: symbols_for(r, opts.quick),
                        seed: 1,
                    };
                    let row = run(case);
                    eprintln!(
                        "[{:>6.0} s] {:<8} R={:<5} p={:<4} k={:<4} E[M] {:.4}  ({:.1} s)",
                        started.elapsed().as_secs_f64(),
                        mode_name(mode),
                        r,
                        p,
                        case.k,
                        row.report.transmissions_per_symbol(),
                        row.wall.as_secs_f64()
                    );
                    em.push(row);
                }
            }
        }
    }

    // 2. Completion time against loss, 1000 receivers (100 with --quick), k = 100.
    let times = completion_runs(opts.quick, started);

    // 3. Burst loss with and without interleaving, 100 receivers, k = 100.
    let burst = Burst {
        p_enter: 0.01,
        p_leave: 0.1,
    };
    let mut bursts = Vec::new();
    for interleave in [1, 4, 16, 64] {
        for mode in [Mode::Carousel, Mode::Hybrid] {
            let row = run(Case {
                mode,
                receivers: 100,
                loss: 0.01,
                k: 100,
                burst: Some(burst),
                interleave,
                symbols: 20_000,
                seed: 3,
            });
            eprintln!(
                "[{:>6.0} s] burst {:<8} interleave {:<3} E[M] {:.4}",
                started.elapsed().as_secs_f64(),
                mode_name(mode),
                interleave,
                row.report.transmissions_per_symbol()
            );
            bursts.push(row);
        }
    }

    let all: Vec<&Row> = em.iter().chain(&times).chain(&bursts).collect();
    write_csv(&opts.out.join("runs.csv"), &all);
    for &p in &LOSSES {
        plot_em(&opts.out, &em, &receivers, p);
    }
    plot_times(&opts.out, &times);
    plot_bursts(&opts.out, &bursts);
    let md = tables(
        &opts,
        &em,
        &receivers,
        &times,
        (&bursts, burst),
        started.elapsed(),
    );
    splice_results(&opts.results, &md);
    print!(
        "{}",
        against_previous(&em, &receivers, &times, &bursts, &previous)
    );
    eprintln!(
        "done in {:.0} s: {} runs; wrote {}, {} and {}",
        started.elapsed().as_secs_f64(),
        all.len(),
        opts.out.join("runs.csv").display(),
        opts.out.join("*.svg").display(),
        opts.results.display()
    );
}

/// The completion-time runs: 1000 receivers (100 with `quick`), k = 100,
/// 20,000 symbols, every mode at 0 to 25% loss, seed 2.
fn completion_runs(quick: bool, started: Instant) -> Vec<Row> {
    let group = if quick { 100 } else { 1000 };
    let mut times = Vec::new();
    for p in [0.0, 0.01, 0.05, 0.10, 0.25] {
        for mode in MODES {
            let row = run(Case {
                mode,
                receivers: group,
                loss: p,
                k: 100,
                burst: None,
                interleave: 16,
                symbols: 20_000,
                seed: 2,
            });
            eprintln!(
                "[{:>6.0} s] completion {:<8} p={:<4} p99 {:.3} s",
                started.elapsed().as_secs_f64(),
                mode_name(mode),
                p,
                row.report.completion_quantile(0.99).unwrap_or(f64::NAN)
            );
            times.push(row);
        }
    }
    times
}

fn find(rows: &[Row], mode: Mode, r: usize, p: f64, k: u32) -> Option<&Row> {
    rows.iter().find(|x| {
        x.case.mode == mode
            && x.case.receivers == r
            && x.case.loss == p
            && (mode == Mode::Nack || x.case.k == k)
    })
}

/// The completion-time table, its heading, and hybrid's p99 and E\[M\]
/// against the carousel's at each loss, as measured in the same run.
fn completion_body(times: &[Row]) -> String {
    let mut md = String::new();
    let group = times.first().map_or(0, |r| r.case.receivers);
    let _ = writeln!(
        md,
        "#### Completion time against loss ({group} receivers, k = 100, 20,000 symbols of \
         {T} bytes at 10 MB/s: 0.18 s of data)\n"
    );
    let _ = writeln!(
        md,
        "| loss | mode | E[M] | p50 (s) | p99 (s) | max (s) | NACKs | STATUS |\n|---|---|---|---|---|---|---|---|"
    );
    for row in times {
        let r = &row.report;
        let _ = writeln!(
            md,
            "| {:.0}% | {} | {:.3} | {} | {} | {} | {} | {} |",
            row.case.loss * 100.0,
            mode_name(row.case.mode),
            r.transmissions_per_symbol(),
            fmt3(r.completion_quantile(0.5)),
            fmt3(r.completion_quantile(0.99)),
            fmt3(r.completion_quantile(1.0)),
            r.nacks_sent,
            r.status_sent,
        );
    }
    let at = |mode: Mode, p: f64| {
        times
            .iter()
            .find(|x| x.case.mode == mode && x.case.loss == p)
    };
    let mut p99s = Vec::new();
    let mut ems = Vec::new();
    let mut losses = Vec::new();
    for p in times.iter().map(|x| x.case.loss).filter(|&p| p > 0.0) {
        if losses.contains(&p) {
            continue;
        }
        if let (Some(h), Some(c)) = (at(Mode::Hybrid, p), at(Mode::Carousel, p)) {
            let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
                (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
                _ => "-".into(),
            };
            losses.push(p);
            p99s.push(ratio(
                h.report.completion_quantile(0.99),
                c.report.completion_quantile(0.99),
            ));
            ems.push(ratio(
                Some(h.report.transmissions_per_symbol()),
                Some(c.report.transmissions_per_symbol()),
            ));
        }
    }
    let pct: Vec<String> = losses
        .iter()
        .map(|p| format!("{:.0}%", p * 100.0))
        .collect();
    let _ = writeln!(
        md,
        "\nHybrid against the carousel, in this run, at {} loss: p99 completion {} ×, \
         E[M] {} ×.",
        pct.join(", "),
        p99s.join(", "),
        ems.join(", ")
    );
    md
}

/// [`completion_body`] run alone (`--completion`), with how to rerun it.
fn completion_table(times: &[Row], elapsed: Duration) -> String {
    let mut md = completion_body(times);
    let _ = writeln!(
        md,
        "\nThis table alone: `cargo run --release -p groupcast-benches --bin fec-vs-nack -- \
         --completion` ({:.0} s on this machine).\n",
        elapsed.as_secs_f64()
    );
    md
}

/// Replaces the completion table between the suite markers of `path` (from
/// its heading to the next one) with `md`.
fn splice_completion(path: &Path, md: &str) {
    let text = std::fs::read_to_string(path).expect("read results");
    let head = "#### Completion time against loss";
    let start = text.find(head).expect("a completion table in the results");
    let end = text[start..]
        .find("\n#### ")
        .map(|i| start + i + 1)
        .expect("a heading after the completion table");
    let mut out = String::with_capacity(text.len() + md.len());
    out.push_str(&text[..start]);
    out.push_str(md);
    out.push_str(&text[end..]);
    std::fs::write(path, out).expect("write results");
}

fn tables(
    opts: &Opts,
    em: &[Row],
    receivers: &[usize],
    times: &[Row],
    (bursts, burst): (&[Row], Burst),
    elapsed: Duration,
) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "Regenerate with `cargo run --release -p groupcast-benches --bin fec-vs-nack`{} \
         ({:.0} s on this machine). Every run drives the real Sender and Receiver through \
         groupcast-sim with the model codec, {T}-byte symbols, 10 ms links and independent \
         loss; E[M] is DATA packets sent (source, repair or replay) until the last receiver \
         completed, per source symbol. nack mode replays the ESIs receivers report (no code); \
         carousel sends K × (1 + a 3σ first-round share) then 5% fresh repair per round with no \
         feedback; hybrid sends K plus, for blocks of 500 symbols or more, proactive repair \
         sized from the largest loss receivers report less the noise of the largest of many estimates (protocol.md §13.4), then as many fresh \
         repair symbols per block as the neediest receiver's NACK asks, plus a margin of 2, \
         the expected loss of the repair and one standard deviation of it. \
         The analytic columns are ARQ's Σ[1 − (1 − p^m)^R] and the ideal code's \
         E[max L]/k from Nonnenmacher, Biersack and Towsley (SIGCOMM 1997); the paper's own \
         table is reproduced by `groupcast_sim::analytic`'s tests. \
         Plots: [E[M] at 1%](suite/em_p01.svg), [5%](suite/em_p05.svg), \
         [10%](suite/em_p10.svg), [25%](suite/em_p25.svg), \
         [completion time](suite/completion.svg), [bursts](suite/burst.svg); \
         every run in [suite/runs.csv](suite/runs.csv).\n",
        if opts.quick { " -- --quick" } else { "" },
        elapsed.as_secs_f64()
    );
    for &p in &LOSSES {
        let _ = writeln!(md, "#### E[M] at {:.0}% loss\n", p * 100.0);
        let mut head = "| R | ARQ | nack | Δ |".to_string();
        let mut rule = "|---|---|---|---|".to_string();
        for k in KS {
            let _ = write!(head, " ideal k={k} | hybrid | Δ | carousel |");
            rule.push_str("---|---|---|---|");
        }
        let _ = writeln!(md, "{head}\n{rule}");
        for &r in receivers {
            let a = arq(r as u64, p);
            let nack = find(em, Mode::Nack, r, p, 0).map(|x| x.report.transmissions_per_symbol());
            let mut line = format!("| {r} | {a:.3} | {} | {} |", fmt(nack), delta(nack, a));
            for k in KS {
                let ideal = ideal_fec(r as u64, p, k);
                let h =
                    find(em, Mode::Hybrid, r, p, k).map(|x| x.report.transmissions_per_symbol());
                let c =
                    find(em, Mode::Carousel, r, p, k).map(|x| x.report.transmissions_per_symbol());
                let _ = write!(
                    line,
                    " {ideal:.3} | {} | {} | {} |",
                    fmt(h),
                    delta(h, ideal),
                    fmt(c)
                );
            }
            let _ = writeln!(md, "{line}");
        }
        let _ = writeln!(md);
    }
    md.push_str(&completion_body(times));
    let _ = writeln!(
        md,
        "\n#### Burst loss, with and without interleaving (100 receivers, k = 100)\n\n\
         Gilbert–Elliott: p_enter {}, p_leave {} (bursts of {:.0} packets on average), 1% loss \
         between bursts: {:.1}% lost on average. Interleaving spreads consecutive packets over \
         that many blocks, so a burst costs each block fewer symbols.\n",
        burst.p_enter,
        burst.p_leave,
        1.0 / burst.p_leave,
        burst.mean_loss(0.01) * 100.0
    );
    let _ = writeln!(
        md,
        "| interleave | mode | E[M] | p99 completion (s) | NACKs |\n|---|---|---|---|---|"
    );
    for row in bursts {
        let r = &row.report;
        let _ = writeln!(
            md,
            "| {} | {} | {:.3} | {} | {} |",
            row.case.interleave,
            mode_name(row.case.mode),
            r.transmissions_per_symbol(),
            fmt3(r.completion_quantile(0.99)),
            r.nacks_sent,
        );
    }
    md
}

/// What this run changed against the runs.csv it replaced, for the one who
/// ran it (standard output; the doc holds current figures only): each E\[M\]
/// table's figures as moves, and each timed or burst run's E\[M\], p99 and
/// NACKs before.
fn against_previous(
    em: &[Row],
    receivers: &[usize],
    times: &[Row],
    bursts: &[Row],
    previous: &Previous,
) -> String {
    let mut md = String::new();
    if previous.is_empty() {
        let _ = writeln!(md, "No previous runs.csv to compare with.");
        return md;
    }
    for &p in &LOSSES {
        let _ = writeln!(
            md,
            "E[M] at {:.0}% loss against the previous runs.csv:\n",
            p * 100.0
        );
        em_against_previous(&mut md, em, receivers, p, previous);
    }
    let _ = writeln!(md, "Timed and burst runs, previous E[M], p99, NACKs:\n");
    for row in times.iter().chain(bursts) {
        let _ = writeln!(
            md,
            "{} {:.0}% interleave {}: {}",
            mode_name(row.case.mode),
            row.case.loss * 100.0,
            row.case.interleave,
            was(before(previous, row))
        );
    }
    md
}

/// An E\[M\] table's figures against the previous suite's, one line per
/// group size.
fn em_against_previous(
    md: &mut String,
    em: &[Row],
    receivers: &[usize],
    p: f64,
    previous: &Previous,
) {
    let mut head = "| R | nack |".to_string();
    let mut rule = "|---|---|".to_string();
    for k in KS {
        let _ = write!(head, " hybrid k={k} | carousel k={k} |");
        rule.push_str("---|---|");
    }
    let _ = writeln!(md, "{head}\n{rule}");
    let change = |mode, r, k| {
        find(em, mode, r, p, k).map_or("-".into(), |row| {
            moved(
                Some(row.report.transmissions_per_symbol()),
                before(previous, row).map(|b| b.em),
            )
        })
    };
    for &r in receivers {
        let mut line = format!("| {r} | {} |", change(Mode::Nack, r, 0));
        for k in KS {
            let _ = write!(
                line,
                " {} | {} |",
                change(Mode::Hybrid, r, k),
                change(Mode::Carousel, r, k)
            );
        }
        let _ = writeln!(md, "{line}");
    }
    let _ = writeln!(md);
}

/// The previous suite's figures for a run, for a table's last column.
fn was(b: Option<&Before>) -> String {
    b.map_or("-".into(), |b| {
        format!("{:.3}, {}, {}", b.em, fmt3(b.p99), b.nacks)
    })
}

fn fmt(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.3}"))
}

fn fmt3(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.3}"))
}

fn delta(v: Option<f64>, reference: f64) -> String {
    v.map_or("-".into(), |v| {
        format!("{:+.1}%", (v / reference - 1.0) * 100.0)
    })
}

fn write_csv(path: &Path, rows: &[&Row]) {
    let mut out = String::from(
        "mode,receivers,loss,burst_enter,burst_leave,k,interleave,source_symbols,symbols_sent,\
         transmissions_per_symbol,arq,ideal_fec,completion_p50_s,completion_p99_s,nacks_sent,\
         nacks_suppressed,status_sent,peak_receiver_buffer_bytes,deliveries,wall_s,trace_hash\n",
    );
    for row in rows {
        let c = &row.case;
        let r = &row.report;
        let _ = writeln!(
            out,
            "{},{},{},{:.5},{:.5},{:.5},{},{},{},{},{},{},{},{:.3},{}",
            case_key(c),
            r.source_symbols,
            r.symbols_sent,
            r.transmissions_per_symbol(),
            arq(c.receivers as u64, c.loss),
            ideal_fec(c.receivers as u64, c.loss, c.k),
            r.completion_quantile(0.5)
                .map_or(String::new(), |v| format!("{v:.4}")),
            r.completion_quantile(0.99)
                .map_or(String::new(), |v| format!("{v:.4}")),
            r.nacks_sent,
            r.nacks_suppressed,
            r.status_sent,
            r.peak_receiver_buffer_bytes(),
            r.deliveries,
            row.wall.as_secs_f64(),
            r.trace_hash
        );
    }
    std::fs::write(path, out).expect("write CSV");
}

/// Replaces the text between the suite markers of `results` with `md`.
fn splice_results(results: &Path, md: &str) {
    const BEGIN: &str = "<!-- suite:begin (generated by fec-vs-nack; do not edit) -->";
    const END: &str = "<!-- suite:end -->";
    let text = std::fs::read_to_string(results).unwrap_or_default();
    let new = match (text.find(BEGIN), text.find(END)) {
        (Some(a), Some(b)) if a < b => {
            format!("{}{BEGIN}\n{md}{}", &text[..a], &text[b..])
        }
        _ => format!("{text}\n{BEGIN}\n{md}{END}\n"),
    };
    std::fs::write(results, new).expect("write results");
}

const COLORS: [RGBColor; 5] = [
    RGBColor(214, 39, 40),
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(0, 0, 0),
    RGBColor(148, 103, 189),
];

/// A named line; analytic ones are dashed.
type Series = (String, Vec<(f64, f64)>, bool);

fn plot_em(dir: &Path, em: &[Row], receivers: &[usize], p: f64) {
    let k = 100;
    let path = dir.join(format!("em_p{:02.0}.svg", p * 100.0));
    let root = SVGBackend::new(&path, (720, 480)).into_drawing_area();
    root.fill(&WHITE).expect("draw");
    let max_r = *receivers.last().expect("receivers") as f64;
    let series: Vec<Series> = vec![
        (
            "ARQ (analytic)".into(),
            receivers
                .iter()
                .map(|&r| (r as f64, arq(r as u64, p)))
                .collect(),
            true,
        ),
        (
            format!("ideal FEC k={k} (analytic)"),
            receivers
                .iter()
                .map(|&r| (r as f64, ideal_fec(r as u64, p, k)))
                .collect(),
            true,
        ),
        (
            "nack (simulated)".into(),
            points(em, Mode::Nack, receivers, p, k),
            false,
        ),
        (
            format!("hybrid k={k} (simulated)"),
            points(em, Mode::Hybrid, receivers, p, k),
            false,
        ),
        (
            format!("carousel k={k} (simulated)"),
            points(em, Mode::Carousel, receivers, p, k),
            false,
        ),
    ];
    let top = series
        .iter()
        .flat_map(|s| s.1.iter().map(|x| x.1))
        .fold(1.0f64, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("E[M] against receivers, {:.0}% loss", p * 100.0),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((1f64..max_r).log_scale(), 1f64..top)
        .expect("chart");
    chart
        .configure_mesh()
        .x_desc("receivers")
        .y_desc("transmissions per packet")
        .draw()
        .expect("mesh");
    for (i, (name, pts, analytic)) in series.into_iter().enumerate() {
        let color = COLORS[(i + 3) % COLORS.len()];
        let color = if analytic { color } else { COLORS[i - 2] };
        if analytic {
            chart
                .draw_series(DashedLineSeries::new(pts, 6, 4, color.stroke_width(2)))
                .expect("series")
                .label(name)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color));
        } else {
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                .expect("series")
                .label(name)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color));
            chart
                .draw_series(pts.into_iter().map(|x| Circle::new(x, 3, color.filled())))
                .expect("points");
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .expect("legend");
    root.present().expect("write SVG");
}

fn points(em: &[Row], mode: Mode, receivers: &[usize], p: f64, k: u32) -> Vec<(f64, f64)> {
    receivers
        .iter()
        .filter_map(|&r| {
            find(em, mode, r, p, k).map(|x| (r as f64, x.report.transmissions_per_symbol()))
        })
        .collect()
}

fn plot_times(dir: &Path, times: &[Row]) {
    let path = dir.join("completion.svg");
    let root = SVGBackend::new(&path, (720, 480)).into_drawing_area();
    root.fill(&WHITE).expect("draw");
    let top = times
        .iter()
        .filter_map(|r| r.report.completion_quantile(0.99))
        .fold(0.0f64, f64::max)
        * 1.15;
    let group = times.first().map_or(0, |r| r.case.receivers);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("p99 completion time against loss, {group} receivers"),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..26f64, 0f64..top.max(0.1))
        .expect("chart");
    chart
        .configure_mesh()
        .x_desc("loss (%)")
        .y_desc("seconds (simulated)")
        .draw()
        .expect("mesh");
    for (i, mode) in MODES.into_iter().enumerate() {
        let color = COLORS[i];
        let pts: Vec<(f64, f64)> = times
            .iter()
            .filter(|r| r.case.mode == mode)
            .filter_map(|r| Some((r.case.loss * 100.0, r.report.completion_quantile(0.99)?)))
            .collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .expect("series")
            .label(mode_name(mode))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color));
        chart
            .draw_series(pts.into_iter().map(|x| Circle::new(x, 3, color.filled())))
            .expect("points");
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .expect("legend");
    root.present().expect("write SVG");
}

fn plot_bursts(dir: &Path, bursts: &[Row]) {
    let path = dir.join("burst.svg");
    let root = SVGBackend::new(&path, (720, 480)).into_drawing_area();
    root.fill(&WHITE).expect("draw");
    let top = bursts
        .iter()
        .map(|r| r.report.transmissions_per_symbol())
        .fold(1.0f64, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "E[M] under burst loss against interleaving depth, 100 receivers",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((1f64..64f64).log_scale(), 1f64..top)
        .expect("chart");
    chart
        .configure_mesh()
        .x_desc("blocks interleaved")
        .y_desc("transmissions per packet")
        .draw()
        .expect("mesh");
    for (i, mode) in [Mode::Carousel, Mode::Hybrid].into_iter().enumerate() {
        let color = COLORS[i + 1];
        let pts: Vec<(f64, f64)> = bursts
            .iter()
            .filter(|r| r.case.mode == mode)
            .map(|r| {
                (
                    r.case.interleave as f64,
                    r.report.transmissions_per_symbol(),
                )
            })
            .collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .expect("series")
            .label(mode_name(mode))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color));
        chart
            .draw_series(pts.into_iter().map(|x| Circle::new(x, 3, color.filled())))
            .expect("points");
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .expect("legend");
    root.present().expect("write SVG");
}
