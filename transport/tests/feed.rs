//! The publish-subscribe framing (protocol.md §14), sans-IO: an [`Inbox`]'s
//! failure, eviction and ordering paths, and an [`Outbox`]'s framing, each
//! through the public API.

use std::time::{Duration, Instant};

use groupcast::proto::feed::{Batching, Delivery, ENDED_HISTORY, Inbox, InboxLimits, Outbox};
use groupcast::wire::frame::{END_LEN, FrameKind};
use groupcast::{ObjectId, SessionId};

/// A batch of messages, the first numbered `first` (protocol.md §14.1).
fn messages(first: u64, msgs: &[&[u8]]) -> Vec<u8> {
    let mut v = vec![FrameKind::Messages as u8];
    v.extend_from_slice(&first.to_be_bytes());
    v.extend_from_slice(&(msgs.len() as u32).to_be_bytes());
    for m in msgs {
        v.extend_from_slice(&(m.len() as u32).to_be_bytes());
        v.extend_from_slice(m);
    }
    v
}

/// The END frame of a session of `stream_len` bytes and `sent` messages.
fn end(stream_len: u64, sent: u64) -> Vec<u8> {
    let mut v = vec![FrameKind::End as u8];
    v.extend_from_slice(&stream_len.to_be_bytes());
    v.extend_from_slice(&sent.to_be_bytes());
    v
}

/// Everything the inbox hands out, one short word each, with its session.
fn drain(inbox: &mut Inbox) -> Vec<String> {
    std::iter::from_fn(|| inbox.poll())
        .map(|d| {
            let s = d.sender().0;
            match d {
                Delivery::Message(m) => {
                    format!("{s}:m{}={}", m.seq, String::from_utf8_lossy(&m.data))
                }
                Delivery::Stream { offset, data, .. } => format!("{s}:s{offset}+{}", data.len()),
                Delivery::Gap { from, to, .. } => format!("{s}:gap{}-{}", from.0, to.0),
                Delivery::Conflict { object, .. } => format!("{s}:conflict{}", object.0),
                Delivery::End {
                    stream_len,
                    messages,
                    ..
                } => format!("{s}:end{stream_len}/{messages}"),
                _ => "?".into(),
            }
        })
        .collect()
}

/// One message `m{seq}` in an object of its own, for object `seq`.
fn one(seq: u64) -> Vec<u8> {
    messages(seq, &[format!("m{seq}").as_bytes()])
}

// Failure.

#[test]
fn failed_objects_in_a_row_are_one_gap_whatever_order_they_fail_in() {
    let t0 = Instant::now();
    let s = SessionId(1);
    let mut inbox = Inbox::new(Duration::from_secs(60), 4);
    inbox.start_at(s, ObjectId(0));
    inbox.handle_object(t0, s, ObjectId(0), one(0));
    inbox.handle_object(t0, s, ObjectId(4), one(4));
    // Out of order: 3, then 2, then 1 lets delivery move.
    inbox.handle_failed(s, ObjectId(3));
    inbox.handle_failed(s, ObjectId(2));
    assert_eq!(
        drain(&mut inbox),
        ["1:m0=m0"],
        "object 1 holds the rest back"
    );
    inbox.handle_failed(s, ObjectId(1));
    assert_eq!(drain(&mut inbox), ["1:gap1-4", "1:m4=m4"]);
    assert_eq!(inbox.stats().gaps, 1);
    assert_eq!(inbox.next_object(s), Some(ObjectId(5)));
    assert_eq!(inbox.held_bytes(), 0);
}

#[test]
fn a_failure_before_the_start_or_of_what_was_delivered_or_of_an_unknown_session_changes_nothing() {
    let t0 = Instant::now();
    let s = SessionId(1);
    let mut inbox = Inbox::new(Duration::from_secs(60), 4);
    inbox.start_at(s, ObjectId(5));
    inbox.handle_object(t0, s, ObjectId(5), one(0));
    inbox.handle_object(t0, s, ObjectId(7), one(2));
    assert_eq!(drain(&mut inbox), ["1:m0=m0"]);
    inbox.handle_failed(s, ObjectId(4)); // before the start
    inbox.handle_failed(s, ObjectId(5)); // delivered
    inbox.handle_failed(SessionId(9), ObjectId(0)); // never heard of
    assert_eq!(drain(&mut inbox), Vec::<String>::new());
    assert_eq!(inbox.stats().gaps, 0);
    assert!(!inbox.knows(SessionId(9)), "a failure makes no session");
    assert_eq!(inbox.next_object(s), Some(ObjectId(6)));
    // Object 6 failing lets 7 out, after one gap.
    inbox.handle_failed(s, ObjectId(6));
    assert_eq!(drain(&mut inbox), ["1:gap6-7", "1:m2=m2"]);
}

#[test]
fn a_failure_known_before_the_start_is_a_gap_once_the_start_is_known() {
    let t0 = Instant::now();
    let s = SessionId(1);
    let mut inbox = Inbox::new(Duration::from_secs(60), 4);
    // Objects complete and fail before the first PROBE says where to start.
    inbox.handle_object(t0, s, ObjectId(3), one(0));
    inbox.handle_failed(s, ObjectId(4));
    inbox.handle_object(t0, s, ObjectId(5), one(2));
    assert_eq!(
        drain(&mut inbox),
        Vec::<String>::new(),
        "no start, no delivery"
    );
    assert_eq!(inbox.start_at(s, ObjectId(3)), Some(ObjectId(3)));
    assert_eq!(drain(&mut inbox), ["1:m0=m0", "1:gap4-5", "1:m2=m2"]);
}

#[test]
fn a_missing_object_is_a_gap_only_once_the_gap_timeout_has_passed() {
    let t0 = Instant::now();
    let s = SessionId(1);
    let gap = Duration::from_secs(2);
    let mut inbox = Inbox::new(gap, 4);
    inbox.start_at(s, ObjectId(0));
    assert_eq!(inbox.poll_timeout(), None, "nothing waits");
    inbox.handle_object(t0, s, ObjectId(2), one(2));
    assert_eq!(inbox.poll_timeout(), Some(t0 + gap));
    assert!(inbox.handle_timeout(t0 + gap / 2).is_empty());
    assert_eq!(drain(&mut inbox), Vec::<String>::new());
    assert_eq!(inbox.handle_timeout(t0 + gap), vec![(s, ObjectId(2))]);
    assert_eq!(drain(&mut inbox), ["1:gap0-2", "1:m2=m2"]);
    assert_eq!(inbox.poll_timeout(), None);
    // Object 1 comes late: stale, not delivered.
    assert!(!inbox.handle_object(t0 + gap, s, ObjectId(1), one(1)));
    assert_eq!(inbox.stats().stale, 1);
    assert_eq!(drain(&mut inbox), Vec::<String>::new());
}

// Eviction.

#[test]
fn an_ended_session_gives_its_slot_at_once_unreported_and_is_not_taken_again() {
    let t0 = Instant::now();
    let (a, b) = (SessionId(1), SessionId(2));
    let mut inbox = Inbox::new(Duration::from_secs(60), 1);
    inbox.start_at(a, ObjectId(0));
    inbox.handle_object(t0, a, ObjectId(0), one(0));
    inbox.handle_object(t0, a, ObjectId(1), end(0, 1));
    assert_eq!(drain(&mut inbox), ["1:m0=m0", "1:end0/1"]);
    assert!(inbox.is_ended(a));
    // The one slot goes to b at once: not idle, ended.
    assert!(inbox.follows(b));
    assert!(inbox.handle_object(t0, b, ObjectId(0), one(0)));
    assert!(!inbox.knows(a) && inbox.knows(b));
    assert_eq!(
        inbox.poll_dropped(),
        None,
        "an ended session is not reported"
    );
    assert_eq!(inbox.stats().sessions_expired, 0);
    // What comes of a afterwards is stale, and takes no slot.
    let stale = inbox.stats().stale;
    assert!(!inbox.handle_object(t0, a, ObjectId(2), one(1)));
    assert_eq!(inbox.stats().stale, stale + 1);
    assert!(inbox.follows(a), "followed to its end");
    assert!(inbox.knows(b));
}

#[test]
fn ended_sessions_are_remembered_up_to_the_history_oldest_forgotten_first() {
    let t0 = Instant::now();
    let mut inbox = Inbox::new(Duration::from_secs(60), 1);
    let n = ENDED_HISTORY as u64 + 1;
    // Sessions 1..=n end one after another through the one slot; the last
    // still holds it, the others were dropped and remembered.
    for s in 1..=n {
        let s = SessionId(s);
        inbox.start_at(s, ObjectId(0));
        assert!(inbox.handle_object(t0, s, ObjectId(0), end(0, 0)), "{s:?}");
    }
    // Session n + 1 takes the slot: n is the ENDED_HISTORY-th remembered,
    // and 1 drops out of the history.
    assert!(inbox.handle_object(t0, SessionId(n + 1), ObjectId(0), one(0)));
    let stale = inbox.stats().stale;
    // Session 2 is still remembered: its late object is stale.
    assert!(!inbox.handle_object(t0, SessionId(2), ObjectId(1), one(0)));
    assert_eq!(inbox.stats().stale, stale + 1);
    assert!(
        inbox.knows(SessionId(n + 1)),
        "a remembered session takes no slot"
    );
    // Session 1 is forgotten: its object is not stale but a new session's,
    // refused for want of a slot (session n + 1 has not ended).
    assert!(!inbox.handle_object(t0, SessionId(1), ObjectId(1), one(0)));
    assert_eq!(inbox.stats().stale, stale + 1, "not stale: forgotten");
    assert_eq!(inbox.stats().sessions_refused, 1);
    assert_eq!(inbox.poll_dropped(), Some(SessionId(1)));
}

#[test]
fn the_idlest_session_gives_way_and_what_it_held_is_released() {
    let t0 = Instant::now();
    let mut inbox = Inbox::new(Duration::from_secs(600), 3).with_limits(InboxLimits {
        publisher_idle: Duration::from_secs(60),
        ..InboxLimits::default()
    });
    // Each holds object 1 (object 0 missing): bytes held for order.
    for (s, at) in [(1u64, 20u64), (2, 0), (3, 10)] {
        let s = SessionId(s);
        inbox.start_at(s, ObjectId(0));
        inbox.handle_object(t0 + Duration::from_secs(at), s, ObjectId(1), one(1));
    }
    let held = inbox.held_bytes();
    assert_eq!(held, 3 * one(1).len());
    // At t0 + 75 s, sessions 2 and 3 have been idle 60 s or more; 2, heard
    // last the longest ago, gives way.
    let t = t0 + Duration::from_secs(75);
    assert!(inbox.handle_object(t, SessionId(4), ObjectId(0), one(0)));
    assert_eq!(inbox.poll_dropped(), Some(SessionId(2)));
    assert!(!inbox.knows(SessionId(2)));
    assert!(inbox.knows(SessionId(1)) && inbox.knows(SessionId(3)));
    assert_eq!(inbox.stats().sessions_expired, 1);
    // Session 4 holds its object (no start yet); session 2's is released.
    assert_eq!(inbox.held_bytes(), held - one(1).len() + one(0).len());
    assert_eq!(drain(&mut inbox), Vec::<String>::new());
}

#[test]
fn beyond_max_held_an_object_is_refused_and_counted_and_room_comes_back_with_delivery() {
    let t0 = Instant::now();
    let s = SessionId(1);
    let size = one(1).len();
    let long = "x".repeat(2 * size);
    let big = messages(3, &[long.as_bytes()]);
    let mut inbox = Inbox::new(Duration::from_secs(60), 2).with_limits(InboxLimits {
        max_held: 3 * size,
        max_unstarted: 3 * size,
        ..InboxLimits::default()
    });
    inbox.start_at(s, ObjectId(0));
    assert!(inbox.handle_object(t0, s, ObjectId(1), one(1)));
    assert!(inbox.handle_object(t0, s, ObjectId(2), one(2)));
    assert!(!inbox.room_for(s, big.len(), 0, 0));
    assert!(!inbox.handle_object(t0, s, ObjectId(3), big.clone()));
    assert_eq!(inbox.stats().over_budget, 2);
    assert_eq!(inbox.held_bytes(), 2 * size);
    // Object 0 fits, and lets 1 and 2 out: the room is back.
    assert!(inbox.handle_object(t0, s, ObjectId(0), one(0)));
    assert_eq!(inbox.held_bytes(), 0);
    assert!(inbox.room_for(s, big.len(), 0, 0));
    assert!(inbox.handle_object(t0, s, ObjectId(3), big));
    assert_eq!(
        drain(&mut inbox),
        ["1:m0=m0", "1:m1=m1", "1:m2=m2", &format!("1:m3={long}")]
    );
}

// Ordering.

#[test]
fn sessions_are_delivered_each_in_order_and_apart_from_one_another() {
    let t0 = Instant::now();
    let (a, b) = (SessionId(1), SessionId(2));
    let mut inbox = Inbox::new(Duration::from_secs(60), 4);
    inbox.start_at(a, ObjectId(0));
    inbox.start_at(b, ObjectId(10));
    for (s, o) in [(a, 2), (b, 11), (a, 1), (b, 10), (a, 0), (b, 12)] {
        let seq = u64::from(o % 10);
        assert!(inbox.handle_object(t0, s, ObjectId(o), one(seq)));
    }
    let got = drain(&mut inbox);
    let of = |s: u64| -> Vec<&String> {
        got.iter()
            .filter(|d| d.starts_with(&format!("{s}:")))
            .collect()
    };
    assert_eq!(of(1), ["1:m0=m0", "1:m1=m1", "1:m2=m2"]);
    assert_eq!(of(2), ["2:m0=m0", "2:m1=m1", "2:m2=m2"]);
    // b's 10 and 11 went out as soon as 10 came, before a's 0.
    let pos = |d: &str| got.iter().position(|g| g == d).unwrap();
    assert!(pos("2:m1=m1") < pos("1:m0=m0"), "{got:?}");
}

#[test]
fn a_duplicate_is_stale_and_delivered_once_and_a_conflict_is_said_at_once() {
    let t0 = Instant::now();
    let s = SessionId(1);
    let mut inbox = Inbox::new(Duration::from_secs(60), 4);
    inbox.start_at(s, ObjectId(0));
    assert!(inbox.handle_object(t0, s, ObjectId(1), one(1)));
    assert!(!inbox.handle_object(t0, s, ObjectId(1), one(1)), "held");
    assert!(inbox.handle_object(t0, s, ObjectId(0), one(0)));
    assert!(
        !inbox.handle_object(t0, s, ObjectId(0), one(0)),
        "delivered"
    );
    assert_eq!(inbox.stats().stale, 2);
    inbox.handle_conflict(s, ObjectId(0));
    assert_eq!(drain(&mut inbox), ["1:m0=m0", "1:m1=m1", "1:conflict0"]);
    assert_eq!(inbox.stats().conflicts, 1);
}

#[test]
fn an_end_that_says_less_than_was_delivered_is_a_gap_and_the_session_goes_on() {
    let t0 = Instant::now();
    let s = SessionId(1);
    let mut inbox = Inbox::new(Duration::from_secs(60), 4);
    inbox.start_at(s, ObjectId(0));
    inbox.handle_object(t0, s, ObjectId(0), messages(0, &[b"a", b"b"]));
    // Two messages were delivered; an END claiming one is forged.
    inbox.handle_object(t0, s, ObjectId(1), end(0, 1));
    assert!(!inbox.is_ended(s));
    inbox.handle_object(t0, s, ObjectId(2), end(0, 2));
    assert_eq!(
        drain(&mut inbox),
        ["1:m0=a", "1:m1=b", "1:gap1-2", "1:end0/2"]
    );
    assert!(inbox.is_ended(s));
    assert_eq!(inbox.stats().malformed, 1);
    // Nothing after the end is taken.
    assert!(!inbox.handle_object(t0, s, ObjectId(3), one(2)));
}

#[test]
fn an_outbox_frames_messages_then_stream_then_end_in_order_and_takes_nothing_after() {
    let t0 = Instant::now();
    let mut out = Outbox::new(Batching {
        flush_delay: Duration::from_secs(1),
        batch_bytes: 1 << 20,
        stream_bytes: 12,
    });
    // The first message, alone after quiet, goes at once; the next two wait
    // for the flush delay together.
    assert_eq!(out.push_message(t0, b"a"), Some(0));
    assert_eq!(out.push_message(t0, b"b"), Some(1));
    assert_eq!(out.push_message(t0, b"c"), Some(2));
    let due = out.poll_timeout().expect("an open batch");
    assert!(due > t0 && due <= t0 + Duration::from_secs(1), "{due:?}");
    out.handle_timeout(due - Duration::from_millis(1));
    out.handle_timeout(due);
    // Stream bytes cut the batch; pieces of at most 12 bytes, header
    // included.
    assert_eq!(out.push_stream(due, b"0123456"), 7);
    out.end();
    assert!(out.is_ended());
    assert_eq!(out.push_message(due, b"late"), None);
    assert_eq!(out.push_stream(due, b"late"), 0);
    assert_eq!((out.messages(), out.stream_len()), (3, 7));
    let objects: Vec<Vec<u8>> = std::iter::from_fn(|| out.poll_object()).collect();
    assert_eq!(objects[0], messages(0, &[b"a"]));
    assert_eq!(objects[1], messages(1, &[b"b", b"c"]));
    let stream: Vec<&Vec<u8>> = objects[2..objects.len() - 1].iter().collect();
    assert!(
        stream
            .iter()
            .all(|o| o[0] == FrameKind::Stream as u8 && o.len() <= 12)
    );
    assert_eq!(*objects.last().unwrap(), end(7, 3));
    assert_eq!(objects.last().unwrap().len(), END_LEN);
    // The inbox gives it all back, in order, whatever order objects come in.
    let s = SessionId(7);
    let mut inbox = Inbox::new(Duration::from_secs(60), 1);
    inbox.start_at(s, ObjectId(0));
    for (i, o) in objects.iter().enumerate().rev() {
        inbox.handle_object(t0, s, ObjectId(i as u32), o.clone());
    }
    let mut got = drain(&mut inbox);
    let last = got.pop();
    assert_eq!(got[..3], ["7:m0=a", "7:m1=b", "7:m2=c"]);
    let mut at = 0;
    for d in &got[3..] {
        let (offset, len) = d["7:s".len()..].split_once('+').unwrap();
        assert_eq!(offset.parse::<u64>().unwrap(), at, "{got:?}");
        at += len.parse::<u64>().unwrap();
    }
    assert_eq!(at, 7);
    assert_eq!(last.as_deref(), Some("7:end7/3"));
}
