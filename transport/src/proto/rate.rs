//! `RateControl`: what the sender knows of round trips and how fast it may
//! send. The group round-trip time (GRTT) from receivers' echoes, the AIMD
//! rate from their loss reports, and the average loss they report. It holds
//! no budget (that is `pacing.rs`) and knows nothing of packets.

use std::time::{Duration, Instant};

use super::feedback::{Aimd, FeedbackConfig};

#[derive(Debug, Clone)]
pub(crate) struct RateControl {
    grtt: Duration,
    /// The largest sample since the last PROBE.
    window_max: Duration,
    /// The GRTT rises to at most twice this: the GRTT of a PROBE, moved to
    /// the GRTT of a later PROBE only once this much time has passed since
    /// (or at once when the GRTT is below it). So the GRTT at most doubles
    /// per PROBE and per its own value in time, however many receivers
    /// report (protocol.md §13.4, "GRTT").
    base: Duration,
    /// When `base` last moved.
    base_at: Option<Instant>,
    min_grtt: Duration,
    max_grtt: Duration,
    probe_interval: Duration,
    aimd: Option<Aimd>,
    /// The configured rate (bytes per second), if paced.
    configured: Option<u64>,
    /// The rate AIMD has set, if it has.
    rate: Option<u64>,
    last_decrease: Option<Instant>,
    /// The receivers' average measured loss: the mean of the first 16
    /// measured reports, then a running average of weight 1/16.
    loss: f64,
    loss_reports: u32,
}

impl RateControl {
    pub(crate) fn new(fb: &FeedbackConfig, rate: Option<u64>) -> Self {
        let grtt = fb.initial_grtt.clamp(fb.min_grtt, fb.max_grtt);
        Self {
            grtt,
            window_max: Duration::ZERO,
            base: grtt,
            base_at: None,
            min_grtt: fb.min_grtt,
            max_grtt: fb.max_grtt,
            probe_interval: fb.probe_interval,
            aimd: fb.aimd,
            configured: rate,
            rate,
            last_decrease: None,
            loss: 0.0,
            loss_reports: 0,
        }
    }

    /// The group round-trip time.
    pub(crate) fn grtt(&self) -> Duration {
        self.grtt
    }

    /// The rate in force, bytes per second (0 when unpaced).
    pub(crate) fn rate(&self) -> u64 {
        self.rate.or(self.configured).unwrap_or(0)
    }

    /// The receivers' average reported loss, 0..=0.5.
    pub(crate) fn loss(&self) -> f64 {
        self.loss
    }

    /// A round-trip sample from a STATUS echo. It may at most double the
    /// base (`RateControl::base`); the GRTT rises to it at once. A sample of
    /// a receiver that may not raise the GRTT (`may_raise` false: one not
    /// yet consistent, or that counts for nothing) is taken up to the base
    /// only: it holds the GRTT there, never above. Whether the GRTT rose.
    pub(crate) fn on_rtt_sample(&mut self, rtt: Duration, may_raise: bool) -> bool {
        let cap = if may_raise { self.base * 2 } else { self.base };
        let rtt = rtt.min(cap).clamp(self.min_grtt, self.max_grtt);
        self.window_max = self.window_max.max(rtt);
        if rtt > self.grtt {
            self.grtt = rtt;
            return true;
        }
        false
    }

    /// A STATUS's measured loss report: into the average and, above the
    /// AIMD threshold, a cut of the rate (at most once per GRTT). Whether the
    /// rate was cut.
    pub(crate) fn on_loss_report(&mut self, now: Instant, loss_ppm: u32) -> bool {
        // The typical receiver's loss: an average over the reports of all.
        // (The largest report of a big group is mostly noise, and would buy
        // every block far more repair than its neediest receiver lacks.)
        // A mean at first: a running average from 0 would say a third of the
        // loss after 6 reports, and the first NACKs' repair would go short.
        let reported = (loss_ppm as f64 / 1e6).min(0.5);
        self.loss = average_loss(self.loss, self.loss_reports, reported);
        self.loss_reports = self.loss_reports.saturating_add(1);
        if let Some(a) = self.aimd
            && self.configured.is_some()
            && loss_ppm as f64 > a.loss_threshold * 1e6
            && self.may_change(now)
        {
            let r = (self.rate() as f64 * a.decrease) as u64;
            self.rate = Some(r.max(a.floor).max(1));
            self.last_decrease = Some(now);
            return true;
        }
        false
    }

    /// A PROBE goes out: the GRTT moves a quarter of the way down towards the
    /// largest sample since the last one (it rose to any larger one at once;
    /// with no sample it stays), the base moves to it if a base's time has
    /// passed (or it is below the base), and AIMD adds a step. Whether the
    /// rate changed.
    pub(crate) fn on_probe(&mut self, now: Instant) -> bool {
        let decayed = if self.window_max.is_zero() {
            self.grtt
        } else {
            (self.grtt.mul_f64(0.75) + self.window_max.mul_f64(0.25)).max(self.window_max)
        };
        self.grtt = decayed.clamp(self.min_grtt, self.max_grtt);
        self.window_max = Duration::ZERO;
        if self.grtt < self.base || self.base_at.is_none_or(|at| now >= at + self.base) {
            self.base = self.grtt;
            self.base_at = Some(now);
        }
        if let Some(a) = self.aimd
            && let Some(max) = self.configured
            && self.may_change(now)
        {
            let step = a.increase as f64 * self.probe_interval.as_secs_f64()
                / self.grtt.as_secs_f64().max(1e-6);
            self.rate = Some((self.rate() as f64 + step).min(max as f64) as u64);
            return true;
        }
        false
    }

    /// At most one cut per GRTT, and no step up within a GRTT of one.
    fn may_change(&self, now: Instant) -> bool {
        self.last_decrease.is_none_or(|d| now >= d + self.grtt)
    }
}

/// One receiver's round trips, filtered: the least sample of its current
/// window of `RTT_WINDOW` samples and of the window before. Queueing only
/// ever adds to a sample, so the least is its path (and what queueing lasts
/// longer than two windows).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RttFilter {
    current: Option<Duration>,
    previous: Option<Duration>,
    samples: u8,
}

/// Samples per window of [`RttFilter`].
pub(crate) const RTT_WINDOW: u8 = 8;

impl RttFilter {
    /// Takes a sample; gives the filtered round trip.
    pub(crate) fn sample(&mut self, rtt: Duration) -> Duration {
        let current = self.current.map_or(rtt, |c| c.min(rtt));
        let least = self.previous.map_or(current, |p| p.min(current));
        self.samples += 1;
        if self.samples >= RTT_WINDOW {
            self.previous = Some(current);
            self.current = None;
            self.samples = 0;
        } else {
            self.current = Some(current);
        }
        least
    }
}

/// Reports after which a receiver's average loss becomes a running average
/// of weight 1/`LOSS_REPORTS_AVERAGED`.
const LOSS_REPORTS_AVERAGED: u32 = 16;

/// A receiver's loss from its reports: the mean of its first
/// [`LOSS_REPORTS_AVERAGED`], then a running average of that weight. Each
/// report is itself a receiver's running average over a few PROBE intervals,
/// which at 10% loss and a few hundred packets per interval still swings by a
/// fifth either way; proactive repair sized from the largest of a group's
/// raw reports would pay for those swings (in scenario S1, 2-3% more than
/// the loss).
pub(super) fn average_loss(previous: f64, reports: u32, reported: f64) -> f64 {
    let n = reports.min(LOSS_REPORTS_AVERAGED - 1) as f64 + 1.0;
    previous + (reported - previous) / n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control(aimd: Option<Aimd>) -> RateControl {
        let fb = FeedbackConfig {
            aimd,
            ..FeedbackConfig::default()
        };
        RateControl::new(&fb, Some(1_000_000))
    }

    #[test]
    fn a_sample_rises_at_once_but_at_most_twofold_and_decays_after() {
        let mut rc = control(None);
        let start = rc.grtt();
        let t = Instant::now();
        assert!(!rc.on_rtt_sample(start * 10, false), "may not raise it");
        assert!(rc.on_rtt_sample(start * 10, true));
        assert_eq!(rc.grtt(), start * 2, "at most twice the last PROBE's");
        assert!(
            !rc.on_rtt_sample(start, true),
            "a smaller one does not lower it"
        );
        rc.on_probe(t);
        assert_eq!(rc.grtt(), start * 2, "the window's largest sample holds");
        rc.on_probe(t);
        assert_eq!(rc.grtt(), start * 2, "with no sample, it stays");
        rc.on_rtt_sample(start / 2, true);
        rc.on_probe(t);
        assert!(rc.grtt() < start * 2, "a lower sample brings it down");
        for _ in 0..40 {
            rc.on_rtt_sample(start / 2, true);
            rc.on_probe(t);
        }
        assert!(rc.grtt() < start / 2 + Duration::from_micros(10));
    }

    #[test]
    fn the_grtt_at_most_doubles_per_probe_and_per_its_own_value_in_time() {
        let ms = Duration::from_millis;
        let mut rc = control(None);
        let t0 = Instant::now();
        rc.on_probe(t0);
        let start = rc.grtt(); // 50 ms
        // Samples of 10 s at every PROBE, 25 ms apart.
        let mut t = t0;
        let mut last = start;
        while t < t0 + ms(1000) {
            t += ms(25);
            rc.on_rtt_sample(Duration::from_secs(10), true);
            rc.on_probe(t);
            assert!(rc.grtt() <= last * 2, "{:?} after {last:?}", rc.grtt());
            last = rc.grtt();
            // Doubling once per base's time: 50 → 100 → 200 → 400 → 800 ms
            // at 0, 50, 150, 350 and 750 ms.
            let elapsed = t - t0;
            assert!(
                rc.grtt() <= (start + elapsed) * 2,
                "{:?} at {elapsed:?}",
                rc.grtt()
            );
        }
        assert_eq!(rc.grtt(), ms(1600), "800 ms, doubled, by 1 s");
    }

    #[test]
    fn the_filter_keeps_the_least_of_two_windows() {
        let ms = Duration::from_millis;
        let mut f = RttFilter::default();
        assert_eq!(f.sample(ms(10)), ms(10));
        assert_eq!(f.sample(ms(3)), ms(3));
        assert_eq!(f.sample(ms(30)), ms(3), "queueing does not count");
        for _ in 3..RTT_WINDOW {
            f.sample(ms(20));
        }
        // The window before still holds the 3 ms.
        for _ in 0..RTT_WINDOW {
            assert_eq!(f.sample(ms(20)), ms(3));
        }
        // Two windows on, the path is what the samples say.
        assert_eq!(f.sample(ms(20)), ms(20));
    }

    #[test]
    fn loss_above_the_threshold_cuts_once_per_grtt_and_probes_step_back() {
        let mut rc = control(Some(Aimd::for_rate(1_000_000, 0.05, 100_000)));
        let t0 = Instant::now();
        assert!(!rc.on_loss_report(t0, 10_000), "1% is below 5%");
        assert!(rc.on_loss_report(t0, 100_000));
        assert_eq!(rc.rate(), 875_000);
        assert!(!rc.on_loss_report(t0, 100_000), "once per GRTT");
        assert!(!rc.on_probe(t0), "no step up within a GRTT of a cut");
        let later = t0 + rc.grtt() * 2;
        assert!(rc.on_probe(later));
        assert!(rc.rate() > 875_000 && rc.rate() <= 1_000_000);
        for _ in 0..10_000 {
            rc.on_probe(later);
        }
        assert_eq!(rc.rate(), 1_000_000, "never above the configured rate");
        assert!(rc.loss() > 0.0);
    }

    /// The first reports are averaged alike, later ones with weight 1/16: one
    /// noisy report moves the average by a sixteenth of its error.
    #[test]
    fn a_receiver_s_loss_is_the_average_of_its_reports() {
        let mut avg = 0.0;
        for (n, r) in [0.08, 0.12, 0.10, 0.10].into_iter().enumerate() {
            avg = average_loss(avg, n as u32, r);
        }
        assert!((avg - 0.10).abs() < 1e-9, "{avg}");
        for n in 4..100 {
            avg = average_loss(avg, n, 0.10);
        }
        let moved = average_loss(avg, 100, 0.26);
        assert!((moved - 0.11).abs() < 1e-9, "{moved}");
    }
}
