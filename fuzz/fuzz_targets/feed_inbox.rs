//! Drives a subscriber's inbox (and a reassembler) with objects from several
//! sessions: two honest publishers, whose objects (framed by a real outbox:
//! messages and a stream) arrive in any order, again, or never, and forgers,
//! whose frames carry any kind, sequence number, count, length and offset,
//! under object ids anywhere in u32, with starts, gaps, failures and time
//! passing. Whatever happens, nothing panics or overflows; the inbox never
//! holds more than its limits, nor follows more sessions than its slots;
//! each honest session's messages come out in order, each at most once and
//! as sent, and its stream bytes come out as sent, each piece where the last
//! ended unless a gap was delivered between them; and a forged frame that
//! parses emits as the bytes it came from. protocol.md §14.
#![no_main]

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use groupcast::proto::feed::{Batching, Delivery, Inbox, InboxLimits, Outbox};
use groupcast::wire::frame::{FrameKind, FrameRepr};
use groupcast::{ObjectId, Reassembler, ReceiverEvent, SessionId};
use libfuzzer_sys::fuzz_target;

const HONEST: [SessionId; 2] = [SessionId(1), SessionId(2)];
const FORGED: [SessionId; 4] = [SessionId(10), SessionId(11), SessionId(12), SessionId(13)];

#[derive(Debug, Arbitrary)]
enum Frame {
    Messages {
        first: u64,
        count: u32,
        lens: Vec<u16>,
    },
    Stream {
        offset: u64,
        len: u16,
    },
    End {
        stream_len: u64,
        messages: u64,
    },
    Raw(Vec<u8>),
}

impl Frame {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Frame::Messages { first, count, lens } => {
                let mut v = vec![FrameKind::Messages as u8];
                v.extend_from_slice(&first.to_be_bytes());
                v.extend_from_slice(&count.to_be_bytes());
                for &l in lens.iter().take(64) {
                    v.extend_from_slice(&(l as u32).to_be_bytes());
                    v.extend(std::iter::repeat_n(0xab, l as usize % 512));
                }
                v
            }
            Frame::Stream { offset, len } => {
                let mut v = vec![FrameKind::Stream as u8];
                v.extend_from_slice(&offset.to_be_bytes());
                v.extend(std::iter::repeat_n(0xcd, *len as usize % 4096));
                v
            }
            Frame::End {
                stream_len,
                messages,
            } => {
                let mut v = vec![FrameKind::End as u8];
                v.extend_from_slice(&stream_len.to_be_bytes());
                v.extend_from_slice(&messages.to_be_bytes());
                v
            }
            Frame::Raw(b) => b.iter().copied().take(4096).collect(),
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Op {
    /// An honest publisher's object `index` (of those it framed) completes.
    Honest {
        publisher: bool,
        index: u8,
    },
    /// An honest publisher's object fails for good.
    HonestFailed {
        publisher: bool,
        index: u8,
    },
    /// A forged object completes, under a forged session id.
    Forged {
        session: u8,
        object: u32,
        frame: Frame,
    },
    /// A forged object fails.
    Failed {
        session: u8,
        object: u32,
    },
    /// A PROBE says where a session starts (its first) or what it retains.
    Start {
        honest: bool,
        session: u8,
        object: u32,
    },
    Retains {
        honest: bool,
        session: u8,
        object: u32,
    },
    /// Time passes.
    Wait {
        ms: u16,
    },
    /// A decoded block, a completion or a failure reaches the reassembler.
    Block {
        session: u8,
        object: u8,
        offset: u32,
        len: u16,
    },
    Complete {
        session: u8,
        object: u8,
        size: u32,
    },
    Abort {
        session: u8,
        object: u8,
    },
}

#[derive(Debug, Arbitrary)]
struct Input {
    /// Messages (by length) and stream pieces (by length) of each honest
    /// publisher, in the order it sends them.
    sends: [Vec<(bool, u8)>; 2],
    max_held: u16,
    max_unstarted: u16,
    ops: Vec<Op>,
}

/// What one honest publisher sent: its objects, messages and stream.
struct Sent {
    objects: Vec<Vec<u8>>,
    messages: Vec<Vec<u8>>,
    stream: Vec<u8>,
}

fn publish(sends: &[(bool, u8)], t0: Instant) -> Sent {
    let mut out = Outbox::new(Batching {
        batch_bytes: 300,
        stream_bytes: 200,
        ..Batching::default()
    });
    let mut messages = Vec::new();
    let mut stream = Vec::new();
    for (i, &(is_msg, len)) in sends.iter().take(64).enumerate() {
        let bytes: Vec<u8> = (0..len).map(|b| b ^ i as u8).collect();
        if is_msg {
            out.push_message(t0, &bytes);
            messages.push(bytes);
        } else {
            out.push_stream(t0, &bytes);
            stream.extend_from_slice(&bytes);
        }
    }
    out.end();
    Sent {
        objects: std::iter::from_fn(|| out.poll_object()).collect(),
        messages,
        stream,
    }
}

/// Where an honest session's delivery stands, to check each next delivery.
#[derive(Default)]
struct Seen {
    next_seq: u64,
    stream_at: u64,
    seq_gap: bool,
    stream_gap: bool,
    ended: bool,
}

fuzz_target!(|input: Input| {
    let t0 = Instant::now();
    let sent = [publish(&input.sends[0], t0), publish(&input.sends[1], t0)];
    let limits = InboxLimits {
        max_held: input.max_held as usize * 16 + 1,
        max_unstarted: input.max_unstarted as usize * 4 + 1,
        publisher_idle: Duration::from_secs(5),
    };
    let mut inbox = Inbox::new(Duration::from_secs(1), 4).with_limits(limits);
    let mut objects = Reassembler::new();
    let mut now = t0;
    let mut seen: HashMap<SessionId, Seen> = HashMap::new();
    let mut fed: HashMap<(SessionId, ObjectId), usize> = HashMap::new();
    let mut handed: HashSet<(usize, usize)> = HashSet::new();
    let mut refused: HashSet<SessionId> = HashSet::new();
    for op in input.ops.iter().take(512) {
        match op {
            Op::Honest { publisher, index } => {
                let p = *publisher as usize;
                let objs = &sent[p].objects;
                let i = *index as usize % objs.len();
                // The receiver completes an object once (it remembers what
                // it completed), and nothing of a session refused.
                if !refused.contains(&HONEST[p]) && handed.insert((p, i)) {
                    inbox.handle_object(now, HONEST[p], ObjectId(i as u32), objs[i].clone());
                }
            }
            Op::HonestFailed { publisher, index } => {
                let p = *publisher as usize;
                let i = *index as usize % sent[p].objects.len();
                inbox.handle_failed(HONEST[p], ObjectId(i as u32));
            }
            Op::Forged {
                session,
                object,
                frame,
            } => {
                let s = FORGED[*session as usize % FORGED.len()];
                let bytes = frame.bytes();
                // A frame that parses emits as the very bytes it came from.
                if let Ok(repr) = FrameRepr::parse(&bytes) {
                    assert_eq!(repr.to_vec(), bytes);
                }
                inbox.handle_object(now, s, ObjectId(*object), bytes);
            }
            Op::Failed { session, object } => {
                let s = FORGED[*session as usize % FORGED.len()];
                inbox.handle_failed(s, ObjectId(*object));
            }
            Op::Start {
                honest,
                session,
                object,
            }
            | Op::Retains {
                honest,
                session,
                object,
            } => {
                let s = if *honest {
                    HONEST[*session as usize % 2]
                } else {
                    FORGED[*session as usize % FORGED.len()]
                };
                // An honest publisher retains from an object it sent.
                let object = if *honest {
                    *object % (sent[*session as usize % 2].objects.len() as u32 + 1)
                } else {
                    *object
                };
                if matches!(op, Op::Start { .. }) {
                    inbox.start_at(s, ObjectId(object));
                } else {
                    inbox.sender_retains(s, ObjectId(object));
                }
            }
            Op::Wait { ms } => {
                now += Duration::from_millis(*ms as u64);
                inbox.handle_timeout(now);
            }
            Op::Block {
                session,
                object,
                offset,
                len,
            } => {
                let (s, o) = (SessionId(*session as u64 % 4), ObjectId(*object as u32 % 8));
                let data = vec![7u8; *len as usize % 2048];
                *fed.entry((s, o)).or_default() += data.len();
                objects.handle(ReceiverEvent::BlockDecoded {
                    session: s,
                    object: o,
                    offset: *offset as u64,
                    sbn: 0,
                    data,
                });
            }
            Op::Complete {
                session,
                object,
                size,
            } => {
                let (s, o) = (SessionId(*session as u64 % 4), ObjectId(*object as u32 % 8));
                fed.remove(&(s, o));
                let done = objects.handle(ReceiverEvent::ObjectComplete {
                    session: s,
                    object: o,
                    size: *size as u64,
                    hash: [0; 32],
                    name: String::new(),
                });
                if let Some(d) = done {
                    assert_eq!(d.data.len() as u64, *size as u64);
                }
            }
            Op::Abort { session, object } => {
                let (s, o) = (SessionId(*session as u64 % 4), ObjectId(*object as u32 % 8));
                fed.remove(&(s, o));
                objects.drop_object(s, o);
            }
        }
        // The reassembler holds at most what was fed of objects in progress.
        assert!(objects.held_bytes() <= fed.values().sum::<usize>());
        assert!(inbox.held_bytes() <= limits.max_held);
        assert!(inbox.held_unstarted_bytes() <= limits.max_unstarted);
        while let Some(s) = inbox.poll_dropped() {
            refused.insert(s);
        }
        while let Some(d) = inbox.poll() {
            check(&sent, &mut seen, d);
        }
    }
});

/// An honest session's delivery is what its publisher sent, in order.
fn check(sent: &[Sent; 2], seen: &mut HashMap<SessionId, Seen>, d: Delivery) {
    let sender = d.sender();
    let Some(p) = HONEST.iter().position(|&h| h == sender) else {
        return;
    };
    // Delivery may start anywhere the publisher retains (a late start).
    let st = seen.entry(sender).or_insert(Seen {
        seq_gap: true,
        stream_gap: true,
        ..Seen::default()
    });
    assert!(!st.ended, "nothing after the end");
    match d {
        Delivery::Message(m) => {
            assert!(m.seq >= st.next_seq, "in order, at most once");
            assert!(
                st.seq_gap || m.seq == st.next_seq,
                "no message skipped without a gap"
            );
            assert_eq!(sent[p].messages[m.seq as usize], m.data, "as sent");
            st.next_seq = m.seq + 1;
            st.seq_gap = false;
        }
        Delivery::Stream { offset, data, .. } => {
            assert!(offset >= st.stream_at, "in order");
            assert!(
                st.stream_gap || offset == st.stream_at,
                "no byte skipped without a gap"
            );
            let end = offset as usize + data.len();
            assert_eq!(&sent[p].stream[offset as usize..end], &data[..], "as sent");
            st.stream_at = end as u64;
            st.stream_gap = false;
        }
        Delivery::Gap { .. } => {
            st.seq_gap = true;
            st.stream_gap = true;
        }
        Delivery::Conflict { .. } => {}
        Delivery::End {
            stream_len,
            messages,
            ..
        } => {
            assert_eq!(stream_len, sent[p].stream.len() as u64);
            assert_eq!(messages, sent[p].messages.len() as u64);
            st.ended = true;
        }
        d => panic!("a delivery the inbox does not make: {d:?}"),
    }
}
