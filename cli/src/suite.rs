//! Scenario files for `groupcast sim --scenario FILE.toml`.
//!
//! ```toml
//! # Flags of `groupcast sim` by their long names, for every run.
//! [defaults]
//! size = "1MB"
//! codec = "model"
//!
//! # One table per run; an array expands into one run per value, and several
//! # arrays into every combination.
//! [[run]]
//! name = "E[M] against receivers"
//! mode = ["nack", "hybrid"]
//! receivers = [1, 10, 100, 1000]
//! loss = 0.01
//! ```
//!
//! Each run's flags are parsed by the same clap definitions as the command
//! line, so every check and default is the same; a value given in a run
//! overrides `[defaults]`, which overrides the command line.

use clap::Parser;

use crate::scenario::SimArgs;

/// `groupcast sim`'s flags alone, to parse a run's flags with.
#[derive(Parser)]
#[command(name = "sim", args_override_self = true)]
struct SimOnly {
    #[command(flatten)]
    args: SimArgs,
}

/// Keys a scenario file may not set: they choose output, not a scenario.
const FORBIDDEN: &[&str] = &["scenario", "json", "csv", "help"];

/// Most runs one file may expand into.
const MAX_RUNS: usize = 10_000;

/// The runs of a scenario file, each with its name. `base` holds the flags
/// given on the command line (without the output flags).
pub fn expand(text: &str, base: &[String]) -> Result<Vec<(String, SimArgs)>, String> {
    let doc: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
    for key in doc.keys() {
        if key != "defaults" && key != "run" {
            return Err(format!(
                "unknown top-level key '{key}' (expected [defaults] and [[run]] tables)"
            ));
        }
    }
    let empty = toml::Table::new();
    let defaults = match doc.get("defaults") {
        None => &empty,
        Some(toml::Value::Table(t)) => t,
        Some(_) => return Err("'defaults' must be a table".into()),
    };
    let defaults = flags(defaults, "[defaults]")?;
    let runs = match doc.get("run") {
        Some(toml::Value::Array(a)) if !a.is_empty() => a,
        _ => return Err("no [[run]] tables".into()),
    };
    let mut out = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        let toml::Value::Table(table) = run else {
            return Err(format!("run {} is not a table", i + 1));
        };
        let name = match table.get("name") {
            None => format!("run{}", i + 1),
            Some(toml::Value::String(s)) => s.clone(),
            Some(_) => return Err(format!("run {}: 'name' must be a string", i + 1)),
        };
        let mut grid = table.clone();
        grid.remove("name");
        let varied = flags(&grid, &name)?;
        for combo in combinations(&varied) {
            if out.len() >= MAX_RUNS {
                return Err(format!("the file expands into more than {MAX_RUNS} runs"));
            }
            let mut argv = vec!["sim".to_string()];
            argv.extend(base.iter().cloned());
            for (key, values) in &defaults {
                // Arrays in [defaults] are not expanded: the last value wins.
                push_flag(&mut argv, key, values.last().expect("non-empty"));
            }
            let mut label = name.clone();
            for (key, value) in &combo {
                push_flag(&mut argv, key, value);
                if varied.iter().any(|(k, v)| k == key && v.len() > 1) {
                    label.push_str(&format!(" {key}={}", show(value)));
                }
            }
            let parsed = SimOnly::try_parse_from(&argv)
                .map_err(|e| format!("{label}: {}", e.kind_message(&e)))?;
            out.push((label, parsed.args));
        }
    }
    Ok(out)
}

/// A table's keys as flags, each with its values (one unless an array).
fn flags(t: &toml::Table, what: &str) -> Result<Vec<(String, Vec<toml::Value>)>, String> {
    let mut out = Vec::new();
    for (key, value) in t {
        let flag = key.replace('_', "-");
        if FORBIDDEN.contains(&flag.as_str()) {
            return Err(format!(
                "{what}: '{key}' chooses output; give it on the command line"
            ));
        }
        let values = match value {
            toml::Value::Array(a) if a.is_empty() => {
                return Err(format!("{what}: '{key}' is an empty list"));
            }
            toml::Value::Array(a) => a.clone(),
            other => vec![other.clone()],
        };
        for v in &values {
            if matches!(v, toml::Value::Array(_) | toml::Value::Table(_)) {
                return Err(format!("{what}: '{key}' must hold plain values"));
            }
        }
        out.push((flag, values));
    }
    Ok(out)
}

/// Every combination of one value per key, the last key varying fastest.
fn combinations(keys: &[(String, Vec<toml::Value>)]) -> Vec<Vec<(String, toml::Value)>> {
    let mut out: Vec<Vec<(String, toml::Value)>> = vec![Vec::new()];
    for (key, values) in keys {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                values.iter().map(move |v| {
                    let mut p = prefix.clone();
                    p.push((key.clone(), v.clone()));
                    p
                })
            })
            .collect();
    }
    out
}

fn show(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Datetime(d) => d.to_string(),
        toml::Value::Array(_) | toml::Value::Table(_) => String::new(),
    }
}

fn push_flag(argv: &mut Vec<String>, key: &str, value: &toml::Value) {
    match value {
        toml::Value::Boolean(true) => argv.push(format!("--{key}")),
        toml::Value::Boolean(false) => {}
        v => argv.push(format!("--{key}={}", show(v))),
    }
}

trait KindMessage {
    fn kind_message(&self, e: &clap::Error) -> String;
}

impl KindMessage for clap::Error {
    /// clap's message without its usage footer.
    fn kind_message(&self, e: &clap::Error) -> String {
        let text = e.to_string();
        text.lines()
            .next()
            .unwrap_or("")
            .trim_start_matches("error: ")
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_expand_into_every_combination() {
        let runs = expand(
            r#"
[defaults]
size = "64KiB"
[[run]]
name = "grid"
mode = ["nack", "hybrid"]
receivers = [1, 10, 100]
loss = 0.05
"#,
            &[],
        )
        .unwrap();
        assert_eq!(runs.len(), 6);
        assert_eq!(runs[0].0, "grid mode=nack receivers=1");
        assert_eq!(runs[5].1.receivers, 100);
        assert!(runs.iter().all(|(_, a)| a.size == 65536 && a.loss == 0.05));
    }

    #[test]
    fn runs_override_defaults_which_override_the_command_line() {
        let base = vec!["--loss=0.2".to_string(), "--seed=9".to_string()];
        let runs = expand(
            "[defaults]\nloss = 0.1\n[[run]]\nloss = 0.3\n[[run]]\n",
            &base,
        )
        .unwrap();
        assert_eq!(runs[0].1.loss, 0.3);
        assert_eq!(runs[1].1.loss, 0.1);
        assert_eq!(runs[1].1.seed, 9);
        assert_eq!(runs[1].0, "run2");
    }

    #[test]
    fn bad_files_name_the_problem() {
        let e = |t: &str| expand(t, &[]).unwrap_err();
        assert!(e("[[run]]\nloss = 2.0\n").contains("must be at least 0 and below 1"));
        assert!(e("[[run]]\nlosss = 0.1\n").contains("losss"));
        assert!(e("[[run]]\njson = true\n").contains("chooses output"));
        assert!(e("[defaults]\n").contains("no [[run]]"));
        assert!(e("[[run]]\nmode = []\n").contains("empty list"));
        assert!(e("surprise = 1\n[[run]]\n").contains("unknown top-level key"));
        assert!(e("[[run]\n").contains("TOML") || !e("[[run]\n").is_empty());
    }
}
