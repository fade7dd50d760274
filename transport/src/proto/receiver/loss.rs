//! The path's loss and rate as one session's STATUS reports them
//! (protocol.md §13.3): DATA heard against the sender's DATA counter in its
//! PROBEs. Only counting and estimation live here; when to report, and to
//! whom, is `feedback`'s.

use std::time::{Duration, Instant};

use super::RejectReason;

/// DATA packets over which a session's first loss estimate is a plain ratio
/// (see [`LossEstimator::got`]).
const LOSS_WARMUP: u64 = 2000;

/// DATA, or PROBE samples, after which a session's loss estimate is taken as
/// measured (STATUS with LOSS): the first samples can span a few packets,
/// and one of 20 packets may say 5% at 10% loss and size a window's repair
/// for it. At high rates the DATA come first (1000 at 10% loss: about ±2%
/// at 95%), at low ones the samples (200 ms of PROBEs).
const LOSS_MEASURED: (u64, u32) = (1000, 8);

/// DATA packets a PROBE loss sample spans to weigh its full quarter in the
/// moving average; a shorter one weighs in proportion.
const LOSS_SAMPLE: u64 = 500;

/// How far the sender's DATA counter may run ahead of the DATA heard, in its
/// session's first accepted PROBE: DATA sent before this receiver created its
/// feedback state (25 ms at 10 Gbit/s is about 26,000 packets).
const FIRST_PROBE_SLACK: u64 = 1 << 16;

/// One session's DATA heard, the sender's counter as last accepted, and the
/// loss and rate estimates drawn from the two.
pub(super) struct LossEstimator {
    /// DATA packets of the session heard, and their symbol bytes.
    data: u64,
    bytes: u64,
    /// The sender's DATA counter at the last accepted PROBE; none before the
    /// first plausible one.
    probe_sent: Option<u64>,
    /// When `probe_sent` was last accepted (or the session first heard).
    counter_at: Instant,
    /// `data` and `bytes` when `probe_sent` was accepted.
    data_at_probe: u64,
    bytes_at_probe: u64,
    /// The loss reported in STATUS, which NACK backoffs also rank needs by
    /// (`need_rank`): the ratio of the DATA counted to the DATA the sender's
    /// counter says went out (`got`, `sent`) until [`LOSS_WARMUP`] went out,
    /// then a moving average of the PROBE samples (weight 1/4 for a sample
    /// of [`LOSS_SAMPLE`] DATA or more, in proportion below). A moving
    /// average from 0 would say a quarter of the loss after one sample.
    loss: f64,
    /// The PROBE loss samples' variance over what independent loss at
    /// `loss` would give them, a moving average from 1 (each sample's
    /// share at most 10): bursty loss makes it larger, and above
    /// `DISPERSION_LIMIT` `need_rank` gives up its binomial model.
    dispersion: f64,
    /// DATA counted, and DATA the sender's counter says went out, while the
    /// estimate is a plain ratio.
    got: u64,
    sent: u64,
    /// The variance of `loss` over p(1 − p), were loss independent at a
    /// rate p: 1 / `sent` while `loss` is a plain ratio, then carried
    /// through each moving-average step (weight w over a sample of n DATA:
    /// (1 − w)² V + w² / n). Its inverse is the Loss span STATUS reports,
    /// from which the sender tells noise from need in a group's reports.
    var: f64,
    /// PROBE loss samples taken.
    samples: u32,
    /// Bytes a second received, a moving average over PROBE intervals.
    rate: f64,
}

impl LossEstimator {
    /// Nothing heard yet, as of `now`.
    pub(super) fn new(now: Instant) -> Self {
        Self {
            data: 0,
            bytes: 0,
            probe_sent: None,
            counter_at: now,
            data_at_probe: 0,
            bytes_at_probe: 0,
            loss: 0.0,
            dispersion: 1.0,
            got: 0,
            sent: 0,
            var: 0.0,
            samples: 0,
            rate: 0.0,
        }
    }

    /// A DATA packet of the session heard, with `bytes` of symbol.
    pub(super) fn on_data(&mut self, bytes: usize) {
        self.data += 1;
        self.bytes += bytes as u64;
    }

    /// A PROBE's DATA counter, `sent`: a loss sample since the last accepted
    /// one, and the new baseline. `Implausible` (and nothing changes) when
    /// it claims far more DATA than could have gone by.
    pub(super) fn on_probe(&mut self, now: Instant, sent: u64) -> Result<(), RejectReason> {
        // The sender's counter starts at 0 with its session and grows by one
        // per DATA packet; anyone can forge it. So it may run ahead of the
        // DATA heard since the last accepted one (or since the session's first
        // PROBE) by at most 64 × (DATA + 16), or FIRST_PROBE_SLACK before any
        // was accepted. A first PROBE therefore sets no baseline that real
        // PROBEs would then seem to run behind. After two seconds without an
        // accepted counter (an outage, a late join, or a forged baseline that
        // the sender's own PROBEs run behind), the counter is taken as it comes.
        let got = self.data.saturating_sub(self.data_at_probe);
        let fresh = now.saturating_duration_since(self.counter_at) < Duration::from_secs(2);
        let (from, slack) = match self.probe_sent {
            Some(b) => (b, 64 * (got + 16)),
            None => (0, FIRST_PROBE_SLACK + 64 * got),
        };
        if fresh && sent > from && sent - from > slack {
            // Far more DATA claimed than could have gone by: a forged counter
            // would freeze or poison the loss estimate.
            return Err(RejectReason::Implausible);
        }
        // Behind the baseline (reordered, or forged low), a PROBE gives no
        // sample; the baseline stays, unless it is stale.
        if let Some(b) = self.probe_sent.filter(|&b| sent > b) {
            self.sample(now, sent - b, got);
        }
        if self.probe_sent.is_none_or(|b| sent > b || !fresh) {
            self.probe_sent = Some(sent);
            self.counter_at = now;
            self.data_at_probe = self.data;
            self.bytes_at_probe = self.bytes;
        }
        Ok(())
    }

    /// One loss sample: `got` DATA heard of `span` sent since the baseline.
    fn sample(&mut self, now: Instant, span: u64, got: u64) {
        let sent = span as f64;
        let sample = (1.0 - got as f64 / sent).clamp(0.0, 1.0);
        // How much more the samples vary than independent loss would make
        // them (bursts), for need_rank.
        let p0 = self.loss;
        if self.sent > 0 && p0 > 0.0 && p0 < 1.0 {
            let ratio = (sample - p0).powi(2) * sent / (p0 * (1.0 - p0));
            self.dispersion = 0.9 * self.dispersion + 0.1 * ratio.min(10.0);
        }
        self.samples = self.samples.saturating_add(1);
        if self.sent < LOSS_WARMUP {
            self.sent += span;
            self.got += got.min(span);
            self.loss = 1.0 - self.got as f64 / self.sent as f64;
            self.var = 1.0 / self.sent as f64;
        } else {
            // Each sample weighs by the DATA it spans: PROBEs close together
            // (a window's end, a flow-blocked pass) give samples of a few
            // packets, and at a full quarter each, one sample of 11 packets
            // with none lost would take a 10% estimate to 7%, and the
            // sender's proactive repair with it.
            let weight = 0.25 * (sent / LOSS_SAMPLE as f64).min(1.0);
            self.loss += weight * (sample - self.loss);
            self.var = (1.0 - weight).powi(2) * self.var + weight * weight / sent;
        }
        let dt = now.saturating_duration_since(self.counter_at).as_secs_f64();
        if dt > 0.0 {
            let r = self.bytes.saturating_sub(self.bytes_at_probe) as f64 / dt;
            self.rate = 0.75 * self.rate + 0.25 * r;
        }
    }

    /// The loss estimate, a share in [0, 1].
    pub(super) fn loss(&self) -> f64 {
        self.loss
    }

    /// How bursty the loss samples are (see [`LossEstimator::dispersion`]).
    pub(super) fn dispersion(&self) -> f64 {
        self.dispersion
    }

    /// Bytes a second received.
    pub(super) fn rate(&self) -> f64 {
        self.rate
    }

    /// Whether the loss STATUS reports is measured (see [`LOSS_MEASURED`]).
    pub(super) fn measured(&self) -> bool {
        self.sent >= LOSS_MEASURED.0 || self.samples >= LOSS_MEASURED.1
    }

    /// The Loss span a STATUS reports: 1 / `var` in DATA packets,
    /// saturating; 0 before the loss is measured.
    pub(super) fn span(&self) -> u16 {
        if !self.measured() || self.var <= 0.0 {
            return 0;
        }
        (1.0 / self.var).round().min(u16::MAX as f64) as u16
    }
}
