//! Real IPv6 multicast between network namespaces, with real `groupcast`
//! processes.
//!
//! Every test builds its own namespaces, veth links and bridges, and deletes
//! them on exit, even on failure (the `Lab` guard). Nothing is sent on the
//! host's own interfaces: every process runs inside a namespace made here.
//!
//! Needs root, iproute2, nftables and smcroute. Without them the tests skip
//! with a loud message, unless GROUPCAST_REQUIRE_NETNS=1 (as `.ci/run` sets),
//! in which case they fail.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use groupcast_testing::netns::{self, Netns, run};

const BIN: &str = env!("CARGO_BIN_EXE_groupcast");

/// How many memberships of `group` namespace `ns` holds, summed over its
/// interfaces (`/proc/net/igmp6`: index, interface, group in hex, users).
fn members(ns: &str, group: std::net::Ipv6Addr) -> u64 {
    let hex: String = group.octets().iter().map(|b| format!("{b:02x}")).collect();
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "cat", "/proc/net/igmp6"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (f.get(2) == Some(&hex.as_str())).then(|| f.get(3)?.parse::<u64>().ok())?
        })
        .sum()
}

/// Returns false (after saying so loudly) if the tests cannot run here.
fn prerequisites(test: &str) -> bool {
    prerequisites_with(test, &[])
}

/// [`prerequisites`], also requiring the commands in `extra`.
fn prerequisites_with(test: &str, extra: &[&'static str]) -> bool {
    let mut need = vec!["smcrouted"];
    need.extend_from_slice(extra);
    netns::available_with(test, &need)
}

/// [`prerequisites`] for the router tests. A kernel that routes IPv6
/// multicast runs smcrouted in the router namespace; one that cannot (built
/// without `CONFIG_IPV6_MROUTE`) gets nftables forwarding rules instead,
/// said loudly: see [`router_lab`].
fn router_prerequisites(test: &str) -> bool {
    if !prerequisites(test) {
        return false;
    }
    if !netns::kernel_routes_multicast() {
        eprintln!(
            "\n!!!!!!!! {test}: this kernel does not route IPv6 multicast (no \
             /proc/net/ip6_mr_vif: built without CONFIG_IPV6_MROUTE), so smcrouted cannot \
             install routes; the router namespace forwards with nftables dup rules instead \
             !!!!!!!!\n"
        );
    }
    true
}

/// A set of namespaces and processes, torn down on drop.
struct Lab {
    /// The namespaces (and the links, bridges and loss rules in them).
    net: Netns,
    children: Vec<(String, Child)>,
    dir: PathBuf,
    /// Environment given to every process spawned from now on.
    env: Vec<(String, String)>,
    /// Receivers started and not yet seen joined ([`Lab::joined`]): their
    /// label, namespace, data group and the group's members in that
    /// namespace just before they started.
    joining: Vec<(String, String, std::net::Ipv6Addr, u64)>,
}

impl Lab {
    fn new(name: &str) -> Self {
        let net = Netns::new(name);
        let dir = std::env::temp_dir().join(format!("groupcast-{}", net.tag()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self {
            net,
            children: Vec::new(),
            dir,
            env: Vec::new(),
            joining: Vec::new(),
        }
    }

    fn spawn(&mut self, label: &str, ns: &str, args: &[&str]) {
        self.spawn_io(label, ns, args, None, None);
    }

    /// [`Lab::spawn`], with standard input from the file `stdin` and standard
    /// output to the file `stdout` where given (the log takes the rest).
    fn spawn_io(
        &mut self,
        label: &str,
        ns: &str,
        args: &[&str],
        stdin: Option<&Path>,
        stdout: Option<&Path>,
    ) {
        if args.get(1) == Some(&"recv")
            && let Some(i) = args.iter().position(|a| *a == "--channel")
        {
            let group = groupcast::Channel::new(args[i + 1]).group();
            let before = members(ns, group);
            self.joining
                .push((label.to_owned(), ns.to_owned(), group, before));
        }
        let log = std::fs::File::create(self.dir.join(format!("{label}.log"))).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(stdin.map_or_else(Stdio::null, |p| std::fs::File::open(p).unwrap().into()))
            .stdout(match stdout {
                Some(p) => std::fs::File::create(p).unwrap(),
                None => log.try_clone().unwrap(),
            })
            .stderr(log)
            .spawn()
            .unwrap();
        self.children.push((label.to_owned(), child));
    }

    fn recv(&mut self, label: &str, ns: &str, channel: &str) -> PathBuf {
        self.recv_with(label, ns, channel, &[])
    }

    fn recv_with(&mut self, label: &str, ns: &str, channel: &str, extra: &[&str]) -> PathBuf {
        let out = self.dir.join(format!("out-{label}"));
        self.recv_into(label, ns, channel, &out, extra);
        out
    }

    /// A receiver writing into `out` (created if missing).
    fn recv_into(&mut self, label: &str, ns: &str, channel: &str, out: &Path, extra: &[&str]) {
        std::fs::create_dir_all(out).unwrap();
        let stats = self.dir.join(format!("{label}.json"));
        let mut args = vec![
            BIN,
            "recv",
            "--channel",
            channel,
            "--interface",
            "e0",
            "--output",
            out.to_str().unwrap(),
            "--stats-json",
            stats.to_str().unwrap(),
        ];
        if !extra.contains(&"--timeout") {
            args.extend_from_slice(&["--timeout", "90"]);
        }
        args.extend_from_slice(extra);
        self.spawn(label, ns, &args);
    }

    /// A carousel sender that loops until stopped.
    fn send(&mut self, ns: &str, path: &Path, channel: &str, hops: &str) {
        self.send_with(ns, path, channel, hops, &[]);
    }

    fn send_with(&mut self, ns: &str, path: &Path, channel: &str, hops: &str, extra: &[&str]) {
        let mut args = vec!["--mode", "carousel", "--forever", "--hops", hops];
        args.extend_from_slice(extra);
        self.send_args(ns, path, channel, &args);
    }

    /// `groupcast send` at 200 Mbit/s unless `extra` says otherwise.
    fn send_args(&mut self, ns: &str, path: &Path, channel: &str, extra: &[&str]) {
        let stats = self.dir.join("sender.json");
        let mut args = vec![
            BIN,
            "send",
            path.to_str().unwrap(),
            "--channel",
            channel,
            "--interface",
            "e0",
            "--stats-json",
            stats.to_str().unwrap(),
        ];
        if !extra.contains(&"--rate") {
            args.extend_from_slice(&["--rate", "200M"]);
        }
        args.extend_from_slice(extra);
        self.spawn("sender", ns, &args);
    }

    /// Runs a traffic generator from `tests/support` in `ns` to its end, and
    /// returns the count it prints (datagrams sent).
    fn run_support(&mut self, label: &str, ns: &str, script: &str, args: &[&str]) -> u64 {
        let path = format!("{}/tests/support/{script}", env!("CARGO_MANIFEST_DIR"));
        let mut full = vec!["python3", path.as_str()];
        full.extend_from_slice(args);
        self.spawn(label, ns, &full);
        let status = self.wait(label, Duration::from_secs(40));
        assert!(status.success(), "{label}: {}", self.log(label));
        self.log(label).trim().parse().unwrap()
    }

    /// Waits for receiver `label` to succeed with a copy of `file` in `out`,
    /// then for the sender to exit 0 by itself.
    fn receiver_and_sender_finish(&mut self, label: &str, file: &Path, out: &Path) {
        let status = self.wait(label, Duration::from_secs(60));
        assert!(status.success(), "{label}: {}", self.log(label));
        assert_identical(file, out);
        let status = self.wait("sender", Duration::from_secs(30));
        assert!(status.success(), "sender: {}", self.log("sender"));
    }

    /// Waits until every receiver started since the last call has joined
    /// its data group, as its namespace's `/proc/net/igmp6` counts the
    /// group's members: from then on it hears the sender's first packet.
    /// Each receiver needs one member more than were there when it started
    /// and than the receivers before it in the same namespace needed.
    /// A receiver that has exited is not waited for: its own exit status
    /// tells. The limit only catches a receiver that never joins.
    fn joined(&mut self) {
        let limit = Duration::from_secs(20);
        let deadline = Instant::now() + limit;
        let mut needed: Vec<(String, std::net::Ipv6Addr, u64)> = Vec::new();
        for (label, ns, group, before) in std::mem::take(&mut self.joining) {
            let earlier = needed
                .iter()
                .filter(|(n, g, _)| *n == ns && *g == group)
                .map(|(_, _, k)| *k)
                .max()
                .unwrap_or(0);
            let want = (before + 1).max(earlier + 1);
            loop {
                let gone = match self.children.iter_mut().find(|(l, _)| *l == label) {
                    Some((_, child)) => child.try_wait().unwrap().is_some(),
                    None => true,
                };
                if gone {
                    break;
                }
                let now = members(&ns, group);
                if now >= want {
                    needed.push((ns.clone(), group, want));
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{label} in {ns} did not join {group} within {limit:?} \
                     ({now} members, {want} wanted): {}",
                    self.log(&label)
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Sends a signal to a running process.
    fn signal(&self, label: &str, sig: &str) {
        let (_, child) = self.children.iter().find(|(l, _)| l == label).unwrap();
        run(&["kill", sig, &child.id().to_string()]);
    }

    /// Whether a process is still running.
    fn running(&mut self, label: &str) -> bool {
        let (_, child) = self.children.iter_mut().find(|(l, _)| l == label).unwrap();
        child.try_wait().unwrap().is_none()
    }

    /// Stops a process with SIGTERM and waits for it to exit by itself.
    fn terminate(&mut self, label: &str) -> ExitStatus {
        let (_, child) = self.children.iter().find(|(l, _)| l == label).unwrap();
        run(&["kill", "-TERM", &child.id().to_string()]);
        self.wait(label, Duration::from_secs(10))
    }

    fn kill(&mut self, label: &str) {
        let (_, child) = self.children.iter_mut().find(|(l, _)| l == label).unwrap();
        let _ = child.kill();
        let _ = child.wait();
        self.children.retain(|(l, _)| l != label);
    }

    fn wait(&mut self, label: &str, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        let i = self.children.iter().position(|(l, _)| l == label).unwrap();
        loop {
            if let Some(status) = self.children[i].1.try_wait().unwrap() {
                self.children.remove(i);
                return status;
            }
            if Instant::now() > deadline {
                // Stopped with SIGTERM, a process writes its --stats-json:
                // what a failure in CI has to go on.
                let child = &mut self.children[i].1;
                let _ = Command::new("kill")
                    .args(["-TERM", &child.id().to_string()])
                    .status();
                for _ in 0..40 {
                    if child.try_wait().unwrap().is_some() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                let read = |ext: &str| {
                    std::fs::read_to_string(self.dir.join(format!("{label}.{ext}")))
                        .unwrap_or_default()
                };
                let (log, stats) = (read("log"), read("json"));
                panic!(
                    "{label} did not finish within {limit:?}; its log:\n{log}\nits stats: {stats}"
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for every one of `labels` to exit successfully, polling every
    /// 2 ms; returns when the last one exited, measured from `start`.
    fn wait_all(&mut self, labels: &[&str], limit: Duration, start: Instant) -> Duration {
        let deadline = Instant::now() + limit;
        let mut last = Duration::ZERO;
        let mut left: Vec<String> = labels.iter().map(|l| (*l).to_owned()).collect();
        while !left.is_empty() {
            assert!(
                Instant::now() < deadline,
                "{left:?} did not finish within {limit:?}"
            );
            left.retain(|label| {
                let i = self.children.iter().position(|(l, _)| l == label).unwrap();
                match self.children[i].1.try_wait().unwrap() {
                    Some(status) => {
                        last = start.elapsed();
                        assert!(status.success(), "{label}: {}", self.log(label));
                        self.children.remove(i);
                        false
                    }
                    None => true,
                }
            });
            std::thread::sleep(Duration::from_millis(2));
        }
        last
    }

    /// Asserts that `ns` holds no interfaces but `lo` and `allowed`: a process
    /// there can send nowhere else, so no multicast reaches the host's own
    /// interfaces. Also asserts that the host's own namespace joined none of the
    /// test groups.
    fn assert_contained(&self, ns: &str, allowed: &[&str], groups: &[&str]) {
        let out = Command::new("ip")
            .args(["-n", ns, "-o", "link", "show"])
            .output()
            .unwrap();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let name = line
                .split(':')
                .nth(1)
                .unwrap_or("")
                .trim()
                .split('@')
                .next()
                .unwrap_or("");
            assert!(
                name == "lo" || allowed.contains(&name),
                "{ns} has unexpected interface {name}"
            );
        }
        let host = Command::new("ip")
            .args(["-6", "maddr", "show"])
            .output()
            .unwrap();
        let host = String::from_utf8_lossy(&host.stdout);
        for g in groups {
            assert!(!host.contains(g), "the host's own namespace joined {g}");
        }
    }

    fn log(&self, label: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{label}.log"))).unwrap_or_default()
    }

    fn stats(&self, label: &str) -> serde_json::Value {
        let text = std::fs::read_to_string(self.dir.join(format!("{label}.json"))).unwrap();
        serde_json::from_str(&text).unwrap()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        // The namespaces go when `net` drops, after this.
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            eprintln!("logs kept in {}", self.dir.display());
        }
    }
}

fn random_file(path: &Path, len: usize, seed: u64) {
    std::fs::write(path, groupcast_fec::pseudo_random_bytes(len, seed)).unwrap();
}

/// Asserts that `out` holds exactly the files under `src` (or the file `src`), byte for byte.
/// Bytes of `path` in the page cache (util-linux `fincore`); `None` on a
/// tmpfs, where the page cache is the file.
fn page_cached_bytes(path: &Path) -> Option<u64> {
    let fs = Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(path)
        .output()
        .expect("stat runs");
    if String::from_utf8_lossy(&fs.stdout).trim() == "tmpfs" {
        return None;
    }
    let out = Command::new("fincore")
        .args(["--bytes", "--noheadings", "--raw", "-o", "RES"])
        .arg(path)
        .output()
        .expect("fincore (util-linux) runs");
    assert!(out.status.success(), "fincore {}", path.display());
    Some(
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("fincore prints a byte count"),
    )
}

fn assert_identical(src: &Path, out: &Path) {
    let mut expected = Vec::new();
    if src.is_file() {
        expected.push((PathBuf::from(src.file_name().unwrap()), src.to_owned()));
    } else {
        let mut stack = vec![src.to_owned()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    expected.push((p.strip_prefix(src).unwrap().to_owned(), p));
                }
            }
        }
    }
    for (rel, path) in &expected {
        let got = std::fs::read(out.join(rel))
            .unwrap_or_else(|e| panic!("{}: {e}", out.join(rel).display()));
        let want = std::fs::read(path).unwrap();
        assert!(got == want, "{} differs from the source", rel.display());
    }
    // (A following receiver's staging directory stays while it waits: empty.)
    let stage = groupcast::io::files::STAGING_DIR;
    let leftovers: Vec<_> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".groupcast-tmp-") && n != stage)
        .chain(
            std::fs::read_dir(out.join(stage))
                .into_iter()
                .flatten()
                .map(|e| format!("{stage}/{}", e.unwrap().file_name().to_string_lossy())),
        )
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

/// Topology (a): a sender and three receivers on one bridge, dropping 0%, 10%
/// and 25%. The 25% receiver joins a second late; the 0% one is killed mid
/// transfer and restarted. Then a directory goes the same way.
#[test]
fn bridge_three_receivers_with_loss_late_join_and_restart() {
    let _serial = netns::serial();
    if !prerequisites("bridge") {
        return;
    }
    let mut lab = Lab::new("b");
    let hub = lab.net.ns("hub");
    lab.net.bridge(&hub, &[]);
    let hosts: Vec<String> = ["snd", "rx0", "rx10", "rx25"]
        .iter()
        .map(|h| lab.net.ns(h))
        .collect();
    for (i, h) in hosts.iter().enumerate() {
        lab.net.link(h, "e0", &hub, &format!("p{i}"));
        lab.net.attach(&hub, &format!("p{i}"));
    }
    lab.net.drop_percent(&hosts[2], 10);
    lab.net.drop_percent(&hosts[3], 25);
    for h in &hosts {
        lab.net.wait_link(h, "e0");
    }

    // A 20 MiB random file.
    let file = lab.dir.join("big.bin");
    random_file(&file, 20 << 20, 1);
    let out0 = lab.recv("rx0", &hosts[1].clone(), "gc-test-file");
    let out10 = lab.recv("rx10", &hosts[2].clone(), "gc-test-file");
    lab.joined();
    let out_int = lab.recv("rx-int", &hosts[1].clone(), "gc-test-file");
    lab.joined();
    lab.send(&hosts[0].clone(), &file, "gc-test-file", "1");
    // Kill the lossless receiver mid-transfer; nothing may sit under the final name.
    std::thread::sleep(Duration::from_millis(400));
    lab.kill("rx0");
    assert!(
        !out0.join("big.bin").exists(),
        "a killed receiver left a partial file under its final name"
    );
    // Interrupted, a receiver exits non-zero, removes its temporary files and reports.
    lab.signal("rx-int", "-INT");
    let status = lab.wait("rx-int", Duration::from_secs(10));
    assert!(!status.success(), "an interrupted receiver exited 0");
    assert!(
        lab.log("rx-int").contains("interrupted"),
        "{}",
        lab.log("rx-int")
    );
    let left: Vec<_> = std::fs::read_dir(&out_int)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "an interrupted receiver left {left:?}");
    assert_eq!(lab.stats("rx-int")["complete"], false);
    // The 25% receiver joins late.
    std::thread::sleep(Duration::from_millis(600));
    let out25 = lab.recv("rx25", &hosts[3].clone(), "gc-test-file");
    let out0 = lab.recv("rx0-again", &hosts[1].clone(), "gc-test-file");
    for label in ["rx0-again", "rx10", "rx25"] {
        let status = lab.wait(label, Duration::from_secs(120));
        assert!(status.success(), "{label} failed: {}", lab.log(label));
    }
    let group = groupcast::Channel::new("gc-test-file").group().to_string();
    lab.assert_contained(&hosts[0], &["e0"], &[&group]);
    // Interrupted, the sender still reports.
    assert!(lab.terminate("sender").success(), "{}", lab.log("sender"));
    let sent = lab.stats("sender");
    assert!(sent["bytes_sent"].as_u64().unwrap() > 20 << 20);
    assert!(sent["repair_symbols_sent"].as_u64().unwrap() > 0);
    assert_eq!(sent["file_bytes"], 20 << 20);
    for out in [&out0, &out10, &out25] {
        assert_identical(&file, out);
    }
    assert!(
        lab.net.dropped(&hosts[2]) > 500,
        "the 10% rule dropped too little"
    );
    assert!(
        lab.net.dropped(&hosts[3]) > 1000,
        "the 25% rule dropped too little"
    );
    let s25 = lab.stats("rx25");
    assert_eq!(s25["complete"], true);
    assert_eq!(s25["packets_rejected"], 0);
    assert!(s25["packets_received"].as_u64().unwrap() > 0);

    // A directory of a few files, sizes and modes included.
    let tree = lab.dir.join("tree");
    std::fs::create_dir_all(tree.join("docs/nested")).unwrap();
    random_file(&tree.join("docs/a.bin"), 300_000, 2);
    std::fs::write(tree.join("docs/nested/readme.txt"), "hello, multicast\n").unwrap();
    std::fs::write(tree.join("empty"), "").unwrap();
    random_file(&tree.join("top.dat"), 5_000_000, 3);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(tree.join("empty"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let d10 = lab.recv("dir10", &hosts[2].clone(), "gc-test-dir");
    let d25 = lab.recv("dir25", &hosts[3].clone(), "gc-test-dir");
    lab.joined();
    lab.send(&hosts[0].clone(), &tree, "gc-test-dir", "1");
    for label in ["dir10", "dir25"] {
        let status = lab.wait(label, Duration::from_secs(120));
        assert!(status.success(), "{label} failed: {}", lab.log(label));
    }
    lab.kill("sender");
    for out in [&d10, &d25] {
        assert_identical(&tree, out);
        let mode = std::fs::metadata(out.join("empty"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
}

/// Topology (b): a sender, a router namespace running smcrouted, and three
/// receivers on a bridge behind it (dropping `drops` percent), with the data
/// group routed downstream; with `feedback`, also the feedback group upstream
/// and unicast routes both ways. On a kernel without multicast routing the
/// router namespace forwards the same groups the same ways with nftables
/// rules ([`Netns::forward_multicast`]) in place of smcrouted. Returns the
/// lab, the sender's namespace and the receivers' namespaces.
fn router_lab(
    tag: &str,
    channel: &str,
    drops: [u32; 3],
    feedback: bool,
) -> (Lab, String, Vec<String>) {
    let mut lab = Lab::new(tag);
    let snd = lab.net.ns("snd");
    let rtr = lab.net.ns("rtr");
    let hub = lab.net.ns("hub");
    lab.net.bridge(&hub, &[]);
    lab.net.link(&snd, "e0", &rtr, "up0");
    lab.net.link(&rtr, "down0", &hub, "pr");
    lab.net.attach(&hub, "pr");
    run(&[
        "ip",
        "-n",
        &snd,
        "addr",
        "add",
        "fd00:1::1/64",
        "dev",
        "e0",
        "nodad",
    ]);
    run(&[
        "ip",
        "-n",
        &rtr,
        "addr",
        "add",
        "fd00:1::fe/64",
        "dev",
        "up0",
        "nodad",
    ]);
    run(&[
        "ip",
        "-n",
        &rtr,
        "addr",
        "add",
        "fd00:2::fe/64",
        "dev",
        "down0",
        "nodad",
    ]);
    lab.net
        .exec(&rtr, &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
    let rx: Vec<String> = ["rx0", "rx10", "rx25"]
        .iter()
        .map(|h| lab.net.ns(h))
        .collect();
    for (i, h) in rx.iter().enumerate() {
        lab.net.link(h, "e0", &hub, &format!("p{i}"));
        lab.net.attach(&hub, &format!("p{i}"));
        run(&[
            "ip",
            "-n",
            h,
            "addr",
            "add",
            &format!("fd00:2::{}/64", i + 1),
            "dev",
            "e0",
            "nodad",
        ]);
    }
    for (h, &d) in rx.iter().zip(&drops) {
        if d > 0 {
            lab.net.drop_percent(h, d);
        }
    }
    lab.net.wait_link(&snd, "e0");
    for h in &rx {
        lab.net.wait_link(h, "e0");
    }

    let group = groupcast::Channel::new(channel).group();
    let fb = groupcast::Channel::new(channel).feedback_group();
    if feedback {
        // STATUS goes up by unicast, so both ends get routes through the router.
        run(&[
            "ip",
            "-n",
            &snd,
            "route",
            "add",
            "fd00:2::/64",
            "via",
            "fd00:1::fe",
        ]);
        for h in &rx {
            run(&[
                "ip",
                "-n",
                h,
                "route",
                "add",
                "fd00:1::/64",
                "via",
                "fd00:2::fe",
            ]);
        }
    }
    if !netns::kernel_routes_multicast() {
        // The same routes as smcrouted's below, in netfilter.
        let source = "fd00:1::1".parse().ok();
        lab.net
            .forward_multicast(&rtr, "up0", "down0", group, source);
        if feedback {
            lab.net.forward_multicast(&rtr, "down0", "up0", fb, None);
        }
        return (lab, snd, rx);
    }
    let conf = lab.dir.join("smcroute.conf");
    let mut routes = format!(
        "phyint up0 enable\nphyint down0 enable\nmroute from up0 source fd00:1::1 group {group} to down0\n"
    );
    if feedback {
        // NACKs go up to the sender: any source, the channel's feedback group.
        routes.push_str(&format!("mroute from down0 group {fb} to up0\n"));
    }
    std::fs::write(&conf, routes).unwrap();
    let sock = lab.dir.join("smcroute.sock");
    let pid = lab.dir.join("smcroute.pid");
    lab.spawn(
        "smcrouted",
        &rtr.clone(),
        &[
            "smcrouted",
            "-n",
            "-f",
            conf.to_str().unwrap(),
            "-u",
            sock.to_str().unwrap(),
            "-P",
            pid.to_str().unwrap(),
            "-l",
            "debug",
        ],
    );
    // Wait for the route to be installed in the kernel.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = Command::new("ip")
            .args(["-n", &rtr, "-6", "mroute", "show"])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&out.stdout).contains(&group.to_string()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "smcroute installed no route: {}",
            lab.log("smcrouted")
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    (lab, snd, rx)
}

/// Topology (b): sender → router (smcroute, or nftables) → bridge → three receivers
/// dropping 0%, 10% and 25%, with a hop limit above 1.
#[test]
fn routed_through_smcroute_with_loss() {
    let _serial = netns::serial();
    if !router_prerequisites("router") {
        return;
    }
    let channel = "gc-test-routed";
    let group = groupcast::Channel::new(channel).group();
    let (mut lab, snd, rx) = router_lab("r", channel, [0, 10, 25], false);

    let file = lab.dir.join("routed.bin");
    random_file(&file, 20 << 20, 4);
    // The lossless receiver joins source-specifically (MCAST_JOIN_SOURCE_GROUP).
    let outs = vec![
        lab.recv_with("r0", &rx[0].clone(), channel, &["--source", "fd00:1::1"]),
        lab.recv("r10", &rx[1].clone(), channel),
        lab.recv("r25", &rx[2].clone(), channel),
    ];
    lab.joined();
    lab.send_with(&snd.clone(), &file, channel, "4", &["--source-specific"]);
    for label in ["r0", "r10", "r25"] {
        let status = lab.wait(label, Duration::from_secs(120));
        assert!(
            status.success(),
            "{label} failed: {}\nsender: {}",
            lab.log(label),
            lab.log("sender")
        );
    }
    lab.assert_contained(&snd, &["e0"], &[&group.to_string()]);
    assert!(
        lab.log("sender").contains("sending from fd00:1::1"),
        "the sender must name its source: {}",
        lab.log("sender")
    );
    // Joined for another source, a receiver hears nothing of this sender,
    // and times out with an error and no file.
    let wrong = lab.recv_with(
        "wrong-source",
        &rx[0].clone(),
        channel,
        &["--source", "fd00:1::99", "--timeout", "2"],
    );
    let status = lab.wait("wrong-source", Duration::from_secs(30));
    assert!(!status.success(), "a receiver for another source completed");
    assert!(
        lab.log("wrong-source").contains("timed out"),
        "{}",
        lab.log("wrong-source")
    );
    assert_eq!(lab.stats("wrong-source")["packets_received"], 0);
    assert!(!wrong.join("routed.bin").exists());
    lab.kill("sender");
    for out in &outs {
        assert_identical(&file, out);
    }
    // The router forwarded, and the receivers behind it lost what they should.
    assert!(lab.stats("r25")["packets_received"].as_u64().unwrap() > 1000);
    assert!(
        lab.net.dropped(&rx[1]) > 500,
        "the 10% rule dropped too little"
    );
    assert!(
        lab.net.dropped(&rx[2]) > 1000,
        "the 25% rule dropped too little"
    );
}

/// 50 MiB of random bytes piped through `send
/// --stream`, through the smcroute router, to three `recv --stream`
/// receivers dropping 0%, 5% and 15%. Every output is identical, and every
/// process exits 0 by itself: the receivers at the end of the stream, the
/// sender once all three confirmed it.
#[test]
fn a_stream_through_the_router_reaches_three_lossy_receivers_whole() {
    let _serial = netns::serial();
    if !router_prerequisites("stream through the router") {
        return;
    }
    let channel = "gc-test-stream";
    let (mut lab, snd, rx) = router_lab("st", channel, [0, 5, 15], true);
    lab.env.push(("RUST_LOG".into(), "groupcast=debug".into()));
    let input = lab.dir.join("stream.bin");
    random_file(&input, 50 << 20, 15);
    let labels = ["s0", "s5", "s15"];
    for (label, ns) in labels.iter().zip(&rx) {
        let stats = lab.dir.join(format!("{label}.json"));
        let out = lab.dir.join(format!("{label}.out"));
        let args = [
            BIN,
            "recv",
            "--stream",
            "--channel",
            channel,
            "--interface",
            "e0",
            "--timeout",
            "120",
            "--stats-json",
            stats.to_str().unwrap(),
        ];
        lab.spawn_io(label, &ns.clone(), &args, None, Some(&out));
    }
    lab.joined();
    let stats = lab.dir.join("sender.json");
    let args = [
        BIN,
        "send",
        "--stream",
        "--channel",
        channel,
        "--interface",
        "e0",
        "--rate",
        "200M",
        "--hops",
        "4",
        "--timeout",
        "120",
        "--stats-json",
        stats.to_str().unwrap(),
    ];
    lab.spawn_io("sender", &snd.clone(), &args, Some(&input), None);
    let start = Instant::now();
    let mut all = labels.to_vec();
    all.push("sender");
    lab.wait_all(&all, Duration::from_secs(150), start);
    let want = std::fs::read(&input).unwrap();
    for label in labels {
        let got = std::fs::read(lab.dir.join(format!("{label}.out"))).unwrap();
        assert!(
            got == want,
            "{label}'s stream differs ({} of {} bytes)",
            got.len(),
            want.len()
        );
        let r = lab.stats(label);
        assert_eq!(r["gaps"], 0, "{label}");
        assert!(
            r["peak_rss_bytes"].as_u64().unwrap() < 128 << 20,
            "{label}: {r}"
        );
    }
    let s = lab.stats("sender");
    assert!(s["peak_rss_bytes"].as_u64().unwrap() < 128 << 20, "{s}");
    assert_eq!(s["confirmed"], true, "{s}");
    assert_eq!(s["receivers_tracked"], 3, "{s}");
    assert!(
        lab.net.dropped(&rx[2]) > 1000,
        "the 15% rule dropped too little"
    );
}

/// A quiet stream: the publisher has nothing to send for 8 s, longer than
/// its receiver timeout (5 s), between two lines. Its receivers, which have
/// no new DATA to earn reply credit with, keep it hearing them by their
/// keep-alive STATUS (protocol.md §13.5), so that none times out and `send
/// --stream` is confirmed, and both receivers write both lines.
#[test]
fn a_quiet_stream_keeps_its_receivers_and_is_confirmed() {
    let _serial = netns::serial();
    if !prerequisites("quiet stream") {
        return;
    }
    let channel = "gc-test-quiet";
    let (mut lab, hosts) = bridge_lab("qs", &[0, 10]);
    let labels = ["q0", "q10"];
    for (label, ns) in labels.iter().zip(&hosts[1..]) {
        let stats = lab.dir.join(format!("{label}.json"));
        let out = lab.dir.join(format!("{label}.out"));
        let args = [
            BIN,
            "recv",
            "--stream",
            "--channel",
            channel,
            "--interface",
            "e0",
            "--timeout",
            "60",
            "--stats-json",
            stats.to_str().unwrap(),
        ];
        lab.spawn_io(label, &ns.clone(), &args, None, Some(&out));
    }
    lab.joined();
    let stats = lab.dir.join("sender.json");
    let line = format!(
        "(echo first; sleep 8; echo second) | {BIN} send --stream --channel {channel} \
         --interface e0 --timeout 60 --stats-json {}",
        stats.to_str().unwrap()
    );
    lab.spawn_io(
        "sender",
        &hosts[0].clone(),
        &["sh", "-c", &line],
        None,
        None,
    );
    let start = Instant::now();
    let mut all = labels.to_vec();
    all.push("sender");
    lab.wait_all(&all, Duration::from_secs(90), start);
    for label in labels {
        let got = std::fs::read_to_string(lab.dir.join(format!("{label}.out"))).unwrap();
        assert_eq!(got, "first\nsecond\n", "{label}");
    }
    let s = lab.stats("sender");
    assert_eq!(s["receivers_timed_out"], 0, "{s}");
    assert_eq!(s["confirmed"], true, "{s}");
}

/// `groupcast chat`: three participants behind a bridge (one losing 10%),
/// each saying two lines; each prints everyone else's lines, in order, and
/// never its own.
#[test]
fn chat_participants_hear_each_other_and_not_themselves() {
    let _serial = netns::serial();
    if !prerequisites("chat") {
        return;
    }
    let (mut lab, hosts) = bridge_lab("chat", &[0, 10]);
    let names = ["ann", "bob", "cat"];
    for (name, ns) in names.iter().zip(&hosts) {
        let out = lab.dir.join(format!("{name}.out"));
        // Speak once everyone is there, then listen before leaving.
        let script = format!(
            "(sleep 1; echo 'hello from {name}'; echo '{name} again'; sleep 4) | {BIN} chat \
             --channel gc-test-chat --interface e0 --name {name}"
        );
        lab.spawn_io(name, &ns.clone(), &["sh", "-c", &script], None, Some(&out));
    }
    lab.wait_all(&names, Duration::from_secs(60), Instant::now());
    for name in names {
        let got = std::fs::read_to_string(lab.dir.join(format!("{name}.out"))).unwrap();
        for other in names.iter().filter(|o| **o != name) {
            let first = got.find(&format!("{other}: hello from {other}"));
            let second = got.find(&format!("{other}: {other} again"));
            assert!(
                first.is_some() && second.is_some() && first < second,
                "{name} did not hear {other} in order:\n{got}"
            );
        }
        assert!(
            !got.contains(&format!("{name}: ")),
            "{name} heard itself:\n{got}"
        );
    }
}

/// `groupcast chat` with keys: everyone holds the channel key (`--key-file`);
/// ann and bob sign their lines and take only each other's (`--sign`,
/// `--sender-key`, bob by fingerprint); cat, a member, signs with a key
/// they do not list. Ann and bob print each other's lines and none of
/// cat's; cat, who lists no key, prints theirs; a listener without the
/// channel key prints nothing.
#[test]
fn a_keyed_chat_prints_only_the_lines_of_the_keys_listed() {
    let _serial = netns::serial();
    if !prerequisites("keyed chat") {
        return;
    }
    let (mut lab, hosts) = bridge_lab("kchat", &[0, 10, 0]);
    let keygen = groupcast_ok;
    let key = lab.dir.join("chat.key");
    keygen(&["keygen", "--channel-key", key.to_str().unwrap()]);
    let mut prints = Vec::new();
    for name in ["ann", "bob", "cat"] {
        let out = keygen(&["keygen", "--out", lab.dir.join(name).to_str().unwrap()]);
        let fp = out
            .lines()
            .find_map(|l| l.strip_prefix("fingerprint: "))
            .unwrap();
        prints.push(fp.to_owned());
    }
    let dir = lab.dir.clone();
    let file = |name: &str, ext: &str| format!("{}.{ext}", dir.join(name).display());
    let key = key.to_str().unwrap().to_owned();
    let flags = |name: &str| -> String {
        let base = format!("--key-file {key} --sign {}", file(name, "key"));
        match name {
            "ann" => format!("{base} --sender-key {}", prints[1]),
            "bob" => format!("{base} --sender-key {}", file("ann", "pub")),
            _ => base,
        }
    };
    let names = ["ann", "bob", "cat", "eve"];
    for (name, ns) in names.iter().zip(&hosts) {
        let out = lab.dir.join(format!("{name}.out"));
        let keys = if *name == "eve" {
            String::new()
        } else {
            flags(name)
        };
        let script = format!(
            "(sleep 1; echo 'hello from {name}'; sleep 4) | {BIN} chat --channel gc-test-kchat \
             --interface e0 --name {name} {keys}"
        );
        lab.spawn_io(name, &ns.clone(), &["sh", "-c", &script], None, Some(&out));
    }
    lab.wait_all(&names, Duration::from_secs(60), Instant::now());
    let heard = |name: &str| std::fs::read_to_string(lab.dir.join(format!("{name}.out"))).unwrap();
    let (ann, bob, cat, eve) = (heard("ann"), heard("bob"), heard("cat"), heard("eve"));
    assert!(ann.contains("bob: hello from bob"), "ann:\n{ann}");
    assert!(bob.contains("ann: hello from ann"), "bob:\n{bob}");
    for (name, got) in [("ann", &ann), ("bob", &bob)] {
        assert!(
            !got.contains("hello from cat"),
            "{name} took an unlisted key's line:\n{got}"
        );
        assert!(!got.contains("hello from eve"), "{name}:\n{got}");
    }
    assert!(
        cat.contains("ann: hello from ann") && cat.contains("bob: hello from bob"),
        "cat:\n{cat}"
    );
    assert!(
        !cat.contains("hello from eve"),
        "an unsealed line was taken:\n{cat}"
    );
    assert!(
        !eve.contains("hello from"),
        "eve, without the key, read:\n{eve}"
    );
}

/// The bridge of topology (a): a sender and receivers dropping the given shares.
fn bridge_lab(tag: &str, drops: &[u32]) -> (Lab, Vec<String>) {
    let mut lab = Lab::new(tag);
    let hub = lab.net.ns("hub");
    lab.net.bridge(&hub, &[]);
    let mut names = vec!["snd".to_owned()];
    names.extend((0..drops.len()).map(|i| format!("r{i}")));
    let hosts: Vec<String> = names.iter().map(|h| lab.net.ns(h)).collect();
    for (i, h) in hosts.iter().enumerate() {
        lab.net.link(h, "e0", &hub, &format!("p{i}"));
        lab.net.attach(&hub, &format!("p{i}"));
    }
    for (h, &d) in hosts[1..].iter().zip(drops) {
        if d > 0 {
            lab.net.drop_percent(h, d);
        }
    }
    for h in &hosts {
        lab.net.wait_link(h, "e0");
    }
    (lab, hosts)
}

/// netbench's large-file runs at CI's scale: a 512 MiB file goes to receivers
/// dropping 0% and 10% with the sender's and the receivers' peak RSS under
/// 128 MiB: the sender hashes the file in a streaming pass and reads each
/// block when it needs it (it never holds the whole file), and the file
/// travels as eight parts of 64 MiB, so its blocks stay K × T (as one
/// object they would be twice that, and the window with them).
#[test]
fn a_file_larger_than_the_memory_cap_is_sent_in_bounded_memory() {
    let _serial = netns::serial();
    if !prerequisites("bounded memory") {
        return;
    }
    let (mut lab, hosts) = bridge_lab("m", &[0, 10]);
    let size = 512usize << 20;
    let file = lab.dir.join("large.bin");
    random_file(&file, size, 14);
    let channel = "gc-test-large";
    let outs: Vec<PathBuf> = (0..2)
        .map(|i| lab.recv(&format!("rx{i}"), &hosts[i + 1].clone(), channel))
        .collect();
    lab.joined();
    lab.send_args(&hosts[0].clone(), &file, channel, &["--rate", "1G"]);
    for i in 0..2 {
        let label = format!("rx{i}");
        let status = lab.wait(&label, Duration::from_secs(90));
        assert!(status.success(), "{label} failed: {}", lab.log(&label));
    }
    let status = lab.wait("sender", Duration::from_secs(30));
    assert!(status.success(), "sender: {}", lab.log("sender"));
    // The receivers wrote behind: what is on disk left the page cache as
    // they went (all of it would be cached otherwise). Checked before the
    // comparison reads the copies in again.
    for out in &outs {
        let copy = out.join("large.bin");
        match page_cached_bytes(&copy) {
            Some(cached) => assert!(
                cached <= size as u64 / 4,
                "{}: {cached} of {size} bytes still in the page cache",
                copy.display()
            ),
            None => eprintln!("{}: on tmpfs, page cache not checked", copy.display()),
        }
    }
    for out in &outs {
        assert_identical(&file, out);
    }
    let cap = 128u64 << 20;
    for label in ["sender", "rx0", "rx1"] {
        let st = lab.stats(label);
        let rss = st["peak_rss_bytes"].as_u64().unwrap_or(0);
        if std::env::var_os("GC_DEBUG").is_some() {
            eprintln!("{label}: {st}");
        }
        eprintln!(
            "{label}: peak RSS {:.1} MiB, {:.2} CPU s, {:.2} s",
            rss as f64 / (1 << 20) as f64,
            st["cpu_s"].as_f64().unwrap_or(0.0),
            st["duration_s"].as_f64().unwrap_or(0.0)
        );
        assert!(rss > 0 && rss <= cap, "{label}: peak RSS {rss} over {cap}");
    }
    // Blocks of 1000 symbols of 1188 bytes, at most interleave + 8 of them
    // loaded at once: the parts kept the blocks small.
    let loaded = lab.stats("sender")["peak_loaded_bytes"].as_u64().unwrap();
    assert!(
        loaded > 0 && loaded <= 24 * 1000 * 1188,
        "sender held {loaded} bytes of blocks"
    );
}

/// `netbench tree` at CI's scale: a tree of 1,500 small files
/// (1-32 KiB, in 60 directories, modes 644, 600 and 755) and two larger ones
/// arrives identical, paths, contents and modes, with the small files packed
/// into a few objects: the receiver completes far fewer objects than files.
#[test]
fn a_tree_of_many_small_files_arrives_identical_in_packs() {
    use std::os::unix::fs::PermissionsExt;
    let _serial = netns::serial();
    if !prerequisites("tree") {
        return;
    }
    let (mut lab, hosts) = bridge_lab("tr", &[10]);
    let src = lab.dir.join("tree");
    for i in 0..1500u64 {
        let d = src.join(format!("d{:02}/s{}", i % 20, i % 3));
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join(format!("f{i:04}"));
        random_file(&p, 1024 + (i as usize * 7919) % (31 << 10), 100 + i);
        let mode = [0o644, 0o600, 0o755][i as usize % 3];
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    random_file(&src.join("large-a"), 3 << 20, 1);
    random_file(&src.join("large-b"), (2 << 20) + 5, 2);
    let channel = "gc-test-tree";
    let out = lab.recv("rx", &hosts[1].clone(), channel);
    lab.joined();
    lab.send_args(&hosts[0].clone(), &src, channel, &["--rate", "500M"]);
    lab.receiver_and_sender_finish("rx", &src, &out);
    let mut stack = vec![src.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                stack.push(e.path());
                continue;
            }
            let rel = e.path().strip_prefix(&src).unwrap().to_owned();
            let got = std::fs::metadata(out.join(&rel))
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(got, m.permissions().mode() & 0o777, "{}", rel.display());
        }
    }
    let st = lab.stats("rx");
    assert_eq!(st["files"].as_u64(), Some(1502), "{st}");
    let objects = st["objects_completed"].as_u64().unwrap();
    assert!(
        objects <= 10,
        "{objects} objects for 1,502 files: not packed"
    );
}

/// benches/scripts/resume-1gib.sh at CI's scale: a receiver killed with
/// SIGKILL at about half of a 256 MiB transfer in parts of 8 MiB, and started
/// again with the same --output beside a new sender of the same file,
/// resumes from the parts it had verified: it finishes with an identical
/// copy, and accepts at most 60% of the file's symbols in its second run.
#[test]
fn a_receiver_killed_halfway_resumes_and_receives_only_the_rest() {
    let _serial = netns::serial();
    if !prerequisites("resume") {
        return;
    }
    let (mut lab, hosts) = bridge_lab("rs", &[0]);
    let size = 256u64 << 20;
    let file = lab.dir.join("resume.bin");
    random_file(&file, size as usize, 15);
    let channel = "gc-test-resume";
    let out = lab.dir.join("out-resume");
    let rx = hosts[1].clone();
    let send = ["--rate", "400M", "--part-size", "8MiB"];
    lab.recv_into("rx", &rx, channel, &out, &[]);
    lab.joined();
    lab.send_args(&hosts[0].clone(), &file, channel, &send);
    // The file's temporary file (its name is fixed: it is resumable) grows
    // in the staging directory as blocks land; kill at a little over half.
    let stage = out.join(groupcast::io::files::STAGING_DIR);
    let written = || -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::read_dir(&stage)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(".groupcast-tmp-")
            })
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.blocks() * 512)
            .max()
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while written() < size * 55 / 100 {
        assert!(
            Instant::now() < deadline && lab.running("rx"),
            "the first run never got halfway: {}",
            lab.log("rx")
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    lab.kill("rx");
    lab.kill("sender");
    assert!(!out.join("resume.bin").exists(), "killed after the end");
    lab.recv_into("rx2", &rx, channel, &out, &[]);
    lab.joined();
    lab.send_args(&hosts[0].clone(), &file, channel, &send);
    lab.receiver_and_sender_finish("rx2", &file, &out);
    let st = lab.stats("rx2");
    let symbols = st["symbols_accepted"].as_u64().unwrap();
    let of_file = size.div_ceil(1188);
    eprintln!(
        "second run: {} parts ({} bytes) resumed, {symbols} symbols accepted of the file's {of_file}",
        st["parts_resumed"], st["bytes_resumed"]
    );
    assert!(st["parts_resumed"].as_u64().unwrap() >= 8, "{st}");
    assert!(
        symbols * 10 <= of_file * 6,
        "the second run accepted {symbols} symbols of {of_file}"
    );
    let left: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left.len(), 1, "temporary files left: {left:?}");
}

/// `recv --follow --exec CMD` takes one transfer after
/// another on the channel. The second, of the same tree with one file changed,
/// receives only that file: the unchanged one is kept as it is (same inode).
/// CMD runs after each verified transfer with the transfer in its
/// environment, and SIGTERM ends the receiver with status 0.
#[test]
fn a_following_receiver_takes_each_update_and_keeps_identical_files() {
    use std::os::unix::fs::MetadataExt;
    let _serial = netns::serial();
    if !prerequisites("follow") {
        return;
    }
    let (mut lab, hosts) = bridge_lab("fo", &[0]);
    let src = lab.dir.join("tree");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    random_file(&src.join("same.bin"), 300_000, 21);
    random_file(&src.join("sub/changes.bin"), 200_000, 22);
    let channel = "gc-test-follow";
    let marks = lab.dir.join("exec.log");
    let exec = format!(
        "echo \"$GROUPCAST_TRANSFER_ID $GROUPCAST_FILES $GROUPCAST_FILES_KEPT\" >> {}",
        marks.display()
    );
    let out = lab.recv_with(
        "follow",
        &hosts[1].clone(),
        channel,
        &["--follow", "--exec", &exec],
    );
    lab.joined();
    let wait_marks = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let lines: Vec<String> = std::fs::read_to_string(&marks)
                .unwrap_or_default()
                .lines()
                .map(str::to_owned)
                .collect();
            if lines.len() >= n || Instant::now() > deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let snd = hosts[0].clone();
    let send = |lab: &mut Lab, label: &str| {
        let src = src.to_str().unwrap().to_owned();
        lab.spawn(
            label,
            &snd,
            &[
                BIN,
                "send",
                &src,
                "--channel",
                channel,
                "--interface",
                "e0",
                "--rate",
                "100M",
            ],
        );
        let status = lab.wait(label, Duration::from_secs(30));
        assert!(status.success(), "{label}: {}", lab.log(label));
    };
    send(&mut lab, "send1");
    let first = wait_marks(1);
    assert_eq!(
        first.len(),
        1,
        "no --exec after the first transfer: {}",
        lab.log("follow")
    );
    assert_identical(&src, &out);
    let inode = std::fs::metadata(out.join("same.bin")).unwrap().ino();
    random_file(&src.join("sub/changes.bin"), 250_000, 23);
    send(&mut lab, "send2");
    let both = wait_marks(2);
    assert_eq!(
        both.len(),
        2,
        "no --exec after the update: {}",
        lab.log("follow")
    );
    assert_identical(&src, &out);
    assert_eq!(
        std::fs::metadata(out.join("same.bin")).unwrap().ino(),
        inode,
        "the unchanged file was written again"
    );
    let fields: Vec<&str> = both[1].split(' ').collect();
    assert_eq!(fields.len(), 3, "{both:?}");
    assert_ne!(
        fields[0],
        first[0].split(' ').next().unwrap(),
        "the same transfer twice"
    );
    assert_eq!((fields[1], fields[2]), ("2", "1"), "files, kept: {both:?}");
    assert_eq!(lab.stats("follow")["files_kept"], 1);
    let status = lab.terminate("follow");
    assert!(
        status.success(),
        "a following receiver stopped by SIGTERM: {status:?}"
    );
}

/// A forger binds a following receiver with a manifest
/// that lists `a.txt` (which is in --output) and `b.txt`, and sends only
/// `a.txt`. Nothing is replaced and the hook does not run; the session,
/// idle for --idle-timeout, is dropped; and the real transfer after it is
/// placed whole, the hook seeing both paths in GROUPCAST_CHANGED.
#[test]
fn a_follower_places_nothing_of_a_forged_half_transfer_and_takes_the_next() {
    use groupcast::ObjectId;
    use groupcast::io::files::{Entry, MANIFEST_NAME, Manifest, STAGING_DIR, TransferId};
    let _serial = netns::serial();
    if !prerequisites_with("follow forged half", &["python3"]) {
        return;
    }
    let (mut lab, hosts) = bridge_lab("fh", &[0, 0]);
    let channel = "gc-test-follow-half";
    let ch = groupcast::Channel::new(channel);
    let out = lab.dir.join("out-follow");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("a.txt"), b"original\n").unwrap();
    let marks = lab.dir.join("exec.log");
    let exec = format!(
        "{{ cat \"$GROUPCAST_CHANGED\"; echo END; }} >> {}",
        marks.display()
    );
    lab.recv_into(
        "follow",
        &hosts[1].clone(),
        channel,
        &out,
        &["--follow", "--exec", &exec, "--idle-timeout", "3"],
    );
    lab.joined();

    // The forgery: a manifest of a.txt and b.txt, and a.txt alone.
    let owned = b"owned by the attacker\n".to_vec();
    let hash = |b: &[u8]| TransferId::of(b).0;
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let entry = |object: u32, path: &str, content: &[u8]| Entry {
        object: ObjectId(object),
        path: path.into(),
        size: content.len() as u64,
        mode: 0o644,
        hash: hash(content),
        parts: Vec::new(),
        pack: None,
    };
    let manifest = Manifest {
        entries: vec![
            entry(1, "a.txt", &owned),
            entry(2, "b.txt", b"never sent\n"),
        ],
        ..Manifest::default()
    }
    .encode();
    let objects = serde_json::json!([
        {"object": 0, "name": MANIFEST_NAME, "content": hex(&manifest), "hash": hex(&hash(&manifest))},
        {"object": 1, "name": "a.txt", "content": hex(&owned), "hash": hex(&hash(&owned))},
    ]);
    let json = lab.dir.join("half.json");
    std::fs::write(&json, objects.to_string()).unwrap();
    let sent = lab.run_support(
        "forger",
        &hosts[2].clone(),
        "forge_half.py",
        &[
            "e0",
            &ch.port().to_string(),
            &ch.group().to_string(),
            "4242424242",
            "2",
            json.to_str().unwrap(),
        ],
    );
    assert!(sent > 0);
    // The follower bound the forged session, and drops it once idle.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !lab.log("follow").contains("idle") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = lab.log("follow");
    assert!(log.contains("dropped the transfer, idle"), "{log}");
    assert_eq!(std::fs::read(out.join("a.txt")).unwrap(), b"original\n");
    assert!(!out.join("b.txt").exists());
    assert!(!marks.exists(), "the hook ran for a half transfer");
    // (The next transfer's sink has its staging directory already: empty.)
    let staged: Vec<_> = std::fs::read_dir(out.join(STAGING_DIR))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(staged.is_empty(), "staged files left: {staged:?}");

    // The real next version is taken, whole.
    let src = lab.dir.join("tree");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a.txt"), b"real a\n").unwrap();
    std::fs::write(src.join("b.txt"), b"real b\n").unwrap();
    lab.send_args(&hosts[0].clone(), &src, channel, &["--rate", "100M"]);
    let status = lab.wait("sender", Duration::from_secs(30));
    assert!(status.success(), "sender: {}", lab.log("sender"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&marks)
        .unwrap_or_default()
        .contains("END")
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        std::fs::read_to_string(&marks).unwrap_or_default(),
        "a.txt\nb.txt\nEND\n",
        "{}",
        lab.log("follow")
    );
    assert_identical(&src, &out);
    assert_eq!(lab.stats("follow")["files_changed"], 2);
    let status = lab.terminate("follow");
    assert!(status.success(), "follower stopped by SIGTERM: {status:?}");
}

/// Hybrid mode (the default) moves a 20 MiB file
/// to receivers dropping 0%, 10% and 25%; every copy is identical, the sender
/// exits by itself, and it sends at most 1.05 × size / (1 − 0.25 − 1/12)
/// bytes plus one block: repair for the worst configured drop (25%), and for
/// up to 1/12 more that that receiver's socket may lose on a loaded host.
#[test]
fn hybrid_transfer_sender_exits_by_itself_within_the_byte_bound() {
    let _serial = netns::serial();
    if !prerequisites("hybrid") {
        return;
    }
    let drops = [0, 10, 25];
    let (mut lab, hosts) = bridge_lab("h", &drops);
    let size = 20usize << 20;
    let file = lab.dir.join("big.bin");
    random_file(&file, size, 4);
    let channel = "gc-test-hybrid";
    // Debug logging, for the session lock and each object's completion checked below.
    lab.env.push(("RUST_LOG".into(), "groupcast=debug".into()));
    let outs: Vec<PathBuf> = (0..3)
        .map(|i| lab.recv(&format!("rx{i}"), &hosts[i + 1].clone(), channel))
        .collect();
    lab.joined();
    lab.send_args(&hosts[0].clone(), &file, channel, &[]);
    for i in 0..3 {
        let label = format!("rx{i}");
        let status = lab.wait(&label, Duration::from_secs(90));
        assert!(status.success(), "{label} failed: {}", lab.log(&label));
    }
    let status = lab.wait("sender", Duration::from_secs(20));
    assert!(status.success(), "sender: {}", lab.log("sender"));
    for out in &outs {
        assert_identical(&file, out);
    }
    for i in 0..3 {
        let log = lab.log(&format!("rx{i}"));
        assert!(
            log.contains("session locked to its manifest") && log.contains("object complete"),
            "RUST_LOG=groupcast=debug: no session lock or completion in rx{i}'s log:\n{log}"
        );
    }
    let sent = lab.stats("sender");
    assert_eq!(sent["mode"], "hybrid");
    assert_eq!(sent["finished"], true);
    assert_eq!(sent["receivers_tracked"], 3);
    // The group size estimate (protocol.md §13.4, "Group size"), within a
    // factor 2 of the three receivers.
    let estimate = sent["group_estimate"].as_u64().unwrap();
    assert!((2..=6).contains(&estimate), "{sent}");
    let bytes = sent["bytes_sent"].as_u64().unwrap() as f64;
    let block = 1000.0 * 1188.0;
    // A fixed bound from the configured loss: the worst drop rule, and a
    // fixed allowance for the overflows of a socket on a loaded host, which
    // are loss the repair owes too. What the 25% receiver saw is printed,
    // not used.
    let configured = f64::from(*drops.iter().max().unwrap()) / 100.0;
    let overflow = 1.0 / 12.0;
    let bound = 1.05 * size as f64 / (1.0 - configured - overflow) + block;
    let rx2 = lab.stats("rx2");
    let seen = 1.0
        - rx2["packets_received"].as_f64().unwrap_or(0.0)
            / sent["packets_sent"].as_f64().unwrap_or(1.0).max(1.0);
    eprintln!(
        "hybrid: {bytes} bytes sent for {size} ({:.3} × size), bound {bound} (rx2 saw {seen:.3} loss)",
        bytes / size as f64
    );
    for i in 0..3 {
        let st = lab.stats(&format!("rx{i}"));
        eprintln!(
            "rx{i}: {:.2} s, awaiting_manifest {}, nacks_sent {}, doubted {}",
            st["duration_s"].as_f64().unwrap_or(0.0),
            st["awaiting_manifest"],
            st["nacks_sent"],
            st["suppressions_doubted"]
        );
    }
    // Proactive repair, sized for the 25% receiver, may leave nothing to NACK.
    assert!(bytes <= bound, "{bytes} bytes sent, bound {bound}");
    // The GRTT is measured: the sender probed and heard STATUS echoes, and
    // its estimate left its initial value (50 ms) for the path's round trip
    // (under 0.1 ms on a veth bridge, so `min_grtt`, 1 ms); it lies within
    // the configured bounds. How close it comes to the path's round trip is
    // a figure for the benchmarks (`completion_against_the_bound` prints it).
    let fb = groupcast::FeedbackConfig::default();
    let grtt = sent["grtt_us"].as_u64().unwrap();
    assert!(sent["probes_sent"].as_u64().unwrap() > 0, "{sent}");
    assert!(sent["status_received"].as_u64().unwrap() > 0, "{sent}");
    assert!(
        grtt < fb.initial_grtt.as_micros() as u64,
        "GRTT {grtt} µs: not below its initial {:?}, so never measured",
        fb.initial_grtt
    );
    assert!(
        grtt >= fb.min_grtt.as_micros() as u64,
        "GRTT {grtt} µs below min_grtt {:?}",
        fb.min_grtt
    );
    assert!(
        lab.net.dropped(&hosts[3]) > 1000,
        "the 25% rule dropped too little"
    );
    for i in 0..3 {
        let rx = lab.stats(&format!("rx{i}"));
        assert_eq!(rx["complete"], true);
        assert!(rx["status_sent"].as_u64().unwrap() > 0);
    }
    // (Whether the 25% receiver NACKs depends on how the proactive repair
    // fell; hybrid_through_smcroute_with_feedback_routed_upstream proves the
    // NACK path with --no-proactive.)
}

/// Under the `min` policy a receiver that stops
/// reading (SIGSTOP) holds the sender back; once it is killed, the sender drops
/// it after `--receiver-timeout` (counted in `receivers_timed_out`) and the
/// others finish.
#[test]
fn min_policy_waits_for_a_stopped_receiver_until_it_times_out() {
    let _serial = netns::serial();
    if !prerequisites("slow receiver") {
        return;
    }
    let (mut lab, hosts) = bridge_lab("s", &[0, 0]);
    let file = lab.dir.join("big.bin");
    random_file(&file, 20 << 20, 5);
    let channel = "gc-test-slow";
    let healthy = lab.recv("healthy", &hosts[1].clone(), channel);
    let _stopped = lab.recv("stopped", &hosts[2].clone(), channel);
    lab.joined();
    let timeout = 4.0;
    lab.send_args(
        &hosts[0].clone(),
        &file,
        channel,
        &[
            "--rate",
            "80M",
            "--policy",
            "min",
            "--flow-window",
            "4",
            "--receiver-timeout",
            &timeout.to_string(),
        ],
    );
    // Both receivers report for a while, then one stops reading.
    std::thread::sleep(Duration::from_millis(500));
    lab.signal("stopped", "-STOP");
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        lab.running("healthy"),
        "the healthy receiver finished although the sender should wait for the stopped one"
    );
    // The stopped receiver dies; the sender times it out and the healthy one finishes.
    // (How long that takes is not checked: what lets the healthy one
    // finish is the sender timing the dead one out, counted below.)
    lab.kill("stopped");
    let status = lab.wait("healthy", Duration::from_secs(30));
    assert!(status.success(), "healthy: {}", lab.log("healthy"));
    assert_identical(&file, &healthy);
    let status = lab.wait("sender", Duration::from_secs(20));
    assert!(status.success(), "sender: {}", lab.log("sender"));
    let sent = lab.stats("sender");
    assert!(sent["receivers_timed_out"].as_u64().unwrap() >= 1, "{sent}");
    assert!(sent["flow_blocked"].as_u64().unwrap() > 0, "{sent}");
    assert_eq!(sent["finished"], true, "{sent}");
}

/// A third namespace floods the feedback group
/// with well-formed NACKs (for the real session, learnt from the data),
/// aiming at 10,000 a second for 2 s, during a hybrid transfer. The sender
/// hears the flood and its per-source limit drops a share of it; the
/// replies stay within the repair share of the sending rate, and the
/// transfer still completes. How many NACKs the forger manages to send is
/// its own speed, not checked: every check is against that count.
#[test]
fn forged_nack_flood_is_capped_by_the_repair_share() {
    let _serial = netns::serial();
    if !prerequisites_with("NACK flood", &["python3"]) {
        return;
    }
    let (mut lab, hosts) = bridge_lab("f", &[10, 0]);
    let file = lab.dir.join("big.bin");
    random_file(&file, 20 << 20, 6);
    let channel = "gc-test-flood";
    let ch = groupcast::Channel::new(channel);
    let out = lab.recv("rx", &hosts[1].clone(), channel);
    lab.joined();
    let rate_bits = 80_000_000u64;
    let share = 0.5;
    lab.send_args(
        &hosts[0].clone(),
        &file,
        channel,
        &["--rate", "80M", "--repair-share", "0.5"],
    );
    let data = ch.group().to_string();
    let fb = ch.feedback_group().to_string();
    let port = ch.port().to_string();
    let forged = lab.run_support(
        "forger",
        &hosts[2].clone(),
        "forge_nacks.py",
        &["e0", &data, &fb, &port, "10000", "2"],
    );
    assert!(forged > 0, "no NACK forged");
    lab.receiver_and_sender_finish("rx", &file, &out);
    let sent = lab.stats("sender");
    let per_source = sent["nacks_dropped_per_source"].as_u64().unwrap();
    let heard = sent["nacks_received"].as_u64().unwrap()
        + sent["nacks_dropped"].as_u64().unwrap()
        + per_source;
    // One host's flood is held to its own budget (2,000 NACKs a second).
    assert!(
        per_source >= forged / 3,
        "only {per_source} of {forged} NACKs dropped by the per-source limit"
    );
    assert!(
        heard >= forged / 2,
        "the sender heard {heard} of {forged} NACKs"
    );
    let duration = sent["duration_s"].as_f64().unwrap();
    let repair_bytes = sent["repair_symbols"].as_u64().unwrap() as f64 * 1232.0;
    let cap = share * rate_bits as f64 / 8.0 * duration + 256.0 * 1024.0;
    eprintln!(
        "flood: {forged} forged NACKs, {heard} heard; {repair_bytes:.0} bytes of repair in {duration:.2} s, cap {cap:.0}"
    );
    assert!(
        repair_bytes <= cap,
        "{repair_bytes} bytes of repair, cap {cap}"
    );
}

/// A third namespace injects, during a
/// transfer and at a high rate, random datagrams, truncated and bit-flipped
/// copies of real packets (some with the CRC recomputed), and replays under a
/// different session. The transfer finishes byte-identical, the sender exits by
/// itself, and the receiver's stats count the rejections.
#[test]
fn injected_garbage_is_counted_and_the_transfer_survives() {
    let _serial = netns::serial();
    if !prerequisites_with("injection", &["python3"]) {
        return;
    }
    let (mut lab, hosts) = bridge_lab("i", &[5, 0]);
    let file = lab.dir.join("big.bin");
    random_file(&file, 8 << 20, 8);
    let channel = "gc-test-inject";
    let ch = groupcast::Channel::new(channel);
    let out = lab.recv("rx", &hosts[1].clone(), channel);
    lab.joined();
    lab.send_args(&hosts[0].clone(), &file, channel, &["--rate", "40M"]);
    let group = ch.group().to_string();
    let port = ch.port().to_string();
    let injected = lab.run_support(
        "injector",
        &hosts[2].clone(),
        "inject.py",
        &["e0", &group, &port, "10000", "1.5"],
    );
    assert!(injected >= 10_000, "only {injected} datagrams injected");
    lab.receiver_and_sender_finish("rx", &file, &out);
    let rx = lab.stats("rx");
    let rejected = rx["packets_rejected"].as_u64().unwrap();
    let reasons = &rx["rejected_by_reason"];
    eprintln!("injection: {injected} injected, {rejected} rejected: {reasons}");
    assert!(
        rejected >= injected / 4,
        "{rejected} rejected of {injected}"
    );
    for reason in ["bad_magic", "bad_checksum", "truncated"] {
        assert!(
            reasons[reason].as_u64().unwrap_or(0) > 0,
            "no {reason} in {reasons}"
        );
    }
}

/// Runs `groupcast ARGS` to success (keygen, id); its standard output.
fn groupcast_ok(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

impl Lab {
    /// A forger on `ns` runs `groupcast send DECOY` as a carousel on
    /// `channel` with `extra` flags, and is sending (it printed its transfer
    /// id) when this returns.
    fn forger_carousel(&mut self, ns: &str, decoy: &Path, channel: &str, extra: &[&str]) {
        let mut args = vec![
            BIN,
            "send",
            decoy.to_str().unwrap(),
            "--channel",
            channel,
            "--interface",
            "e0",
            "--mode",
            "carousel",
            "--forever",
            "--rate",
            "20M",
        ];
        args.extend_from_slice(extra);
        self.spawn("forger", ns, &args);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.log("forger").contains("transfer id") {
            assert!(Instant::now() < deadline, "forger: {}", self.log("forger"));
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `sealed_tap.py` on `ns` for `seconds`: it captures `channel`'s data
    /// group, looks for `marker`, and sends modified and replayed copies of
    /// the sealed DATA (label "tap").
    fn sealed_tap(&mut self, ns: &str, channel: &str, seconds: &str, marker: &str) {
        let ch = groupcast::Channel::new(channel);
        let script = format!("{}/tests/support/sealed_tap.py", env!("CARGO_MANIFEST_DIR"));
        let (port, group) = (ch.port().to_string(), ch.group().to_string());
        self.spawn(
            "tap",
            ns,
            &["python3", &script, "e0", &port, &group, seconds, marker],
        );
    }

    /// The tap's summary, once it ended: what it captured and sent, with
    /// the marker found in none of the datagrams.
    fn tap_summary(&mut self) -> serde_json::Value {
        let status = self.wait("tap", Duration::from_secs(30));
        assert!(status.success(), "tap: {}", self.log("tap"));
        let tap: serde_json::Value = serde_json::from_str(self.log("tap").trim()).unwrap();
        eprintln!("tap: {tap}");
        assert!(tap["modified"].as_u64().unwrap_or(0) > 0, "{tap}");
        assert_eq!(tap["marker_found"], 0, "plaintext on the wire: {tap}");
        tap
    }
}

/// Signed channels (protocol.md §15): a forger on the group runs groupcast
/// itself, unsigned, on the same channel from before the real sender starts.
/// The receiver holding the sender's public key, behind 5% loss, takes the
/// signed transfer whole and nothing of the forger's (every forged datagram
/// counted unvouched); a receiver given another key takes nothing, exits
/// non-zero naming the cause, and writes nothing.
#[test]
fn a_signed_transfer_reaches_only_the_keyed_receiver() {
    let _serial = netns::serial();
    if !prerequisites("signed") {
        return;
    }
    let (mut lab, hosts) = bridge_lab("sg", &[5, 0, 0]);
    let file = lab.dir.join("real.bin");
    random_file(&file, 3 << 20, 31);
    let decoy = lab.dir.join("decoy.bin");
    random_file(&decoy, 1 << 20, 32);
    let keygen = |prefix: &Path| {
        groupcast_ok(&["keygen", "--out", prefix.to_str().unwrap()]);
    };
    let (key, other) = (lab.dir.join("sender"), lab.dir.join("other"));
    keygen(&key);
    keygen(&other);
    let pub_of = |p: &Path| format!("{}.pub", p.display());
    let channel = "gc-test-signed";
    let (real_pub, other_pub) = (pub_of(&key), pub_of(&other));
    // The keyed receiver is given only the signed transfer's id, which
    // carries the key (`groupcast id --key`, as `send --sign` prints it).
    let id = Command::new(BIN)
        .args(["id", file.to_str().unwrap(), "--key", &real_pub])
        .output()
        .unwrap();
    assert!(id.status.success(), "id: {id:?}");
    let id = String::from_utf8(id.stdout).unwrap().trim().to_owned();
    assert_eq!(id.len(), 64 + 1 + 64, "{id}");
    let out = lab.recv_with("keyed", &hosts[1].clone(), channel, &["--expect", &id]);
    let wrong = lab.recv_with(
        "wrong",
        &hosts[2].clone(),
        channel,
        &["--sender-key", &other_pub, "--timeout", "15"],
    );
    lab.joined();
    // The forger runs groupcast unsigned on the channel, and is sending (it
    // printed its transfer id) before the signed transfer starts, which
    // lasts a few seconds at 10 Mbit/s.
    lab.forger_carousel(&hosts[3].clone(), &decoy, channel, &[]);
    let secret = format!("{}.key", key.display());
    lab.send_args(
        &hosts[0].clone(),
        &file,
        channel,
        &["--sign", &secret, "--rate", "10M"],
    );
    lab.receiver_and_sender_finish("keyed", &file, &out);
    let auth = lab.stats("keyed")["auth"].clone();
    eprintln!("signed: keyed receiver {auth}");
    assert!(auth["verified"].as_u64().unwrap() > 0, "{auth}");
    // Held until they expired or were pushed out, or, once the signed
    // manifest bound the receiver to its session, refused as foreign.
    let foreign = lab.stats("keyed")["rejected_by_reason"]["foreign_session"]
        .as_u64()
        .unwrap_or(0);
    let forged = auth["unvouched"].as_u64().unwrap() + auth["held"].as_u64().unwrap() + foreign;
    assert!(
        forged > 0,
        "the forger's datagrams were never seen: the test proves nothing: {auth}"
    );
    let status = lab.wait("wrong", Duration::from_secs(60));
    let log = lab.log("wrong");
    assert!(!status.success(), "wrong key: {log}");
    assert!(log.contains("another key"), "no cause named: {log}");
    assert_eq!(
        tree_listing(&wrong),
        Vec::<String>::new(),
        "the wrong key wrote files"
    );
    let refused = lab.stats("wrong")["auth"]["refused"].as_u64().unwrap();
    assert!(refused > 0, "{log}");
}

/// Encrypted and signed channels (protocol.md §15, §16). The file holds a
/// marker many times over. On the group: a receiver with both keys (given
/// the signed id and the channel key) behind 5% loss; one without the
/// channel key and one with another; and a hostile host that holds the
/// channel key but not the signing key. The hostile host runs groupcast
/// itself with the channel key (sealed, unsigned) from before the transfer
/// starts, and a tap that captures the data group, searches it for the
/// marker, and sends back modified and replayed copies of the sealed DATA.
/// The keyed receiver finishes byte-identical, no unvouched symbol reaches
/// its decoders, and each forgery is counted; the capture holds no marker;
/// the receivers without the key exit non-zero naming why, and write
/// nothing.
#[test]
fn an_encrypted_signed_transfer_is_read_only_by_key_holders() {
    let _serial = netns::serial();
    if !prerequisites_with("sealed", &["python3"]) {
        return;
    }
    let (mut lab, hosts) = bridge_lab("se", &[5, 0, 0, 0]);
    const MARKER: &str = "GROUPCAST-PLAINTEXT-MARKER";
    let file = lab.dir.join("secret.bin");
    let mut bytes = groupcast_fec::pseudo_random_bytes(3 << 20, 41);
    for at in (0..bytes.len() - MARKER.len()).step_by(4096) {
        bytes[at..at + MARKER.len()].copy_from_slice(MARKER.as_bytes());
    }
    std::fs::write(&file, &bytes).unwrap();
    let decoy = lab.dir.join("decoy.bin");
    random_file(&decoy, 1 << 20, 42);
    let run = groupcast_ok;
    let signer = lab.dir.join("sender");
    run(&["keygen", "--out", signer.to_str().unwrap()]);
    let (key, other_key) = (lab.dir.join("chan.key"), lab.dir.join("other.key"));
    run(&["keygen", "--channel-key", key.to_str().unwrap()]);
    run(&["keygen", "--channel-key", other_key.to_str().unwrap()]);
    let (key, other_key) = (key.to_str().unwrap(), other_key.to_str().unwrap());
    let public = format!("{}.pub", signer.display());
    let id = run(&["id", file.to_str().unwrap(), "--key", &public]);
    let id = id.trim();
    let channel = "gc-test-sealed";
    let out = lab.recv_with(
        "keyed",
        &hosts[1].clone(),
        channel,
        &["--expect", id, "--key-file", key],
    );
    let keyless = lab.recv_with(
        "keyless",
        &hosts[2].clone(),
        channel,
        &["--expect", id, "--timeout", "15"],
    );
    let wrong = lab.recv_with(
        "wrong",
        &hosts[3].clone(),
        channel,
        &["--expect", id, "--key-file", other_key, "--timeout", "15"],
    );
    lab.joined();
    let hostile = hosts[4].clone();
    lab.forger_carousel(&hostile, &decoy, channel, &["--key-file", key]);
    lab.sealed_tap(&hostile, channel, "12", MARKER);
    std::thread::sleep(Duration::from_millis(500));
    let secret = format!("{}.key", signer.display());
    lab.send_args(
        &hosts[0].clone(),
        &file,
        channel,
        &["--sign", &secret, "--key-file", key, "--rate", "10M"],
    );
    lab.receiver_and_sender_finish("keyed", &file, &out);
    let stats = lab.stats("keyed");
    eprintln!(
        "sealed: keyed receiver auth {} seal {}",
        stats["auth"], stats["seal"]
    );
    assert_eq!(stats["auth"]["symbols_unvouched"], 0, "{stats}");
    assert!(stats["seal"]["opened"].as_u64().unwrap() > 0, "{stats}");
    let reasons = &stats["rejected_by_reason"];
    let count = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
    // The tap's modified copies and the forger's own session wait
    // unvouched (or, once the manifest binds the session, are foreign);
    // its replays are dropped as copies.
    let forged = count(&stats["auth"]["unvouched"])
        + count(&stats["auth"]["held"])
        + count(&reasons["foreign_session"]);
    assert!(forged > 0, "no forgery was seen: {stats}");
    assert!(count(&stats["auth"]["replayed"]) > 0, "{stats}");

    let tap = lab.tap_summary();
    assert!(
        count(&tap["sealed"]) > 1000,
        "the tap heard too little: {tap}"
    );
    assert!(count(&tap["replayed"]) > 0, "{tap}");
    assert_eq!(count(&tap["unsealed"]), 0, "{tap}");

    for (label, dir, cause) in [
        ("keyless", &keyless, "the channel is encrypted"),
        ("wrong", &wrong, "another channel key"),
    ] {
        let status = lab.wait(label, Duration::from_secs(60));
        let log = lab.log(label);
        assert!(!status.success(), "{label}: {log}");
        assert!(log.contains(cause), "{label}: no cause named: {log}");
        assert_eq!(
            tree_listing(dir),
            Vec::<String>::new(),
            "{label} wrote files"
        );
    }
}

/// Hybrid through the router with default flags at both ends: the sender's
/// default hop limit (8) crosses the router, which forwards nothing that
/// arrives with a hop limit of 1 (the default before); the receivers' NACKs
/// take the hop limit the PROBEs need (announced 8, arrived with 7: 2 hops),
/// up the routed feedback group, and STATUS goes by unicast through the
/// router, so the sender repairs and exits by itself.
#[test]
fn hybrid_through_smcroute_with_feedback_routed_upstream() {
    let _serial = netns::serial();
    if !router_prerequisites("hybrid router") {
        return;
    }
    let channel = "gc-test-routed-hybrid";
    let (mut lab, snd, rx) = router_lab("rh", channel, [0, 10, 25], true);
    let file = lab.dir.join("routed.bin");
    random_file(&file, 8 << 20, 9);
    let outs: Vec<PathBuf> = (0..3)
        .map(|i| lab.recv_with(&format!("h{i}"), &rx[i].clone(), channel, &[]))
        .collect();
    lab.joined();
    lab.send_args(
        &snd.clone(),
        &file,
        channel,
        // Without proactive repair, so that repair must come through NACKs.
        &["--rate", "100M", "--no-proactive"],
    );
    for i in 0..3 {
        let label = format!("h{i}");
        let status = lab.wait(&label, Duration::from_secs(90));
        assert!(
            status.success(),
            "{label}: {}\nsender: {}",
            lab.log(&label),
            lab.log("sender")
        );
    }
    let status = lab.wait("sender", Duration::from_secs(30));
    assert!(status.success(), "sender: {}", lab.log("sender"));
    for out in &outs {
        assert_identical(&file, out);
    }
    let sent = lab.stats("sender");
    assert_eq!(sent["finished"], true);
    assert_eq!(sent["receivers_tracked"], 3, "{sent}");
    assert!(sent["nacks_received"].as_u64().unwrap() > 0, "{sent}");
}

/// The router drops every datagram from the
/// receivers as it arrives (nftables at prerouting, ahead of either kind of
/// forwarding), so neither NACK nor STATUS reaches the sender. The sender
/// falls back to repair rounds and says why; the lossy receivers say their
/// NACKs go unanswered; every copy still completes.
#[test]
fn feedback_blocked_at_the_router_falls_back_to_repair_rounds() {
    let _serial = netns::serial();
    if !router_prerequisites("feedback blocked") {
        return;
    }
    let channel = "gc-test-blocked";
    let (mut lab, snd, rx) = router_lab("fb", channel, [0, 10, 25], true);
    let rtr = format!("{}-rtr", lab.net.tag());
    lab.net.nft_rule(
        &rtr,
        "gcblock",
        "prerouting",
        -10,
        "iifname down0 meta l4proto udp counter drop",
    );
    let file = lab.dir.join("blocked.bin");
    random_file(&file, 4 << 20, 13);
    let outs: Vec<PathBuf> = (0..3)
        .map(|i| lab.recv(&format!("h{i}"), &rx[i].clone(), channel))
        .collect();
    lab.joined();
    lab.send_args(
        &snd.clone(),
        &file,
        channel,
        &["--hops", "4", "--rate", "100M"],
    );
    for i in 0..3 {
        let label = format!("h{i}");
        let status = lab.wait(&label, Duration::from_secs(60));
        assert!(status.success(), "{label}: {}", lab.log(&label));
    }
    for out in &outs {
        assert_identical(&file, out);
    }
    let status = lab.wait("sender", Duration::from_secs(60));
    assert!(status.success(), "sender: {}", lab.log("sender"));
    let sent = lab.stats("sender");
    assert_eq!(sent["receivers_heard"], 0, "feedback got through: {sent}");
    assert!(sent["fallback_rounds"].as_u64().unwrap() > 0, "{sent}");
    assert!(
        lab.log("sender")
            .contains("no feedback since the first pass"),
        "{}",
        lab.log("sender")
    );
    for i in 1..3 {
        let label = format!("h{i}");
        assert!(
            lab.log(&label).contains("NACKs unanswered"),
            "{label}: {}",
            lab.log(&label)
        );
        assert_eq!(lab.stats(&label)["nacks_unanswered"], 1);
    }
}

/// The link-local address of `ifname` in `ns`.
fn link_local(ns: &str, ifname: &str) -> String {
    let out = Command::new("ip")
        .args([
            "-n", ns, "-6", "-o", "addr", "show", "dev", ifname, "scope", "link",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "inet6")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .unwrap_or_else(|| panic!("{ns}/{ifname} has no link-local address: {text}"))
        .to_owned()
}

/// A host that owns a /64 reports COMPLETE under 8
/// made-up ids from each of 40 of its addresses (forge_ids.py), more than the
/// sender's table of 100 holds. It fills only its /64's share
/// (`--max-receivers-per-prefix`), so a real receiver from another /64 that
/// starts late is tracked and gets the whole file; and since the forger's ids
/// were still refused at the end, the sender says "not confirmed" and exits
/// non-zero rather than "every receiver heard from is complete". Then a
/// sender with `--min-receivers 2` and no real receiver does not finish on
/// the forger's ids, which count as one receiver: `--timeout` stops it.
#[test]
fn forged_ids_from_one_64_neither_crowd_out_a_real_receiver_nor_count_twice() {
    let _serial = netns::serial();
    if !prerequisites_with("forged /64", &["python3"]) {
        return;
    }
    let (mut lab, hosts) = bridge_lab("p", &[0, 0]);
    let (snd, real, forger) = (hosts[0].clone(), hosts[1].clone(), hosts[2].clone());
    // Global addresses, each host in a /64 of its own, all on the link.
    let forged: Vec<String> = (1..=40).map(|i| format!("2001:db8:0:3::{i:x}")).collect();
    for (ns, addrs) in [
        (&snd, vec!["2001:db8:0:1::1".to_owned()]),
        (&real, vec!["2001:db8:0:2::1".to_owned()]),
        (&forger, forged.clone()),
    ] {
        for a in &addrs {
            lab.net.exec(
                ns,
                &[
                    "ip",
                    "-6",
                    "addr",
                    "add",
                    &format!("{a}/64"),
                    "dev",
                    "e0",
                    "nodad",
                ],
            );
        }
        lab.net.exec(
            ns,
            &["ip", "-6", "route", "add", "2001:db8::/48", "dev", "e0"],
        );
    }
    let channel = "gc-test-forged-prefix";
    let ch = groupcast::Channel::new(channel);
    let file = lab.dir.join("file.bin");
    random_file(&file, 1 << 20, 33);
    let script = format!("{}/tests/support/forge_ids.py", env!("CARGO_MANIFEST_DIR"));
    let (port, group) = (ch.port().to_string(), ch.group().to_string());
    let mut args = vec!["python3", &script, "e0", &port, &group, "8", "60"];
    args.extend(forged.iter().map(String::as_str));
    lab.spawn("forger", &forger, &args);
    std::thread::sleep(Duration::from_millis(500));
    // A first pass of about 4 s; the real receiver starts 1.5 s into it.
    let caps = [
        "--max-receivers",
        "100",
        "--max-receivers-per-source",
        "8",
        "--max-receivers-per-prefix",
        "25",
    ];
    let mut extra = vec!["--rate", "2M"];
    extra.extend_from_slice(&caps);
    lab.send_args(&snd, &file, channel, &extra);
    std::thread::sleep(Duration::from_millis(1500));
    let out = lab.recv("real", &real, channel);
    let status = lab.wait("real", Duration::from_secs(60));
    assert!(status.success(), "real: {}", lab.log("real"));
    assert_identical(&file, &out);
    let status = lab.wait("sender", Duration::from_secs(30));
    let log = lab.log("sender");
    assert!(!status.success(), "the sender claimed success: {log}");
    assert!(log.contains("not confirmed"), "{log}");
    assert!(
        !log.contains("every receiver heard from is complete"),
        "{log}"
    );
    let sender = lab.stats("sender");
    assert_eq!(sender["finished"], true, "{sender}");
    assert_eq!(sender["receiver_prefixes_heard"], 2, "{sender}");
    for key in ["receivers_refused_prefix", "receivers_left_refused"] {
        assert!(sender[key].as_u64().unwrap_or(0) > 0, "no {key}: {sender}");
    }

    // --min-receivers 2, the forger alone: its ids are one receiver.
    let stats = lab.dir.join("sender2.json");
    let mut args = vec![
        BIN,
        "send",
        file.to_str().unwrap(),
        "--channel",
        channel,
        "--interface",
        "e0",
        "--stats-json",
        stats.to_str().unwrap(),
        "--rate",
        "20M",
        "--min-receivers",
        "2",
        "--timeout",
        "6",
    ];
    args.extend_from_slice(&caps);
    lab.spawn("sender2", &snd, &args);
    let status = lab.wait("sender2", Duration::from_secs(30));
    let log = lab.log("sender2");
    assert!(!status.success(), "finished on one /64's ids: {log}");
    assert!(log.contains("--timeout"), "{log}");
    let sender = lab.stats("sender2");
    assert_eq!(sender["finished"], false, "{sender}");
    assert_eq!(sender["receiver_prefixes_heard"], 1, "{sender}");
    assert!(
        sender["receivers_heard"].as_u64().unwrap_or(0) >= 2,
        "the forger was heard: {sender}"
    );
    if lab.running("forger") {
        lab.kill("forger");
    }
}

/// Every path beneath `dir` (links not followed), relative, sorted.
fn tree_listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
            out.push(e.path().strip_prefix(dir).unwrap().display().to_string());
        }
    }
    out.sort();
    out
}

/// The forged transfers the hostile host sends, as JSON for hostile.py: each
/// a manifest (object 0) and its files, with their real BLAKE3 hashes, so
/// that they verify as objects and reach the file layer of an unpinned
/// receiver.
fn forgeries(path: &Path) {
    use groupcast::ObjectId;
    use groupcast::io::files::{
        DEFAULT_PART_SIZE, Entry, MANIFEST_HEADER, MANIFEST_NAME, Manifest, TransferId,
    };
    let owned = b"owned by the attacker\n".to_vec();
    let hash = |b: &[u8]| TransferId::of(b).0;
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let file = |object: u32, path: &str| Entry {
        object: ObjectId(object),
        path: path.into(),
        size: owned.len() as u64,
        mode: 0o777,
        hash: hash(&owned),
        parts: Vec::new(),
        pack: None,
    };
    let long = "x".repeat(300);
    // A valid manifest that would overwrite .bashrc and write through the planted
    // link; manifests with names the file system refuses (its own encoder would
    // not write them); an empty manifest: faked completion.
    let valid = Manifest {
        entries: vec![file(1, ".bashrc"), file(2, "evil/pwned")],
        ..Manifest::default()
    }
    .encode();
    let header = format!("{MANIFEST_HEADER} {DEFAULT_PART_SIZE}\n");
    let h = hex(&hash(&owned));
    // Each forged transfer carries its objects under its manifest's names, so
    // that an unpinned receiver bound to any of them is offered every file
    // and ends (refused), rather than waiting for a file never sent.
    type Files<'a> = Vec<(u32, &'a str)>;
    let forged: [(Vec<u8>, Files); 4] = [
        (valid, vec![(1, ".bashrc"), (2, "evil/pwned")]),
        (
            format!("{header}1 644 22 {h} {long}\n").into_bytes(),
            vec![(1, &long[..])],
        ),
        (
            format!("{header}1 644 22 {h} x\n2 644 22 {h} x/y\n").into_bytes(),
            vec![(1, "x"), (2, "x/y")],
        ),
        (Vec::new(), vec![]),
    ];
    let mut transfers = Vec::new();
    for (m, files) in forged {
        let mut objects = vec![serde_json::json!({
            "object": 0, "name": MANIFEST_NAME, "content": hex(&m), "hash": hex(&hash(&m)),
        })];
        for (object, name) in files {
            objects.push(serde_json::json!({
                "object": object, "name": name, "content": hex(&owned), "hash": hex(&hash(&owned)),
            }));
        }
        transfers.push(serde_json::Value::Array(objects));
    }
    std::fs::write(path, serde_json::Value::Array(transfers).to_string()).unwrap();
}

/// A hostile host beside a real
/// hybrid transfer, forging packets from what it sees on the wire, tries
/// every class of attack (hostile.py). Receivers pinned with --expect (one
/// also with --source, whose feedback group the host floods with the sender's
/// packets) finish byte-identical; nothing but the manifest's files appears
/// in --output, where a .bashrc and a link to a directory outside were
/// planted, and both stay as they were; the sender finishes by itself; and
/// each attack is counted under its reason. An unpinned receiver warns, and
/// exits 0 only with every file of its manifest written.
#[test]
fn hostile_host_cannot_write_fake_stall_or_exhaust() {
    let _serial = netns::serial();
    if !prerequisites_with("hostile host", &["python3"]) {
        return;
    }
    let (mut lab, hosts) = bridge_lab("h", &[10, 0, 10, 0]);
    let channel = "gc-test-hostile";
    let ch = groupcast::Channel::new(channel);
    let tree = lab.dir.join("tree");
    std::fs::create_dir_all(tree.join("docs")).unwrap();
    random_file(&tree.join("a.bin"), 3_000_000, 41);
    random_file(&tree.join("docs/b.bin"), 200_000, 42);
    std::fs::write(tree.join("empty"), "").unwrap();
    // The transfer id, printed alone on stdout without sending anything.
    let out = Command::new(BIN).args(["id"]).arg(&tree).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(
        id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id:?}"
    );
    // Planted in every --output: a .bashrc, and a link to a directory outside.
    let target = lab.dir.join("target");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("x"), b"precious").unwrap();
    let outs: Vec<PathBuf> = ["pinned", "source", "unpinned"]
        .iter()
        .map(|l| lab.dir.join(format!("out-{l}")))
        .collect();
    for out in &outs {
        std::fs::create_dir_all(out).unwrap();
        std::fs::write(out.join(".bashrc"), b"mine").unwrap();
        std::os::unix::fs::symlink(&target, out.join("evil")).unwrap();
    }
    let src = link_local(&hosts[0], "e0");
    lab.recv_with("pinned", &hosts[1].clone(), channel, &["--expect", &id]);
    lab.recv_with(
        "source",
        &hosts[2].clone(),
        channel,
        &["--expect", &id, "--source", &src],
    );
    lab.recv_with("unpinned", &hosts[3].clone(), channel, &[]);
    lab.joined();
    // The hostile host starts first, so that its candidates and sessions are there.
    let json = lab.dir.join("forgeries.json");
    forgeries(&json);
    let script = format!("{}/tests/support/hostile.py", env!("CARGO_MANIFEST_DIR"));
    let (data, fb, port) = (
        ch.group().to_string(),
        ch.feedback_group().to_string(),
        ch.port().to_string(),
    );
    lab.spawn(
        "hostile",
        &hosts[4].clone(),
        &[
            "python3",
            &script,
            "e0",
            &port,
            &data,
            &fb,
            &id,
            "40",
            json.to_str().unwrap(),
        ],
    );
    std::thread::sleep(Duration::from_millis(1500));
    lab.send_args(
        &hosts[0].clone(),
        &tree,
        channel,
        &["--rate", "100M", "--stall-timeout", "10"],
    );
    for (label, out) in [("pinned", &outs[0]), ("source", &outs[1])] {
        let status = lab.wait(label, Duration::from_secs(60));
        assert!(status.success(), "{label}: {}", lab.log(label));
        assert_identical(&tree, out);
        // Nothing but the manifest's files, and what was planted, untouched.
        assert_eq!(
            tree_listing(out),
            [".bashrc", "a.bin", "docs", "docs/b.bin", "empty", "evil"],
            "{label}"
        );
        assert_eq!(std::fs::read(out.join(".bashrc")).unwrap(), b"mine");
        assert!(
            std::fs::symlink_metadata(out.join("evil"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }
    assert_eq!(tree_listing(&target), ["x"]);
    assert_eq!(std::fs::read(target.join("x")).unwrap(), b"precious");
    // The sender finishes by itself, despite the forged STATUS and NACKs: while
    // the hostile host is still at it.
    let status = lab.wait("sender", Duration::from_secs(60));
    assert!(status.success(), "sender: {}", lab.log("sender"));
    assert!(
        lab.running("hostile"),
        "the sender finished only once the attack was over: {}",
        lab.log("sender")
    );
    assert!(
        lab.log("sender").contains(&format!("transfer id {id}")),
        "{}",
        lab.log("sender")
    );
    // The unpinned receiver warned; if it took the forged manifest, it was refused
    // both files, and says so; if it exits 0, it wrote every file of its manifest.
    let status = lab.wait("unpinned", Duration::from_secs(60));
    let log = lab.log("unpinned");
    assert!(log.contains("warning: no --expect"), "{log}");
    if status.success() {
        assert_identical(&tree, &outs[2]);
    } else {
        assert!(log.contains("refused"), "{log}");
    }
    assert_eq!(std::fs::read(outs[2].join(".bashrc")).unwrap(), b"mine");
    assert!(!target.join("pwned").exists());
    if lab.running("hostile") {
        lab.kill("hostile");
    }

    // Each attack under its named reason.
    let reason = |label: &str, key: &str| {
        lab.stats(label)["rejected_by_reason"][key]
            .as_u64()
            .unwrap_or(0)
    };
    let stat = |label: &str, key: &str| lab.stats(label)[key].as_u64().unwrap_or(0);
    for key in [
        "wrong_transfer",
        "unexpected_object",
        "manifest_mismatch",
        "foreign_session",
        "object_too_large",
        "implausible",
    ] {
        assert!(
            reason("pinned", key) > 0,
            "pinned: no {key} in {}",
            lab.stats("pinned")
        );
    }
    assert!(
        stat("pinned", "candidates_evicted") > 0,
        "{}",
        lab.stats("pinned")
    );
    // The source-specific join keeps the forger's data packets out in the
    // kernel; what it sends to the feedback group is sorted out by type.
    assert!(
        stat("source", "wrong_socket") > 0,
        "{}",
        lab.stats("source")
    );
    // Of the forger's packets only NACKs reach its core (peers' NACKs must):
    // under the real session they are heard, under another refused.
    let refused = lab.stats("source")["rejected_by_reason"].clone();
    assert!(
        refused
            .as_object()
            .unwrap()
            .keys()
            .all(|k| k == "foreign_session"),
        "the --source receiver refused {refused}"
    );
    let sender = lab.stats("sender");
    // The feigner (a block every 9 s under one id) runs out of hold credit
    // and is stalled (`receivers_stalled`, below); that it slows the sender
    // only to `min_progress` is checked on a virtual clock, in
    // transport/tests/sender.rs
    // (a_receiver_that_feigns_progress_slows_the_sender_only_to_the_minimum_progress).
    // The sender says whom it did not wait for.
    assert!(
        sender["receivers_left_stalled"].as_u64().unwrap_or(0) > 0,
        "{sender}"
    );
    assert!(
        lab.log("sender").contains("finished without"),
        "{}",
        lab.log("sender")
    );
    for key in [
        "receivers_stalled",
        "echoes_refused",
        "nacks_dropped_per_source",
        "feedback_rejected",
    ] {
        assert!(
            sender[key].as_u64().unwrap_or(0) > 0,
            "sender: no {key} in {sender}"
        );
    }
    eprintln!(
        "hostile: sender {:.2} s ({} stalled, {} echoes refused, {} NACKs dropped per source); \
pinned {:.2} s, rejected {}; source {:.2} s, wrong socket {}; unpinned exit {:?}; hostile sent {}",
        sender["duration_s"].as_f64().unwrap_or(0.0),
        sender["receivers_stalled"],
        sender["echoes_refused"],
        sender["nacks_dropped_per_source"],
        lab.stats("pinned")["duration_s"].as_f64().unwrap_or(0.0),
        lab.stats("pinned")["rejected_by_reason"],
        lab.stats("source")["duration_s"].as_f64().unwrap_or(0.0),
        stat("source", "wrong_socket"),
        status.code(),
        lab.log("hostile").trim(),
    );
    // Memory stays within the documented bound (protocol.md §12) and far below
    // what the claimed blocks would take.
    let bound = groupcast::ReceiverConfig::default().worst_case_buffer() + (128 << 20);
    for label in ["pinned", "source", "unpinned"] {
        let rss = stat(label, "peak_rss_bytes");
        assert!(rss > 0 && rss <= bound, "{label}: peak RSS {rss} > {bound}");
    }
}

/// Starts `groupcast send --stream` in `ns` (label `sender`, stats in
/// `sender.json`), its standard input `chunks` pieces of `input` of
/// `chunk` bytes, `pause` seconds apart after a first pause of 2 s, through a
/// FIFO (label `producer`), so that receivers started after it are there
/// before the first byte, and so that the stream has quiet moments between
/// its objects. Returns the session the sender prints.
fn paced_stream_sender(
    lab: &mut Lab,
    ns: &str,
    channel: &str,
    input: &Path,
    (chunks, chunk, pause): (usize, usize, f64),
    extra: &[&str],
) -> String {
    let fifo = lab.dir.join("stdin.fifo");
    run(&["mkfifo", fifo.to_str().unwrap()]);
    let script = format!(
        "{{ sleep 2; i=0; while [ $i -lt {chunks} ]; do dd if={} bs={chunk} skip=$i count=1 \
         status=none; i=$((i+1)); sleep {pause}; done; }} > {}",
        input.display(),
        fifo.display()
    );
    lab.spawn("producer", ns, &["sh", "-c", &script]);
    let stats = lab.dir.join("sender.json");
    let mut args = vec![
        BIN,
        "send",
        "--stream",
        "--channel",
        channel,
        "--interface",
        "e0",
        "--stats-json",
        stats.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    // Opening the FIFO waits for the producer to open it.
    lab.spawn_io("sender", ns, &args, Some(&fifo), None);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = lab.log("sender");
        if let Some(at) = log.find("as session ") {
            let hex = &log[at + 11..];
            if hex.len() >= 16 {
                return hex[..16].to_owned();
            }
        }
        assert!(
            Instant::now() < deadline,
            "the sender printed no session: {log}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `recv --stream` in `ns` under `label`, its output in `label.out`.
fn stream_reader(lab: &mut Lab, label: &str, ns: &str, channel: &str, extra: &[&str]) {
    let stats = lab.dir.join(format!("{label}.json"));
    let out = lab.dir.join(format!("{label}.out"));
    let mut args = vec![
        BIN,
        "recv",
        "--stream",
        "--channel",
        channel,
        "--interface",
        "e0",
        "--stats-json",
        stats.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    lab.spawn_io(label, ns, &args, None, Some(&out));
}

/// An encrypted, signed stream (protocol.md §15, §16) under a member that
/// holds the channel key but not the signing key: before the publisher
/// starts, the member publishes a stream of its own on the channel
/// (`send --stream --key-file`, sealed, unsigned), and a tap sends back
/// modified and replayed copies of the sealed DATA it captures, the
/// publisher's stream frames among them. A reader with both keys, not
/// pinned to a session and behind 5% loss, writes exactly the publisher's
/// stream and exits 0, with no unvouched symbol decoded; a reader without
/// the channel key exits non-zero saying the channel is encrypted, having
/// written nothing; the capture holds none of the stream's marker.
#[test]
fn an_encrypted_signed_stream_is_read_only_by_key_holders() {
    let _serial = netns::serial();
    if !prerequisites_with("sealed stream", &["python3"]) {
        return;
    }
    let (mut lab, hosts) = bridge_lab("ss", &[5, 0, 0]);
    let (snd, keyed_ns, keyless_ns, member) = (
        hosts[0].clone(),
        hosts[1].clone(),
        hosts[2].clone(),
        hosts[3].clone(),
    );
    let run_bin = |args: &[&str]| {
        groupcast_ok(args);
    };
    let signer = lab.dir.join("publisher");
    let key = lab.dir.join("chan.key");
    run_bin(&["keygen", "--out", signer.to_str().unwrap()]);
    run_bin(&["keygen", "--channel-key", key.to_str().unwrap()]);
    let key = key.to_str().unwrap().to_owned();
    let (secret, public) = (
        format!("{}.key", signer.display()),
        format!("{}.pub", signer.display()),
    );
    const MARKER: &str = "GROUPCAST-STREAM-MARKER";
    let input = lab.dir.join("stream.bin");
    let (chunks, chunk) = (12, 256 << 10);
    let mut bytes = groupcast_fec::pseudo_random_bytes(chunks * chunk, 43);
    for at in (0..bytes.len() - MARKER.len()).step_by(4096) {
        bytes[at..at + MARKER.len()].copy_from_slice(MARKER.as_bytes());
    }
    std::fs::write(&input, &bytes).unwrap();
    let decoy = lab.dir.join("decoy.bin");
    random_file(&decoy, 2 << 20, 44);
    let channel = "gc-test-sealed-stream";
    stream_reader(
        &mut lab,
        "keyed",
        &keyed_ns,
        channel,
        &[
            "--sender-key",
            &public,
            "--key-file",
            &key,
            "--timeout",
            "40",
        ],
    );
    stream_reader(
        &mut lab,
        "keyless",
        &keyless_ns,
        channel,
        &["--timeout", "15"],
    );
    lab.joined();
    // The member's own stream, sealed, unsigned, first on the channel.
    lab.spawn_io(
        "member",
        &member,
        &[
            BIN,
            "send",
            "--stream",
            "--channel",
            channel,
            "--interface",
            "e0",
            "--rate",
            "20M",
            "--key-file",
            &key,
            "--timeout",
            "20",
        ],
        Some(&decoy),
        None,
    );
    lab.sealed_tap(&member, channel, "12", MARKER);
    std::thread::sleep(Duration::from_secs(1));
    paced_stream_sender(
        &mut lab,
        &snd,
        channel,
        &input,
        (chunks, chunk, 0.2),
        &[
            "--rate",
            "50M",
            "--timeout",
            "40",
            "--sign",
            &secret,
            "--key-file",
            &key,
        ],
    );
    let status = lab.wait("keyed", Duration::from_secs(60));
    assert!(status.success(), "keyed: {}", lab.log("keyed"));
    assert!(
        std::fs::read(lab.dir.join("keyed.out")).unwrap() == bytes,
        "the keyed reader wrote other bytes than the publisher's"
    );
    let stats = lab.stats("keyed");
    eprintln!(
        "sealed stream: keyed auth {} seal {}",
        stats["auth"], stats["seal"]
    );
    let count = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
    assert_eq!(count(&stats["auth"]["symbols_unvouched"]), 0, "{stats}");
    assert!(count(&stats["seal"]["opened"]) > 0, "{stats}");
    let forged = count(&stats["auth"]["unvouched"]) + count(&stats["auth"]["held"]);
    assert!(forged > 0, "no forgery was seen: {stats}");
    assert!(count(&stats["auth"]["replayed"]) > 0, "{stats}");
    lab.tap_summary();
    let status = lab.wait("keyless", Duration::from_secs(60));
    let log = lab.log("keyless");
    assert!(!status.success(), "keyless: {log}");
    assert!(
        log.contains("the channel is encrypted"),
        "no cause named: {log}"
    );
    assert_eq!(
        std::fs::metadata(lab.dir.join("keyless.out")).map_or(0, |m| m.len()),
        0,
        "the keyless reader wrote bytes"
    );
}

/// For `recv --stream` (pubsub.rs checks `Subscriber` alike): beside a real `send
/// --stream` of 6 MiB (24 pieces 0.3 s apart), a forger on another host
/// (forge_feed.py) sends objects of made-up sessions that claim 4 GiB (every
/// source symbol of their last block), forged streams of made-up sessions
/// (one starting at byte 1,000,000, and ENDs alone), PROBEs of 2,000
/// made-up sessions, and completes the real session's next object ids
/// first with a STREAM frame at the right offset and an END (injection).
/// A reader pinned with `--from` and an unpinned one each either write
/// exactly the real bytes and exit 0, or exit non-zero (a conflict is a
/// denial of service): never exit 0 with other bytes. Each peak RSS stays
/// under the receiver's worst-case buffer (257 MiB) + the subscriber's
/// pending bound (64 MiB) + 128 MiB for the program, 449 MiB: a reader that
/// allocated what a forged object claims would need 4 GiB for one. The
/// attacks are counted: the claims of 4 GiB as `over_budget` (and their
/// objects failed), the PROBEs alone as `status_withheld` (unpinned), every
/// other session's packets as `foreign_session` (pinned). The injected END
/// is contradicted by the publisher's own PROBEs while it settles
/// (protocol.md §14.3): the pinned reader fails with a conflict.
#[test]
fn hostile_stream_forgers_neither_crash_fool_nor_stall_a_stream_reader() {
    let _serial = netns::serial();
    if !prerequisites_with("hostile stream forgers", &["python3"]) {
        return;
    }
    let (mut lab, hosts) = bridge_lab("fs", &[0, 0, 0, 0]);
    let (snd, pinned_ns, free_ns, forger, keyed_ns) = (
        hosts[0].clone(),
        hosts[1].clone(),
        hosts[2].clone(),
        hosts[3].clone(),
        hosts[4].clone(),
    );
    // The publisher signs; one reader holds its public key.
    let key = lab.dir.join("publisher");
    let made = Command::new(BIN)
        .args(["keygen", "--out", key.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(made.status.success(), "keygen: {made:?}");
    let (secret, public) = (
        format!("{}.key", key.display()),
        format!("{}.pub", key.display()),
    );
    let channel = "gc-test-stream-forgers";
    let ch = groupcast::Channel::new(channel);
    let input = lab.dir.join("stream.bin");
    let (chunks, chunk) = (24, 256 << 10);
    random_file(&input, chunks * chunk, 34);
    stream_reader(&mut lab, "free", &free_ns, channel, &["--timeout", "40"]);
    lab.joined();
    let session = paced_stream_sender(
        &mut lab,
        &snd,
        channel,
        &input,
        (chunks, chunk, 0.3),
        &["--rate", "50M", "--timeout", "40", "--sign", &secret],
    );
    stream_reader(
        &mut lab,
        "pinned",
        &pinned_ns,
        channel,
        &["--from", &session, "--timeout", "40"],
    );
    stream_reader(
        &mut lab,
        "keyed",
        &keyed_ns,
        channel,
        &[
            "--from",
            &session,
            "--sender-key",
            &public,
            "--timeout",
            "40",
        ],
    );
    // The forger starts once both readers have the real stream's first
    // bytes: an unpinned reader follows the first stream it hears from byte
    // 0, and a forged one heard before the publisher's would be followed
    // (docs/security.md says so); the forged ENDs must not end a stream
    // being read.
    let deadline = Instant::now() + Duration::from_secs(15);
    for label in ["pinned", "free", "keyed"] {
        let out = lab.dir.join(format!("{label}.out"));
        while std::fs::metadata(&out).map_or(0, |m| m.len()) == 0 {
            assert!(
                Instant::now() < deadline,
                "{label} got no byte of the stream: {}",
                lab.log(label)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let script = format!("{}/tests/support/forge_feed.py", env!("CARGO_MANIFEST_DIR"));
    let port = ch.port().to_string();
    let group = ch.group().to_string();
    lab.spawn(
        "forger",
        &forger,
        &["python3", &script, "e0", &port, &group, "10"],
    );
    let want = std::fs::read(&input).unwrap();
    let bound = groupcast::ReceiverConfig::default().worst_case_buffer() + (64 << 20) + (128 << 20);
    // Every violation is gathered, so that one run says all it found.
    let mut failures = Vec::new();
    let mut outcome = Vec::new();
    for label in ["pinned", "free", "keyed"] {
        let status = lab.wait(label, Duration::from_secs(50));
        if label == "keyed"
            && !(status.success() && std::fs::read(lab.dir.join("keyed.out")).unwrap() == want)
        {
            failures.push(format!(
                "keyed: the reader with the publisher's key did not get exactly the real \
                 stream: exit {:?}: {}",
                status.code(),
                lab.log("keyed").lines().last().unwrap_or("")
            ));
        }
        let got = std::fs::read(lab.dir.join(format!("{label}.out"))).unwrap();
        let log = lab.log(label);
        let last = log.lines().last().unwrap_or("").to_owned();
        if status.success() && got != want {
            let real = got.iter().zip(&want).take_while(|(a, b)| a == b).count();
            failures.push(format!(
                "{label} exited 0 with {} bytes, of which the first {real} are the real \
                 stream's (of {}), then {:?}: {last}",
                got.len(),
                want.len(),
                String::from_utf8_lossy(&got[real..got.len().min(real + 80)])
            ));
        }
        let r = lab.stats(label);
        let rss = r["peak_rss_bytes"].as_u64().unwrap_or(0);
        if !(rss > 0 && rss <= bound) {
            failures.push(format!("{label}: peak RSS {rss} > {bound}"));
        }
        outcome.push(format!(
            "{label}: exit {:?}, {} of {} bytes, peak RSS {:.0} MiB, {last}",
            status.code(),
            got.len(),
            want.len(),
            rss as f64 / (1 << 20) as f64,
        ));
    }
    let status = lab.wait("forger", Duration::from_secs(30));
    assert!(status.success(), "forger: {}", lab.log("forger"));
    let forged: serde_json::Value = serde_json::from_str(lab.log("forger").trim())
        .unwrap_or_else(|e| panic!("forger: {e}: {}", lab.log("forger")));
    assert_eq!(forged["real_session"], session.as_str(), "{forged}");
    let sender = lab.wait("sender", Duration::from_secs(50));
    let (pinned, free, keyed) = (lab.stats("pinned"), lab.stats("free"), lab.stats("keyed"));
    eprintln!(
        "stream forgers:\n{}\nforger: {forged}\nsender: exit {:?}, {}\npinned: {pinned}\n\
         free: {free}\nkeyed: {keyed}",
        outcome.join("\n"),
        sender.code(),
        lab.log("sender").lines().last().unwrap_or(""),
    );
    let reason = |r: &serde_json::Value, k: &str| r["rejected_by_reason"][k].as_u64().unwrap_or(0);
    let stat = |r: &serde_json::Value, k: &str| r[k].as_u64().unwrap_or(0);
    // The claims of 4 GiB: decoded blocks past the bound give their
    // objects up (failed), counted. (Their packets after that are
    // `abandoned`: none, when the block's last symbol decoded it.)
    for (ok, what) in [
        (stat(&free, "over_budget") > 0, "free: no over_budget"),
        (stat(&free, "objects_failed") > 0, "free: no object failed"),
        // PROBEs alone draw no STATUS, and that is counted.
        (
            stat(&free, "status_withheld") > 0,
            "free: no status_withheld",
        ),
        // A pinned reader takes nothing of another session.
        (
            reason(&pinned, "foreign_session") > 0,
            "pinned: no foreign_session",
        ),
        (stat(&pinned, "over_budget") == 0, "pinned: over_budget"),
        // The forger's packets under the publisher's own session waited
        // for a signed list that never named them.
        (
            keyed["auth"]["unvouched"].as_u64().unwrap_or(0)
                + keyed["auth"]["held"].as_u64().unwrap_or(0)
                > 0,
            "keyed: no forgery held or let go",
        ),
        (
            stat(&keyed, "objects_failed") == 0,
            "keyed: an object failed",
        ),
    ] {
        if !ok {
            failures.push(what.to_owned());
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Slots are never silently full: 20 made-up publishers
/// (forge_slots.py) keep sending objects that complete, each with its PROBE,
/// so that they hold every one of an unpinned `recv --stream`'s 16 slots
/// and are refused beyond them; then a real `send --stream
/// --expect-receivers 1` of 1 MiB. The receiver says it dropped publishers
/// (`sessions_refused`, and a warning in its log). The sender exits 0, and
/// says `confirmed` with a receiver, only if the receiver wrote the whole
/// stream and exited 0: a receiver that dropped it sends it no feedback, so
/// the sender says "not confirmed" and exits non-zero at its --timeout.
#[test]
fn a_subscriber_with_full_slots_says_so_and_never_confirms_what_it_dropped() {
    let _serial = netns::serial();
    if !prerequisites_with("full slots", &["python3"]) {
        return;
    }
    let (mut lab, hosts) = bridge_lab("sl", &[0, 0]);
    let (snd, rx, forger) = (hosts[0].clone(), hosts[1].clone(), hosts[2].clone());
    let channel = "gc-test-full-slots";
    let ch = groupcast::Channel::new(channel);
    let input = lab.dir.join("stream.bin");
    random_file(&input, 1 << 20, 35);
    stream_reader(&mut lab, "rx", &rx, channel, &["--timeout", "20"]);
    lab.joined();
    let script = format!(
        "{}/tests/support/forge_slots.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let (port, group) = (ch.port().to_string(), ch.group().to_string());
    lab.spawn(
        "forger",
        &forger,
        &["python3", &script, "e0", &port, &group, "20", "25"],
    );
    std::thread::sleep(Duration::from_secs(2));
    let stats = lab.dir.join("sender.json");
    let args = [
        BIN,
        "send",
        "--stream",
        "--channel",
        channel,
        "--interface",
        "e0",
        "--rate",
        "50M",
        "--expect-receivers",
        "1",
        "--timeout",
        "12",
        "--stats-json",
        stats.to_str().unwrap(),
    ];
    lab.spawn_io("sender", &snd, &args, Some(&input), None);
    let sent = lab.wait("sender", Duration::from_secs(40));
    let got = lab.wait("rx", Duration::from_secs(40));
    let out = std::fs::read(lab.dir.join("rx.out")).unwrap();
    let whole = out == std::fs::read(&input).unwrap();
    let (s, r) = (lab.stats("sender"), lab.stats("rx"));
    let log = lab.log("rx");
    eprintln!(
        "full slots: sender exit {:?} ({}), confirmed {}, receivers_confirmed {}; receiver \
         exit {:?}, {} bytes (whole: {whole}), sessions_refused {}, sessions_expired {}; \
         forger sent {}",
        sent.code(),
        lab.log("sender").lines().last().unwrap_or(""),
        s["confirmed"],
        s["receivers_confirmed"],
        got.code(),
        out.len(),
        r["sessions_refused"],
        r["sessions_expired"],
        lab.log("forger").trim(),
    );
    // No confirmation of what it did not get.
    let confirmed = s["confirmed"] == true;
    assert_eq!(sent.success(), confirmed, "{s}");
    if confirmed || s["receivers_confirmed"].as_u64().unwrap_or(0) > 0 {
        assert!(
            whole && got.success(),
            "the sender says confirmed ({s}), the receiver got {} bytes and exited {:?}: {log}",
            out.len(),
            got.code()
        );
    }
    if !whole {
        let sender = lab.log("sender");
        assert!(!sent.success(), "{sender}");
        assert!(sender.contains("not confirmed"), "{sender}");
        assert_eq!(s["receivers_confirmed"], 0, "{s}");
    }
    // The receiver says that it dropped publishers: 20 made-up ones for 16
    // slots, and the real one if it did not get the stream.
    let mut failures = Vec::new();
    if r["sessions_refused"].as_u64().unwrap_or(0) == 0 {
        failures.push(format!("no sessions_refused: {r}"));
    }
    if !log.contains("a publisher was dropped") {
        failures.push(format!("no warning in the receiver's log: {log:?}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    if lab.running("forger") {
        lab.kill("forger");
    }
}

/// Packets and bytes of the first counter in the ip6 table `table` of `ns`.
fn nft_counter(ns: &str, table: &str) -> (u64, u64) {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "list", "table", "ip6", table])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let words: Vec<&str> = text.split_whitespace().collect();
    let after = |key: &str| {
        words
            .iter()
            .position(|w| *w == key)
            .and_then(|i| words.get(i + 1))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {text}"))
    };
    (after("packets"), after("bytes"))
}

/// A forger sends to the data group from a victim's
/// address and port (reflect.py, IPV6_TRANSPARENT), under made-up sessions,
/// to two `recv --stream` and a plain `recv --output` before its manifest;
/// an nftables counter at the victim counts the UDP datagrams that arrive
/// at that address and port; each phase has receivers of its own. Phase
/// 1, PROBEs alone: no STATUS at all reaches the victim. Phase 2, each
/// PROBE with an object (OBJECT_INFO and one DATA) that completes: a
/// receiver sends a STATUS that says nothing new only with the credit the
/// session's DATA and OBJECT_INFO earn, and one whose window moved per
/// object completed, so the victim gets at most 2 × DATA + OBJECT_INFO + 2
/// per session from each receiver (measured: about 1.8 per DATA from a
/// subscriber, 1 from a plain `recv`). Prints
/// `reflection: phase N: X forged bytes, Y STATUS bytes at the victim,
/// ratio Z` (UDP payload bytes) for docs/security.md.
#[test]
fn reflection_is_measured_at_a_spoofed_victim() {
    let _serial = netns::serial();
    if !prerequisites_with("reflection", &["python3"]) {
        return;
    }
    let (mut lab, hosts) = bridge_lab("rf", &[0, 0, 0, 0]);
    let (forger, victim) = (hosts[0].clone(), hosts[4].clone());
    let victim_addr = "2001:db8:0:9::99";
    for (i, ns) in hosts.iter().enumerate() {
        let addr = if *ns == victim {
            format!("{victim_addr}/64")
        } else {
            format!("2001:db8:0:9::{}/64", i + 1)
        };
        lab.net.exec(
            ns,
            &["ip", "-6", "addr", "add", &addr, "dev", "e0", "nodad"],
        );
    }
    let victim_port = "4300";
    lab.net.nft_rule(
        &victim,
        "reflect",
        "input",
        0,
        &format!("ip6 daddr {victim_addr} udp dport {victim_port} counter"),
    );
    let channel = "gc-test-reflection";
    let ch = groupcast::Channel::new(channel);
    let script = format!("{}/tests/support/reflect.py", env!("CARGO_MANIFEST_DIR"));
    let (port, group) = (ch.port().to_string(), ch.group().to_string());
    let mut before = nft_counter(&victim, "reflect");
    let mut figures = Vec::new();
    let receivers = ["stream0", "stream1", "files"];
    for phase in ["1", "2"] {
        // Receivers of their own for each phase, so that what one phase
        // left (feedback state for its sessions) does not change the next.
        let rx: Vec<String> = receivers.iter().map(|r| format!("{r}-{phase}")).collect();
        stream_reader(
            &mut lab,
            &rx[0],
            &hosts[1].clone(),
            channel,
            &["--timeout", "40"],
        );
        stream_reader(
            &mut lab,
            &rx[1],
            &hosts[2].clone(),
            channel,
            &["--timeout", "40"],
        );
        lab.recv_with(&rx[2], &hosts[3].clone(), channel, &["--timeout", "40"]);
        lab.joined();
        let label = format!("phase{phase}");
        lab.spawn(
            &label,
            &forger,
            &[
                "python3",
                &script,
                "e0",
                &port,
                &group,
                victim_addr,
                victim_port,
                phase,
                "3",
            ],
        );
        let status = lab.wait(&label, Duration::from_secs(20));
        assert!(status.success(), "{label}: {}", lab.log(&label));
        // Replies still on their way (a STATUS waits at most 50 ms).
        std::thread::sleep(Duration::from_secs(1));
        let after = nft_counter(&victim, "reflect");
        let (packets, bytes) = (after.0 - before.0, after.1 - before.1);
        before = after;
        let forged: serde_json::Value = serde_json::from_str(lab.log(&label).trim())
            .unwrap_or_else(|e| panic!("{label}: {e}: {}", lab.log(&label)));
        // UDP payload: the counter sees the IPv6 (40) and UDP (8) headers too.
        let status_bytes = bytes - 48 * packets;
        let forged_bytes = forged["bytes"].as_u64().unwrap();
        let ratio = status_bytes as f64 / forged_bytes as f64;
        eprintln!(
            "reflection: phase {phase}: {forged_bytes} forged bytes, {status_bytes} STATUS bytes \
             at the victim, ratio {ratio:.4} ({} forged datagrams: {} PROBE, {} OBJECT_INFO, {} \
             DATA; {packets} datagrams at the victim, {} receivers)",
            forged["datagrams"],
            forged["probe"],
            forged["info"],
            forged["data"],
            receivers.len()
        );
        for label in &rx {
            assert!(lab.running(label), "{label}: {}", lab.log(label));
            lab.terminate(label);
            let r = lab.stats(label);
            eprintln!(
                "{label}: status_sent {}, status_withheld {}, packets_received {}, rejected {}",
                r["status_sent"],
                r["status_withheld"],
                r["packets_received"],
                r["rejected_by_reason"]
            );
        }
        figures.push((forged, packets, status_bytes));
    }
    // PROBEs alone draw nothing.
    let (forged, packets, _) = &figures[0];
    assert!(forged["probe"].as_u64().unwrap() > 1000, "{forged}");
    assert_eq!(*packets, 0, "PROBEs alone drew STATUS to the victim");
    // With DATA, what protocol.md §13.5 allows each receiver: a STATUS that
    // says nothing new per credit (one per DATA or OBJECT_INFO, 2 to start
    // with per session), and one whose window moved per object completed
    // (at most one per DATA here). Counts, not times.
    let (forged, packets, status_bytes) = &figures[1];
    let (data, info) = (
        forged["data"].as_u64().unwrap(),
        forged["info"].as_u64().unwrap(),
    );
    let sessions = forged["sessions"].as_u64().unwrap();
    let allowed = receivers.len() as u64 * (2 * data + info + 2 * sessions);
    assert!(
        *packets <= allowed,
        "{packets} datagrams at the victim for {data} DATA and {info} OBJECT_INFO, over {allowed}"
    );
    // The forger did draw replies (the measure measures), all STATUS.
    assert!(
        *packets > 0 && *status_bytes == 60 * packets,
        "{packets} {status_bytes}"
    );
}

/// A benchmark (it prints figures and checks only
/// that every copy is identical): three receivers behind one bridge, default
/// flags but `--rate`, for the scenarios S1 (5 MB at 50 Mbit/s, 10/10/10%),
/// S2 (5 MB at 50 Mbit/s, 0/10/25%) and S3 (50 MB at 500 Mbit/s,
/// 10/10/10%). Completion runs from the sender's start until the last
/// receiver has exited with the verified file, against the bound
/// size × 8 / rate / (1 − worst loss). Run it with
/// `GROUPCAST_REQUIRE_NETNS=1 cargo test --release -p groupcast-cli --test netns -- --ignored --nocapture completion_against_the_bound`
/// (`GROUPCAST_BOUND_RUNS`, default 5, labs per scenario, each built afresh
/// for its run; `GROUPCAST_BOUND_ONLY=S1,S3` runs only the scenarios named;
/// the other knobs are [`bound_bench`]'s).
#[test]
#[ignore = "a benchmark: run it by name"]
fn completion_against_the_bound() {
    bound_bench(
        false,
        &[
            ("S1", 5_000_000, "50M", 50e6, [10, 10, 10]),
            ("S2", 5_000_000, "50M", 50e6, [0, 10, 25]),
            ("S3", 50_000_000, "500M", 500e6, [10, 10, 10]),
        ],
    );
}

/// A benchmark through the router with default
/// flags (the sender `--rate R` only): R1, 20 MiB at
/// 200 Mbit/s to receivers dropping 0/10/25% (target 1.20 × the bound), and
/// R2, 5 MB at 50 Mbit/s at 10/10/10% (target 1.15 ×). Run it as
/// `completion_against_the_bound`, by the name
/// `routed_completion_against_the_bound`.
#[test]
#[ignore = "a benchmark: run it by name"]
fn routed_completion_against_the_bound() {
    bound_bench(
        true,
        &[
            ("R1", 20 << 20, "200M", 200e6, [0, 10, 25]),
            ("R2", 5_000_000, "50M", 50e6, [10, 10, 10]),
        ],
    );
}

/// Runs each scenario (name, size, --rate, rate in bit/s, drops) on the
/// bridge or through the router, `GROUPCAST_BOUND_RUNS` times (default 5),
/// each run in a lab built for it: the run's first transfer is the first
/// groupcast traffic its namespaces carry (no neighbour resolved, no route
/// used). `GROUPCAST_BOUND_TRANSFERS` (default 2) transfers go one after
/// the other in each lab, so that every later one sees the same lab warm.
/// Prints every transfer and, per scenario, the first transfers' median
/// and worst and the later ones' median, against the bound.
/// `GROUPCAST_BOUND_BLACKOUT_MS=T` drops every unicast datagram (STATUS)
/// arriving at the sender's namespace for the first T ms of each transfer:
/// first reports that come late, as behind a neighbour discovery that
/// needed a retransmission (1 s).
fn bound_bench(routed: bool, scenarios: &[(&str, usize, &str, f64, [u32; 3])]) {
    let _serial = netns::serial();
    let ready = if routed {
        router_prerequisites("completion bench")
    } else {
        prerequisites("completion bench")
    };
    if !ready {
        return;
    }
    let env_count = |name: &str, default: usize| -> usize {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
            .max(1)
    };
    let runs = env_count("GROUPCAST_BOUND_RUNS", 5);
    let transfers = env_count("GROUPCAST_BOUND_TRANSFERS", 2);
    let blackout = std::env::var("GROUPCAST_BOUND_BLACKOUT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis);
    let mut table = Vec::new();
    let only = std::env::var("GROUPCAST_BOUND_ONLY").ok();
    for &(name, size, rate, bits, drops) in scenarios {
        if only
            .as_deref()
            .is_some_and(|o| !o.split(',').any(|n| n == name))
        {
            continue;
        }
        let worst = *drops.iter().max().unwrap() as f64 / 100.0;
        let bound = size as f64 * 8.0 / bits / (1.0 - worst);
        let (mut first, mut later, mut bytes) = (Vec::new(), Vec::new(), Vec::new());
        for run_no in 0..runs {
            let channel = format!("gc-bench-{name}");
            let tag = format!("b{}{run_no}", name.to_lowercase());
            let (mut lab, hosts) = if routed {
                let (lab, snd, rx) = router_lab(&tag, &channel, drops, true);
                (lab, [vec![snd], rx].concat())
            } else {
                bridge_lab(&tag, &drops)
            };
            let file = lab.dir.join("payload.bin");
            random_file(&file, size, run_no as u64 + 1);
            for transfer in 0..transfers {
                let labels: Vec<String> = (0..3).map(|i| format!("rx{i}-{transfer}")).collect();
                let outs: Vec<PathBuf> = (0..3)
                    .map(|i| lab.recv(&labels[i], &hosts[i + 1].clone(), &channel))
                    .collect();
                lab.joined();
                if let Some(blackout) = blackout {
                    // Late first reports, whatever delays them on a fresh
                    // path (neighbour discovery, a route coming up): the
                    // sender hears no unicast (STATUS) for this long.
                    lab.net.nft_rule(
                        &hosts[0],
                        "gcblackout",
                        "input",
                        0,
                        "meta pkttype host meta l4proto udp counter drop",
                    );
                    let ns = hosts[0].clone();
                    std::thread::spawn(move || {
                        std::thread::sleep(blackout);
                        run(&[
                            "ip",
                            "netns",
                            "exec",
                            &ns,
                            "nft",
                            "delete",
                            "table",
                            "ip6",
                            "gcblackout",
                        ]);
                    });
                }
                let start = Instant::now();
                // Default flags but the rate, through the router as on the bridge.
                lab.send_args(&hosts[0].clone(), &file, &channel, &["--rate", rate]);
                let waited: Vec<&str> = labels.iter().map(String::as_str).collect();
                let last = lab.wait_all(&waited, Duration::from_secs(120), start);
                let status = lab.wait("sender", Duration::from_secs(30));
                assert!(status.success(), "sender: {}", lab.log("sender"));
                for out in &outs {
                    assert_identical(&file, out);
                    std::fs::remove_dir_all(out).unwrap();
                }
                let st = lab.stats("sender");
                let sent = st["bytes_sent"].as_u64().unwrap_or(0);
                let rx: Vec<String> = labels
                    .iter()
                    .map(|l| {
                        let r = lab.stats(l);
                        format!(
                            "{l}: {} s, {} NACKs, {} STATUS",
                            r["duration_s"], r["nacks_sent"], r["status_sent"]
                        )
                    })
                    .collect();
                eprintln!(
                    "  sender: {} s, GRTT {} us, {} STATUS and {} NACKs heard, {} repair \
                     symbols; {}",
                    st["duration_s"],
                    st["grtt_us"],
                    st["status_received"],
                    st["nacks_received"],
                    st["repair_symbols_sent"],
                    rx.join("; ")
                );
                let ratio = last.as_secs_f64() / bound;
                let which = if transfer == 0 { "first" } else { "later" };
                eprintln!(
                    "{name} run {run_no}, transfer {transfer} ({which} in its lab): {:.3} s, \
                     {ratio:.3} × the bound, bytes sent {:.3} × size / (1 − p)",
                    last.as_secs_f64(),
                    sent as f64 / (size as f64 / (1.0 - worst)),
                );
                if transfer == 0 {
                    first.push(ratio);
                    bytes.push(sent as f64 / (size as f64 / (1.0 - worst)));
                } else {
                    later.push(ratio);
                }
            }
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
        };
        let worst_first = first.iter().copied().fold(f64::NAN, f64::max);
        table.push((
            name,
            bound,
            median(&mut first),
            worst_first,
            median(&mut later),
            median(&mut bytes),
        ));
    }
    eprintln!(
        "\n| scenario | bound | first transfer in a fresh lab: median / worst | later transfers: \
         median | first transfers' median bytes sent / (size / (1 − p)) |"
    );
    eprintln!("|---|---|---|---|---|");
    for (name, bound, f, w, l, b) in table {
        eprintln!("| {name} | {bound:.3} s | {f:.3} × / {w:.3} × | {l:.3} × | {b:.3} |");
    }
}
