//! Network namespaces for tests that need real multicast sockets (root
//! only): namespaces with loopback up, veth pairs with `gso_max_segs 1`, a
//! bridge, nftables drop rules, and [`enter`] to open sockets in one from
//! the calling thread. Everything a [`Netns`] made is deleted when it drops,
//! even when the test fails.

use std::process::Command;
use std::time::{Duration, Instant};

/// Runs a command, panicking with its output if it fails.
pub fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", args[0]));
    assert!(
        out.status.success(),
        "{} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Whether namespace tests can run here (root, `ip`, `nft`). If not, says so
/// loudly and returns false, or panics under `GROUPCAST_REQUIRE_NETNS=1`
/// (CI), where a network test must not skip.
pub fn available(test: &str) -> bool {
    let mut missing = Vec::new();
    if !is_root() {
        missing.push("root");
    }
    for cmd in ["ip", "nft"] {
        if !have(cmd) {
            missing.push(cmd);
        }
    }
    if missing.is_empty() {
        return true;
    }
    let msg = format!(
        "network namespace test {test} cannot run: missing {}",
        missing.join(", ")
    );
    if std::env::var("GROUPCAST_REQUIRE_NETNS").is_ok_and(|v| v == "1") {
        panic!("{msg}; GROUPCAST_REQUIRE_NETNS=1 forbids skipping");
    }
    eprintln!("\n!!!!!!!! SKIPPED: {msg} !!!!!!!!\n");
    false
}

/// Namespaces made for one test, deleted on drop.
pub struct Netns {
    tag: String,
    names: Vec<String>,
}

impl Netns {
    /// An empty set, its names prefixed with `name` and the process id.
    pub fn new(name: &str) -> Self {
        Self {
            tag: format!("gt{}{name}", std::process::id() % 100_000),
            names: Vec::new(),
        }
    }

    /// A namespace with loopback up and duplicate address detection off.
    pub fn ns(&mut self, name: &str) -> String {
        let ns = format!("{}-{name}", self.tag);
        run(&["ip", "netns", "add", &ns]);
        self.names.push(ns.clone());
        run(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        for key in ["all", "default"] {
            run(&[
                "ip",
                "netns",
                "exec",
                &ns,
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{key}.accept_dad=0"),
            ]);
        }
        ns
    }

    /// A veth pair between two namespaces, both ends up, segmenting GSO
    /// sends so that each datagram crosses (and meets drop rules) alone.
    pub fn link(&self, a: &str, a_if: &str, b: &str, b_if: &str) {
        run(&[
            "ip", "link", "add", a_if, "netns", a, "type", "veth", "peer", "name", b_if, "netns", b,
        ]);
        for (ns, ifname) in [(a, a_if), (b, b_if)] {
            run(&[
                "ip",
                "-n",
                ns,
                "link",
                "set",
                ifname,
                "gso_max_segs",
                "1",
                "up",
            ]);
        }
    }

    /// A bridge `br0` in `ns`, flooding multicast, with `ports` attached.
    pub fn bridge(&self, ns: &str, ports: &[&str]) {
        run(&[
            "ip",
            "-n",
            ns,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ]);
        run(&["ip", "-n", ns, "link", "set", "br0", "up"]);
        for port in ports {
            run(&["ip", "-n", ns, "link", "set", port, "master", "br0"]);
        }
    }

    /// Drops `percent`% of UDP packets to port 4242 arriving in `ns`.
    pub fn drop_percent(&self, ns: &str, percent: u32) {
        if percent == 0 {
            return;
        }
        let nft = |rule: &str| run(&["ip", "netns", "exec", ns, "nft", rule]);
        nft("add table ip6 gtloss");
        nft("add chain ip6 gtloss input { type filter hook input priority 0; }");
        nft(&format!(
            "add rule ip6 gtloss input udp dport 4242 numgen random mod 100 < {percent} drop"
        ));
    }

    /// Waits until `ifname` in `ns` has carrier and a multicast route.
    pub fn wait_link(&self, ns: &str, ifname: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let routes = Command::new("ip")
                .args(["-n", ns, "-6", "route", "show", "table", "local"])
                .output()
                .unwrap();
            let link = Command::new("ip")
                .args(["-n", ns, "link", "show", ifname])
                .output()
                .unwrap();
            if String::from_utf8_lossy(&link.stdout).contains("LOWER_UP")
                && String::from_utf8_lossy(&routes.stdout)
                    .contains(&format!("ff00::/8 dev {ifname}"))
            {
                return;
            }
            assert!(Instant::now() < deadline, "{ns}/{ifname} did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for ns in &self.names {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Moves the calling thread (only) into namespace `ns`: sockets it opens
/// from now on, and threads it starts, live there.
#[allow(unsafe_code)]
pub fn enter(ns: &str) {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(format!("/var/run/netns/{ns}"))
        .unwrap_or_else(|e| panic!("opening namespace {ns}: {e}"));
    // SAFETY: setns takes a descriptor we own and a flag; it changes only
    // the calling thread's network namespace.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(r, 0, "setns {ns}: {}", std::io::Error::last_os_error());
}
