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
    send_fails(f, &["--rate", "fast"], "does not start with a number");
    recv_fails("/nonexistent/out", &[], "is not a directory");
    recv_fails(f, &[], "is not a directory");
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
    send_fails(
        f,
        &["--repair-share", "0"],
        "--repair-share must lie above 0",
    );
    send_fails(
        f,
        &["--congestion-loss", "1.5"],
        "--congestion-loss must lie in 0",
    );
    send_fails(
        f,
        &["--max-datagram", "40"],
        "--max-datagram 40 is outside 48..=65527",
    );
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
