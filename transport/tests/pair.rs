//! The whole core end to end, without the simulator: a sender and receivers
//! in the shared driver (groupcast-testing), every mode, with loss.

use groupcast::{Mode, Rounds, SenderConfig};
use groupcast_fec::{pseudo_random_bytes, splitmix64};
use groupcast_testing::Pair;

fn config(mode: Mode) -> SenderConfig {
    SenderConfig {
        mode,
        max_datagram: 300,
        block_symbols: 40,
        interleave: 4,
        rate: Some(2_000_000),
        rounds: Rounds::Unlimited,
        repair_overhead: if mode == Mode::Carousel { 0.3 } else { 0.0 },
        ..SenderConfig::default()
    }
}

/// Every mode carries two objects to three receivers that each lose a
/// tenth of the sender's datagrams, independently; every copy is identical,
/// and the feedback modes' sender finishes by itself.
#[test]
fn every_mode_completes_through_loss() {
    let a = pseudo_random_bytes(50_000, 1);
    let b = pseudo_random_bytes(7_000, 2);
    for mode in [Mode::Carousel, Mode::Nack, Mode::Hybrid] {
        let mut pair = Pair::new(config(mode), 3)
            .losing(|i, n| splitmix64((i as u64) << 40 | n).is_multiple_of(10));
        pair.sender.add_object(a.clone(), "a").unwrap();
        pair.sender.add_object(b.clone(), "b").unwrap();
        pair.drive(200_000, |p| p.all_have(2));
        for got in &mut pair.objects {
            // In completion order: the small one may finish first.
            got.sort_by(|x, y| x.name.cmp(&y.name));
            let names: Vec<&str> = got.iter().map(|o| o.name.as_str()).collect();
            assert_eq!(names, ["a", "b"], "{mode:?}");
            assert_eq!((&got[0].data, &got[1].data), (&a, &b), "{mode:?}");
        }
        if mode != Mode::Carousel {
            pair.drive(200_000, |p| p.sender.is_finished());
            // Simulated time: the linger after the last receiver, not a timeout.
            assert!(
                pair.elapsed() < std::time::Duration::from_secs(3),
                "{mode:?}"
            );
        }
        eprintln!(
            "{mode:?}: {} steps, {:?} simulated",
            pair.steps(),
            pair.elapsed()
        );
    }
}

/// A feed: an open hybrid sender takes objects while it runs, retires
/// each as soon as every receiver acknowledged it (as a publisher bounding
/// its memory does), with first-pass repair that receivers often no longer
/// need; every receiver still gets every object, and the sender finishes
/// once closed. (Retiring an object whose first pass is still sending its
/// repair does not stop the pass there.)
#[test]
fn an_open_sender_retiring_what_is_acknowledged_carries_a_feed_to_its_end() {
    let mut pair = Pair::new(
        SenderConfig {
            repair_overhead: 2.0,
            ..config(Mode::Hybrid)
        },
        3,
    )
    .losing(|i, n| i > 0 && splitmix64((i as u64) << 40 | n).is_multiple_of(10));
    pair.sender.set_open(true);
    let objects: Vec<Vec<u8>> = (0..12u64)
        .map(|i| pseudo_random_bytes(30_000 + i as usize * 5000, i))
        .collect();
    let mut added = 0;
    let mut retired = 0;
    while !pair.all_have(objects.len()) {
        if added < objects.len() && pair.steps().is_multiple_of(40) {
            pair.sender.add_object(objects[added].clone(), "").unwrap();
            added += 1;
        }
        if let Some(a) = pair.sender.acknowledged() {
            retired = retired.max(a.0);
            pair.sender.retire_before(a);
        }
        assert!(pair.steps() < 400_000, "stuck with {added} added");
        assert!(pair.step(), "an open sender is never idle");
        assert!(!pair.sender.is_finished(), "finished while open");
    }
    assert!(retired > 0, "nothing was ever acknowledged");
    for got in &pair.objects {
        let data: Vec<&Vec<u8>> = {
            let mut g: Vec<_> = got.iter().collect();
            g.sort_by_key(|o| o.object);
            g.into_iter().map(|o| &o.data).collect()
        };
        assert_eq!(data, objects.iter().collect::<Vec<_>>());
    }
    pair.sender.set_open(false);
    pair.drive(400_000, |p| p.sender.is_finished());
}
