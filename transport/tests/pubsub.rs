//! Publishers and subscribers over real sockets, in network namespaces
//! behind a bridge (root; skipped loudly elsewhere, never under
//! GROUPCAST_REQUIRE_NETNS=1).

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use groupcast::SessionId;
use groupcast::io::pubsub::{Event, Publisher, Subscriber};
use groupcast_testing::netns::{Netns, available, enter};

/// Hosts behind one bridge, each on its own veth, with the drop rates given
/// (percent of the group's packets arriving there).
fn lab(tag: &str, hosts: &[(&str, u32)]) -> (Netns, Vec<String>) {
    let mut n = Netns::new(tag);
    let hub = n.ns("hub");
    let mut names = Vec::new();
    let mut ports = Vec::new();
    for (i, (host, drop)) in hosts.iter().enumerate() {
        let ns = n.ns(host);
        let port = format!("p{i}");
        n.link(&hub, &port, &ns, "e0");
        n.drop_percent(&ns, *drop);
        ports.push(port);
        names.push(ns);
    }
    let refs: Vec<&str> = ports.iter().map(String::as_str).collect();
    n.bridge(&hub, &refs);
    for ns in &names {
        n.wait_link(ns, "e0");
    }
    (n, names)
}

/// Opens `f` in namespace `ns`, on a thread of its own (the namespace is
/// the thread's; the handle's driver thread inherits it).
fn open_in<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = ns.to_owned();
    std::thread::spawn(move || {
        enter(&ns);
        f()
    })
    .join()
    .unwrap()
}

fn message(publisher: usize, seq: u64) -> Vec<u8> {
    let len = 8 + (seq as usize * 37 + publisher * 11) % 120;
    (0..len)
        .map(|j| (seq as usize * 31 + j + publisher) as u8)
        .collect()
}

/// Acceptance 2 of the messages issue: 100,000 small messages from 2
/// publishers reach 3 subscribers that lose 0%, 5% and 15% of the packets;
/// each subscriber sees each publisher's messages exactly once and in order,
/// and both publishers' close returns confirmed.
#[test]
fn small_messages_from_two_publishers_reach_three_subscribers_in_order_through_loss() {
    if !available("small_messages_from_two_publishers") {
        return;
    }
    let (_lab, ns) = lab(
        "msg",
        &[("pa", 0), ("pb", 0), ("s0", 0), ("s5", 5), ("s15", 15)],
    );
    const EACH: u64 = 50_000;
    let subs: Vec<Subscriber> = ns[2..]
        .iter()
        .map(|n| open_in(n, || Subscriber::builder("msgs", "e0").open().unwrap()))
        .collect();
    let pubs: Vec<Publisher> = ns[..2]
        .iter()
        .map(|n| {
            open_in(n, || {
                Publisher::builder("msgs", "e0")
                    .rate_bits(200_000_000)
                    .open()
                    .unwrap()
            })
        })
        .collect();
    let ids: Vec<SessionId> = pubs.iter().map(Publisher::session).collect();
    let senders: Vec<_> = pubs
        .into_iter()
        .enumerate()
        .map(|(p, publisher)| {
            std::thread::spawn(move || {
                for seq in 0..EACH {
                    assert_eq!(publisher.send(&message(p, seq)).unwrap(), seq);
                }
                publisher.close().unwrap()
            })
        })
        .collect();
    let readers: Vec<_> = subs
        .into_iter()
        .map(|sub| {
            let ids = ids.clone();
            std::thread::spawn(move || {
                let mut next = [0u64; 2];
                let mut ended = 0;
                let deadline = Instant::now() + Duration::from_secs(240);
                while ended < 2 {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match sub.next_event(Some(left)).expect("events until both end") {
                        Event::Message(m) => {
                            let p = ids
                                .iter()
                                .position(|&s| s == m.sender)
                                .expect("a publisher");
                            assert_eq!(m.seq, next[p], "in order, exactly once");
                            assert_eq!(m.data, message(p, m.seq));
                            next[p] += 1;
                        }
                        Event::End {
                            sender, messages, ..
                        } => {
                            let p = ids.iter().position(|&s| s == sender).unwrap();
                            assert_eq!((messages, next[p]), (EACH, EACH));
                            ended += 1;
                        }
                        e => panic!("unexpected {e:?}"),
                    }
                }
                next
            })
        })
        .collect();
    for r in readers {
        assert_eq!(r.join().unwrap(), [EACH, EACH]);
    }
    for s in senders {
        let report = s.join().unwrap();
        assert!(report.confirmed, "{report:?}");
        assert_eq!(report.stats.receivers_tracked, 3, "{report:?}");
    }
}

/// A stream through `Write` and `Read`: bytes come out identical, `read`
/// returns 0 at the end, and messages of several megabytes go whole.
#[test]
fn a_stream_and_large_messages_arrive_whole() {
    if !available("a_stream_and_large_messages") {
        return;
    }
    let (_lab, ns) = lab("str", &[("p", 0), ("s", 10)]);
    let sub = open_in(&ns[1], || {
        Subscriber::builder("stream", "e0").open().unwrap()
    });
    let publisher = open_in(&ns[0], || {
        Publisher::builder("stream", "e0")
            .rate_bits(400_000_000)
            .open()
            .unwrap()
    });
    let data: Vec<u8> = (0..24_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let sent = data.clone();
    let writer = std::thread::spawn(move || {
        let mut w = publisher.into_stream();
        for chunk in sent.chunks(100_003) {
            w.write_all(chunk).unwrap();
        }
        w.flush().unwrap();
        w.close().unwrap()
    });
    let mut r = sub.into_stream();
    let mut got = Vec::new();
    r.read_to_end(&mut got).unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got == data, "the stream differs");
    assert!(writer.join().unwrap().confirmed);

    let sub = open_in(&ns[1], || Subscriber::builder("big", "e0").open().unwrap());
    let publisher = open_in(&ns[0], || Publisher::builder("big", "e0").open().unwrap());
    let big: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i; (3 << 20) + i as usize]).collect();
    for m in &big {
        publisher.send(m).unwrap();
    }
    for (i, m) in big.iter().enumerate() {
        let got = sub
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("{e}: {:?} / {:?}", sub.stats(), publisher.stats()));
        assert_eq!((got.seq, &got.data), (i as u64, m));
    }
    assert!(publisher.close().unwrap().confirmed);
}

/// Acceptance 4 of the messages issue: the same message test under tokio,
/// with the async handles (`send().await`, `recv().await`) and a stream
/// through `AsyncWrite` and `AsyncRead`.
#[test]
fn the_async_handles_pass_the_message_test_under_tokio() {
    use groupcast::io::pubsub::tokio as gt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if !available("the_async_handles") {
        return;
    }
    let (_lab, ns) = lab(
        "async",
        &[("pa", 0), ("pb", 0), ("s0", 0), ("s5", 5), ("s15", 15)],
    );
    const EACH: u64 = 50_000;
    // Each handle is opened on a thread that entered its namespace, and
    // driven by that thread's runtime.
    let run = |i: usize, ns: String| {
        std::thread::spawn(move || {
            enter(&ns);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if i < 2 {
                    let p = Publisher::builder("amsgs2", "e0")
                        .rate_bits(200_000_000)
                        .open_async()
                        .unwrap();
                    let me = p.session();
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    for seq in 0..EACH {
                        let mut m = vec![i as u8];
                        m.extend(message(i, seq));
                        assert_eq!(p.send(&m).await.unwrap(), seq);
                    }
                    let report = p.close().await.unwrap();
                    assert!(report.confirmed, "{report:?}");
                    (Some(me), [0u64; 2], Vec::new())
                } else {
                    let s = Subscriber::builder("amsgs2", "e0").open_async().unwrap();
                    let mut ids: Vec<SessionId> = Vec::new();
                    let mut next = [0u64; 2];
                    let mut ended = 0;
                    while ended < 2 {
                        let e = tokio::time::timeout(Duration::from_secs(120), s.next_event())
                            .await
                            .expect("events until both end")
                            .unwrap();
                        match e {
                            Event::Message(m) => {
                                // Its first byte names its publisher.
                                let p = m.data[0] as usize;
                                if ids.len() <= p {
                                    ids.resize(p + 1, SessionId(0));
                                }
                                if ids[p] == SessionId(0) {
                                    ids[p] = m.sender;
                                }
                                assert_eq!(ids[p], m.sender, "one publisher, one session");
                                assert_eq!(m.seq, next[p], "in order, exactly once");
                                assert_eq!(m.data[1..], message(p, m.seq));
                                next[p] += 1;
                            }
                            Event::End { messages, .. } => {
                                assert_eq!(messages, EACH);
                                ended += 1;
                            }
                            e => panic!("unexpected {e:?}"),
                        }
                    }
                    (None, next, ids)
                }
            })
        })
    };
    let threads: Vec<_> = ns
        .iter()
        .enumerate()
        .map(|(i, n)| run(i, n.clone()))
        .collect();
    let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let publishers: Vec<SessionId> = results.iter().filter_map(|r| r.0).collect();
    for r in &results[2..] {
        assert_eq!(r.1, [EACH, EACH]);
        assert_eq!(
            r.2, publishers,
            "each publisher's messages under its own session"
        );
    }

    // A stream through AsyncWrite and AsyncRead.
    let data: Vec<u8> = (0..6_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let want = data.clone();
    let reader = {
        let n = ns[3].clone();
        std::thread::spawn(move || {
            enter(&n);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut r = Subscriber::builder("astream", "e0")
                    .open_async()
                    .unwrap()
                    .into_stream();
                let mut got = Vec::new();
                tokio::time::timeout(Duration::from_secs(60), r.read_to_end(&mut got))
                    .await
                    .unwrap()
                    .unwrap();
                got
            })
        })
    };
    let writer = {
        let n = ns[0].clone();
        std::thread::spawn(move || {
            enter(&n);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                let mut w = gt::Publisher::into_stream(
                    Publisher::builder("astream", "e0")
                        .rate_bits(200_000_000)
                        .open_async()
                        .unwrap(),
                );
                for chunk in data.chunks(70_001) {
                    w.write_all(chunk).await.unwrap();
                }
                w.flush().await.unwrap();
                w.close().await.unwrap()
            })
        })
    };
    assert!(writer.join().unwrap().confirmed);
    assert!(reader.join().unwrap() == want, "the async stream differs");
}
