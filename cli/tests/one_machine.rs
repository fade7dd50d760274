//! The README's one-machine recipe, run as written: `examples/lab.sh up`
//! makes two namespaces joined by a veth pair, `groupcast recv` runs in one
//! and `groupcast send` in the other through `lab.sh run`, and
//! `lab.sh down` removes them, even when the test fails (the `Lab` guard).
//!
//! Each test names its lab (GROUPCAST_LAB) after itself and the process id,
//! so it cannot meet a user's lab or another test's. Needs root and
//! iproute2; without them the tests skip with a loud message, unless
//! GROUPCAST_REQUIRE_NETNS=1, in which case they fail.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use groupcast_testing::netns;
use rand::{RngCore, SeedableRng};

const BIN: &str = env!("CARGO_BIN_EXE_groupcast");

fn lab_sh() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/lab.sh")
}

/// A lab made by `lab.sh up` and a scratch directory, both removed on drop.
struct Lab {
    name: String,
    dir: PathBuf,
}

impl Lab {
    fn up(test: &str) -> Self {
        let name = format!("gt{}{test}", std::process::id() % 100_000);
        let dir = std::env::temp_dir().join(format!("groupcast-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let lab = Self { name, dir };
        let out = lab.sh(&["up"]);
        assert!(out.status.success(), "lab.sh up: {}", text(&out));
        lab
    }

    /// `lab.sh ARGS...` with this lab's name, to its end.
    fn sh(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("bash");
        c.arg(lab_sh()).args(args).env("GROUPCAST_LAB", &self.name);
        c
    }

    /// `lab.sh run HOST ARGS...`, started, its output into a log file.
    fn spawn(&self, label: &str, args: &[&str]) -> Child {
        let log = std::fs::File::create(self.dir.join(format!("{label}.log"))).unwrap();
        self.command(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    fn log(&self, label: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{label}.log"))).unwrap_or_default()
    }

    /// Waits until namespace `host` has joined `group` (its
    /// /proc/net/igmp6 lists it).
    fn wait_joined(&self, host: &str, group: &str, child: &mut Child, label: &str) {
        let hex: String = group
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = self.sh(&["run", host, "cat", "/proc/net/igmp6"]);
            if String::from_utf8_lossy(&out.stdout).contains(&hex) {
                return;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "{label} exited ({status}) before joining: {}",
                    self.log(label)
                );
            }
            assert!(Instant::now() < deadline, "{label} did not join {group}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Also ends whatever still runs in the namespaces.
        match self.sh(&["down"]) {
            out if out.status.success() => {}
            out => eprintln!("lab.sh down failed: {}", text(&out)),
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Waits for a process, a bound that only catches a hang.
fn wait(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    None
}

/// The interfaces of the host's own namespace, by name.
fn host_links() -> Vec<String> {
    let out = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .unwrap();
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or("").to_owned())
        .collect();
    names.sort();
    names
}

/// The README's "Try it on one machine", with a directory of a few MB:
/// `lab.sh up`, `recv` in b, `send` in a, the copy identical, `lab.sh down`.
/// `up` is idempotent, and the host's own interfaces are left as they were.
#[test]
fn the_readme_recipe_carries_a_directory_between_the_lab_namespaces() {
    let _serial = netns::serial();
    if !netns::available("the_readme_recipe") {
        return;
    }
    let before = host_links();
    let lab = Lab::up("om");
    let again = lab.sh(&["up"]);
    assert!(again.status.success(), "second lab.sh up: {}", text(&again));
    assert!(
        text(&again).contains("already up"),
        "second lab.sh up: {}",
        text(&again)
    );
    assert_eq!(
        host_links(),
        before,
        "lab.sh up changed the host's interfaces"
    );

    let src = lab.dir.join("photos");
    std::fs::create_dir_all(src.join("2024")).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(34);
    let mut files = Vec::new();
    for (path, len) in [("a.jpg", 3_000_001), ("2024/b.jpg", 1_200_000)] {
        let mut data = vec![0u8; len];
        rng.fill_bytes(&mut data);
        std::fs::write(src.join(path), &data).unwrap();
        files.push((path, data));
    }
    let out = lab.dir.join("in");
    std::fs::create_dir_all(&out).unwrap();
    let (src_s, out_s) = (src.to_str().unwrap(), out.to_str().unwrap());

    let channel = "demo";
    let mut recv = lab.spawn(
        "recv",
        &[
            "run",
            "b",
            BIN,
            "recv",
            "--channel",
            channel,
            "--interface",
            "veth-b",
            "--output",
            out_s,
        ],
    );
    let group = Command::new(BIN)
        .args(["channel", channel])
        .output()
        .unwrap();
    let group = String::from_utf8_lossy(&group.stdout).trim().to_owned();
    lab.wait_joined("b", &group, &mut recv, "recv");
    let mut send = lab.spawn(
        "send",
        &[
            "run",
            "a",
            BIN,
            "send",
            src_s,
            "--channel",
            channel,
            "--interface",
            "veth-a",
        ],
    );
    let status = wait(&mut send, Duration::from_secs(120));
    assert!(
        status.is_some_and(|s| s.success()),
        "send ({status:?}): {}",
        lab.log("send")
    );
    let status = wait(&mut recv, Duration::from_secs(120));
    assert!(
        status.is_some_and(|s| s.success()),
        "recv ({status:?}): {}",
        lab.log("recv")
    );
    for (path, data) in &files {
        // A directory's files land under --output by their relative paths.
        let got = std::fs::read(out.join(path))
            .unwrap_or_else(|e| panic!("{path}: {e}; recv: {}", lab.log("recv")));
        assert!(got == *data, "{path} differs from what was sent");
    }

    let name = lab.name.clone();
    drop(lab);
    assert!(
        !Path::new(&format!("/var/run/netns/{name}-a")).exists()
            && !Path::new(&format!("/var/run/netns/{name}-b")).exists(),
        "lab.sh down left a namespace"
    );
    assert_eq!(
        host_links(),
        before,
        "the lab changed the host's interfaces"
    );
}

/// Loopback is refused at once, naming it and the fix, by `recv` (which
/// waited for ever) and by `send` (which failed with a bare os error 101):
/// `lo` in a lab namespace, as the kernel makes it.
#[test]
fn loopback_is_refused_at_once_with_the_fix() {
    let _serial = netns::serial();
    if !netns::available("loopback_is_refused") {
        return;
    }
    let lab = Lab::up("lo");
    let file = lab.dir.join("f");
    std::fs::write(&file, b"hello").unwrap();
    let out = lab.dir.join("in");
    std::fs::create_dir_all(&out).unwrap();
    let runs: [&[&str]; 2] = [
        &[
            "run",
            "b",
            BIN,
            "recv",
            "--channel",
            "demo",
            "--interface",
            "lo",
            "--output",
            out.to_str().unwrap(),
        ],
        &[
            "run",
            "a",
            BIN,
            "send",
            file.to_str().unwrap(),
            "--channel",
            "demo",
            "--interface",
            "lo",
        ],
    ];
    for (i, args) in runs.iter().enumerate() {
        let label = format!("lo{i}");
        let mut child = lab.spawn(&label, args);
        let status = wait(&mut child, Duration::from_secs(30));
        let log = lab.log(&label);
        assert!(
            status.is_some_and(|s| !s.success()),
            "{args:?} should fail at once ({status:?}): {log}"
        );
        assert!(
            log.contains("interface lo is loopback") && log.contains("lab.sh up"),
            "{args:?}: {log}"
        );
    }
}
