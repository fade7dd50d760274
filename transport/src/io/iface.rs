//! Whether a named interface can carry IPv6 multicast, checked when a socket
//! opens, so that an unusable one is an error that names it and says what to
//! do, not a bare `os error 101` on the first send or a receiver that waits
//! for ever.
//!
//! [`check`] gathers what the kernel says about the interface (its flags,
//! whether IPv6 is disabled on it, its IPv6 addresses and their
//! duplicate-address-detection state) and hands it to [`diagnose`], a pure
//! function; then it asks the kernel for a route to the group out of the
//! interface, as a send would. All of it follows the calling thread's network
//! namespace (a thread that entered one with `setns` sees that one's
//! interfaces).
//!
//! Loopback is refused: Linux's `lo` has no MULTICAST flag and no route for
//! ff00::/8, so nothing sent to a group on it arrives. Two network namespaces
//! joined by a veth pair are the way to try groupcast on one machine
//! (examples/lab.sh makes them).

use std::fmt;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

/// An interface that cannot carry groupcast, and why. Its message is one
/// sentence that names the interface and says what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceError {
    /// The interface's name, as given.
    pub interface: String,
    /// What is wrong with it.
    pub reason: Unusable,
}

/// Why an interface cannot carry IPv6 multicast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unusable {
    /// No interface has this name (in this network namespace).
    NotFound,
    /// The interface is administratively down (no `UP` flag).
    Down,
    /// A loopback interface: without the MULTICAST flag and a multicast
    /// route (Linux gives `lo` neither), no group traffic crosses it.
    Loopback,
    /// The interface has no `MULTICAST` flag.
    NoMulticast,
    /// IPv6 is disabled on the interface (`net.ipv6.conf.IFACE.disable_ipv6`).
    Ipv6Disabled,
    /// The interface has no carrier (`RUNNING` flag) and hence no IPv6
    /// address: a cable is out, or the other end of a veth pair is down.
    NoCarrier,
    /// The interface has no IPv6 address, not even a link-local one, to send from.
    NoAddress,
    /// The interface's IPv6 addresses are all still tentative: duplicate
    /// address detection has not finished (it takes a second or two after
    /// the interface comes up).
    Tentative,
    /// The interface's IPv6 addresses all failed duplicate address
    /// detection: another host on the link uses them.
    DuplicateAddress,
    /// The kernel has no route to the group out of this interface: a send
    /// there fails with this OS error (`ENETUNREACH`, say).
    NoRoute {
        /// The group the route was asked for.
        group: Ipv6Addr,
        /// The OS error a send would get.
        errno: i32,
    },
}

/// A try on one machine, for the loopback and no-route messages.
const ONE_MACHINE: &str = "to try groupcast on one machine, run it between two network \
namespaces joined by a veth pair (`sudo ./examples/lab.sh up` in groupcast's repository makes \
them), or pick an interface that `ip link` shows with MULTICAST";

impl fmt::Display for InterfaceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.interface;
        match self.reason {
            Unusable::NotFound => write!(
                f,
                "no network interface named '{i}' here: pick one that `ip link` lists, or run \
                 groupcast inside the network namespace that has it (`ip netns exec NS groupcast ...`)"
            ),
            Unusable::Down => write!(
                f,
                "interface {i} is down: bring it up with `ip link set dev {i} up`"
            ),
            Unusable::Loopback => write!(
                f,
                "interface {i} is loopback, which carries no multicast here (no MULTICAST flag \
                 or no multicast route): {ONE_MACHINE}"
            ),
            Unusable::NoMulticast => write!(
                f,
                "interface {i} has no MULTICAST flag: turn it on with `ip link set dev {i} \
                 multicast on`, or pick an interface that `ip link` shows with MULTICAST"
            ),
            Unusable::Ipv6Disabled => write!(
                f,
                "interface {i} has IPv6 disabled: enable it with `sysctl -w \
                 net.ipv6.conf.{i}.disable_ipv6=0`"
            ),
            Unusable::NoCarrier => write!(
                f,
                "interface {i} has no carrier, hence no IPv6 address: connect its link (for a \
                 veth, bring the other end up) and wait for `ip -6 addr show dev {i}` to list an \
                 address"
            ),
            Unusable::NoAddress => write!(
                f,
                "interface {i} has no IPv6 address, not even a link-local one: give it one (`ip \
                 -6 addr show dev {i}` lists them; `ip link set dev {i} addrgenmode eui64` makes \
                 a link-local one when the interface comes up)"
            ),
            Unusable::Tentative => write!(
                f,
                "interface {i}'s IPv6 addresses are still tentative (duplicate address detection \
                 has not finished): retry once `ip -6 addr show dev {i}` no longer says tentative"
            ),
            Unusable::DuplicateAddress => write!(
                f,
                "interface {i}'s IPv6 addresses failed duplicate address detection (another host \
                 on the link has them): give it another address, see `ip -6 addr show dev {i}`"
            ),
            Unusable::NoRoute { group, errno } => write!(
                f,
                "interface {i} has no route to multicast group {group} ({}): `ip -6 route show \
                 table local dev {i}` should list `multicast ff00::/8`, which the kernel adds \
                 when a MULTICAST interface comes up with IPv6; {ONE_MACHINE}",
                std::io::Error::from_raw_os_error(errno)
            ),
        }
    }
}

impl std::error::Error for InterfaceError {}

/// What the kernel says about an interface, for [`diagnose`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceFacts {
    /// Its `IFF_*` flags (`<net/if.h>`; `RUNNING` is carrier).
    pub flags: u32,
    /// Whether IPv6 is disabled on it.
    pub ipv6_disabled: bool,
    /// Its IPv6 addresses with their `IFA_F_*` flags (`<linux/if_addr.h>`),
    /// or `None` where they cannot be read (no /proc).
    pub addresses: Option<Vec<(Ipv6Addr, u32)>>,
}

const IFF_UP: u32 = libc::IFF_UP as u32;
const IFF_LOOPBACK: u32 = libc::IFF_LOOPBACK as u32;
const IFF_RUNNING: u32 = libc::IFF_RUNNING as u32;
const IFF_MULTICAST: u32 = libc::IFF_MULTICAST as u32;

/// `IFA_F_DADFAILED` from `<linux/if_addr.h>`.
pub const IFA_F_DADFAILED: u32 = 0x08;
/// `IFA_F_TENTATIVE` from `<linux/if_addr.h>`.
pub const IFA_F_TENTATIVE: u32 = 0x40;

/// Why an interface with these facts cannot carry IPv6 multicast, or `Ok` if
/// nothing says it cannot. The first that applies of: down, loopback
/// without MULTICAST, no MULTICAST, IPv6 disabled, then (if no address is
/// usable, that is neither tentative nor failed) tentative, duplicate,
/// no carrier, no address.
pub fn diagnose(facts: &InterfaceFacts) -> Result<(), Unusable> {
    let flags = facts.flags;
    if flags & IFF_UP == 0 {
        return Err(Unusable::Down);
    }
    if flags & IFF_MULTICAST == 0 {
        return Err(if flags & IFF_LOOPBACK != 0 {
            Unusable::Loopback
        } else {
            Unusable::NoMulticast
        });
    }
    if facts.ipv6_disabled {
        return Err(Unusable::Ipv6Disabled);
    }
    let Some(addresses) = &facts.addresses else {
        return Ok(());
    };
    let unusable = IFA_F_TENTATIVE | IFA_F_DADFAILED;
    if addresses.iter().any(|&(_, f)| f & unusable == 0) {
        return Ok(());
    }
    Err(
        if addresses.iter().any(|&(_, f)| f & IFA_F_TENTATIVE != 0) {
            Unusable::Tentative
        } else if !addresses.is_empty() {
            Unusable::DuplicateAddress
        } else if flags & IFF_RUNNING == 0 {
            Unusable::NoCarrier
        } else {
            Unusable::NoAddress
        },
    )
}

/// What a failed route lookup (a UDP `connect` or `send` to a group) on an
/// interface with these flags means, or `None` if the error is not about
/// the route: `ENETUNREACH` and `EHOSTUNREACH` are a missing multicast route
/// (on loopback, [`Unusable::Loopback`]), `EADDRNOTAVAIL` a missing source
/// address.
pub fn route_failure(flags: u32, group: Ipv6Addr, errno: i32) -> Option<Unusable> {
    match errno {
        libc::ENETUNREACH | libc::EHOSTUNREACH if flags & IFF_LOOPBACK != 0 => {
            Some(Unusable::Loopback)
        }
        libc::ENETUNREACH | libc::EHOSTUNREACH => Some(Unusable::NoRoute { group, errno }),
        libc::EADDRNOTAVAIL => Some(Unusable::NoAddress),
        _ => None,
    }
}

/// The IPv6 addresses of interface `name` with their `IFA_F_*` flags, from
/// the text of `/proc/net/if_inet6` (one address a line: 32 hex digits, the
/// interface index, prefix length, scope and flags in hex, then the name).
/// Lines it cannot read are skipped.
pub fn parse_if_inet6(text: &str, name: &str) -> Vec<(Ipv6Addr, u32)> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [addr, _index, _plen, _scope, flags, ifname] = fields[..] else {
                return None;
            };
            if ifname != name || addr.len() != 32 {
                return None;
            }
            let addr = u128::from_str_radix(addr, 16).ok()?;
            let flags = u32::from_str_radix(flags, 16).ok()?;
            Some((Ipv6Addr::from(addr), flags))
        })
        .collect()
}

/// The facts of interface `name` and its index, `None` if there is no such
/// interface in the calling thread's namespace.
fn gather(name: &str) -> Option<(u32, InterfaceFacts)> {
    if name.is_empty() || name.contains('/') || name.contains("..") {
        return None;
    }
    let (index, flags) = super::sys::interface_info(name)?;
    // /proc/thread-self follows a thread that entered another namespace;
    // /proc/self/net shows the namespace of the process's first thread.
    let addresses = std::fs::read_to_string("/proc/thread-self/net/if_inet6")
        .or_else(|_| std::fs::read_to_string("/proc/self/net/if_inet6"))
        .ok()
        .map(|text| parse_if_inet6(&text, name));
    // Sysctls under /proc/sys/net are those of the opening thread's namespace.
    let ipv6_disabled =
        std::fs::read_to_string(format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6"))
            .is_ok_and(|s| s.trim() == "1");
    Some((
        index,
        InterfaceFacts {
            flags,
            ipv6_disabled,
            addresses,
        },
    ))
}

/// How long [`check`] waits for duplicate address detection to finish on
/// an interface that has just come up (one probe a second by default, after
/// a random delay of up to a second).
const DAD_WAIT: Duration = Duration::from_secs(3);

/// Checks that interface `name` can carry IPv6 multicast and returns its
/// index: it exists, is up, has the MULTICAST flag (loopback is refused),
/// has IPv6 enabled and an IPv6 address that passed duplicate address
/// detection (waiting up to 3 s for a tentative one), and, given a `group`,
/// the kernel routes that group out of it (a UDP connect, which sends
/// nothing). Follows the calling thread's network namespace.
pub fn check(name: &str, group: Option<Ipv6Addr>) -> Result<u32, InterfaceError> {
    check_within(name, group, DAD_WAIT)
}

/// [`check`] without waiting for a tentative address: for a send that
/// failed on an interface that was usable at open (it went down, lost its
/// address or its route), on whatever thread the failure came.
pub fn check_now(name: &str, group: Option<Ipv6Addr>) -> Result<u32, InterfaceError> {
    check_within(name, group, Duration::ZERO)
}

fn check_within(
    name: &str,
    group: Option<Ipv6Addr>,
    wait: Duration,
) -> Result<u32, InterfaceError> {
    let fail = |reason| InterfaceError {
        interface: name.to_owned(),
        reason,
    };
    let deadline = Instant::now() + wait;
    let (index, facts) = loop {
        let (index, facts) = gather(name).ok_or_else(|| fail(Unusable::NotFound))?;
        match diagnose(&facts) {
            Ok(()) => break (index, facts),
            Err(Unusable::Tentative) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(reason) => return Err(fail(reason)),
        }
    };
    let route = group.map_or(Ok(()), |group| {
        probe_route(index, group).map_err(|errno| route_failure(facts.flags, group, errno))
    });
    match route {
        Err(Some(reason)) => Err(fail(reason)),
        _ => Ok(index),
    }
}

/// Asks the kernel for a route to `group` out of interface `index`, as a
/// send would: a UDP connect, which sends nothing. `Err` is its OS error;
/// a socket that cannot be made at all is left to the caller to meet.
fn probe_route(index: u32, group: Ipv6Addr) -> Result<(), i32> {
    let Ok(s) = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP)) else {
        return Ok(());
    };
    let errno = |e: std::io::Error| e.raw_os_error().unwrap_or(0);
    s.set_multicast_if_v6(index).map_err(errno)?;
    s.connect(&SocketAddrV6::new(group, 9, 0, 0).into())
        .map_err(errno)
}

#[cfg(test)]
mod tests {
    use super::*;

    const UP_MCAST: u32 = IFF_UP | IFF_RUNNING | IFF_MULTICAST;
    const LL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 1, 2, 3, 4);

    fn facts(flags: u32, addresses: &[(Ipv6Addr, u32)]) -> InterfaceFacts {
        InterfaceFacts {
            flags,
            ipv6_disabled: false,
            addresses: Some(addresses.to_vec()),
        }
    }

    #[test]
    fn a_multicast_interface_with_an_address_is_usable() {
        assert_eq!(diagnose(&facts(UP_MCAST, &[(LL, 0x80)])), Ok(()));
        // One usable address among tentative ones is enough.
        assert_eq!(
            diagnose(&facts(UP_MCAST, &[(LL, IFA_F_TENTATIVE), (LL, 0)])),
            Ok(())
        );
        // Without /proc the addresses are not held against it.
        let unknown = InterfaceFacts {
            addresses: None,
            ..facts(UP_MCAST, &[])
        };
        assert_eq!(diagnose(&unknown), Ok(()));
    }

    #[test]
    fn loopback_without_multicast_is_refused() {
        // `lo` as Linux sets it up: UP, LOOPBACK, RUNNING, ::1.
        let lo = facts(
            IFF_UP | IFF_LOOPBACK | IFF_RUNNING,
            &[(Ipv6Addr::LOCALHOST, 0x80)],
        );
        assert_eq!(diagnose(&lo), Err(Unusable::Loopback));
        let eth = facts(IFF_UP | IFF_RUNNING, &[(LL, 0)]);
        assert_eq!(diagnose(&eth), Err(Unusable::NoMulticast));
    }

    #[test]
    fn down_comes_first() {
        let down = facts(IFF_MULTICAST, &[]);
        assert_eq!(diagnose(&down), Err(Unusable::Down));
        let lo_down = facts(IFF_LOOPBACK, &[]);
        assert_eq!(diagnose(&lo_down), Err(Unusable::Down));
    }

    #[test]
    fn ipv6_disabled() {
        let f = InterfaceFacts {
            ipv6_disabled: true,
            ..facts(UP_MCAST, &[])
        };
        assert_eq!(diagnose(&f), Err(Unusable::Ipv6Disabled));
    }

    #[test]
    fn addresses_that_cannot_be_sent_from() {
        assert_eq!(
            diagnose(&facts(UP_MCAST, &[(LL, IFA_F_TENTATIVE | 0x80)])),
            Err(Unusable::Tentative)
        );
        assert_eq!(
            diagnose(&facts(UP_MCAST, &[(LL, IFA_F_DADFAILED | 0x80)])),
            Err(Unusable::DuplicateAddress)
        );
        assert_eq!(diagnose(&facts(UP_MCAST, &[])), Err(Unusable::NoAddress));
        assert_eq!(
            diagnose(&facts(IFF_UP | IFF_MULTICAST, &[])),
            Err(Unusable::NoCarrier)
        );
    }

    #[test]
    fn route_failures() {
        let g: Ipv6Addr = "ff1e::1".parse().unwrap();
        assert_eq!(
            route_failure(IFF_UP | IFF_LOOPBACK, g, libc::ENETUNREACH),
            Some(Unusable::Loopback)
        );
        assert_eq!(
            route_failure(UP_MCAST, g, libc::ENETUNREACH),
            Some(Unusable::NoRoute {
                group: g,
                errno: libc::ENETUNREACH
            })
        );
        assert_eq!(
            route_failure(UP_MCAST, g, libc::EADDRNOTAVAIL),
            Some(Unusable::NoAddress)
        );
        assert_eq!(route_failure(UP_MCAST, g, libc::ENOBUFS), None);
    }

    #[test]
    fn if_inet6_lines() {
        let text = "\
fe8000000000000000fc00fffe000001 04 40 20 80     eth0
fd000000000000000000000000000002 04 40 00 82     eth0
00000000000000000000000000000001 01 80 10 80       lo
fe800000000000006c4d5dfffe642e5e 02 40 20 c0     vp-a
garbage
";
        assert_eq!(
            parse_if_inet6(text, "eth0"),
            vec![
                ("fe80::fc:ff:fe00:1".parse().unwrap(), 0x80),
                ("fd00::2".parse().unwrap(), 0x82),
            ]
        );
        assert_eq!(
            parse_if_inet6(text, "vp-a"),
            vec![("fe80::6c4d:5dff:fe64:2e5e".parse().unwrap(), 0xc0)]
        );
        assert_eq!(
            parse_if_inet6(text, "lo"),
            vec![(Ipv6Addr::LOCALHOST, 0x80)]
        );
        assert!(parse_if_inet6(text, "eth").is_empty());
    }

    #[test]
    fn messages_name_the_interface_and_the_fix() {
        let e = |reason| {
            InterfaceError {
                interface: "lo".into(),
                reason,
            }
            .to_string()
        };
        let lo = e(Unusable::Loopback);
        assert!(lo.starts_with("interface lo is loopback"), "{lo}");
        assert!(lo.contains("sudo ./examples/lab.sh up"), "{lo}");
        assert!(
            e(Unusable::Down).contains("ip link set dev lo up"),
            "{}",
            e(Unusable::Down)
        );
        let route = e(Unusable::NoRoute {
            group: "ff1e::1".parse().unwrap(),
            errno: libc::ENETUNREACH,
        });
        assert!(route.contains("ff1e::1"), "{route}");
        assert!(route.contains("os error 101"), "{route}");
        // One sentence: no full stop inside, none at the end.
        for reason in [
            Unusable::NotFound,
            Unusable::Down,
            Unusable::Loopback,
            Unusable::NoMulticast,
            Unusable::Ipv6Disabled,
            Unusable::NoCarrier,
            Unusable::NoAddress,
            Unusable::Tentative,
            Unusable::DuplicateAddress,
        ] {
            let m = e(reason);
            assert!(m.contains("lo"), "{m}");
            assert!(!m.contains(". ") && !m.ends_with('.'), "{m}");
        }
    }
}
