//! Source authentication (protocol.md §15): a sender signs lists of the
//! hashes of the datagrams it sent ([`Signer`]), and a receiver that holds
//! the sender's public key lets through only datagrams whose hash a list it
//! verified names ([`Verifier`]). One Ed25519 signature covers a batch of
//! datagrams, so that its cost is shared by them (protocol.md §15.2).
//!
//! The rules here: a datagram is let through only once its whole bytes
//! match a hash in an AUTH whose signature verified under the key; nothing
//! held waiting is let through otherwise; what waits is bounded in bytes and
//! in time, and what is let go unvouched is counted.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

/// The key of an encrypted channel (protocol.md §16), beside the signing keys.
pub use crate::wire::seal::ChannelKey;
use ed25519_dalek::{Signature, Signer as _, Verifier as _};
pub use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::wire::auth::{
    AUTH_HASH_LEN, AUTH_SIGNATURE_LEN, AuthPacket, AuthRepr, auth_capacity, set_auth_signature,
};

/// What a signature covers before the datagram's bytes: keeps an AUTH's
/// signature from being taken for one over anything else the key signs.
pub const AUTH_CONTEXT: &[u8] = b"groupcast auth v1\0";

/// Datagrams an AUTH lists at most (fewer if one datagram cannot hold
/// them). Each AUTH goes twice, [`AUTH_REPEAT_GAP`] datagrams apart, so that
/// one lost copy loses nothing (protocol.md §15.2).
pub const AUTH_BATCH: usize = 90;

/// Datagrams sent between an AUTH and its copy (or half
/// [`AUTH_MAX_DELAY`], if fewer go): apart, a burst of loss seldom takes
/// both.
pub const AUTH_REPEAT_GAP: u32 = 16;

/// How long a sent datagram waits, at most, for the AUTH that lists it.
pub const AUTH_MAX_DELAY: Duration = Duration::from_millis(20);

/// Bytes of datagrams a [`Verifier`] holds, at most, waiting for their AUTH.
pub const MAX_HELD_BYTES: usize = 4 << 20;

/// How long a [`Verifier`] holds a datagram waiting for its AUTH.
pub const HOLD_FOR: Duration = Duration::from_secs(2);

/// Bytes of a key's fingerprint: the first bytes of BLAKE3 of the public
/// key.
pub const FINGERPRINT_LEN: usize = 8;

/// A public key's fingerprint: the first [`FINGERPRINT_LEN`] bytes of the
/// BLAKE3 hash of its 32 bytes. `recv --sender-key` takes one in place of
/// the key (protocol.md §15.2).
pub fn key_fingerprint(key: &VerifyingKey) -> [u8; FINGERPRINT_LEN] {
    let mut f = [0; FINGERPRINT_LEN];
    f.copy_from_slice(&blake3::hash(key.as_bytes()).as_bytes()[..FINGERPRINT_LEN]);
    f
}

/// How far an AUTH's Time may lie from a receiver's wall clock, either way,
/// before the AUTH is refused as stale (protocol.md §15.2): the replay
/// window across sessions, and the clock skew signed channels allow.
pub const AUTH_MAX_AGE: Duration = Duration::from_secs(120);

/// The wall clock as a driver read it once: at `at`, `unix` had passed
/// since the Unix epoch. The core reads no clock: it counts on from here
/// by the instants handed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WallClock {
    /// When the clock was read.
    pub at: Instant,
    /// Time since the Unix epoch then.
    pub unix: Duration,
}

impl WallClock {
    /// Microseconds since the Unix epoch at `now`.
    pub fn unix_us(&self, now: Instant) -> u64 {
        let t = self.unix + now.saturating_duration_since(self.at);
        u64::try_from(t.as_micros()).unwrap_or(u64::MAX)
    }
}

/// Keys a receiver takes at once, of each kind (sender keys, channel keys):
/// the one in use and those a sender may rotate to (protocol.md §15.2,
/// §16.3).
pub const MAX_KEYS: usize = 4;

/// Hashes vouched for whose datagram has not come, kept at most.
pub const MAX_VOUCHED: usize = 8192;

/// A datagram's hash as AUTH lists it: SHA-256 of its whole bytes, CRC
/// included, truncated to [`AUTH_HASH_LEN`] bytes (protocol.md §15.1).
pub fn datagram_hash(datagram: &[u8]) -> [u8; AUTH_HASH_LEN] {
    let mut h = [0; AUTH_HASH_LEN];
    let digest = ring::digest::digest(&ring::digest::SHA256, datagram);
    h.copy_from_slice(&digest.as_ref()[..AUTH_HASH_LEN]);
    h
}

/// The message an AUTH's signature is over: [`AUTH_CONTEXT`], then the
/// datagram up to the signature.
fn signed_message(signed: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(AUTH_CONTEXT.len() + signed.len());
    m.extend_from_slice(AUTH_CONTEXT);
    m.extend_from_slice(signed);
    m
}

/// The sender's side: the hashes of what it sent, signed in batches.
pub struct Signer {
    key: SigningKey,
    session: u64,
    sequence: u32,
    /// Hashes per AUTH: [`AUTH_BATCH`], or what one datagram holds.
    batch: usize,
    /// Not listed yet.
    fresh: Vec<[u8; AUTH_HASH_LEN]>,
    /// When the oldest fresh hash's datagram went.
    since: Option<Instant>,
    /// The last AUTH, to go again: its bytes, when it went, and the
    /// datagrams sent since.
    repeat: Option<(Vec<u8>, Instant, u32)>,
    /// What stamps each AUTH's Time (0 without).
    clock: Option<WallClock>,
}

impl Signer {
    /// A signer for `session` whose datagrams are at most `max_datagram`
    /// bytes; `None` if an AUTH of two hashes does not fit.
    pub fn new(key: SigningKey, session: u64, max_datagram: usize) -> Option<Self> {
        let batch = auth_capacity(max_datagram).min(AUTH_BATCH);
        (batch >= 2).then(|| Self {
            key,
            session,
            sequence: 0,
            batch,
            fresh: Vec::new(),
            since: None,
            repeat: None,
            clock: None,
        })
    }

    /// Stamps each AUTH with the time `clock` gives (protocol.md §15.1,
    /// Time), so that receivers can refuse a session replayed later.
    pub fn with_clock(mut self, clock: Option<WallClock>) -> Self {
        self.clock = clock;
        self
    }

    /// The wall clock, read again.
    pub fn set_clock(&mut self, clock: WallClock) {
        self.clock = Some(clock);
    }

    /// The public key receivers check AUTH against.
    pub fn public_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// A datagram went at `now`: an AUTH will list it.
    pub fn sent(&mut self, now: Instant, datagram: &[u8]) {
        if self.fresh.is_empty() {
            self.since = Some(now);
        }
        self.fresh.push(datagram_hash(datagram));
        if let Some((_, _, after)) = &mut self.repeat {
            *after += 1;
        }
    }

    /// When the next AUTH is due: a copy of the last one
    /// [`AUTH_REPEAT_GAP`] datagrams after it (or half [`AUTH_MAX_DELAY`]),
    /// a new one at once with a full batch, else [`AUTH_MAX_DELAY`] after
    /// the oldest datagram no AUTH listed.
    pub fn deadline(&self) -> Option<Instant> {
        let repeat = self.repeat.as_ref().map(|&(_, at, after)| match after {
            a if a >= AUTH_REPEAT_GAP => at,
            _ => at + AUTH_MAX_DELAY / 2,
        });
        let fresh = self
            .since
            .map(|since| match self.fresh.len() >= self.batch {
                true => since,
                false => since + AUTH_MAX_DELAY,
            });
        [repeat, fresh].into_iter().flatten().min()
    }

    /// Writes the next AUTH into `buf` if one is due at `now`, signed, and
    /// returns its length. A copy still to go goes before a new AUTH.
    pub fn poll_auth(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        if self.deadline().is_none_or(|d| now < d) {
            return None;
        }
        if let Some((bytes, _, _)) = self.repeat.take() {
            let out = buf.get_mut(..bytes.len())?;
            out.copy_from_slice(&bytes);
            return Some(bytes.len());
        }
        let mut hashes = Vec::with_capacity(self.fresh.len() * AUTH_HASH_LEN);
        for h in &self.fresh {
            hashes.extend_from_slice(h);
        }
        let repr = AuthRepr {
            session: self.session,
            sequence: self.sequence,
            time_us: self.clock.map_or(0, |c| c.unix_us(now)),
            key: self.key.verifying_key().to_bytes(),
            hashes: &hashes,
            signed: &[],
            signature: [0; AUTH_SIGNATURE_LEN],
        };
        let len = repr.write(buf).ok()?;
        let signed = AuthPacket::new_unchecked(&buf[..len]).signed().to_vec();
        let signature = self.key.sign(&signed_message(&signed)).to_bytes();
        set_auth_signature(&mut buf[..len], &signature);
        self.sequence = self.sequence.wrapping_add(1);
        self.fresh.clear();
        self.since = None;
        self.repeat = Some((buf[..len].to_vec(), now, 0));
        Some(len)
    }
}

/// Bytes each held datagram is charged beyond its own, for its entry and
/// index: what [`MAX_HELD_BYTES`] bounds is the memory held, not the
/// datagrams' bytes alone.
pub const HELD_OVERHEAD: usize = 160;

/// Hashes of datagrams let through that a [`Verifier`] remembers, so that a
/// copy of one (replayed, or duplicated on the way) does not pass again.
pub const MAX_CONSUMED: usize = 65_536;

/// AUTH packets a [`Verifier`] remembers having verified, so that a copy of
/// one costs no second verification and vouches for nothing again.
pub const MAX_AUTHS_SEEN: usize = 1024;

/// AUTH packets of a session a [`Verifier`] takes behind the latest it
/// verified: older ones are stale. With at most [`AUTH_BATCH`] datagrams an
/// AUTH, they name no more datagrams than [`MAX_CONSUMED`] remembers, so
/// that a datagram replayed with its AUTH once its hash is forgotten is
/// refused with the AUTH.
pub const AUTH_SEQUENCE_WINDOW: u32 = (MAX_CONSUMED / AUTH_BATCH) as u32;

/// Sessions whose latest AUTH a [`Verifier`] remembers.
pub const MAX_AUTH_SESSIONS: usize = 64;

/// Why a [`Verifier`] turned something away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthRefusal {
    /// An AUTH whose signature does not verify under the key.
    BadSignature,
    /// An AUTH more than [`AUTH_SEQUENCE_WINDOW`] behind the latest its
    /// session verified: a replay.
    Stale,
}

/// What a [`Verifier`] did with a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Vouched for already: it goes on at once.
    Pass,
    /// Held until an AUTH names it ([`Verifier::poll_released`]).
    Held,
    /// A copy of a datagram let through or held already: dropped.
    Replayed,
}

/// A [`Verifier`]'s counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuthStats {
    /// AUTH packets whose signature verified.
    pub auths_verified: u64,
    /// AUTH packets refused: the signature did not verify.
    pub auths_refused: u64,
    /// Copies of AUTH packets verified already: not verified again.
    pub auths_repeated: u64,
    /// AUTH packets refused as stale: too far behind their session
    /// ([`AUTH_SEQUENCE_WINDOW`]), or signed too long ago or ahead.
    pub auths_stale: u64,
    /// Of those, the AUTH packets whose Time lay more than the allowed age
    /// ([`AUTH_MAX_AGE`] by default) from the receiver's wall clock.
    pub auths_untimely: u64,
    /// Datagrams let through: vouched for on arrival, or released.
    pub vouched: u64,
    /// Datagrams held and let go, never vouched for: forged or modified, or
    /// their AUTHs lost.
    pub unvouched: u64,
    /// Copies of datagrams let through or held already, dropped.
    pub replayed: u64,
    /// Datagrams held now.
    pub held: u64,
    /// Bytes held now, each datagram charged [`HELD_OVERHEAD`] more.
    pub held_bytes: u64,
}

/// A set that keeps what was put in it for a while: at most `cap` items,
/// the oldest forgotten first.
struct Recent<T> {
    at: HashMap<T, Instant>,
    order: VecDeque<(T, Instant)>,
    cap: usize,
}

impl<T: Copy + Eq + std::hash::Hash> Recent<T> {
    fn new(cap: usize) -> Self {
        Self {
            at: HashMap::new(),
            order: VecDeque::new(),
            cap,
        }
    }

    fn contains(&self, t: &T) -> bool {
        self.at.contains_key(t)
    }

    fn insert(&mut self, t: T, now: Instant) {
        while self.at.len() >= self.cap && self.pop() {}
        self.at.insert(t, now);
        self.order.push_back((t, now));
    }

    fn remove(&mut self, t: &T) -> bool {
        self.at.remove(t).is_some()
    }

    /// Forgets what was put in `age` or longer before `now`.
    fn expire(&mut self, now: Instant, age: Duration) {
        while self
            .order
            .front()
            .is_some_and(|(_, at)| now.saturating_duration_since(*at) >= age)
        {
            self.pop();
        }
    }

    /// Forgets the oldest entry; whether there was one.
    fn pop(&mut self) -> bool {
        let Some((t, at)) = self.order.pop_front() else {
            return false;
        };
        // An entry put in again since keeps its later time.
        if self.at.get(&t) == Some(&at) {
            self.at.remove(&t);
        }
        true
    }
}

struct Held<M> {
    hash: [u8; AUTH_HASH_LEN],
    at: Instant,
    bytes: Vec<u8>,
    meta: M,
}

/// The receiver's side: datagrams held until a verified AUTH names them,
/// each with what the caller keeps beside it (`M`: where it came from).
pub struct Verifier<M = ()> {
    /// The keys an AUTH may be signed with: the sender's, and while it
    /// rotates, the next ([`MAX_KEYS`] at most).
    keys: Vec<VerifyingKey>,
    /// Fingerprints of keys an AUTH may be signed with, the key itself
    /// taken from the AUTH ([`key_fingerprint`]).
    fingerprints: Vec<[u8; FINGERPRINT_LEN]>,
    /// Held datagrams by arrival number, oldest first.
    held: BTreeMap<u64, Held<M>>,
    /// The arrival number of the held datagram with each hash.
    by_hash: HashMap<[u8; AUTH_HASH_LEN], u64>,
    arrivals: u64,
    /// Hashes verified AUTHs named whose datagram has not come
    /// ([`MAX_VOUCHED`], for [`HOLD_FOR`] at most).
    vouched: Recent<[u8; AUTH_HASH_LEN]>,
    /// Hashes of datagrams let through ([`MAX_CONSUMED`]).
    consumed: Recent<[u8; AUTH_HASH_LEN]>,
    /// Digests of AUTH packets verified ([`MAX_AUTHS_SEEN`]).
    auths_seen: Recent<[u8; 32]>,
    /// The latest AUTH Sequence verified, by session
    /// ([`MAX_AUTH_SESSIONS`]).
    latest: HashMap<u64, u32>,
    /// Held datagrams an AUTH named, to be let through in arrival order.
    released: VecDeque<(Vec<u8>, M)>,
    stats: AuthStats,
    /// The wall clock and how far an AUTH's Time may lie from it; without
    /// both, Time is not checked.
    clock: Option<(WallClock, Duration)>,
}

impl<M> Verifier<M> {
    /// A verifier for the sender whose public key is `key`.
    pub fn new(key: VerifyingKey) -> Self {
        Self::with_keys(vec![key])
    }

    /// A verifier that takes an AUTH signed with any of `keys`, the first
    /// [`MAX_KEYS`] of them (protocol.md §15.2: rotation).
    pub fn with_keys(mut keys: Vec<VerifyingKey>) -> Self {
        keys.truncate(MAX_KEYS);
        Self {
            keys,
            fingerprints: Vec::new(),
            held: BTreeMap::new(),
            by_hash: HashMap::new(),
            arrivals: 0,
            vouched: Recent::new(MAX_VOUCHED),
            consumed: Recent::new(MAX_CONSUMED),
            auths_seen: Recent::new(MAX_AUTHS_SEEN),
            latest: HashMap::new(),
            released: VecDeque::new(),
            stats: AuthStats::default(),
            clock: None,
        }
    }

    /// Also takes an AUTH signed with a key whose fingerprint is one of
    /// `fingerprints` (the first [`MAX_KEYS`]): the key is the one the AUTH
    /// names (protocol.md §15.1, Key).
    pub fn with_fingerprints(mut self, mut fingerprints: Vec<[u8; FINGERPRINT_LEN]>) -> Self {
        fingerprints.truncate(MAX_KEYS);
        self.fingerprints = fingerprints;
        self
    }

    /// The key an AUTH names, if it is one this verifier takes.
    fn key_for(&self, named: &[u8; 32]) -> Option<VerifyingKey> {
        if let Some(k) = self.keys.iter().find(|k| k.as_bytes() == named) {
            return Some(*k);
        }
        let key = VerifyingKey::from_bytes(named).ok()?;
        self.fingerprints
            .contains(&key_fingerprint(&key))
            .then_some(key)
    }

    /// The wall clock, read again; the allowed age stays.
    pub fn set_clock(&mut self, clock: WallClock) {
        if let Some((c, _)) = &mut self.clock {
            *c = clock;
        }
    }

    /// Refuses, as stale, an AUTH whose Time lies more than `max_age` from
    /// `clock`, either way, or that has none (protocol.md §15.2).
    pub fn with_clock(mut self, clock: Option<WallClock>, max_age: Option<Duration>) -> Self {
        self.clock = clock.zip(max_age);
        self
    }

    /// Counters so far.
    pub fn stats(&self) -> AuthStats {
        self.stats
    }

    /// When the oldest held datagram is let go if no AUTH names it.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.held.first_key_value().map(|(_, h)| h.at + HOLD_FOR)
    }

    /// A datagram other than an AUTH: through at once if a verified AUTH
    /// named it, dropped if it is a copy of one let through or held, else
    /// held (a copy) until an AUTH names it.
    pub fn check(&mut self, now: Instant, datagram: &[u8], meta: M) -> Gate {
        self.expire(now);
        let hash = datagram_hash(datagram);
        if self.consumed.contains(&hash) || self.by_hash.contains_key(&hash) {
            self.stats.replayed += 1;
            return Gate::Replayed;
        }
        if self.vouched.remove(&hash) {
            self.consumed.insert(hash, now);
            self.stats.vouched += 1;
            return Gate::Pass;
        }
        let cost = (datagram.len() + HELD_OVERHEAD) as u64;
        while self.stats.held_bytes + cost > MAX_HELD_BYTES as u64 && self.drop_oldest() {}
        let n = self.arrivals;
        self.arrivals += 1;
        self.by_hash.insert(hash, n);
        self.held.insert(
            n,
            Held {
                hash,
                at: now,
                bytes: datagram.to_vec(),
                meta,
            },
        );
        self.stats.held += 1;
        self.stats.held_bytes += cost;
        Gate::Held
    }

    /// An AUTH: if its signature verifies, every held datagram it names is
    /// released ([`Verifier::poll_released`]) and the others it names pass
    /// when they come, once each. A copy of an AUTH verified already does
    /// nothing.
    pub fn on_auth(&mut self, now: Instant, auth: &AuthRepr) -> Result<(), AuthRefusal> {
        self.expire(now);
        let mut digest = blake3::Hasher::new();
        digest.update(auth.signed);
        digest.update(&auth.signature);
        let digest = *digest.finalize().as_bytes();
        if self.auths_seen.contains(&digest) {
            self.stats.auths_repeated += 1;
            return Ok(());
        }
        // Signed at another time than now: recorded and replayed, or the
        // clocks disagree. Refused before the signature costs anything.
        if let Some((clock, max_age)) = self.clock {
            let (at, max) = (clock.unix_us(now), max_age.as_micros() as u64);
            if auth.time_us == 0 || auth.time_us.abs_diff(at) > max {
                self.stats.auths_stale += 1;
                self.stats.auths_untimely += 1;
                return Err(AuthRefusal::Stale);
            }
        }
        // Refused before its signature costs anything; only a verified AUTH
        // moves the latest, so forged ones cannot make genuine ones stale.
        let latest = self.latest.get(&auth.session).copied();
        if latest.is_some_and(|l| auth.sequence.saturating_add(AUTH_SEQUENCE_WINDOW) < l) {
            self.stats.auths_stale += 1;
            return Err(AuthRefusal::Stale);
        }
        // One verification at most: under the key the AUTH names, if it
        // is one of ours; any other key is refused before it costs anything.
        let signature = Signature::from_bytes(&auth.signature);
        let verified = self
            .key_for(&auth.key)
            .is_some_and(|k| k.verify(&signed_message(auth.signed), &signature).is_ok());
        if !verified {
            self.stats.auths_refused += 1;
            return Err(AuthRefusal::BadSignature);
        }
        self.stats.auths_verified += 1;
        self.auths_seen.insert(digest, now);
        if latest.is_none() && self.latest.len() >= MAX_AUTH_SESSIONS {
            // Forget the session furthest behind.
            if let Some(&s) = self.latest.iter().min_by_key(|(_, q)| **q).map(|(s, _)| s) {
                self.latest.remove(&s);
            }
        }
        let l = self.latest.entry(auth.session).or_insert(auth.sequence);
        *l = (*l).max(auth.sequence);
        let mut named = Vec::new();
        for hash in auth.each_hash() {
            if self.consumed.contains(&hash) {
                continue;
            }
            match self.by_hash.remove(&hash) {
                Some(n) => named.push(n),
                None => self.vouched.insert(hash, now),
            }
        }
        named.sort_unstable();
        for n in named {
            if let Some(h) = self.held.remove(&n) {
                self.consumed.insert(h.hash, now);
                self.stats.vouched += 1;
                self.stats.held -= 1;
                self.stats.held_bytes -= (h.bytes.len() + HELD_OVERHEAD) as u64;
                self.released.push_back((h.bytes, h.meta));
            }
        }
        Ok(())
    }

    /// The next held datagram an AUTH released, in arrival order, with what
    /// was kept beside it.
    pub fn poll_released(&mut self) -> Option<(Vec<u8>, M)> {
        self.released.pop_front()
    }

    /// Lets go what waited [`HOLD_FOR`], and forgets hashes vouched for as
    /// long ago.
    pub fn expire(&mut self, now: Instant) {
        while self
            .held
            .first_key_value()
            .is_some_and(|(_, h)| now.saturating_duration_since(h.at) >= HOLD_FOR)
        {
            self.drop_oldest();
        }
        self.vouched.expire(now, HOLD_FOR);
    }

    /// Lets the oldest held datagram go unvouched; whether there was one.
    fn drop_oldest(&mut self) -> bool {
        let Some((_, h)) = self.held.pop_first() else {
            return false;
        };
        self.by_hash.remove(&h.hash);
        self.stats.unvouched += 1;
        self.stats.held -= 1;
        self.stats.held_bytes -= (h.bytes.len() + HELD_OVERHEAD) as u64;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Repr;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn datagrams(n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| vec![i as u8; 100 + i]).collect()
    }

    /// Sends `ds` through a signer, and every AUTH due, in order.
    fn sign_all(s: &mut Signer, t: Instant, ds: &[Vec<u8>]) -> Vec<(bool, Vec<u8>)> {
        let mut out = Vec::new();
        let mut buf = vec![0; 1232];
        for d in ds {
            s.sent(t, d);
            out.push((false, d.clone()));
            if let Some(n) = s.poll_auth(t, &mut buf) {
                out.push((true, buf[..n].to_vec()));
            }
        }
        let mut later = t;
        for _ in 0..3 {
            later += AUTH_MAX_DELAY;
            while let Some(n) = s.poll_auth(later, &mut buf) {
                out.push((true, buf[..n].to_vec()));
            }
        }
        out
    }

    /// Feeds `wire` to `v`; the datagrams let through, in order.
    fn verify_all(v: &mut Verifier, t: Instant, wire: &[(bool, Vec<u8>)]) -> Vec<Vec<u8>> {
        let mut through = Vec::new();
        for (is_auth, d) in wire {
            if *is_auth {
                let Ok(Repr::Auth(a)) = Repr::parse(d) else {
                    panic!("not an AUTH")
                };
                let _ = v.on_auth(t, &a);
            } else if v.check(t, d, ()) == Gate::Pass {
                through.push(d.clone());
            }
            while let Some((r, ())) = v.poll_released() {
                through.push(r);
            }
        }
        through
    }

    #[test]
    fn every_datagram_signed_is_let_through_in_order_and_each_auth_goes_twice() {
        let t = Instant::now();
        let mut s = Signer::new(key(1), 9, 1232).unwrap();
        let ds = datagrams(100);
        let wire = sign_all(&mut s, t, &ds);
        let auths = wire.iter().filter(|(a, _)| *a).count();
        // 100 datagrams in batches of 64: 2 AUTHs, each sent twice.
        assert_eq!(auths, 4);
        let mut v = Verifier::new(s.public_key());
        assert_eq!(verify_all(&mut v, t, &wire), ds);
        let st = v.stats();
        assert_eq!((st.auths_verified, st.auths_repeated), (2, 2));
        assert_eq!((st.vouched, st.unvouched), (100, 0));
        assert_eq!((st.held, st.held_bytes), (0, 0));
    }

    #[test]
    fn a_lost_auth_is_made_up_by_its_copy_and_a_late_datagram_passes() {
        let t = Instant::now();
        let mut s = Signer::new(key(1), 9, 1232).unwrap();
        let ds = datagrams(70);
        let mut wire = sign_all(&mut s, t, &ds);
        // Lose the first AUTH; move datagram 5 after every AUTH.
        let first = wire.iter().position(|(a, _)| *a).unwrap();
        wire.remove(first);
        let late = wire.remove(5);
        wire.push(late);
        let mut v = Verifier::new(s.public_key());
        let mut through = verify_all(&mut v, t, &wire);
        through.sort();
        let mut want = ds.clone();
        want.sort();
        assert_eq!(through, want);
        assert_eq!(v.stats().unvouched, 0);
    }

    #[test]
    fn forged_and_modified_datagrams_never_pass_and_are_counted() {
        let t = Instant::now();
        let mut s = Signer::new(key(1), 9, 1232).unwrap();
        let ds = datagrams(40);
        let mut wire = sign_all(&mut s, t, &ds);
        // A forger's datagram, and a copy of a real one with a byte changed.
        let mut modified = ds[3].clone();
        modified[10] ^= 1;
        wire.insert(2, (false, vec![0xee; 300]));
        wire.insert(7, (false, modified));
        // An AUTH the forger signed with its own key, naming its datagram.
        let mut forger = Signer::new(key(2), 9, 1232).unwrap();
        forger.sent(t, &[0xee; 300]);
        let mut buf = vec![0; 1232];
        let n = forger.poll_auth(t + AUTH_MAX_DELAY, &mut buf).unwrap();
        wire.insert(9, (true, buf[..n].to_vec()));
        let mut v = Verifier::new(s.public_key());
        assert_eq!(verify_all(&mut v, t, &wire), ds);
        assert_eq!(v.stats().auths_refused, 1);
        assert_eq!(v.stats().held, 2, "the forgeries wait, unvouched");
        v.expire(t + HOLD_FOR);
        let st = v.stats();
        assert_eq!((st.held, st.held_bytes, st.unvouched), (0, 0, 2));
    }

    #[test]
    fn an_auth_with_a_hash_or_its_session_changed_does_not_verify() {
        let t = Instant::now();
        let mut s = Signer::new(key(1), 9, 1232).unwrap();
        s.sent(t, b"one");
        let mut buf = vec![0; 1232];
        let n = s.poll_auth(t + AUTH_MAX_DELAY, &mut buf).unwrap();
        let v = |b: &[u8]| {
            let Ok(Repr::Auth(a)) = Repr::parse(b) else {
                panic!("not an AUTH")
            };
            Verifier::<()>::new(s.public_key()).on_auth(t, &a)
        };
        assert_eq!(v(&buf[..n]), Ok(()));
        for at in [10, 30] {
            let mut b = buf[..n].to_vec();
            b[at] ^= 1;
            crate::wire::Packet::new_unchecked(&mut b[..]).fill_checksum();
            assert_eq!(v(&b), Err(AuthRefusal::BadSignature), "byte {at}");
        }
    }

    #[test]
    fn what_is_held_stays_within_its_bound() {
        let t = Instant::now();
        let mut v = Verifier::<()>::new(key(1).verifying_key());
        for i in 0..5000u32 {
            let mut d = vec![0u8; 1200];
            d[..4].copy_from_slice(&i.to_be_bytes());
            assert_eq!(v.check(t, &d, ()), Gate::Held);
            assert!(v.stats().held_bytes as usize <= MAX_HELD_BYTES);
        }
        let st = v.stats();
        assert_eq!(st.held + st.unvouched, 5000);
        assert!(st.unvouched > 0);
    }

    #[test]
    fn copies_of_datagrams_and_auths_pass_once_and_are_verified_once() {
        let t = Instant::now();
        let mut s = Signer::new(key(1), 9, 1232).unwrap();
        let ds = datagrams(10);
        let wire = sign_all(&mut s, t, &ds);
        let mut v = Verifier::new(s.public_key());
        assert_eq!(verify_all(&mut v, t, &wire), ds);
        let verified = v.stats().auths_verified;
        // Everything again, as a replaying host sends it: nothing passes,
        // and no AUTH is verified a second time.
        assert!(verify_all(&mut v, t, &wire).is_empty());
        let st = v.stats();
        let auths = wire.iter().filter(|(a, _)| *a).count() as u64;
        assert_eq!(st.auths_verified, verified);
        assert_eq!(st.auths_verified + st.auths_repeated, 2 * auths);
        assert_eq!(st.replayed, 10);
        // A copy held twice is held once.
        let mut w = Verifier::<()>::new(s.public_key());
        assert_eq!(w.check(t, b"x", ()), Gate::Held);
        assert_eq!(w.check(t, b"x", ()), Gate::Replayed);
        assert_eq!(w.stats().held, 1);
    }

    #[test]
    fn a_hash_vouched_for_is_forgotten_after_the_hold() {
        let t = Instant::now();
        let mut s = Signer::new(key(1), 9, 1232).unwrap();
        let ds = datagrams(3);
        let wire = sign_all(&mut s, t, &ds);
        let mut v = Verifier::new(s.public_key());
        // The AUTHs first, the datagrams after the hold: held, not passed.
        let auths: Vec<_> = wire.iter().filter(|(a, _)| *a).cloned().collect();
        assert!(verify_all(&mut v, t, &auths).is_empty());
        let late: Vec<_> = ds.iter().map(|d| (false, d.clone())).collect();
        assert!(verify_all(&mut v, t + HOLD_FOR, &late).is_empty());
        assert_eq!(v.stats().held, 3);
        assert_eq!(v.next_expiry(), Some(t + HOLD_FOR + HOLD_FOR));
    }

    #[test]
    fn an_auth_replayed_far_behind_its_session_is_stale() {
        let t = Instant::now();
        let mut s = Signer::new(key(1), 9, 1232).unwrap();
        let mut buf = vec![0u8; 1232];
        let mut v = Verifier::<()>::new(s.public_key());
        let mut first = None;
        for i in 0..AUTH_SEQUENCE_WINDOW + 2 {
            s.sent(t, &i.to_be_bytes());
            let n = s.poll_auth(t + AUTH_MAX_DELAY, &mut buf).unwrap();
            let _ = s.poll_auth(t + AUTH_MAX_DELAY * 2, &mut [0u8; 1232]);
            first.get_or_insert_with(|| buf[..n].to_vec());
            let Ok(Repr::Auth(a)) = Repr::parse(&buf[..n]) else {
                panic!("not an AUTH")
            };
            v.on_auth(t, &a).unwrap();
        }
        // The first AUTH, and its datagram, replayed once both are
        // forgotten as copies: the AUTH is stale, the datagram unvouched.
        let mut w = Verifier::<()>::new(s.public_key());
        std::mem::swap(&mut v.latest, &mut w.latest);
        let first = first.unwrap();
        let Ok(Repr::Auth(a)) = Repr::parse(&first) else {
            panic!("not an AUTH")
        };
        assert_eq!(w.check(t, &0u32.to_be_bytes(), ()), Gate::Held);
        assert_eq!(w.on_auth(t, &a), Err(AuthRefusal::Stale));
        assert_eq!(w.stats().auths_stale, 1);
        assert_eq!(w.poll_released(), None);
    }

    #[test]
    fn a_datagram_too_small_for_two_hashes_has_no_signer() {
        assert!(Signer::new(key(1), 1, 155).is_none());
        assert!(Signer::new(key(1), 1, 156).is_some());
    }
}
