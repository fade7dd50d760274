//! Bad input gets a clear error that names the problem (no privileges needed).

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_groupcast");

fn fails_with(args: &[&str], needle: &str) {
    let out = Command::new(BIN).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(
        stderr.contains(needle),
        "{args:?}: expected '{needle}' in: {stderr}"
    );
}

/// `groupcast send FILE --channel c --interface lo EXTRA...` fails naming `needle`.
fn send_fails(file: &str, extra: &[&str], needle: &str) {
    let mut args = vec!["send", file, "--channel", "c", "--interface", "lo"];
    args.extend_from_slice(extra);
    fails_with(&args, needle);
}

/// `groupcast recv --channel c --interface lo --output OUT EXTRA...` fails naming `needle`.
fn recv_fails(output: &str, extra: &[&str], needle: &str) {
    let mut args = vec![
        "recv",
        "--channel",
        "c",
        "--interface",
        "lo",
        "--output",
        output,
    ];
    args.extend_from_slice(extra);
    fails_with(&args, needle);
}

#[test]
fn errors_name_the_problem() {
    let dir = std::env::temp_dir().join(format!("groupcast-errors-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("f.bin");
    std::fs::write(&file, b"data").unwrap();
    let f = file.to_str().unwrap();
    fails_with(
        &[
            "send",
            "/nonexistent/input",
            "--channel",
            "c",
            "--interface",
            "lo",
        ],
        "/nonexistent/input",
    );
    fails_with(
        &["send", f, "--channel", "c", "--interface", "nosuchif0"],
        "no network interface named 'nosuchif0'",
    );
    send_fails(f, &["--rate", "fast"], "a rate needs a number first");
    recv_fails("/nonexistent/out", &[], "no such directory");
    recv_fails(f, &[], "this is a file, not a directory");
    fails_with(
        &[
            "recv",
            "--channel",
            "c",
            "--interface",
            "nosuchif0",
            "--output",
            dir.to_str().unwrap(),
        ],
        "no network interface named 'nosuchif0'",
    );
    fails_with(&["sim", "--loss", "1.5"], "must be at least 0 and below 1");
    fails_with(&["sim", "--size", "3 furlongs"], "unknown size unit");
    fails_with(
        &["sim", "--receivers", "0"],
        "--receivers must be at least 1",
    );
    send_fails(f, &["--policy", "quorum:0"], "is not min, max or quorum:N");
    send_fails(f, &["--repair-share", "0"], "must lie above 0");
    send_fails(
        f,
        &["--congestion-loss", "1.5"],
        "must be at least 0 and below 1",
    );
    send_fails(f, &["--max-datagram", "40"], "in 48..=65527");
    fails_with(&["sim", "--mode", "arq"], "invalid value 'arq'");
    recv_fails(
        dir.to_str().unwrap(),
        &["--max-object-size", "lots"],
        "size",
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn small_demo_succeeds_and_channel_prints_the_librecast_address() {
    let out = Command::new(BIN)
        .args(["demo", "--receivers", "3", "--size", "200KiB"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("All 3 receivers hold a byte-identical"));
    let out = Command::new(BIN)
        .args(["channel", "example.com"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ff1e:7492:7756:a0a0:8c17:da48:407c:8adc"
    );
}

#[test]
fn transfer_ids_are_printed_alone_and_bad_ones_are_named() {
    let dir = std::env::temp_dir().join(format!("groupcast-id-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("tree/sub")).unwrap();
    std::fs::write(dir.join("tree/a"), b"alpha").unwrap();
    std::fs::write(dir.join("tree/sub/b"), b"beta").unwrap();
    let tree = dir.join("tree");
    let id = |path: &std::path::Path| {
        let out = Command::new(BIN).arg("id").arg(path).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let first = id(&tree);
    assert_eq!(first.len(), 65, "64 hex digits and a newline: {first:?}");
    assert!(first.trim().bytes().all(|b| b.is_ascii_hexdigit()));
    // It depends only on the files: the same again, another after a change.
    assert_eq!(id(&tree), first);
    std::fs::write(dir.join("tree/a"), b"alphA").unwrap();
    assert_ne!(id(&tree), first);
    std::fs::create_dir_all(dir.join("empty")).unwrap();
    fails_with(
        &["id", dir.join("empty").to_str().unwrap()],
        "nothing to send",
    );
    fails_with(&["id", "/nonexistent/x"], "/nonexistent/x");
    let out = dir.to_str().unwrap();
    recv_fails(out, &["--expect", "abc"], "is not a transfer id");
    recv_fails(out, &["--expect", &"G".repeat(64)], "is not a transfer id");
    send_fails(dir.join("empty").to_str().unwrap(), &[], "nothing to send");
    send_fails(
        tree.to_str().unwrap(),
        &["--stall-timeout", "0"],
        "--stall-timeout",
    );
    send_fails(
        tree.to_str().unwrap(),
        &["--min-progress", "fast"],
        "--min-progress",
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `groupcast ARGS` is refused by the argument parser (clap's exit code 2,
/// before anything runs) with an error naming `flag` and holding `needle`.
fn flag_rejects(args: &[&str], flag: &str, needle: &str) {
    let out = Command::new(BIN).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(
        stderr.contains(&format!("for '{flag}")),
        "{args:?}: expected the flag {flag} named in: {stderr}"
    );
    assert!(
        stderr.contains(needle),
        "{args:?}: expected '{needle}' in: {stderr}"
    );
}

/// A scratch directory holding a file `f.bin`: (directory, file).
fn scratch(name: &str) -> (std::path::PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("groupcast-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("f.bin");
    std::fs::write(&file, b"data").unwrap();
    (dir, file.to_str().unwrap().to_owned())
}

fn send_args<'a>(file: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["send", file, "--channel", "c", "--interface", "lo"];
    args.extend_from_slice(extra);
    args
}

fn recv_args<'a>(output: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "recv",
        "--channel",
        "c",
        "--interface",
        "lo",
        "--output",
        output,
    ];
    args.extend_from_slice(extra);
    args
}

#[test]
fn bad_rates_name_their_flag() {
    let (dir, f) = scratch("rates");
    let need_number = "a rate needs a number first";
    flag_rejects(&send_args(&f, &["--rate", "fast"]), "--rate", need_number);
    flag_rejects(
        &send_args(&f, &["--rate", "0"]),
        "--rate",
        "between 1 bit/s",
    );
    flag_rejects(
        &send_args(&f, &["--min-rate", "10MiB"]),
        "--min-rate",
        "unknown rate unit",
    );
    flag_rejects(
        &send_args(&f, &["--min-progress", "slow"]),
        "--min-progress",
        need_number,
    );
    flag_rejects(&["sim", "--rate", "fast"], "--rate", need_number);
    flag_rejects(
        &["sim", "--bottleneck", "2T"],
        "--bottleneck",
        "unknown rate unit 't'",
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_sizes_name_their_flag() {
    let (dir, f) = scratch("sizes");
    let out = dir.to_str().unwrap();
    // A part size that is not a power of two gets a suggestion in binary units.
    flag_rejects(
        &send_args(&f, &["--part-size", "5MB"]),
        "--part-size",
        "try 4 MiB or 8 MiB",
    );
    flag_rejects(
        &["id", &f, "--part-size", "2KiB"],
        "--part-size",
        "between 4 KiB and 1 GiB",
    );
    flag_rejects(
        &send_args(&f, &["--flow-window-bytes", "0"]),
        "--flow-window-bytes",
        "at least 1 byte",
    );
    flag_rejects(
        &recv_args(out, &["--max-object-size", "lots"]),
        "--max-object-size",
        "a size needs a number first",
    );
    flag_rejects(
        &["sim", "--size", "3 furlongs"],
        "--size",
        "unknown size unit 'furlongs'",
    );
    flag_rejects(
        &["sim", "--queue=-1"],
        "--queue",
        "a size needs a number first",
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_durations_name_their_flag_and_good_ones_take_units() {
    let (dir, f) = scratch("durations");
    let out = dir.to_str().unwrap();
    flag_rejects(
        &send_args(&f, &["--timeout", "abc"]),
        "--timeout",
        "give seconds",
    );
    flag_rejects(&recv_args(out, &["--timeout", "0"]), "--timeout", "above 0");
    flag_rejects(
        &recv_args(out, &["--idle-timeout", "5 parsecs"]),
        "--idle-timeout",
        "give seconds",
    );
    flag_rejects(
        &send_args(&f, &["--receiver-timeout=-1"]),
        "--receiver-timeout",
        "give seconds",
    );
    flag_rejects(
        &send_args(&f, &["--stall-timeout", "0s"]),
        "--stall-timeout",
        "above 0",
    );
    flag_rejects(
        &send_args(&f, &["--timeout", "100000y"]),
        "--timeout",
        "at most",
    );
    // "30s", "5m" and plain seconds pass the parser: what fails is the interface.
    for t in ["30s", "5m", "1h 30m", "1.5", "250ms"] {
        let out = Command::new(BIN)
            .args([
                "recv",
                "--channel",
                "c",
                "--interface",
                "nosuchif0",
                "--output",
                out,
            ])
            .args(["--timeout", t, "--idle-timeout", t])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{t}: {stderr}");
        assert!(
            stderr.contains("no network interface named 'nosuchif0'"),
            "{t}: {stderr}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_channel_names_name_their_flag() {
    let (dir, f) = scratch("channels");
    let out = dir.to_str().unwrap();
    let long = "x".repeat(256);
    let empty = "a channel name needs at least one character";
    flag_rejects(
        &["send", &f, "--channel", "", "--interface", "lo"],
        "--channel",
        empty,
    );
    flag_rejects(
        &[
            "recv",
            "--channel",
            &long,
            "--interface",
            "lo",
            "--output",
            out,
        ],
        "--channel",
        "at most 255 bytes; this one has 256",
    );
    flag_rejects(
        &["chat", "--channel", "", "--interface", "lo"],
        "--channel",
        empty,
    );
    flag_rejects(&["channel", ""], "<NAME>", empty);
    // 255 bytes is a name.
    let most = "x".repeat(255);
    let ok = Command::new(BIN).args(["channel", &most]).output().unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_paths_name_their_flag_and_say_what_is_wrong() {
    let (dir, f) = scratch("paths");
    let out = dir.to_str().unwrap();
    let missing = dir.join("missing");
    let missing = missing.to_str().unwrap();
    flag_rejects(
        &recv_args(missing, &[]),
        "--output",
        "no such directory: create it first",
    );
    flag_rejects(
        &recv_args(&f, &[]),
        "--output",
        "this is a file, not a directory",
    );
    let stats = dir.join("nodir/stats.json");
    flag_rejects(
        &send_args(&f, &["--stats-json", stats.to_str().unwrap()]),
        "--stats-json",
        "does not exist: create it first",
    );
    flag_rejects(
        &recv_args(out, &["--stats-json", out]),
        "--stats-json",
        "this is a directory",
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_counts_name_their_flag() {
    let (dir, f) = scratch("counts");
    let out = dir.to_str().unwrap();
    for flag in [
        "--rounds",
        "--flow-window",
        "--max-receivers",
        "--max-receivers-per-source",
        "--max-receivers-per-prefix",
        "--new-receivers-per-prefix",
        "--max-nack-rate",
    ] {
        flag_rejects(&send_args(&f, &[flag, "0"]), flag, "");
    }
    for flag in ["--max-objects", "--max-blocks-in-flight"] {
        flag_rejects(&recv_args(out, &[flag, "0"]), flag, "at least 1");
        flag_rejects(&recv_args(out, &[flag, "many"]), flag, "not a count");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `recv` checks its own arguments (the interface included) before it warns
/// about a missing --expect: a user with a typo sees the typo alone.
#[test]
fn recv_checks_its_arguments_before_warning() {
    let (dir, _) = scratch("recv-order");
    let out = Command::new(BIN)
        .args([
            "recv",
            "--channel",
            "c",
            "--interface",
            "nosuchif0",
            "--output",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("no network interface named 'nosuchif0'"),
        "{stderr}"
    );
    assert!(!stderr.contains("--expect"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `keygen --channel-key` writes a key only its owner reads, and never
/// replaces one; `--key-file` and `--passphrase-file` name what is wrong
/// with what they are given.
#[test]
fn channel_keys_are_made_and_checked() {
    let (dir, file) = scratch("channel-key");
    let key = dir.join("chan.key");
    let key = key.to_str().unwrap();
    let out = Command::new(BIN)
        .args(["keygen", "--channel-key", key])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("--key-file"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    fails_with(&["keygen", "--channel-key", key], "not replacing a key");
    fails_with(&["keygen"], "--out");
    // A signing key is not a channel key; a world-readable key is refused.
    let prefix = dir.join("signer");
    let out = Command::new(BIN)
        .args(["keygen", "--out", prefix.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let secret = format!("{}.key", prefix.display());
    flag_rejects(
        &send_args(&file, &["--key-file", &secret]),
        "--key-file",
        "not a groupcast channel key",
    );
    std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o644)).unwrap();
    flag_rejects(
        &recv_args(dir.to_str().unwrap(), &["--key-file", key]),
        "--key-file",
        "chmod 600",
    );
    let pass = dir.join("pass");
    std::fs::write(&pass, "too short\n").unwrap();
    std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o600)).unwrap();
    flag_rejects(
        &send_args(&file, &["--passphrase-file", pass.to_str().unwrap()]),
        "--passphrase-file",
        "at least 12",
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
