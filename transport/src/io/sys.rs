//! The few socket calls that neither std nor socket2 offer: `sendmmsg` (with
//! UDP generic segmentation offload), `recvmmsg`,
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

/// `UDP_SEGMENT` from `<linux/udp.h>`: the generic segmentation offload size.
const UDP_SEGMENT: libc::c_int = 103;

/// The kernel's limit on segments in one GSO send (`UDP_MAX_SEGMENTS`).
pub const GSO_MAX_SEGMENTS: usize = 64;

/// Largest UDP payload of one GSO send: an IPv6 payload of at most 65535
/// bytes, less the 8-byte UDP header.
const GSO_MAX_BYTES: usize = 65535 - 8;

/// Sends `bufs` to `dest` with a single `sendmmsg` call, one datagram each.
///
/// With `gso`, each run of consecutive buffers of one length goes as a single
/// message with UDP generic segmentation offload (`UDP_SEGMENT`): the kernel
/// splits it into the same datagrams, for a fraction of the per-datagram cost.
/// Returns how many buffers were sent (from the front); the rest must be
/// retried.
pub fn send_batch(
    fd: &impl AsRawFd,
    dest: &SocketAddrV6,
    bufs: &[&[u8]],
    gso: bool,
) -> io::Result<usize> {
    if bufs.is_empty() {
        return Ok(0);
    }
    // Runs of buffers that go as one message: (first, count).
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < bufs.len() {
        let len = bufs[i].len();
        let mut n = 1;
        if gso && len > 0 {
            let cap = GSO_MAX_SEGMENTS.min(GSO_MAX_BYTES / len);
            while n < cap && i + n < bufs.len() && bufs[i + n].len() == len {
                n += 1;
            }
        }
        runs.push((i, n));
        i += n;
    }
    let mut addr = storage_v6(dest);
    let mut iovs: Vec<libc::iovec> = bufs
        .iter()
        .map(|b| libc::iovec {
            iov_base: b.as_ptr() as *mut libc::c_void,
            iov_len: b.len(),
        })
        .collect();
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(size_of::<u16>() as u32) } as usize;
    // u64 words keep the control buffers aligned for cmsghdr.
    let words = space.div_ceil(size_of::<u64>());
    let mut control = vec![0u64; words * runs.len()];
    let namelen = size_of::<libc::sockaddr_in6>();
    let mut msgs: Vec<libc::mmsghdr> = Vec::with_capacity(runs.len());
    for (r, &(first, n)) in runs.iter().enumerate() {
        let mut m = mmsg(&mut addr, namelen, &mut iovs[first]);
        m.msg_hdr.msg_iovlen = n as _;
        if n > 1 {
            let ctl = &mut control[r * words..(r + 1) * words];
            m.msg_hdr.msg_control = ctl.as_mut_ptr() as *mut libc::c_void;
            m.msg_hdr.msg_controllen = space as _;
            // SAFETY: msg_control points at `space` zeroed, aligned bytes that
            // outlive this block, so CMSG_FIRSTHDR returns a pointer to a
            // cmsghdr inside them, followed by room for one u16 (CMSG_SPACE).
            unsafe {
                let c = libc::CMSG_FIRSTHDR(&m.msg_hdr);
                (*c).cmsg_level = libc::SOL_UDP;
                (*c).cmsg_type = UDP_SEGMENT;
                (*c).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as _;
                std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut u16, bufs[first].len() as u16);
            }
        }
        msgs.push(m);
    }
    // SAFETY: `msgs` holds `msgs.len()` initialised headers whose pointers (to
    // `addr`, `iovs`, `control` and the caller's buffers) all outlive this
    // call; the kernel only reads them and writes `msg_len`.
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
        Ok(runs[..rc as usize].iter().map(|&(_, n)| n).sum())
    }
}

/// Whether an error from a GSO send means the path cannot segment (so the
/// caller should retry without GSO), rather than a real failure.
pub fn gso_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EIO | libc::EINVAL | libc::EOPNOTSUPP | libc::ENOPROTOOPT)
    )
}

/// Asks the kernel to report each datagram's hop limit on arrival
/// (IPV6_RECVHOPLIMIT), for [`recv_batch`].
pub fn recv_hop_limit(fd: &impl AsRawFd) -> io::Result<()> {
    setsockopt(
        fd,
        libc::IPPROTO_IPV6,
        libc::IPV6_RECVHOPLIMIT,
        &(1 as libc::c_int),
    )
}

/// Control bytes per message: room for one IPV6_HOPLIMIT (an int).
const CONTROL_LEN: usize = 64;

/// The IPV6_HOPLIMIT control message of a received datagram, if any.
fn hop_limit(hdr: &libc::msghdr) -> Option<u8> {
    // SAFETY: the kernel filled `hdr`'s control buffer (still alive) and set
    // msg_controllen to what it wrote; CMSG_FIRSTHDR/CMSG_NXTHDR stay within
    // it, and CMSG_DATA of an IPV6_HOPLIMIT message holds one int.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(hdr);
        while !c.is_null() {
            if (*c).cmsg_level == libc::IPPROTO_IPV6 && (*c).cmsg_type == libc::IPV6_HOPLIMIT {
                let v = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::c_int);
                return u8::try_from(v).ok();
            }
            c = libc::CMSG_NXTHDR(hdr, c);
        }
    }
    None
}

/// Receives up to `bufs.len()` datagrams with one `recvmmsg` call, without
/// blocking. Fills `lens[i]`, `sources[i]` and `hops[i]` (the hop limit it
/// arrived with, if [`recv_hop_limit`] asked for it) for each datagram
/// received and returns how many; `WouldBlock` if none was waiting.
pub fn recv_batch(
    fd: &impl AsRawFd,
    bufs: &mut [Vec<u8>],
    lens: &mut [usize],
    sources: &mut [Option<SocketAddrV6>],
    hops: &mut [Option<u8>],
) -> io::Result<usize> {
    let n = bufs
        .len()
        .min(lens.len())
        .min(sources.len())
        .min(hops.len());
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
    // u64s, so that the control buffers are aligned for cmsghdr.
    let mut control = vec![0u64; n * CONTROL_LEN / 8];
    let mut msgs: Vec<libc::mmsghdr> = iovs
        .iter_mut()
        .zip(addrs.iter_mut())
        .zip(control.chunks_mut(CONTROL_LEN / 8))
        .map(|((iov, addr), c)| {
            let mut m = mmsg(addr, namelen, iov);
            m.msg_hdr.msg_control = c.as_mut_ptr() as *mut libc::c_void;
            m.msg_hdr.msg_controllen = CONTROL_LEN as _;
            m
        })
        .collect();
    // SAFETY: every header points at a live iovec over a live, writable buffer
    // of the stated length, at a live sockaddr_storage of the stated size, and
    // at a live, aligned control buffer of CONTROL_LEN bytes; all outlive the
    // call. MSG_DONTWAIT makes it non-blocking.
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
        hops[i] = hop_limit(&msgs[i].msg_hdr);
        sources[i] = ipv6_source(&addrs[i]);
    }
    Ok(got)
}

/// The IPv6 address the kernel wrote into a received datagram's
/// `sockaddr_storage`; `None` for any other family.
fn ipv6_source(addr: &libc::sockaddr_storage) -> Option<SocketAddrV6> {
    if addr.ss_family != libc::AF_INET6 as libc::sa_family_t {
        return None;
    }
    // SAFETY: the kernel wrote a sockaddr_in6 here (family AF_INET6);
    // storage is large and aligned enough.
    let sin6 = unsafe { &*(addr as *const libc::sockaddr_storage as *const libc::sockaddr_in6) };
    Some(SocketAddrV6::new(
        Ipv6Addr::from(sin6.sin6_addr.s6_addr),
        u16::from_be(sin6.sin6_port),
        0,
        sin6.sin6_scope_id,
    ))
}

/// Lowers the calling thread's scheduling priority (nice 10), for bulk work
/// that must not hold the receiving thread off a core: solving blocks can wait
/// a little, a full socket buffer loses packets. Best effort: a refusal
/// leaves the priority as it was.
pub(super) fn lower_thread_priority() {
    // SAFETY: gettid takes no argument and cannot fail.
    let tid = unsafe { libc::gettid() };
    // SAFETY: setpriority only reads its arguments; on Linux, PRIO_PROCESS
    // with a thread id sets that thread's nice value alone.
    let _ = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10) };
}

/// Asks the kernel to wake the calling thread from its sleeps and waits on
/// time, not up to 50 us later (the default timer slack, which it may spend
/// to batch wake-ups). For a driver thread that paces datagrams and cuts
/// batches on deadlines. Best effort: a refusal leaves the slack as it was.
pub(super) fn precise_timers() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_TIMERSLACK takes a plain integer (nanoseconds) and
    // touches only the calling thread's timer slack.
    unsafe {
        let _ = libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong);
    }
}

/// See [`super::cpu_seconds`].
pub(super) fn cpu_seconds() -> f64 {
    // SAFETY: an all-zero rusage is a valid value of the plain C struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes only into the struct it is given.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(ru.ru_utime) + secs(ru.ru_stime)
}

/// See [`super::tune_allocator`].
pub fn tune_allocator(role: super::AllocatorRole) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; the values are valid
    // for these options, and it is called before other threads start.
    unsafe {
        match role {
            super::AllocatorRole::Receiver { decode_threads } => {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
                libc::mallopt(libc::M_TRIM_THRESHOLD, 8 << 20);
                let arenas = decode_threads.saturating_add(2).min(64) as libc::c_int;
                libc::mallopt(libc::M_ARENA_MAX, arenas);
            }
            super::AllocatorRole::Sender => {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 10);
                libc::mallopt(libc::M_ARENA_MAX, 1);
            }
        }
    }
}

/// `sync_file_range` of bytes `offset..offset + len` of `file` with `flags`
/// (Linux; elsewhere nothing). Errors are ignored: it only hints at the page
/// cache, the data is written either way.
fn sync_range(file: &std::fs::File, offset: u64, len: u64, flags: std::ffi::c_uint) {
    #[cfg(target_os = "linux")]
    // SAFETY: sync_file_range reads nothing from memory; a bad range is an
    // error return, not undefined behaviour.
    unsafe {
        use std::os::fd::AsRawFd;
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            flags,
        );
    }
}

/// Starts write-back of bytes `offset..offset + len` of `file` without
/// waiting for it (`SYNC_FILE_RANGE_WRITE`).
pub(super) fn start_write_back(file: &std::fs::File, offset: u64, len: u64) {
    sync_range(file, offset, len, libc::SYNC_FILE_RANGE_WRITE);
}

/// Waits for bytes `offset..offset + len` of `file` to be on disk, then
/// drops the whole pages among them from the page cache
/// (`sync_file_range` with both waits, then `posix_fadvise(DONTNEED)`).
/// Best effort, as [`start_write_back`]; on tmpfs both do nothing.
pub(super) fn drop_behind(file: &std::fs::File, offset: u64, len: u64) {
    sync_range(
        file,
        offset,
        len,
        libc::SYNC_FILE_RANGE_WAIT_BEFORE
            | libc::SYNC_FILE_RANGE_WRITE
            | libc::SYNC_FILE_RANGE_WAIT_AFTER,
    );
    // Only pages wholly inside the range: the pages at its ends may hold
    // bytes of a neighbour not written yet.
    const PAGE: u64 = 4096;
    let (lo, hi) = (offset.div_ceil(PAGE) * PAGE, (offset + len) / PAGE * PAGE);
    #[cfg(target_os = "linux")]
    if hi > lo {
        use std::os::fd::AsRawFd;
        // SAFETY: posix_fadvise only advises the kernel about a descriptor.
        unsafe {
            libc::posix_fadvise(
                file.as_raw_fd(),
                lo as libc::off64_t,
                (hi - lo) as libc::off64_t,
                libc::POSIX_FADV_DONTNEED,
            );
        }
    }
}

/// Appends `len` bytes of `file` at `offset` to `buf`, read straight into
/// its spare capacity, so that a buffer about to be filled from a file need
/// not be zeroed first (a block's memset cost a sender 4% of its CPU). A file
/// that ends first is an `UnexpectedEof` error; `buf` then holds what was
/// read.
pub(super) fn pread_append(
    file: &std::fs::File,
    buf: &mut Vec<u8>,
    len: usize,
    mut offset: u64,
) -> io::Result<()> {
    buf.reserve(len);
    let end = buf.len() + len;
    while buf.len() < end {
        let at = libc::off_t::try_from(offset)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))?;
        let room = end - buf.len();
        let dst = buf.spare_capacity_mut();
        // SAFETY: `dst` is valid for writes of `room` <= `dst.len()` bytes,
        // and pread writes at most that many; it reads nothing from it.
        let n = unsafe { libc::pread(file.as_raw_fd(), dst.as_mut_ptr().cast(), room, at) };
        match n {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n if n < 0 => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            n => {
                // SAFETY: pread initialised the first `n` bytes of the spare
                // capacity, and `n <= room` keeps the length within it.
                unsafe { buf.set_len(buf.len() + n as usize) };
                offset += n as u64;
            }
        }
    }
    Ok(())
}

/// The index and flags (`IFF_*`) of interface `name` in the calling thread's
/// network namespace, or `None` if it has no such interface. (Unlike
/// /sys/class/net, which shows the namespace /sys was mounted in, this
/// follows a thread that entered another namespace with setns.)
pub(super) fn interface_info(name: &str) -> Option<(u32, u32)> {
    let cname = std::ffi::CString::new(name).ok()?;
    // SAFETY: if_nametoindex reads the NUL-terminated name it is given.
    let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if index == 0 {
        return None;
    }
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head into `list`, freed below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Some((index, 0));
    }
    let mut flags = 0;
    let mut at = list;
    while !at.is_null() {
        // SAFETY: `at` is a node of the list getifaddrs returned, whose
        // names are NUL-terminated C strings.
        let entry = unsafe { &*at };
        if !entry.ifa_name.is_null()
            && unsafe { std::ffi::CStr::from_ptr(entry.ifa_name) } == cname.as_c_str()
        {
            flags |= entry.ifa_flags;
        }
        at = entry.ifa_next;
    }
    // SAFETY: `list` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    Some((index, flags))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{SocketAddr, UdpSocket};

    /// A bound, non-blocking UDP socket on `::1` and its address.
    fn socket() -> (UdpSocket, SocketAddrV6) {
        let s = UdpSocket::bind("[::1]:0").expect("::1 is needed for these tests");
        s.set_nonblocking(true).unwrap();
        let SocketAddr::V6(a) = s.local_addr().unwrap() else {
            unreachable!("bound to ::1")
        };
        (s, a)
    }

    /// Receives with `recv_batch` until `want` datagrams came or a second
    /// passed: (bytes, source, hop limit) of each.
    fn receive(
        fd: &UdpSocket,
        buf_len: usize,
        want: usize,
    ) -> Vec<(Vec<u8>, Option<SocketAddrV6>, Option<u8>)> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        let mut got = Vec::new();
        while got.len() < want && std::time::Instant::now() < deadline {
            let mut bufs = vec![vec![0u8; buf_len]; 16];
            let (mut lens, mut sources, mut hops) = ([0; 16], [None; 16], [None; 16]);
            match recv_batch(fd, &mut bufs, &mut lens, &mut sources, &mut hops) {
                Ok(n) => {
                    for i in 0..n {
                        got.push((bufs[i][..lens[i]].to_vec(), sources[i], hops[i]));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                Err(e) => panic!("recv_batch: {e}"),
            }
        }
        got
    }

    #[test]
    fn send_batch_sends_each_buffer_once_and_recv_batch_gives_bytes_source_and_hop_limit() {
        let (tx, from) = socket();
        let (rx, to) = socket();
        recv_hop_limit(&rx).unwrap();
        setsockopt(
            &tx,
            libc::IPPROTO_IPV6,
            libc::IPV6_UNICAST_HOPS,
            &(7 as libc::c_int),
        )
        .unwrap();
        let bufs: [&[u8]; 4] = [b"one", b"", b"three", &[0xab; 1200]];
        assert_eq!(send_batch(&tx, &to, &bufs, false).unwrap(), 4);
        let got = receive(&rx, 1500, 4);
        let bytes: Vec<&[u8]> = got.iter().map(|g| g.0.as_slice()).collect();
        assert_eq!(bytes, bufs, "in order, each whole");
        for (_, source, hops) in &got {
            assert_eq!(*source, Some(from));
            assert_eq!(*hops, Some(7));
        }
    }

    #[test]
    fn without_recv_hop_limit_no_hop_limit_is_reported() {
        let (tx, _) = socket();
        let (rx, to) = socket();
        assert_eq!(send_batch(&tx, &to, &[b"x"], false).unwrap(), 1);
        let got = receive(&rx, 64, 1);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].2, None);
    }

    #[test]
    fn gso_runs_arrive_as_the_same_datagrams_in_order() {
        let (tx, from) = socket();
        let (rx, to) = socket();
        // More equal buffers than one GSO send takes, then a shorter one and
        // a run of another length.
        let mut bufs: Vec<Vec<u8>> = (0..GSO_MAX_SEGMENTS + 6)
            .map(|i| vec![i as u8; 100])
            .collect();
        bufs.push(vec![0xee; 37]);
        bufs.extend((0..3).map(|i| vec![0xf0 + i; 200]));
        let refs: Vec<&[u8]> = bufs.iter().map(Vec::as_slice).collect();
        match send_batch(&tx, &to, &refs, true) {
            Ok(n) => assert_eq!(n, refs.len()),
            Err(e) if gso_unsupported(&e) => {
                eprintln!("UDP_SEGMENT unsupported here ({e}): not checked");
                return;
            }
            Err(e) => panic!("send_batch: {e}"),
        }
        let got = receive(&rx, 1500, refs.len());
        let bytes: Vec<&[u8]> = got.iter().map(|g| g.0.as_slice()).collect();
        assert_eq!(bytes, refs);
        assert!(got.iter().all(|g| g.1 == Some(from)));
    }

    #[test]
    fn a_datagram_longer_than_its_buffer_is_reported_as_filling_it() {
        let (tx, _) = socket();
        let (rx, to) = socket();
        assert_eq!(
            send_batch(&tx, &to, &[&[5u8; 300], b"ok"], false).unwrap(),
            2
        );
        let got = receive(&rx, 100, 2);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, [5u8; 100], "truncated to the buffer, length full");
        assert_eq!(got[1].0, b"ok");
    }

    #[test]
    fn nothing_waiting_is_would_block_and_empty_batches_are_zero() {
        let (tx, to) = socket();
        let (mut bufs, mut lens, mut sources, mut hops) =
            (vec![vec![0u8; 64]; 4], [0; 4], [None; 4], [None; 4]);
        let e = recv_batch(&tx, &mut bufs, &mut lens, &mut sources, &mut hops).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert_eq!(
            recv_batch(&tx, &mut [], &mut lens, &mut sources, &mut hops).unwrap(),
            0
        );
        assert_eq!(send_batch(&tx, &to, &[], true).unwrap(), 0);
        // Nothing was sent by the empty batch.
        let e = recv_batch(&tx, &mut bufs, &mut lens, &mut sources, &mut hops).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn pread_append_appends_from_the_offset_and_says_where_the_file_ends() {
        use std::io::Write;
        let path = std::env::temp_dir().join(format!("gc-sys-pread-{}", std::process::id()));
        let data: Vec<u8> = (0..=255u8).collect();
        std::fs::File::create(&path)
            .unwrap()
            .write_all(&data)
            .unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let mut buf = b"head".to_vec();
        pread_append(&file, &mut buf, 10, 100).unwrap();
        assert_eq!(buf[..4], *b"head");
        assert_eq!(buf[4..], data[100..110]);
        let e = pread_append(&file, &mut buf, 20, 250).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(buf[14..], data[250..], "what was read stays");
        std::fs::remove_file(&path).unwrap();
    }
}
