//! `groupcast sim` at the command line: determinism with bursts, the model
//! codec, scenario files, CSV, and clear errors.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_groupcast");

fn sim(args: &[&str]) -> std::process::Output {
    Command::new(BIN).arg("sim").args(args).output().unwrap()
}

fn json(args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = sim(&all);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

const SMALL: &[&str] = &[
    "--receivers",
    "50",
    "--size",
    "128KiB",
    "--symbol-size",
    "64",
    "--block-symbols",
    "100",
    "--loss",
    "0.02",
    "--burst",
    "0.01,0.25",
    "--seed",
    "11",
];

#[test]
fn same_seed_and_burst_give_identical_json() {
    let mut a = json(SMALL);
    let mut b = json(SMALL);
    assert_eq!(a["completed_receivers"], 50);
    assert_eq!(a["burst"], serde_json::json!([0.01, 0.25]));
    for v in [&mut a, &mut b] {
        v.as_object_mut().unwrap().remove("wall_time_s");
        v.as_object_mut().unwrap().remove("peak_rss_bytes");
    }
    assert_eq!(a, b);
    // Another seed is another run.
    let mut other = SMALL.to_vec();
    let last = other.len() - 1;
    other[last] = "12";
    assert_ne!(json(&other)["trace_hash"], a["trace_hash"]);
}

#[test]
fn codec_auto_picks_the_model_for_large_runs() {
    let small = json(&["--receivers", "10", "--size", "64KiB"]);
    assert_eq!(small["codec"], "raptorq");
    assert_eq!(small["bytes_verified"], true);
    let large = json(&[
        "--receivers",
        "2000",
        "--size",
        "1MB",
        "--symbol-size",
        "256",
        "--loss",
        "0.05",
    ]);
    assert_eq!(large["codec"], "model");
    assert_eq!(large["bytes_verified"], false);
    assert_eq!(large["completed_receivers"], 2000);
    assert!(large["completion_time_p99_s"].as_f64().unwrap() > 0.0);
    let forced = json(&["--receivers", "10", "--size", "64KiB", "--codec", "model"]);
    assert_eq!(forced["codec"], "model");
}

#[test]
fn scenario_files_run_every_combination_as_csv() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/suite.toml");
    let out = sim(&["--scenario", path, "--csv"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("scenario,mode,codec,receivers,loss,burst"));
    assert_eq!(lines.len(), 1 + 8, "{text}");
    assert!(lines[1].starts_with("nack against hybrid mode=nack receivers=10,nack,"));
    let left = lines[0]
        .split(',')
        .position(|c| c == "left_receivers")
        .unwrap();
    let late = lines[8].split(',').collect::<Vec<_>>();
    assert_eq!(late[left], "3");
}

#[test]
fn bad_input_names_the_problem() {
    let fails = |args: &[&str], needle: &str| {
        let out = sim(args);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{needle:?} not in {err}");
    };
    fails(&["--burst", "0.1"], "P_ENTER,P_LEAVE");
    fails(&["--burst", "0.1,0"], "never ends");
    fails(&["--loss-list", "0.1x3,1.5"], "below 1");
    fails(
        &["--receivers", "5", "--join", "6@1"],
        "--join names 6 receivers",
    );
    fails(&["--leave", "2"], "COUNT@SECONDS");
    fails(
        &["--scenario", "/nonexistent/suite.toml"],
        "cannot read scenario file",
    );
    let dir = std::env::temp_dir().join(format!("gc-suite-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[[run]]\nname = \"x\"\nlos = 0.1\n").unwrap();
    fails(
        &["--scenario", bad.to_str().unwrap()],
        "x: unknown field `los`",
    );
    std::fs::write(&bad, "[[run]]\nloss = [0.1, 3]\n").unwrap();
    fails(&["--scenario", bad.to_str().unwrap()], "run1 loss=3");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// NACKs per block count the blocks the OTI really makes: at most 255, so an
/// object of more than 255 × K symbols has larger blocks, not more of them.
#[test]
fn nacks_per_block_count_the_blocks_of_the_oti() {
    let args = [
        "--mode",
        "hybrid",
        "--receivers",
        "5",
        "--loss",
        "0.05",
        "--size",
        "2MB",
        "--symbol-size",
        "64",
        "--block-symbols",
        "100",
    ];
    let out = sim(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("feedback: "))
        .unwrap_or_else(|| panic!("no feedback line in {text}"));
    let mut words = line.split_whitespace();
    let nacks: f64 = words.nth(1).unwrap().parse().unwrap();
    let per: f64 = line
        .split('(')
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    // 2 MB in 64-byte symbols is 31,250 symbols: 255 blocks of about 123, not 313 of 100.
    assert!((per - nacks / 255.0).abs() < 0.01, "{line}");
}

/// `sim --json` gives, for each recorded command line, the recorded report
/// (less wall time and peak memory).
/// Each line of sim_golden.jsonl holds a command line and its report; a
/// change meant to alter behaviour rewrites it and says why in its commit.
#[test]
fn json_reports_match_the_recorded_ones() {
    let golden = include_str!("sim_golden.jsonl");
    for line in golden.lines() {
        let want: serde_json::Value = serde_json::from_str(line).unwrap();
        let args: Vec<&str> = want["args"].as_str().unwrap().split(' ').collect();
        let mut got = json(&args);
        got.as_object_mut().unwrap().remove("wall_time_s");
        got.as_object_mut().unwrap().remove("peak_rss_bytes");
        assert_eq!(got, want["report"], "sim {}", want["args"]);
    }
}

/// `--split-blocks`: data larger than 255 blocks of K is carried as several
/// objects whose blocks keep K symbols, and every copy still completes.
#[test]
fn split_blocks_carries_the_data_as_several_objects() {
    let v = json(&[
        "--receivers",
        "5",
        "--size",
        "64000",
        "--symbol-size",
        "64",
        "--block-symbols",
        "10",
        "--split-blocks",
        "20",
        "--loss",
        "0.05",
    ]);
    assert_eq!(v["completed_receivers"], 5);
    assert_eq!(v["identical_receivers"], 5);
    // 1000 symbols in blocks of 10: objects of 20 blocks, 100 blocks in all.
    assert_eq!(v["source_symbols"], 1000);
    let out = sim(&["--split-blocks", "0"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--split-blocks must lie between 1 and 256")
    );
}
