//! An interface that cannot carry IPv6 multicast is refused when a socket
//! opens, with the reason, instead of a bare OS error on the first send or a
//! receiver that waits for ever: in a network namespace made here (root;
//! skipped loudly elsewhere, never under GROUPCAST_REQUIRE_NETNS=1).

use std::process::Command;

use groupcast::Channel;
use groupcast::io::iface::{self, Unusable};
use groupcast::io::pubsub::{Publisher, Subscriber};
use groupcast::io::{IoError, McastSocket, NetConfig};
use groupcast_testing::netns::{Netns, available, enter, run, serial};

/// Why opening failed; panics if it opened or failed otherwise.
fn refused<T>(what: &str, r: Result<T, IoError>) -> Unusable {
    match r {
        Err(IoError::Interface(e)) => {
            let text = e.to_string();
            assert!(
                text.contains(&e.interface),
                "{what}: the message does not name the interface: {text}"
            );
            e.reason
        }
        Err(e) => panic!("{what}: refused, but not for the interface: {e}"),
        Ok(_) => panic!("{what}: opened"),
    }
}

/// The reason a sender and a receiver on `interface` are refused; both must
/// agree.
fn both_refused(interface: &str) -> Unusable {
    let cfg = NetConfig::new(Channel::new("iface-test"), interface);
    let tx = refused(&format!("sender on {interface}"), McastSocket::sender(&cfg));
    let rx = refused(
        &format!("receiver on {interface}"),
        McastSocket::receiver(&cfg),
    );
    assert_eq!(tx, rx, "{interface}");
    tx
}

fn both_open(interface: &str) {
    let cfg = NetConfig::new(Channel::new("iface-test"), interface);
    if let Err(e) = McastSocket::sender(&cfg) {
        panic!("sender on {interface}: {e}");
    }
    if let Err(e) = McastSocket::receiver(&cfg) {
        panic!("receiver on {interface}: {e}");
    }
}

fn ip(ns: &str, args: &[&str]) {
    let mut full = vec!["ip", "-n", ns];
    full.extend_from_slice(args);
    run(&full);
}

fn sysctl(ns: &str, setting: &str) {
    run(&["ip", "netns", "exec", ns, "sysctl", "-qw", setting]);
}

/// Every reason `iface::check` gives, met for real: loopback (as Linux sets
/// it up, and with the MULTICAST flag but no multicast route), a veth
/// without MULTICAST, down, with IPv6 disabled, without its multicast
/// route, without carrier, and a name that does not exist; the blocking
/// and async publisher and subscriber refuse loopback at open. A veth
/// still in duplicate address detection is waited for, and a ready one opens.
#[test]
fn unusable_interfaces_are_refused_at_open_with_the_reason() {
    let _serial = serial();
    if !available("unusable_interfaces_are_refused_at_open") {
        return;
    }
    let mut n = Netns::new("iface");
    let x = n.ns("x");
    let y = n.ns("y");
    n.link(&x, "e0", &y, "e1");
    n.wait_link(&x, "e0");
    let on_x = |f: Box<dyn FnOnce() + Send>| {
        let x = x.clone();
        std::thread::spawn(move || {
            enter(&x);
            f()
        })
        .join()
        .unwrap()
    };

    // Loopback, as the kernel makes it: no MULTICAST flag.
    on_x(Box::new(|| {
        assert_eq!(both_refused("lo"), Unusable::Loopback);
        let r = Subscriber::builder("iface-test", "lo").open();
        assert_eq!(refused("subscriber on lo", r), Unusable::Loopback);
        let r = Publisher::builder("iface-test", "lo").open();
        assert_eq!(refused("publisher on lo", r), Unusable::Loopback);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let r = Subscriber::builder("iface-test", "lo").open_async();
            assert_eq!(refused("async subscriber on lo", r), Unusable::Loopback);
            let r = Publisher::builder("iface-test", "lo").open_async();
            assert_eq!(refused("async publisher on lo", r), Unusable::Loopback);
        });
        assert_eq!(both_refused("nosuch0"), Unusable::NotFound);
        both_open("e0");
    }));

    // Loopback with the MULTICAST flag still has no route for ff00::/8.
    ip(&x, &["link", "set", "dev", "lo", "multicast", "on"]);
    on_x(Box::new(|| {
        assert_eq!(both_refused("lo"), Unusable::Loopback)
    }));

    ip(&x, &["link", "set", "dev", "e0", "multicast", "off"]);
    on_x(Box::new(|| {
        assert_eq!(both_refused("e0"), Unusable::NoMulticast)
    }));
    ip(&x, &["link", "set", "dev", "e0", "multicast", "on"]);

    ip(
        &x,
        &[
            "-6",
            "route",
            "del",
            "multicast",
            "ff00::/8",
            "dev",
            "e0",
            "table",
            "local",
        ],
    );
    on_x(Box::new(|| {
        assert!(matches!(
            both_refused("e0"),
            Unusable::NoRoute { errno, .. } if errno == libc::ENETUNREACH
        ));
    }));

    sysctl(&x, "net.ipv6.conf.e0.disable_ipv6=1");
    on_x(Box::new(|| {
        assert_eq!(both_refused("e0"), Unusable::Ipv6Disabled)
    }));

    ip(&x, &["link", "set", "dev", "e0", "down"]);
    on_x(Box::new(|| assert_eq!(both_refused("e0"), Unusable::Down)));

    // A veth whose other end never came up: no carrier, so no link-local address.
    ip(
        &x,
        &[
            "link", "add", "f0", "type", "veth", "peer", "name", "f1", "netns", &y,
        ],
    );
    ip(&x, &["link", "set", "dev", "f0", "up"]);
    on_x(Box::new(|| {
        assert_eq!(both_refused("f0"), Unusable::NoCarrier)
    }));

    // A veth that has just come up with duplicate address detection on:
    // its link-local address is tentative for a second or more, and
    // opening waits for it.
    ip(
        &x,
        &[
            "link", "add", "g0", "type", "veth", "peer", "name", "g1", "netns", &y,
        ],
    );
    ip(&y, &["link", "set", "dev", "g1", "up"]);
    sysctl(&x, "net.ipv6.conf.g0.accept_dad=1");
    ip(&x, &["link", "set", "dev", "g0", "up"]);
    let addrs = Command::new("ip")
        .args(["-n", &x, "-6", "addr", "show", "dev", "g0"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&addrs.stdout).contains("tentative"),
        "g0's address should still be tentative: {}",
        String::from_utf8_lossy(&addrs.stdout)
    );
    on_x(Box::new(|| {
        iface::check("g0", Some(Channel::new("iface-test").group()))
            .unwrap_or_else(|e| panic!("{e}"));
    }));
}

/// An interface that goes down under a publisher: its driver stops with the
/// interface's reason (down), not a bare OS error from the send.
#[test]
fn an_interface_that_goes_down_under_a_publisher_is_named() {
    let _serial = serial();
    if !available("an_interface_that_goes_down_under_a_publisher") {
        return;
    }
    let mut n = Netns::new("ifdown");
    let x = n.ns("x");
    let y = n.ns("y");
    n.link(&x, "e0", &y, "e1");
    n.wait_link(&x, "e0");
    let publisher = {
        let x = x.clone();
        std::thread::spawn(move || {
            enter(&x);
            Publisher::builder("iface-down", "e0")
                .expect_receivers(0)
                .open()
                .unwrap()
        })
        .join()
        .unwrap()
    };
    publisher.send(b"before").unwrap();
    ip(&x, &["link", "set", "dev", "e0", "down"]);
    // Bounded: 500 messages 10 ms apart at most.
    let mut failed = None;
    for i in 0..500u32 {
        if let Err(e) = publisher.send(&i.to_be_bytes()) {
            failed = Some(e);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let failed = failed.or_else(|| publisher.close().err());
    match failed {
        Some(IoError::Interface(e)) => {
            assert_eq!(e.reason, Unusable::Down, "{e}");
            assert!(e.to_string().contains("e0"), "{e}");
        }
        Some(e) => panic!("the publisher stopped, but not for the interface: {e:?}"),
        None => panic!("the publisher went on with its interface down"),
    }
}
