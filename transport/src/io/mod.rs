//! Drivers that run the sans-IO core on real IPv6 multicast sockets.
//!
//! This is the only part of the crate that touches sockets or reads the clock.
//! [`McastSocket`] sets up a socket2 UDP socket for a [`Channel`] on a named
//! interface; [`run_sender`] and [`run_receiver`] are blocking loops, built on
//! mio, that drive a [`Sender`] or [`Receiver`] over it. [`files`] sends and
//! receives files and directories on top of them.
//!
//! Users who bring their own event loop use [`crate::proto`] directly.

pub mod decode;
pub mod files;
pub mod iface;
pub mod keys;
pub mod manifest;
pub mod pubsub;
pub mod sink;
mod sys;
pub mod writer;

use std::collections::VecDeque;
use std::io::ErrorKind;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};
use socket2::{Domain, Protocol, Socket, Type};

use crate::channel::Channel;
use crate::proto::{Arrival, Receiver, ReceiverEvent, Sender, SenderStats, TransmitTo};
use crate::wire::MAX_DATAGRAM;

/// Why the network driver failed. Messages name the interface, group or file concerned.
///
/// A handle whose driver stopped on an error returns that same error, with
/// its variant, from every later call (hence `Clone`: an OS error is cloned
/// by its code).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IoError {
    /// The operating system refused for lack of privilege.
    #[error("{0}: permission denied (multicast on this interface may need root or CAP_NET_RAW)")]
    Permission(String),
    /// The interface cannot carry IPv6 multicast ([`iface::check`]).
    #[error(transparent)]
    Interface(#[from] iface::InterfaceError),
    /// Another socket operation failed.
    #[error("{context}: {source}")]
    Socket {
        /// What was being done.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file or directory operation failed.
    #[error("{path}: {source}")]
    File {
        /// The path concerned.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The protocol refused an object or a setting.
    #[error(transparent)]
    Sender(#[from] crate::proto::SenderError),
    /// Something received could not be used (for example an unsafe path in a manifest).
    #[error("{0}")]
    Invalid(String),
    /// The verified manifest's files do not fit the output directory.
    #[error("not enough free space in {dir}: the transfer needs {need} bytes, {free} are free")]
    NoSpace {
        /// The output directory.
        dir: String,
        /// Bytes the files need.
        need: u64,
        /// Bytes free for this process.
        free: u64,
    },
    /// The handle was closed, or its driver stopped without an error: nothing
    /// more can be sent or received through it.
    #[error("{0} is closed")]
    Closed(&'static str),
    /// A subscriber could not hand out what was asked (a gap, a conflict, a
    /// timeout), as [`pubsub::RecvError`] says.
    #[error(transparent)]
    Recv(pubsub::RecvError),
}

impl Clone for IoError {
    fn clone(&self) -> Self {
        match self {
            Self::Interface(e) => Self::Interface(e.clone()),
            Self::Permission(c) => Self::Permission(c.clone()),
            Self::Socket { context, source } => Self::Socket {
                context: context.clone(),
                source: clone_os_error(source),
            },
            Self::File { path, source } => Self::File {
                path: path.clone(),
                source: clone_os_error(source),
            },
            Self::Sender(e) => Self::Sender(e.clone()),
            Self::Invalid(m) => Self::Invalid(m.clone()),
            Self::NoSpace { dir, need, free } => Self::NoSpace {
                dir: dir.clone(),
                need: *need,
                free: *free,
            },
            Self::Closed(what) => Self::Closed(what),
            Self::Recv(e) => Self::Recv(e.clone()),
        }
    }
}

/// The same OS error: by its code where it has one, else by kind and text.
fn clone_os_error(e: &std::io::Error) -> std::io::Error {
    match e.raw_os_error() {
        Some(code) => std::io::Error::from_raw_os_error(code),
        None => std::io::Error::new(e.kind(), e.to_string()),
    }
}

fn sock_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> IoError {
    let context = context.into();
    move |source| {
        if source.kind() == ErrorKind::PermissionDenied {
            IoError::Permission(context)
        } else if source.raw_os_error() == Some(libc::EADDRNOTAVAIL) {
            IoError::Socket {
                context: format!(
                    "{context} (the interface has no usable IPv6 address yet: is it up, and \
has duplicate address detection finished?)"
                ),
                source,
            }
        } else {
            IoError::Socket { context, source }
        }
    }
}

/// A field of this process's `/proc/self/status` (such as `VmHWM` or
/// `Umask`), its value trimmed, if it can be read.
pub fn process_status(field: &str) -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| {
        l.strip_prefix(field)
            .and_then(|v| v.strip_prefix(':'))
            .map(|v| v.trim().to_owned())
    })
}

/// CPU seconds (user and system) this process has used so far, over all its
/// threads; 0 if unknown.
pub fn cpu_seconds() -> f64 {
    sys::cpu_seconds()
}

/// Which side [`tune_allocator`] tunes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllocatorRole {
    /// A sender: buffers of 256 KiB and more are mapped and unmapped one by
    /// one, so that RSS follows what it holds. (It frees objects, blocks and
    /// encoders of every size; served from the heap they fragmented it: a
    /// 2 GiB stream's sender grew to 211 MB instead of 103.)
    Sender,
    /// A receiver with `decode_threads` decode workers: buffers up to 4 MiB
    /// (blocks, the decoders' matrices and results) come from the heap, and
    /// up to 8 MiB of freed heap is kept for the next ones. Mapping each
    /// block by itself cost a fresh mapping, a fault and a zeroed page per
    /// 4 KiB, and an unmapping with its TLB flush: a quarter of a receiver's
    /// CPU at 10% loss. The receiving thread, the writer and each decode
    /// worker have a heap of their own: RaptorQ's solver allocates all the
    /// time, and two workers sharing one heap decoded at 1.35 × one worker
    /// instead of 1.6 × (`decode-bench`, 2 cores).
    Receiver {
        /// The decode workers the receiver will run.
        decode_threads: usize,
    },
}

/// Tunes glibc's allocator for a sender or a receiver (elsewhere nothing).
/// A sender's threads share one heap, so that what a worker builds and
/// another thread frees leaves no second heap fragmented. Call it first
/// thing in `main`, before any thread starts: `groupcast send` and `chat`
/// do as senders, `recv` as a receiver.
pub fn tune_allocator(role: AllocatorRole) {
    sys::tune_allocator(role)
}

/// Looks up an interface's index, and checks that it can carry IPv6
/// multicast ([`iface::check`], without a group).
pub fn interface_index(name: &str) -> Result<u32, IoError> {
    Ok(iface::check(name, None)?)
}

/// Socket settings. Start from [`NetConfig::new`].
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// The channel: group address and port.
    pub channel: Channel,
    /// Interface to send on or join on, by name.
    pub interface: String,
    /// IPV6_MULTICAST_HOPS. Default 8: up to 7 multicast routers; 1 keeps
    /// what is sent on the link.
    pub hops: u32,
    /// Receivers: the hop limit of their NACKs. `None` (the default): as far
    /// as the sender's PROBEs came, from the hop limit they announce and the
    /// one they arrive with (announced − arrived + 1, at most
    /// [`MAX_FEEDBACK_HOPS`]).
    pub feedback_hops: Option<u32>,
    /// IPV6_MULTICAST_LOOP: whether this host's own sockets hear what it sends. Default true.
    pub multicast_loop: bool,
    /// Requested socket buffer size in bytes. Forced where the process may
    /// (CAP_NET_ADMIN), else capped by `net.core.{r,w}mem_max`. Default 32 MiB.
    pub buffer_size: usize,
    /// Receivers: join source-specifically (MCAST_JOIN_SOURCE_GROUP) and accept
    /// datagrams only from this source address. Senders: send from this address
    /// (see [`local_source`]).
    pub source: Option<Ipv6Addr>,
    /// Senders: hand runs of equal-sized datagrams to the kernel as one UDP
    /// generic segmentation offload (GSO) send. The datagrams on the wire are
    /// the same; the kernel's per-datagram cost falls. Turned off by itself
    /// where the path cannot segment. Default true.
    pub gso: bool,
    /// Also open a socket on the channel's feedback group (nack and hybrid
    /// modes): senders hear NACKs on it, receivers hear each other's NACKs and
    /// send their own NACKs and STATUS from it. Default false.
    pub feedback: bool,
}

/// The source address the kernel would use to send to the channel's group out
/// of the configured interface: what receivers pass as their source for a
/// source-specific join.
pub fn local_source(cfg: &NetConfig) -> Result<Ipv6Addr, IoError> {
    let ifindex = interface_index(&cfg.interface)?;
    let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))
        .map_err(sock_err("creating an IPv6 UDP socket"))?;
    s.set_multicast_if_v6(ifindex)
        .map_err(sock_err(format!("IPV6_MULTICAST_IF {}", cfg.interface)))?;
    let group = SocketAddrV6::new(cfg.channel.group(), cfg.channel.port(), 0, 0);
    // A UDP connect sends nothing; it only makes the kernel choose a route and source.
    s.connect(&group.into()).map_err(sock_err(format!(
        "finding a source address on {}",
        cfg.interface
    )))?;
    let local = s
        .local_addr()
        .map_err(sock_err("reading the source address"))?
        .as_socket_ipv6()
        .map(|a| *a.ip())
        .ok_or_else(|| IoError::Invalid("the kernel chose no IPv6 source address".into()))?;
    Ok(local)
}

impl NetConfig {
    /// Defaults for a channel on an interface.
    pub fn new(channel: Channel, interface: &str) -> Self {
        Self {
            channel,
            interface: interface.to_owned(),
            hops: 8,
            feedback_hops: None,
            multicast_loop: true,
            buffer_size: 32 << 20,
            source: None,
            gso: true,
            feedback: false,
        }
    }
}

/// A UDP socket set up for one channel on one interface. A receiving socket
/// joins the group, and leaves it when dropped (closing the socket leaves it).
pub struct McastSocket {
    socket: UdpSocket,
    dest: SocketAddrV6,
    source: Option<Ipv6Addr>,
    gso: bool,
    /// The feedback-group socket, if `NetConfig::feedback`.
    feedback: Option<UdpSocket>,
    feedback_dest: SocketAddrV6,
    ifindex: u32,
    /// The interface's name, to diagnose a send that fails after open.
    interface: String,
    /// The NACKs' hop limit: fixed, or `None` to follow the PROBEs.
    feedback_hops_fixed: Option<u32>,
    /// The NACKs' hop limit in force.
    feedback_hops: u32,
}

pub use crate::proto::MAX_FEEDBACK_HOPS;

/// The wall clock now, for the core's [`WallClock`] (AUTH's Time,
/// protocol.md §15): the drivers read it as they start, and again on each
/// turn of their loops.
///
/// [`WallClock`]: crate::proto::auth::WallClock
pub fn wall_clock() -> crate::proto::auth::WallClock {
    crate::proto::auth::WallClock {
        at: std::time::Instant::now(),
        unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default(),
    }
}

/// What a driver gives a sender as it starts: the wall clock (AUTH's Time)
/// and a random first Sequence to seal with (protocol.md §15.1, §16.2),
/// unless the caller set them.
pub(crate) fn starting_sender(config: &mut crate::proto::SenderConfig) {
    config.wall_clock.get_or_insert_with(wall_clock);
    config.seal_start.get_or_insert_with(random_id);
}

/// [`starting_sender`] for a receiver: its wall clock, and a random first
/// Sequence for its sealed feedback.
pub(crate) fn starting_receiver(config: &mut crate::proto::ReceiverConfig) {
    config.wall_clock.get_or_insert_with(wall_clock);
    if config.seal_start == 0 {
        config.seal_start = random_id();
    }
}

/// A random 64-bit id (a session's, a receiver's), from the OS; without OS
/// randomness, the clock and the process, hashed.
pub fn random_id() -> u64 {
    let mut r = [0u8; 8];
    if getrandom::fill(&mut r).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        return crate::proto::SessionId::from_seed(t ^ u64::from(std::process::id()) << 32).0;
    }
    u64::from_le_bytes(r)
}

impl McastSocket {
    fn base(cfg: &NetConfig) -> Result<(Socket, u32), IoError> {
        let ifindex = iface::check(&cfg.interface, Some(cfg.channel.group()))?;
        let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))
            .map_err(sock_err("creating an IPv6 UDP socket"))?;
        s.set_only_v6(true).map_err(sock_err("IPV6_V6ONLY"))?;
        s.set_nonblocking(true).map_err(sock_err("O_NONBLOCK"))?;
        // Best effort: forced beyond net.core.{r,w}mem_max where privileged,
        // else capped by it.
        if !sys::force_buffers(&s, cfg.buffer_size) {
            let _ = s.set_recv_buffer_size(cfg.buffer_size);
            let _ = s.set_send_buffer_size(cfg.buffer_size);
        }
        Ok((s, ifindex))
    }

    /// A socket that sends to the channel's group out of `cfg.interface`.
    pub fn sender(cfg: &NetConfig) -> Result<Self, IoError> {
        let (s, ifindex) = Self::base(cfg)?;
        let group = cfg.channel.group();
        s.set_multicast_if_v6(ifindex)
            .map_err(sock_err(format!("IPV6_MULTICAST_IF {}", cfg.interface)))?;
        s.set_multicast_hops_v6(cfg.hops)
            .map_err(sock_err("IPV6_MULTICAST_HOPS"))?;
        s.set_multicast_loop_v6(cfg.multicast_loop)
            .map_err(sock_err("IPV6_MULTICAST_LOOP"))?;
        let any = SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 0, 0, 0);
        s.bind(&any.into())
            .map_err(sock_err("binding the sending socket"))?;
        let dest = SocketAddrV6::new(group, cfg.channel.port(), 0, 0);
        Self::assemble(s, dest, None, cfg.gso, cfg, ifindex)
    }

    /// The socket, plus the feedback socket if `cfg.feedback`.
    fn assemble(
        s: Socket,
        dest: SocketAddrV6,
        source: Option<Ipv6Addr>,
        gso: bool,
        cfg: &NetConfig,
        ifindex: u32,
    ) -> Result<Self, IoError> {
        let port = cfg.channel.port();
        Ok(Self {
            socket: UdpSocket::from_std(s.into()),
            dest,
            source,
            gso,
            feedback: Self::feedback_socket(cfg, ifindex)?,
            feedback_dest: SocketAddrV6::new(cfg.channel.feedback_group(), port, 0, 0),
            ifindex,
            interface: cfg.interface.clone(),
            feedback_hops_fixed: cfg.feedback_hops,
            feedback_hops: cfg.feedback_hops.unwrap_or(cfg.hops),
        })
    }

    /// The error for a send that failed after open: the interface's own
    /// reason if it can no longer carry the channel's multicast (it went
    /// down, lost its carrier, address or route: [`iface::check_now`]),
    /// else the socket's error.
    pub(crate) fn send_failure(&self, e: std::io::Error) -> IoError {
        match iface::check_now(&self.interface, Some(*self.dest.ip())) {
            Err(why) => IoError::Interface(why),
            Ok(_) => sock_err(format!("sending to {}", self.dest))(e),
        }
    }

    /// Sets the NACKs' hop limit to `want`, the one the PROBEs call for
    /// (protocol.md §13.5, Hop limit), unless a configured one overrides it
    /// (`NetConfig::feedback_hops`). Returns the new hop limit if it
    /// changed. (The feedback socket's second handles, `tokio_sockets`,
    /// share the setting.)
    fn follow_probe_hops(&mut self, want: u32) -> Option<u32> {
        if self.feedback_hops_fixed.is_some() {
            return None;
        }
        let fb = self.feedback.as_ref()?;
        if want == self.feedback_hops {
            return None;
        }
        let s = socket2::SockRef::from(fb);
        s.set_multicast_hops_v6(want).ok()?;
        self.feedback_hops = want;
        Some(want)
    }

    /// A socket bound to the channel's group and port, joined on `cfg.interface`.
    pub fn receiver(cfg: &NetConfig) -> Result<Self, IoError> {
        let (s, ifindex) = Self::base(cfg)?;
        let group = cfg.channel.group();
        s.set_reuse_address(true)
            .map_err(sock_err("SO_REUSEADDR"))?;
        // Binding to the group (not ::) keeps other groups on the port out.
        let addr = SocketAddrV6::new(group, cfg.channel.port(), 0, 0);
        s.bind(&addr.into()).map_err(sock_err(format!(
            "binding [{group}]:{}",
            cfg.channel.port()
        )))?;
        match &cfg.source {
            Some(src) => sys::join_source_group(&s, ifindex, &group, src).map_err(sock_err(
                format!("joining ({src}, {group}) on {}", cfg.interface),
            ))?,
            None => s
                .join_multicast_v6(&group, ifindex)
                .map_err(sock_err(format!("joining {group} on {}", cfg.interface)))?,
        }
        sys::recv_hop_limit(&s).map_err(sock_err("IPV6_RECVHOPLIMIT"))?;
        Self::assemble(s, addr, cfg.source, false, cfg, ifindex)
    }

    /// A socket bound to the channel's feedback group and port, joined on the
    /// interface, that also sends there (NACKs) and to the sender (STATUS).
    fn feedback_socket(cfg: &NetConfig, ifindex: u32) -> Result<Option<UdpSocket>, IoError> {
        if !cfg.feedback {
            return Ok(None);
        }
        let group = cfg.channel.feedback_group();
        let s = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))
            .map_err(sock_err("creating the feedback socket"))?;
        s.set_only_v6(true).map_err(sock_err("IPV6_V6ONLY"))?;
        s.set_nonblocking(true).map_err(sock_err("O_NONBLOCK"))?;
        s.set_reuse_address(true)
            .map_err(sock_err("SO_REUSEADDR"))?;
        let _ = s.set_recv_buffer_size(4 << 20);
        let addr = SocketAddrV6::new(group, cfg.channel.port(), 0, 0);
        s.bind(&addr.into()).map_err(sock_err(format!(
            "binding the feedback group [{group}]:{}",
            cfg.channel.port()
        )))?;
        s.join_multicast_v6(&group, ifindex)
            .map_err(sock_err(format!(
                "joining the feedback group {group} on {}",
                cfg.interface
            )))?;
        s.set_multicast_if_v6(ifindex)
            .map_err(sock_err(format!("IPV6_MULTICAST_IF {}", cfg.interface)))?;
        s.set_multicast_hops_v6(cfg.feedback_hops.unwrap_or(cfg.hops))
            .map_err(sock_err("IPV6_MULTICAST_HOPS"))?;
        s.set_multicast_loop_v6(true)
            .map_err(sock_err("IPV6_MULTICAST_LOOP"))?;
        Ok(Some(UdpSocket::from_std(s.into())))
    }

    /// The group address and port this socket sends to or listens on.
    pub fn group_addr(&self) -> SocketAddr {
        self.dest.into()
    }

    /// Second handles on this socket and its feedback socket, as tokio
    /// sockets (within a runtime), for the async drivers; this one keeps the
    /// memberships.
    #[cfg(feature = "tokio")]
    fn tokio_sockets(
        &self,
    ) -> std::io::Result<(tokio::net::UdpSocket, Option<tokio::net::UdpSocket>)> {
        use std::os::fd::AsFd;
        let dup = |s: &UdpSocket| -> std::io::Result<tokio::net::UdpSocket> {
            let std: std::net::UdpSocket = s.as_fd().try_clone_to_owned()?.into();
            tokio::net::UdpSocket::from_std(std)
        };
        Ok((
            dup(&self.socket)?,
            self.feedback.as_ref().map(dup).transpose()?,
        ))
    }
}

/// Counters of a driver loop.
#[derive(Debug, Clone, Default)]
pub struct DriverStats {
    /// Times a send met a full socket buffer (EAGAIN/ENOBUFS) and backed off.
    pub send_backoffs: u64,
    /// Datagrams dropped for coming from another source than the configured one.
    pub foreign_source: u64,
    /// Whether the last send used UDP segmentation offload (false if it was
    /// off, or turned itself off because the path cannot segment).
    pub gso: bool,
    /// Feedback datagrams that could not be sent (no sender address yet, or
    /// a full socket buffer).
    pub feedback_dropped: u64,
    /// Datagrams of a type that does not belong on the socket they came in
    /// on (receivers: anything but NACK on the feedback group, or NACK and
    /// STATUS on the data group), dropped unread.
    pub wrong_socket: u64,
    /// Feedback datagrams for a session's sender alone that the receiver
    /// dropped: no datagram of the session that may aim it had said where
    /// its sender is (`ReceiverStats::feedback_unaddressed`; also counted in
    /// `feedback_dropped`).
    pub status_unaddressed: u64,
}

#[doc(hidden)]
pub use decode::slow_decoding_down;
pub use decode::{DecodePool, WorkerPool};

const SOCKET: Token = Token(0);

const FEEDBACK: Token = Token(1);

/// Decode workers wake the receiving loop through this.
const WAKE: Token = Token(2);

fn poll_for(sock: &mut McastSocket) -> Result<Poll, IoError> {
    let poll = Poll::new().map_err(sock_err("creating the event loop"))?;
    poll.registry()
        .register(
            &mut sock.socket,
            SOCKET,
            Interest::READABLE | Interest::WRITABLE,
        )
        .map_err(sock_err("registering the socket"))?;
    if let Some(fb) = sock.feedback.as_mut() {
        poll.registry()
            .register(fb, FEEDBACK, Interest::READABLE)
            .map_err(sock_err("registering the feedback socket"))?;
    }
    Ok(poll)
}

/// Reads every waiting datagram from `socket` (non-blocking) into `handle`.
fn drain_socket(
    socket: &UdpSocket,
    buf: &mut [u8],
    mut handle: impl FnMut(&[u8], SocketAddr),
) -> Result<(), IoError> {
    // Bounded, so a flood cannot starve the rest of the loop.
    for _ in 0..1024 {
        match socket.recv_from(buf) {
            Ok((n, from)) => handle(&buf[..n], from),
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(sock_err("receiving feedback")(e)),
        }
    }
    Ok(())
}

/// Datagrams handed to the kernel per `sendmmsg` call.
pub const SEND_BATCH: usize = 128;

/// Datagrams taken from the kernel per `recvmmsg` call.
pub const RECV_BATCH: usize = 32;

/// Sends until the sender finishes or `stop` returns true. `progress` is called
/// about ten times a second. Datagrams go out in batches of up to
/// [`SEND_BATCH`] per `sendmmsg`; those that meet a full socket buffer
/// (EAGAIN/ENOBUFS) are kept and retried after a short back-off: never dropped,
/// never spun on.
pub fn run_sender(
    sender: &mut Sender,
    sock: &mut McastSocket,
    progress: impl FnMut(&SenderStats),
    stop: impl FnMut(&SenderStats) -> bool,
) -> Result<DriverStats, IoError> {
    let mut none = |req: crate::proto::BlockRequest, _: Vec<u8>| {
        Err(IoError::Invalid(format!(
            "the sender asked for block {} of object {}, and no block source was given \
             (use run_sender_from for objects added with add_object_blocks)",
            req.sbn, req.object.0
        )))
    };
    run_sender_from(sender, sock, &mut none, progress, stop)
}

/// Reads the bytes of a block a sender asks for, into the buffer it is
/// given (empty, perhaps with room: one the sender let go,
/// [`Sender::take_block_buffer`]), and returns that buffer.
pub type BlockSource<'a> =
    dyn FnMut(crate::proto::BlockRequest, Vec<u8>) -> Result<Vec<u8>, IoError> + 'a;

/// [`run_sender`] for a sender with objects added with
/// [`Sender::add_object_blocks`]: `source` reads each block it asks for, on
/// the sending thread, a window or so before it is due. An error from
/// `source` ends the transfer with that error.
pub fn run_sender_from(
    sender: &mut Sender,
    sock: &mut McastSocket,
    source: &mut BlockSource<'_>,
    progress: impl FnMut(&SenderStats),
    stop: impl FnMut(&SenderStats) -> bool,
) -> Result<DriverStats, IoError> {
    let mut stop = stop;
    let mut tick = |s: &mut Sender| SendTick {
        stop: stop(s.stats()),
        wait: None,
    };
    run_sender_with(sender, sock, source, progress, |_| {}, &mut tick)
}

/// What a [`run_sender_with`] hook says on each turn of the loop.
#[derive(Debug, Clone, Copy, Default)]
pub struct SendTick {
    /// Stop now (what is built but unsent is dropped).
    pub stop: bool,
    /// Be called again within this long, if at all.
    pub wait: Option<Duration>,
}

/// [`run_sender_from`] for a driver that feeds the sender while it runs (a
/// [`pubsub::Publisher`]): `on_wake` is called once, before the first
/// packet, with a handle that wakes the loop from any thread; `on_tick` is
/// called on every turn of the loop with the sender itself, to add objects,
/// retire them, or stop. The loop ends when `on_tick` says stop, or when the
/// sender is finished.
pub fn run_sender_with(
    sender: &mut Sender,
    sock: &mut McastSocket,
    source: &mut BlockSource<'_>,
    progress: impl FnMut(&SenderStats),
    on_wake: impl FnOnce(decode::Wake),
    on_tick: &mut dyn FnMut(&mut Sender) -> SendTick,
) -> Result<DriverStats, IoError> {
    let poll = poll_for(sock)?;
    let waker = std::sync::Arc::new(
        mio::Waker::new(poll.registry(), WAKE).map_err(sock_err("creating the sender's waker"))?,
    );
    let wake: decode::Wake = std::sync::Arc::new(move || {
        let _ = waker.wake();
    });
    on_wake(wake.clone());
    let threads = sender.config().encoder_threads;
    let workers = if threads == 0 {
        None
    } else {
        // The encoder workers: the sender asks for builds, they build, the
        // loop hands the encoders back. They end with the loop. Each build
        // wakes the loop: the sender may be waiting for it.
        let pool = WorkerPool::new(
            threads,
            "groupcast-enc",
            false,
            crate::proto::EncoderRequest::build,
            Some(wake),
        )
        .map_err(|e| IoError::Socket {
            context: "starting the encoder workers".into(),
            source: e,
        })?;
        Some(pool)
    };
    SendDriver::new(sender, sock, workers, source).run(poll, progress, on_tick)
}

/// Encoder builds asked of the workers, and the encoders they built.
/// (`None`: a build the sender did itself meanwhile, skipped.)
type Workers = WorkerPool<crate::proto::EncoderRequest, Option<crate::proto::BuiltEncoder>>;

/// A send driver on mio, as quinn's `EndpointDriver` is for quinn-proto:
/// the sender, its socket, the encoder workers, the block source, and the
/// batch of datagrams built and not yet sent. Datagrams that meet a full
/// socket buffer (EAGAIN/ENOBUFS) are kept and retried after a back-off:
/// never dropped, never spun on.
struct SendDriver<'a, 's> {
    sender: &'a mut Sender,
    sock: &'a mut McastSocket,
    workers: Option<Workers>,
    source: &'a mut BlockSource<'s>,
    bufs: Vec<Vec<u8>>,
    lens: [usize; SEND_BATCH],
    /// `bufs[first..filled]` are built and not yet sent.
    first: usize,
    filled: usize,
    stats: DriverStats,
    /// The next wait after a full socket buffer: from 0.1 ms, doubling up to
    /// 20 ms while the buffer stays full.
    backoff: Duration,
    /// Blocks the sender asked for, not read yet.
    reads: VecDeque<crate::proto::BlockRequest>,
}

/// What a burst of sending met.
#[derive(Default)]
struct Burst {
    /// The socket buffer was full.
    blocked: bool,
    /// A block was read for the sender.
    served: bool,
}

impl<'a, 's> SendDriver<'a, 's> {
    fn new(
        sender: &'a mut Sender,
        sock: &'a mut McastSocket,
        workers: Option<Workers>,
        source: &'a mut BlockSource<'s>,
    ) -> Self {
        let bufs = vec![vec![0u8; sender.config().max_datagram]; SEND_BATCH];
        Self {
            sender,
            sock,
            workers,
            source,
            bufs,
            lens: [0; SEND_BATCH],
            first: 0,
            filled: 0,
            stats: DriverStats::default(),
            backoff: Duration::from_micros(100),
            reads: VecDeque::new(),
        }
    }

    fn run(
        mut self,
        mut poll: Poll,
        mut progress: impl FnMut(&SenderStats),
        on_tick: &mut dyn FnMut(&mut Sender) -> SendTick,
    ) -> Result<DriverStats, IoError> {
        sys::precise_timers();
        let mut events = Events::with_capacity(16);
        let mut fbuf = vec![0u8; MAX_DATAGRAM + 1];
        let mut last_progress = Instant::now();
        loop {
            let now = Instant::now();
            if now >= last_progress + Duration::from_millis(100) {
                progress(self.sender.stats());
                last_progress = now;
            }
            let tick = on_tick(self.sender);
            if tick.stop || (self.first == self.filled && self.sender.is_finished()) {
                break;
            }
            self.feedback(now, &mut fbuf)?;
            // Events are for library users who drive the core themselves.
            while self.sender.poll_event().is_some() {}
            // The wall clock again: it may have been stepped or suspended.
            self.sender.set_wall_clock(wall_clock());
            self.sender.handle_timeout(now);
            self.exchange_encoders();
            let burst = self.burst(now)?;
            let wait = self.wait(&burst, &tick);
            if wait >= Duration::from_millis(1) {
                wait_for(&mut poll, &mut events, wait)?;
            } else if !wait.is_zero() {
                // epoll counts whole milliseconds, rounded up: a pacing
                // deadline a few hundred microseconds away would cost a
                // millisecond. Feedback waits in the socket meanwhile. At
                // least MIN_NAP: the timers are precise, and waking for
                // every datagram's worth of tokens would cut the batches to
                // a datagram or two.
                std::thread::sleep(wait.max(MIN_NAP));
            }
        }
        progress(self.sender.stats());
        self.stats.gso = self.sock.gso;
        Ok(self.stats)
    }

    /// Feedback: STATUS (and unicast NACKs) on the sending socket, NACKs on
    /// the feedback group (docs/protocol.md §13).
    fn feedback(&mut self, now: Instant, fbuf: &mut [u8]) -> Result<(), IoError> {
        if !self.sender.config().mode.has_feedback() {
            return Ok(());
        }
        let sender = &mut *self.sender;
        drain_socket(&self.sock.socket, fbuf, |d, from| {
            sender.handle_feedback(now, Some(from.ip()), d)
        })?;
        if let Some(fb) = self.sock.feedback.as_ref() {
            drain_socket(fb, fbuf, |d, from| {
                sender.handle_feedback(now, Some(from.ip()), d)
            })?;
        }
        Ok(())
    }

    /// Hands the sender's encoder requests to the workers, and the encoders
    /// they built to the sender.
    fn exchange_encoders(&mut self) {
        let Some(pool) = self.workers.as_mut() else {
            return;
        };
        while let Some(b) = pool.try_take() {
            if let Some(b) = b {
                self.sender.handle_encoder(b);
            }
        }
        while let Some(req) = self.sender.poll_encoder_request() {
            pool.submit(req);
        }
    }

    /// Sends batches until the sender has nothing due or the socket buffer
    /// is full. Bounded, so progress and `stop` are checked regularly.
    fn burst(&mut self, now: Instant) -> Result<Burst, IoError> {
        let mut burst = Burst::default();
        for _ in 0..64 {
            if self.first == self.filled {
                burst.served |= self.fill(now)?;
                if self.filled == 0 {
                    // Nothing to send: with a block just read, try again at
                    // once, with the time and the pacing brought up to date.
                    break;
                }
            }
            if self.send()? {
                burst.blocked = true;
                break;
            }
        }
        Ok(burst)
    }

    /// Builds the next batch of up to [`SEND_BATCH`] datagrams; whether a
    /// block was read for the sender.
    fn fill(&mut self, now: Instant) -> Result<bool, IoError> {
        self.first = 0;
        self.filled = 0;
        while self.filled < SEND_BATCH {
            match self.sender.poll_transmit(now, &mut self.bufs[self.filled]) {
                Some(n) => {
                    self.lens[self.filled] = n;
                    self.filled += 1;
                }
                None => break,
            }
        }
        // Builds asked for by this batch go out at once; built ones come in.
        self.exchange_encoders();
        // Blocks it asked for: one read a batch, and only in time the pacing
        // leaves (a batch cut short), so that reads never hold up a full
        // batch; the sender goes on from the blocks it holds meanwhile.
        let sender = &mut *self.sender;
        self.reads
            .extend(std::iter::from_fn(|| sender.poll_block_request()));
        if self.filled < SEND_BATCH
            && let Some(req) = self.reads.pop_front()
        {
            let buf = self.sender.take_block_buffer().unwrap_or_default();
            let data = (self.source)(req, buf)?;
            self.sender.handle_block(req.object, req.sbn, data)?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Hands the kernel the datagrams built and not yet sent; whether the
    /// socket buffer was full.
    fn send(&mut self) -> Result<bool, IoError> {
        let batch: Vec<&[u8]> = (self.first..self.filled)
            .map(|i| &self.bufs[i][..self.lens[i]])
            .collect();
        match sys::send_batch(&self.sock.socket, &self.sock.dest, &batch, self.sock.gso) {
            Ok(sent) => {
                self.first += sent;
                self.backoff = Duration::from_micros(100);
                if self.first < self.filled {
                    // The socket buffer filled part way through the batch.
                    self.stats.send_backoffs += 1;
                    return Ok(true);
                }
            }
            Err(e)
                if e.kind() == ErrorKind::WouldBlock || e.raw_os_error() == Some(libc::ENOBUFS) =>
            {
                self.stats.send_backoffs += 1;
                return Ok(true);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if self.sock.gso && sys::gso_unsupported(&e) => {
                // This path cannot segment: send the same datagrams one by one.
                self.sock.gso = false;
            }
            Err(e) => return Err(self.sock.send_failure(e)),
        }
        Ok(false)
    }

    /// How long to wait after a burst: the back-off if the socket buffer
    /// was full, nothing while there is more to do, else until the pacing
    /// deadline; at most until the hook's time, and 100 ms.
    fn wait(&mut self, burst: &Burst, tick: &SendTick) -> Duration {
        let wait = if burst.blocked {
            let w = self.backoff;
            self.backoff = (self.backoff * 2).min(Duration::from_millis(20));
            w
        } else if self.first < self.filled
            || self.sender.is_finished()
            || burst.served
            || !self.reads.is_empty()
        {
            Duration::ZERO
        } else {
            match self.sender.poll_timeout() {
                Some(t) => t.saturating_duration_since(Instant::now()),
                // Idle with a hook that feeds it: until the hook's time.
                None if tick.wait.is_some() => Duration::from_millis(100),
                // Unpaced: the burst stopped at its bound; go straight on.
                None => Duration::ZERO,
            }
        };
        wait.min(tick.wait.unwrap_or(Duration::MAX))
            .min(Duration::from_millis(100))
    }
}

/// The shortest sleep of the send loop: the pacing bucket holds a millisecond
/// of the rate, so a run of about a tenth of that goes out per wake-up.
const MIN_NAP: Duration = Duration::from_micros(100);

/// What ended [`run_receiver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvOutcome {
    /// The event handler asked to stop.
    Done,
    /// The deadline passed first.
    TimedOut,
    /// The `stop` check said so (for example after SIGINT).
    Stopped,
}

/// The application side of a receive driver ([`run_receiver_app`], and the
/// subscribers' drivers): what it does with the receiver's events, its turn
/// on every pass of the loop, and its word on stopping.
pub trait RecvApp {
    /// One event of the receiver, in order. `now` is when the driver last
    /// read the clock. `Break` ends the driver, once the feedback due is sent.
    fn event(
        &mut self,
        rx: &mut Receiver,
        event: ReceiverEvent,
        now: Instant,
    ) -> Result<ControlFlow<()>, IoError>;

    /// Once a pass, before the feedback goes out: it may change the receiver
    /// (for example [`Receiver::hold_window`] from what the application has
    /// consumed), and asks for the next pass within the time it returns, if
    /// any.
    fn tick(&mut self, _rx: &mut Receiver, _now: Instant) -> Option<Duration> {
        None
    }

    /// Whether to stop. Asked once a pass: at least every 200 ms, and after
    /// any signal.
    fn stop(&mut self) -> bool {
        false
    }
}

/// Receives until `on_event` returns `Break`, `deadline` passes, or `stop`
/// returns true (it is asked at least every 200 ms, and after any signal).
/// Every event of the receiver goes to `on_event`, in order.
pub fn run_receiver(
    receiver: &mut Receiver,
    sock: &mut McastSocket,
    deadline: Option<Instant>,
    stop: impl FnMut() -> bool,
    on_event: impl FnMut(&mut Receiver, ReceiverEvent) -> Result<ControlFlow<()>, IoError>,
) -> Result<(RecvOutcome, DriverStats), IoError> {
    run_receiver_with(receiver, sock, deadline, stop, on_event, |_| None)
}

/// [`run_receiver`], and `on_tick` on every turn of the loop, before the
/// feedback goes out: it may change the receiver (for example
/// [`Receiver::hold_window`] from what the application has consumed), and
/// asks to be called again within the time it returns, if any.
pub fn run_receiver_with(
    receiver: &mut Receiver,
    sock: &mut McastSocket,
    deadline: Option<Instant>,
    stop: impl FnMut() -> bool,
    on_event: impl FnMut(&mut Receiver, ReceiverEvent) -> Result<ControlFlow<()>, IoError>,
    on_tick: impl FnMut(&mut Receiver) -> Option<Duration>,
) -> Result<(RecvOutcome, DriverStats), IoError> {
    let mut hooks = Hooks {
        stop,
        on_event,
        on_tick,
    };
    run_receiver_app(receiver, sock, deadline, &mut hooks)
}

/// [`run_receiver_with`]'s closures as a [`RecvApp`].
struct Hooks<S, E, T> {
    stop: S,
    on_event: E,
    on_tick: T,
}

impl<S, E, T> RecvApp for Hooks<S, E, T>
where
    S: FnMut() -> bool,
    E: FnMut(&mut Receiver, ReceiverEvent) -> Result<ControlFlow<()>, IoError>,
    T: FnMut(&mut Receiver) -> Option<Duration>,
{
    fn event(
        &mut self,
        rx: &mut Receiver,
        event: ReceiverEvent,
        _now: Instant,
    ) -> Result<ControlFlow<()>, IoError> {
        (self.on_event)(rx, event)
    }

    fn tick(&mut self, rx: &mut Receiver, _now: Instant) -> Option<Duration> {
        (self.on_tick)(rx)
    }

    fn stop(&mut self) -> bool {
        (self.stop)()
    }
}

/// [`run_receiver`] with the application as a [`RecvApp`]: it receives
/// until the application's event handler returns `Break`, `deadline`
/// passes, or the application says stop.
pub fn run_receiver_app(
    receiver: &mut Receiver,
    sock: &mut McastSocket,
    deadline: Option<Instant>,
    app: &mut impl RecvApp,
) -> Result<(RecvOutcome, DriverStats), IoError> {
    let threads = receiver.config().decode_threads.min(MAX_DECODE_THREADS);
    let poll = poll_for(sock)?;
    let pool = if threads == 0 {
        None
    } else {
        // The decode workers: the loop hands out jobs, they solve them and
        // wake the loop, which takes the results back. They end with the loop.
        let waker = std::sync::Arc::new(
            mio::Waker::new(poll.registry(), WAKE)
                .map_err(sock_err("creating the decode waker"))?,
        );
        let wake: decode::Wake = std::sync::Arc::new(move || {
            let _ = waker.wake();
        });
        let pool = DecodePool::decoders(threads, Some(wake)).map_err(|e| IoError::Socket {
            context: "starting the decode workers".into(),
            source: e,
        })?;
        Some(pool)
    };
    RecvDriver::new(receiver, sock, app, pool).run(poll, deadline)
}

/// The most decode workers [`run_receiver`] starts.
pub const MAX_DECODE_THREADS: usize = 64;

/// A receive driver, whichever event loop runs it (mio's in
/// [`run_receiver_app`], tokio's in [`pubsub::tokio`]), as quinn's
/// `EndpointDriver` is for quinn-proto: the receiver, its socket's
/// addresses and hop limits, the decode workers and the application. The
/// loop reads the sockets and the clock, and sends; each step here hands
/// the core what came and the application what the core says, and ends
/// with [`Halt::Done`] when the application asks to stop.
pub(crate) struct RecvDriver<'a, A> {
    pub(crate) rx: &'a mut Receiver,
    sock: &'a mut McastSocket,
    app: &'a mut A,
    pool: Option<DecodePool>,
    stats: DriverStats,
    /// Where the feedback the receiver sends is built.
    out: Vec<u8>,
}

impl<'a, A: RecvApp> RecvDriver<'a, A> {
    pub(crate) fn new(
        rx: &'a mut Receiver,
        sock: &'a mut McastSocket,
        app: &'a mut A,
        pool: Option<DecodePool>,
    ) -> Self {
        Self {
            rx,
            sock,
            app,
            pool,
            stats: DriverStats::default(),
            out: vec![0u8; crate::wire::DEFAULT_MAX_DATAGRAM],
        }
    }

    /// The mio loop: drains the sockets on every readiness event, up to
    /// [`RECV_BATCH`] datagrams a `recvmmsg` call.
    fn run(
        mut self,
        mut poll: Poll,
        deadline: Option<Instant>,
    ) -> Result<(RecvOutcome, DriverStats), IoError> {
        let mut events = Events::with_capacity(16);
        let mut batch = RecvBatch::new();
        let mut fbuf = vec![0u8; MAX_DATAGRAM + 1];
        loop {
            let (now, tick) = match self.pass(&mut batch, &mut fbuf) {
                Ok(pass) => pass,
                Err(Halt::Done(now)) => {
                    self.transmit_mio(now);
                    return Ok((RecvOutcome::Done, self.stats));
                }
                Err(Halt::Failed(e)) => return Err(e),
            };
            self.transmit_mio(now);
            if deadline.is_some_and(|d| now >= d) {
                return Ok((RecvOutcome::TimedOut, self.stats));
            }
            if self.app.stop() {
                return Ok((RecvOutcome::Stopped, self.stats));
            }
            let mut wait = tick.unwrap_or(Duration::from_millis(200));
            for t in [self.rx.poll_timeout(), deadline].into_iter().flatten() {
                wait = wait.min(t.saturating_duration_since(now));
            }
            wait_for(&mut poll, &mut events, wait)?;
        }
    }

    /// A pass of the mio loop up to its feedback: the data socket, decoded
    /// blocks, peers' NACKs, the application's tick, and the receiver's
    /// timers. Returns the time of the pass and the tick's wait.
    fn pass(
        &mut self,
        batch: &mut RecvBatch,
        fbuf: &mut [u8],
    ) -> Result<(Instant, Option<Duration>), Halt> {
        self.drain_data(batch)?;
        let now = Instant::now();
        self.decoded(now)?;
        if let Some(fb) = self.sock.feedback.as_ref() {
            let (rx, stats) = (&mut *self.rx, &mut self.stats);
            drain_socket(fb, fbuf, |d, _| peer_feedback(rx, stats, now, d))?;
        }
        let tick = self.tick(now);
        self.timeout(now)?;
        Ok((now, tick))
    }

    /// Drains the data socket (mio is edge-triggered).
    fn drain_data(&mut self, batch: &mut RecvBatch) -> Result<(), Halt> {
        loop {
            let n = match batch.recv(&self.sock.socket) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(sock_err("receiving")(e).into()),
            };
            // One clock read per batch: the datagrams arrived together.
            let now = Instant::now();
            for i in 0..n {
                let d = &batch.bufs[i][..batch.lens[i]];
                self.datagram(now, d, batch.sources[i], batch.hops[i])?;
            }
            self.submit();
        }
    }

    /// A datagram from the data group, from `from`, which arrived with
    /// `arrived` hops left if the socket says (IPV6_RECVHOPLIMIT; tokio's
    /// sockets do not). Only the sender's packets belong there, from the
    /// configured source if any (docs/protocol.md §12): the rest is counted
    /// and dropped unread. (What is not groupcast's at all goes to the
    /// receiver, which counts it under its own reason.) The receiver
    /// decides where STATUS may go and the NACKs' hop limit from the source
    /// and the arrival hop limit; a link-local source needs the
    /// interface's scope to be answered.
    pub(crate) fn datagram(
        &mut self,
        now: Instant,
        d: &[u8],
        from: Option<SocketAddrV6>,
        arrived: Option<u8>,
    ) -> Result<(), Halt> {
        if let Some(want) = self.sock.source
            && from.map(|a| *a.ip()) != Some(want)
        {
            self.stats.foreign_source += 1;
            return Ok(());
        }
        if !Arrival::DataGroup.takes(d) {
            self.stats.wrong_socket += 1;
            return Ok(());
        }
        let _ = match from {
            Some(mut from) => {
                if from.ip().is_unicast_link_local() {
                    from.set_scope_id(self.sock.ifindex);
                }
                self.rx.handle(now, from.into(), arrived, d)
            }
            None => self.rx.handle_datagram(now, d),
        };
        self.events(now)
    }

    /// NACKs leave with the hop limit the receiver says the PROBEs call for
    /// (docs/protocol.md §13.5, Hop limit), unless configured.
    fn follow_probe_hops(&mut self, want: u32) {
        if let Some(h) = self.sock.follow_probe_hops(want) {
            tracing::info!(
                hops = h,
                "NACKs now leave with the hop limit the sender's PROBEs need"
            );
        }
    }

    /// A datagram from the feedback group (the tokio driver's entry).
    #[cfg(feature = "tokio")]
    pub(crate) fn peer_feedback(&mut self, now: Instant, d: &[u8]) {
        peer_feedback(self.rx, &mut self.stats, now, d);
    }

    /// Passes the receiver's events to the application, in order.
    fn events(&mut self, now: Instant) -> Result<(), Halt> {
        while let Some(e) = self.rx.poll_event() {
            if self.app.event(self.rx, e, now)?.is_break() {
                return Err(Halt::Done(now));
            }
        }
        Ok(())
    }

    /// Hands the decode workers the blocks ready to solve.
    pub(crate) fn submit(&mut self) {
        if let Some(pool) = self.pool.as_mut() {
            pool.submit_all(self.rx);
        }
    }

    /// Takes back the blocks the decode workers solved; a failed attempt
    /// goes out again with the symbols that came meanwhile.
    pub(crate) fn decoded(&mut self, now: Instant) -> Result<(), Halt> {
        while let Some(block) = self.pool.as_mut().and_then(|p| p.try_take()) {
            self.rx.handle_decoded(now, block);
            self.events(now)?;
        }
        self.submit();
        Ok(())
    }

    /// The receiver's timers, if due; a block that ripened in vain goes out
    /// to solve.
    pub(crate) fn timeout(&mut self, now: Instant) -> Result<(), Halt> {
        // The wall clock again: it may have been stepped or suspended.
        self.rx.set_wall_clock(wall_clock());
        if self.rx.poll_timeout().is_some_and(|t| t <= now) {
            self.rx.handle_timeout(now);
            self.events(now)?;
            self.submit();
        }
        Ok(())
    }

    /// The application's turn.
    pub(crate) fn tick(&mut self, now: Instant) -> Option<Duration> {
        self.app.tick(self.rx, now)
    }

    /// Whether the application says stop (the tokio driver's entry).
    #[cfg(feature = "tokio")]
    pub(crate) fn stop(&mut self) -> bool {
        self.app.stop()
    }

    /// Sends what the receiver has to say: NACKs to the feedback group,
    /// with the hop limit it says, STATUS to the address it says
    /// (docs/protocol.md §13.2, §13.3). `send` sends a datagram, and says
    /// whether it went. Feedback is best effort: a full buffer drops it
    /// (and counts), as the receiver drops what has no address yet.
    pub(crate) fn transmit(
        &mut self,
        now: Instant,
        mut send: impl FnMut(&McastSocket, &[u8], SocketAddrV6) -> bool,
    ) {
        let unaddressed = self.rx.stats().feedback_unaddressed;
        while let Some(t) = self.rx.poll_transmit_to(now, &mut self.out) {
            let dest = match t.destination {
                TransmitTo::Feedback => {
                    if let Some(h) = t.hop_limit {
                        self.follow_probe_hops(h);
                    }
                    Some(self.sock.feedback_dest)
                }
                TransmitTo::Addr(SocketAddr::V6(to)) => Some(to),
                TransmitTo::Addr(SocketAddr::V4(_)) => None,
            };
            if !dest.is_some_and(|d| send(self.sock, &self.out[..t.len], d)) {
                self.stats.feedback_dropped += 1;
            }
        }
        let unaddressed = self.rx.stats().feedback_unaddressed - unaddressed;
        self.stats.status_unaddressed += unaddressed;
        self.stats.feedback_dropped += unaddressed;
    }

    /// [`RecvDriver::transmit`] from mio's feedback socket, if there is one.
    fn transmit_mio(&mut self, now: Instant) {
        if self.sock.feedback.is_none() {
            return;
        }
        self.transmit(now, |sock, d, to| {
            sock.feedback
                .as_ref()
                .is_some_and(|fb| fb.send_to(d, to.into()).is_ok())
        });
    }
}

/// Why a receive driver's step ended its loop.
pub(crate) enum Halt {
    /// The application asked to stop, on an event of the pass at this time.
    Done(Instant),
    /// A socket or the application failed.
    Failed(IoError),
}

impl From<IoError> for Halt {
    fn from(e: IoError) -> Self {
        Self::Failed(e)
    }
}

/// A datagram from the feedback group: only other receivers' NACKs belong
/// there (docs/protocol.md §12); a peer's NACK suppresses ours, and aims
/// nothing.
fn peer_feedback(rx: &mut Receiver, stats: &mut DriverStats, now: Instant, d: &[u8]) {
    if Arrival::FeedbackGroup.takes(d) {
        let _ = rx.handle_datagram(now, d);
    } else {
        stats.wrong_socket += 1;
    }
}

/// Buffers for one `recvmmsg` call, and what it says of each datagram.
struct RecvBatch {
    bufs: Vec<Vec<u8>>,
    lens: [usize; RECV_BATCH],
    sources: [Option<SocketAddrV6>; RECV_BATCH],
    hops: [Option<u8>; RECV_BATCH],
}

impl RecvBatch {
    fn new() -> Self {
        Self {
            // One byte more than the largest datagram, so an oversized one
            // shows as such.
            bufs: vec![vec![0u8; MAX_DATAGRAM + 1]; RECV_BATCH],
            lens: [0; RECV_BATCH],
            sources: [None; RECV_BATCH],
            hops: [None; RECV_BATCH],
        }
    }

    /// Up to [`RECV_BATCH`] datagrams from `socket`, without blocking.
    fn recv(&mut self, socket: &UdpSocket) -> std::io::Result<usize> {
        sys::recv_batch(
            socket,
            &mut self.bufs,
            &mut self.lens,
            &mut self.sources,
            &mut self.hops,
        )
    }
}

/// Waits for socket readiness or `wait`; a signal (EINTR) just ends the wait
/// early, so that the caller can look at its stop flag.
fn wait_for(poll: &mut Poll, events: &mut Events, wait: Duration) -> Result<(), IoError> {
    match poll.poll(events, Some(wait)) {
        Err(e) if e.kind() != ErrorKind::Interrupted => Err(sock_err("waiting for the socket")(e)),
        _ => Ok(()),
    }
}
