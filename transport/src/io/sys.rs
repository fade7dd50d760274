//! The few socket calls that neither std nor socket2 offer: `sendmmsg`,
//! `SO_RCVBUFFORCE`/`SO_SNDBUFFORCE`, and the IPv6 source-specific join
//! (`MCAST_JOIN_SOURCE_GROUP`). This is the crate's only unsafe code; each
//! block states why it is sound.
#![allow(unsafe_code)]

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::fd::AsRawFd;

/// `MCAST_JOIN_SOURCE_GROUP` from `<linux/in.h>` (also valid at the IPv6 level).
const MCAST_JOIN_SOURCE_GROUP: libc::c_int = 46;

/// `struct group_source_req` from `<linux/in.h>`; `repr(C)` gives the same
/// padding after `gsr_interface` as the C compiler.
#[repr(C)]
struct GroupSourceReq {
    gsr_interface: u32,
    gsr_group: libc::sockaddr_storage,
    gsr_source: libc::sockaddr_storage,
}

fn storage_v6(addr: &SocketAddrV6) -> libc::sockaddr_storage {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { zeroed() };
    // SAFETY: sockaddr_storage is larger than and at least as aligned as
    // sockaddr_in6, so the cast pointer is valid for one sockaddr_in6.
    let sin6 =
        unsafe { &mut *(&mut storage as *mut libc::sockaddr_storage as *mut libc::sockaddr_in6) };
    sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    sin6.sin6_addr.s6_addr = addr.ip().octets();
    sin6.sin6_port = addr.port().to_be();
    sin6.sin6_scope_id = addr.scope_id();
    storage
}

/// A message header for one datagram in `iov`, addressed by `name`.
fn mmsg(name: &mut libc::sockaddr_storage, namelen: usize, iov: &mut libc::iovec) -> libc::mmsghdr {
    // SAFETY: mmsghdr is plain old data; all-zero is valid (no control data, no flags).
    let mut m: libc::mmsghdr = unsafe { zeroed() };
    m.msg_hdr.msg_name = name as *mut libc::sockaddr_storage as *mut libc::c_void;
    m.msg_hdr.msg_namelen = namelen as libc::socklen_t;
    m.msg_hdr.msg_iov = iov as *mut libc::iovec;
    m.msg_hdr.msg_iovlen = 1;
    m
}

fn setsockopt<T>(
    fd: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: `value` is a live reference to a T, and we pass its exact size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            value as *const T as *const libc::c_void,
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Joins (source, group) on an interface: a source-specific (SSM) join.
pub fn join_source_group(
    fd: &impl AsRawFd,
    ifindex: u32,
    group: &Ipv6Addr,
    source: &Ipv6Addr,
) -> io::Result<()> {
    let req = GroupSourceReq {
        gsr_interface: ifindex,
        gsr_group: storage_v6(&SocketAddrV6::new(*group, 0, 0, 0)),
        gsr_source: storage_v6(&SocketAddrV6::new(*source, 0, 0, 0)),
    };
    setsockopt(fd, libc::IPPROTO_IPV6, MCAST_JOIN_SOURCE_GROUP, &req)
}

/// Sets both socket buffers to `size`, beyond `net.core.{r,w}mem_max` where the
/// process has CAP_NET_ADMIN. Returns whether the forced receive buffer took.
pub fn force_buffers(fd: &impl AsRawFd, size: usize) -> bool {
    let v = size.min(i32::MAX as usize) as libc::c_int;
    let _ = setsockopt(fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, &v);
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &v).is_ok()
}

/// Sends each buffer as one datagram to `dest` with a single `sendmmsg` call.
/// Returns how many were sent (from the front); the rest must be retried.
pub fn send_batch(fd: &impl AsRawFd, dest: &SocketAddrV6, bufs: &[&[u8]]) -> io::Result<usize> {
    if bufs.is_empty() {
        return Ok(0);
    }
    let mut addr = storage_v6(dest);
    let mut iovs: Vec<libc::iovec> = bufs
        .iter()
        .map(|b| libc::iovec {
            iov_base: b.as_ptr() as *mut libc::c_void,
            iov_len: b.len(),
        })
        .collect();
    let namelen = size_of::<libc::sockaddr_in6>();
    let mut msgs: Vec<libc::mmsghdr> = iovs
        .iter_mut()
        .map(|iov| mmsg(&mut addr, namelen, iov))
        .collect();
    // SAFETY: `msgs` holds `msgs.len()` initialised headers whose pointers (to
    // `addr`, `iovs` and the caller's buffers) all outlive this call; the kernel
    // only reads the buffers and writes `msg_len`.
    let rc = unsafe {
        libc::sendmmsg(
            fd.as_raw_fd(),
            msgs.as_mut_ptr(),
            msgs.len() as libc::c_uint,
            0,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc as usize)
    }
}

/// Receives up to `bufs.len()` datagrams with one `recvmmsg` call, without
/// blocking. Fills `lens[i]` and `sources[i]` for each datagram received and
/// returns how many; `WouldBlock` if none was waiting.
pub fn recv_batch(
    fd: &impl AsRawFd,
    bufs: &mut [Vec<u8>],
    lens: &mut [usize],
    sources: &mut [Option<Ipv6Addr>],
) -> io::Result<usize> {
    let n = bufs.len().min(lens.len()).min(sources.len());
    if n == 0 {
        return Ok(0);
    }
    // SAFETY: sockaddr_storage is plain old data; all-zero is valid.
    let mut addrs: Vec<libc::sockaddr_storage> = (0..n).map(|_| unsafe { zeroed() }).collect();
    let mut iovs: Vec<libc::iovec> = bufs[..n]
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr() as *mut libc::c_void,
            iov_len: b.len(),
        })
        .collect();
    let namelen = size_of::<libc::sockaddr_storage>();
    let mut msgs: Vec<libc::mmsghdr> = iovs
        .iter_mut()
        .zip(addrs.iter_mut())
        .map(|(iov, addr)| mmsg(addr, namelen, iov))
        .collect();
    // SAFETY: every header points at a live iovec over a live, writable buffer
    // of the stated length, and at a live sockaddr_storage of the stated size;
    // all outlive the call. MSG_DONTWAIT makes it non-blocking.
    let rc = unsafe {
        libc::recvmmsg(
            fd.as_raw_fd(),
            msgs.as_mut_ptr(),
            n as libc::c_uint,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let got = rc as usize;
    for i in 0..got {
        // A datagram longer than its buffer is truncated (MSG_TRUNC in msg_flags);
        // report the buffer's full length so the parser sees it as oversized.
        let truncated = msgs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        lens[i] = if truncated {
            bufs[i].len()
        } else {
            msgs[i].msg_len as usize
        };
        sources[i] = if addrs[i].ss_family == libc::AF_INET6 as libc::sa_family_t {
            // SAFETY: the kernel wrote a sockaddr_in6 here (family AF_INET6);
            // storage is large and aligned enough.
            let sin6 = unsafe {
                &*(&addrs[i] as *const libc::sockaddr_storage as *const libc::sockaddr_in6)
            };
            Some(Ipv6Addr::from(sin6.sin6_addr.s6_addr))
        } else {
            None
        };
    }
    Ok(got)
}
