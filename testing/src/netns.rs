//! Network namespaces for tests that need real multicast sockets (root
//! only): namespaces with loopback up, veth pairs with `gso_max_segs 1`, a
//! bridge, nftables drop rules, and [`enter`] to open sockets in one from
//! the calling thread. Everything a [`Netns`] made is deleted when it drops,
//! even when the test fails.

use std::process::Command;
use std::time::{Duration, Instant};

/// Runs the namespace tests of one test binary one at a time: take it first
/// in every such test (`let _serial = netns::serial();`). Each loads both of
/// a small machine's cores (a sender at full rate, a forger as fast as it
/// can), and losses from a starved neighbour are not what a test is about.
/// A test that failed while holding it does not block the others.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

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
    available_with(test, &[])
}

/// [`available`], also requiring the commands in `extra` (`smcrouted`, say).
pub fn available_with(test: &str, extra: &[&str]) -> bool {
    let mut missing = Vec::new();
    if !is_root() {
        missing.push("root");
    }
    for &cmd in ["ip", "nft"].iter().chain(extra) {
        if !have(cmd) {
            missing.push(cmd);
        }
    }
    if missing.is_empty() {
        return true;
    }
    cannot_run(&format!(
        "network namespace test {test} cannot run: missing {} (install iproute2, nftables, \
         smcroute, python3; run as root)",
        missing.join(", ")
    ))
}

/// Whether this kernel routes IPv6 multicast (`CONFIG_IPV6_MROUTE`, which
/// smcrouted needs to install routes: without it smcrouted starts, says "No
/// IPv6 multicast socket" and installs nothing).
pub fn kernel_routes_multicast() -> bool {
    std::path::Path::new("/proc/net/ip6_mr_vif").exists()
}

/// Skips loudly, or panics under `GROUPCAST_REQUIRE_NETNS=1` (CI), where a
/// network test must not skip.
fn cannot_run(msg: &str) -> bool {
    if std::env::var("GROUPCAST_REQUIRE_NETNS").is_ok_and(|v| v == "1") {
        panic!("{msg}; GROUPCAST_REQUIRE_NETNS=1 forbids skipping");
    }
    eprintln!("\n!!!!!!!! SKIPPED: {msg} !!!!!!!!\n");
    false
}

/// The nftables table of [`Netns::drop_percent`]'s rule.
pub const LOSS_TABLE: &str = "gtloss";

/// The nftables table of [`Netns::forward_multicast`]'s rules.
pub const ROUTER_TABLE: &str = "gtrouter";

/// Namespaces made for one test, deleted on drop (with whatever still runs
/// inside them).
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

    /// What every namespace's name starts with (then `-` and its own name).
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// Runs a command inside `ns`, panicking with its output if it fails.
    pub fn exec(&self, ns: &str, args: &[&str]) {
        let mut full = vec!["ip", "netns", "exec", ns];
        full.extend_from_slice(args);
        run(&full);
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
            self.attach(ns, port);
        }
    }

    /// Attaches `port` in `ns` to its bridge ([`Netns::bridge`]).
    pub fn attach(&self, ns: &str, port: &str) {
        run(&["ip", "-n", ns, "link", "set", port, "master", "br0"]);
    }

    /// Drops `percent`% of UDP packets to port 4242 arriving in `ns`
    /// (nftables `numgen`, counted: [`Netns::dropped`]).
    pub fn drop_percent(&self, ns: &str, percent: u32) {
        if percent == 0 {
            return;
        }
        self.nft_rule(
            ns,
            LOSS_TABLE,
            "input",
            0,
            &format!("udp dport 4242 numgen random mod 100 < {percent} counter drop"),
        );
    }

    /// Adds `rule` to the ip6 table `table` in `ns`, in a base chain named
    /// after `hook` (input, prerouting, ...) at `priority`; the table and
    /// the chain are made if they do not exist yet.
    pub fn nft_rule(&self, ns: &str, table: &str, hook: &str, priority: i32, rule: &str) {
        self.exec(ns, &["nft", &format!("add table ip6 {table}")]);
        self.exec(
            ns,
            &[
                "nft",
                &format!(
                    "add chain ip6 {table} {hook} \
                     {{ type filter hook {hook} priority {priority}; }}"
                ),
            ],
        );
        self.exec(ns, &["nft", &format!("add rule ip6 {table} {hook} {rule}")]);
    }

    /// Packets the loss rule in `ns` has dropped so far (0 without one).
    pub fn dropped(&self, ns: &str) -> u64 {
        let out = Command::new("ip")
            .args([
                "netns", "exec", ns, "nft", "list", "table", "ip6", LOSS_TABLE,
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let mut words = text.split_whitespace();
        while let Some(w) = words.next() {
            if w == "packets" {
                return words.next().and_then(|n| n.parse().ok()).unwrap_or(0);
            }
        }
        0
    }

    /// Makes `ns` a multicast router for one group without the kernel's
    /// multicast routing: an nftables rule at prerouting copies each packet
    /// that arrives on `from` for `group` (from `source` only, if given) out
    /// of `to`, with its hop limit decreased by one (netfilter's
    /// `nf_dup_ipv6`), and forwards none that arrive with a hop limit of 1,
    /// as a router must not. For kernels built without `CONFIG_IPV6_MROUTE`,
    /// where smcrouted cannot install routes (see [`kernel_routes_multicast`]).
    pub fn forward_multicast(
        &self,
        ns: &str,
        from: &str,
        to: &str,
        group: std::net::Ipv6Addr,
        source: Option<std::net::Ipv6Addr>,
    ) {
        let source = source
            .map(|s| format!("ip6 saddr {s} "))
            .unwrap_or_default();
        self.nft_rule(
            ns,
            ROUTER_TABLE,
            "prerouting",
            0,
            &format!(
                "iifname \"{from}\" {source}ip6 daddr {group} ip6 hoplimit > 1 counter \
                 dup to {group} device \"{to}\""
            ),
        );
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
            // Whatever still runs inside (smcrouted, say) first, then the namespace.
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-9", pid]).status();
                }
            }
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
