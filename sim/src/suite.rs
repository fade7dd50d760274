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
//! name = "E\[M\] against receivers"
//! mode = ["nack", "hybrid"]
//! receivers = [1, 10, 100, 1000]
//! loss = 0.01
//! ```
//!
//! Each run is a [`Scenario`], deserialised field by field with the same
//! parsers as the command line's flags (sizes and rates with units, bursts,
//! loss lists, group changes), so a bad value fails with the same message;
//! a value given in a run overrides `[defaults]`, which overrides the base
//! scenario (the command line's).

use crate::scenario::Scenario;

/// Keys a scenario file may not set: they choose output, not a scenario.
const FORBIDDEN: &[&str] = &["scenario", "json", "csv", "help"];

/// Most runs one file may expand into.
const MAX_RUNS: usize = 10_000;

/// The runs of a scenario file, each with its name. `base` is the scenario
/// the command line describes: every run starts from it.
pub fn expand(text: &str, base: &Scenario) -> Result<Vec<(String, Scenario)>, String> {
    let base = toml::Table::try_from(base).map_err(|e| e.to_string())?;
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
            let mut table = base.clone();
            for (key, values) in &defaults {
                // Arrays in [defaults] are not expanded: the last value wins.
                table.insert(key.clone(), values.last().expect("non-empty").clone());
            }
            let mut label = name.clone();
            for (key, value) in &combo {
                table.insert(key.clone(), value.clone());
                if varied.iter().any(|(k, v)| k == key && v.len() > 1) {
                    label.push_str(&format!(" {}={}", key.replace('_', "-"), show(value)));
                }
            }
            let scenario: Scenario = toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| format!("{label}: {}", e.message()))?;
            scenario.validate().map_err(|e| format!("{label}: {e}"))?;
            out.push((label, scenario));
        }
    }
    Ok(out)
}

/// A table's keys as flags, each with its values (one unless an array).
fn flags(t: &toml::Table, what: &str) -> Result<Vec<(String, Vec<toml::Value>)>, String> {
    let mut out = Vec::new();
    for (key, value) in t {
        // Keys as the fields are named: `loss-list` and `loss_list` alike.
        let field = key.replace('-', "_");
        if FORBIDDEN.contains(&field.as_str()) {
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
        out.push((field, values));
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
            &Scenario::default(),
        )
        .unwrap();
        assert_eq!(runs.len(), 6);
        assert_eq!(runs[0].0, "grid mode=nack receivers=1");
        assert_eq!(runs[5].1.receivers, 100);
        assert!(runs.iter().all(|(_, a)| a.size == 65536 && a.loss == 0.05));
    }

    #[test]
    fn runs_override_defaults_which_override_the_command_line() {
        let base = Scenario {
            loss: 0.2,
            seed: 9,
            ..Scenario::default()
        };
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
        let e = |t: &str| expand(t, &Scenario::default()).unwrap_err();
        assert!(e("[[run]]\nloss = 2.0\n").contains("must be at least 0 and below 1"));
        assert!(e("[[run]]\nlosss = 0.1\n").contains("losss"));
        assert!(e("[[run]]\njson = true\n").contains("chooses output"));
        assert!(e("[[run]]\nreceivers = 5\njoin = \"6@1\"\n").contains("--join names 6"));
        assert!(e("[defaults]\n").contains("no [[run]]"));
        assert!(e("[[run]]\nmode = []\n").contains("empty list"));
        assert!(e("surprise = 1\n[[run]]\n").contains("unknown top-level key"));
        assert!(e("[[run]\n").contains("TOML") || !e("[[run]\n").is_empty());
    }
}
