//! Message IDs, retransmission and liveness (RFC 7296 §2.1–§2.4; R-V2-3, R-V2-4).
//!
//! IKEv2 is request/response with the initiator of each exchange responsible for
//! retransmission. With window size 1 each side has at most one request outstanding
//! ([`Requests`]) and, as responder, remembers the last response it sent so that a
//! retransmitted request is answered with the same bytes without being processed again
//! ([`Responses`]). Anything else — a request older than the last one, a request from the
//! future, a response to a request we no longer wait for — is dropped.
//!
//! # Back-off
//!
//! [`RetransmitPolicy::default`] follows strongSwan's defaults: first timeout 4 s, each next
//! one 1.8 times longer, 5 retransmissions, then one more wait before giving up
//! (4 + 7.2 + 13 + 23.3 + 42 + 75.6 ≈ 165 s in all).
//!
//! # Liveness
//!
//! R-V2-3: when nothing was received from the peer for the configured interval, send an
//! empty INFORMATIONAL; retransmit it every [`LIVENESS_RETRY`] (or every interval, if that is
//! shorter) [`LIVENESS_TRIES`] times, then declare the peer dead one wait later
//! ([`RetransmitPolicy::liveness`], [`Liveness`]). With the default interval of 5 s: the check
//! after 5 s of silence, 8 retransmissions 2 s apart, dead 18 s after the check, at most 23 s
//! after the last message from the peer. (It was 10 retransmissions at the interval: 55 s
//! after the check, and a restarted peer cost a minute of traffic.)
//!
//! # Hints
//!
//! An unprotected INVALID_IKE_SPI answer to a request of ours says that the peer may have lost
//! the IKE SA (a restart, §2.21.4). Anyone who saw the request can forge it, so it changes no
//! state: it only moves the request in flight to a short schedule ([`Requests::hint`]: the next
//! retransmission within [`HINT_WAIT`], at most [`HINT_TRIES`] more), never a longer one. A
//! genuine answer still completes the request; only when none comes is the peer declared dead,
//! about 4 s after the first hint.

use std::time::{Duration, Instant};

use ferrosec_wire::MessageId;

/// How a request is retransmitted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetransmitPolicy {
    /// Wait before the first retransmission.
    pub timeout: Duration,
    /// Each next wait is this many times the previous one (1.0 = constant).
    pub base: f64,
    /// Retransmissions before giving up.
    pub tries: u32,
    /// No single wait is longer than this.
    pub max_timeout: Duration,
}

impl Default for RetransmitPolicy {
    fn default() -> Self {
        RetransmitPolicy {
            timeout: Duration::from_secs(4),
            base: 1.8,
            tries: 5,
            max_timeout: Duration::from_secs(600),
        }
    }
}

/// The longest wait between two transmissions of a liveness check.
pub const LIVENESS_RETRY: Duration = Duration::from_secs(2);
/// Retransmissions of a liveness check before the peer is declared dead.
pub const LIVENESS_TRIES: u32 = 8;
/// After a hint that the peer lost the SA: the longest wait before the next retransmission.
pub const HINT_WAIT: Duration = Duration::from_secs(1);
/// After a hint that the peer lost the SA: the most retransmissions still sent.
pub const HINT_TRIES: u32 = 3;

impl RetransmitPolicy {
    /// The liveness check of R-V2-3 for a check `interval`: retransmitted every
    /// [`LIVENESS_RETRY`] (or `interval`, if shorter), [`LIVENESS_TRIES`] times.
    pub fn liveness(interval: Duration) -> Self {
        let wait = interval.min(LIVENESS_RETRY);
        RetransmitPolicy {
            timeout: wait,
            base: 1.0,
            tries: LIVENESS_TRIES,
            max_timeout: wait,
        }
    }

    /// The wait after the `n`-th transmission (0 = the original).
    pub fn wait(&self, n: u32) -> Duration {
        let exp = i32::try_from(n).unwrap_or(i32::MAX);
        let factor = self.base.max(1.0).powi(exp);
        let secs = self.timeout.as_secs_f64() * factor;
        if !secs.is_finite() || secs >= self.max_timeout.as_secs_f64() {
            return self.max_timeout;
        }
        Duration::from_secs_f64(secs).min(self.max_timeout)
    }

    /// Total time from the first transmission until giving up.
    pub fn total(&self) -> Duration {
        (0..=self.tries).map(|n| self.wait(n)).sum()
    }

    /// Time from the first transmission to the last retransmission (the total without the
    /// final wait for an answer): 89.5 s by default.
    pub fn last_retransmission(&self) -> Duration {
        (0..self.tries).map(|n| self.wait(n)).sum()
    }
}

/// What a timeout of the outstanding request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestTimeout {
    /// Nothing is due.
    Nothing,
    /// Send these datagrams again.
    Retransmit(Vec<Vec<u8>>),
    /// All tries are used up: the peer is unreachable.
    GiveUp {
        /// The request's message ID.
        id: MessageId,
        /// How many hints ([`Requests::hint`]) came for it: the peer may have lost the SA.
        hints: u32,
    },
}

#[derive(Debug, Clone)]
struct InFlight {
    id: MessageId,
    datagrams: Vec<Vec<u8>>,
    sent: u32,
    deadline: Instant,
    policy: RetransmitPolicy,
    /// Hints that the peer lost the SA (unprotected INVALID_IKE_SPI answers), saturating.
    hints: u32,
}

/// Our requests as the initiator of exchanges: the next message ID and the one request in
/// flight (window size 1, §2.3).
#[derive(Debug, Clone, Default)]
pub struct Requests {
    next_id: u32,
    /// Boxed: an IKE SA has a request in flight only now and then (about 100 bytes).
    in_flight: Option<Box<InFlight>>,
}

impl Requests {
    /// Starting at message ID `first` (0 for a new IKE SA; 1 after IKE_SA_INIT).
    pub fn new(first: MessageId) -> Self {
        Requests {
            next_id: first.0,
            in_flight: None,
        }
    }

    /// The ID the next request will use.
    pub fn next_id(&self) -> MessageId {
        MessageId(self.next_id)
    }

    /// Whether a request is waiting for its response (no new one may start).
    pub fn busy(&self) -> bool {
        self.in_flight.is_some()
    }

    /// The ID of the request in flight.
    pub fn in_flight(&self) -> Option<MessageId> {
        self.in_flight.as_ref().map(|f| f.id)
    }

    /// Records that the request `next_id()` was sent as `datagrams` (several with
    /// fragmentation) at `now`. Returns its message ID, or `None` if a request is already in
    /// flight or the message IDs are exhausted (the SA must be rekeyed, §2.2).
    pub fn start(
        &mut self,
        now: Instant,
        datagrams: Vec<Vec<u8>>,
        policy: RetransmitPolicy,
    ) -> Option<MessageId> {
        if self.in_flight.is_some() || self.next_id == u32::MAX {
            return None;
        }
        let id = MessageId(self.next_id);
        self.in_flight = Some(Box::new(InFlight {
            id,
            datagrams,
            sent: 0,
            deadline: now + policy.wait(0),
            policy,
            hints: 0,
        }));
        Some(id)
    }

    /// Replaces the datagrams of the request in flight and restarts its timer (IKE_SA_INIT
    /// repeated with a COOKIE or another KE group keeps message ID 0, §2.6, §1.2).
    pub fn restart(&mut self, now: Instant, datagrams: Vec<Vec<u8>>) {
        if let Some(f) = &mut self.in_flight {
            f.datagrams = datagrams;
            f.sent = 0;
            f.deadline = now + f.policy.wait(0);
        }
    }

    /// When the request in flight times out next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.in_flight.as_ref().map(|f| f.deadline)
    }

    /// Handles the retransmission timer.
    //= https://www.rfc-editor.org/rfc/rfc7296#section-2.1
    //# For every pair of IKE messages, the initiator is responsible for retransmission in
    //# the event of a timeout.
    pub fn handle_timeout(&mut self, now: Instant) -> RequestTimeout {
        let Some(f) = &mut self.in_flight else {
            return RequestTimeout::Nothing;
        };
        if now < f.deadline {
            return RequestTimeout::Nothing;
        }
        if f.sent >= f.policy.tries {
            let (id, hints) = (f.id, f.hints);
            self.in_flight = None;
            return RequestTimeout::GiveUp { id, hints };
        }
        f.sent += 1;
        f.deadline = now + f.policy.wait(f.sent);
        RequestTimeout::Retransmit(f.datagrams.clone())
    }

    /// Whether a response with this ID answers our request in flight. If so, the request is
    /// done and the next ID is allocated; otherwise the response must be dropped (§2.3).
    pub fn handle_response(&mut self, id: MessageId) -> bool {
        match &self.in_flight {
            Some(f) if f.id == id => {
                self.in_flight = None;
                self.next_id = self.next_id.saturating_add(1);
                true
            }
            _ => false,
        }
    }

    /// An unauthenticated hint that the peer lost the SA arrived for the request in flight
    /// (an unprotected INVALID_IKE_SPI with its message ID and our SPIs).
    ///
    /// The first one moves the request to a short schedule: the next retransmission at most
    /// [`HINT_WAIT`] from now, then [`HINT_TRIES`] more at most, each at most [`HINT_WAIT`]
    /// apart; a schedule that was shorter stays. Later hints only count. Returns whether this
    /// was the first hint for the request.
    //= https://www.rfc-editor.org/rfc/rfc7296#section-2.21.4
    //# A peer receiving such an unprotected Notify payload MUST NOT respond and MUST NOT
    //# change the state of any existing SAs.  The message might be a forgery or might be a
    //# response that a genuine correspondent was tricked into sending.  A node should treat
    //# such a message (and also a network message like ICMP destination unreachable) as a
    //# hint that there might be problems with SAs to that IP address and should initiate a
    //# liveness check for any such IKE SA.
    pub fn hint(&mut self, now: Instant) -> bool {
        let Some(f) = &mut self.in_flight else {
            return false;
        };
        f.hints = f.hints.saturating_add(1);
        if f.hints > 1 {
            return false;
        }
        let wait = f.policy.wait(f.sent).min(HINT_WAIT);
        let left = f.policy.tries.saturating_sub(f.sent).min(HINT_TRIES);
        f.policy = RetransmitPolicy {
            timeout: wait,
            base: 1.0,
            tries: f.sent + left,
            max_timeout: wait,
        };
        f.deadline = f.deadline.min(now + wait);
        true
    }

    /// Hints that came for the request in flight.
    pub fn hints(&self) -> u32 {
        self.in_flight.as_ref().map_or(0, |f| f.hints)
    }

    /// Forgets the request in flight without consuming its ID (used when it is answered by
    /// an error that makes us restart the same exchange, e.g. INVALID_KE_PAYLOAD in
    /// IKE_SA_INIT).
    pub fn abandon(&mut self) {
        self.in_flight = None;
    }

    /// How many times the request in flight has been retransmitted.
    pub fn retransmissions(&self) -> u32 {
        self.in_flight.as_ref().map_or(0, |f| f.sent)
    }
}

/// How to treat a request received as responder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestClass<'a> {
    /// The next request: process it.
    New,
    /// A retransmission of the last request: send these cached datagrams again.
    Retransmit(&'a [Vec<u8>]),
    /// Stale or out of the window: drop silently.
    Drop,
}

/// A digest of a request as received (see [`Responses::note_request`]).
pub type RequestDigest = [u8; 16];

/// The cached response with what identifies its request ([`Responses::take_answered`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answered {
    /// The message ID of the exchange.
    pub id: MessageId,
    /// The digest of the request the response answers.
    pub request: RequestDigest,
    /// When the request was answered.
    pub at: Instant,
    /// The response as sent.
    pub datagrams: Vec<Vec<u8>>,
}

/// The responder side of the window: the ID expected next and the last response.
#[derive(Debug, Clone, Default)]
pub struct Responses {
    expected: u32,
    last: Option<(MessageId, Vec<Vec<u8>>)>,
    /// The digest of the request `last` answers, and when: set by
    /// [`Responses::note_request`], cleared by the next [`Responses::record`].
    request: Option<(RequestDigest, Instant)>,
}

impl Responses {
    /// Expecting `first` next (0 for a new IKE SA, 1 once IKE_SA_INIT is answered).
    pub fn new(first: MessageId) -> Self {
        Responses {
            expected: first.0,
            last: None,
            request: None,
        }
    }

    /// The ID of the next new request.
    pub fn expected(&self) -> MessageId {
        MessageId(self.expected)
    }

    /// Classifies a request by its message ID.
    //= https://www.rfc-editor.org/rfc/rfc7296#section-2.2
    //# The responder MUST remember each response until it receives a request whose
    //# sequence number is larger than or equal to the sequence number in the response
    //# plus its window size.
    pub fn classify(&self, id: MessageId) -> RequestClass<'_> {
        if id.0 == self.expected {
            return RequestClass::New;
        }
        match &self.last {
            Some((last, datagrams)) if *last == id => RequestClass::Retransmit(datagrams),
            _ => RequestClass::Drop,
        }
    }

    /// Records the response to request `id` (which must have been classified `New`).
    pub fn record(&mut self, id: MessageId, datagrams: Vec<Vec<u8>>) {
        self.last = Some((id, datagrams));
        self.request = None;
        self.expected = id.0.saturating_add(1);
    }

    /// Notes which request the cached response answers (a digest of its bytes) and when it
    /// was answered; ignored unless the cached response is the one to request `id`.
    pub fn note_request(&mut self, id: MessageId, request: RequestDigest, at: Instant) {
        if self.last.as_ref().is_some_and(|(last, _)| *last == id) {
            self.request = Some((request, at));
        }
    }

    /// Takes out the cached response, if its request was noted (for a tombstone of an SA
    /// that is going away).
    pub fn take_answered(&mut self) -> Option<Answered> {
        let (request, at) = self.request.take()?;
        let (id, datagrams) = self.last.take()?;
        Some(Answered {
            id,
            request,
            at,
            datagrams,
        })
    }

    /// The cached response, if any.
    pub fn last(&self) -> Option<(MessageId, &[Vec<u8>])> {
        self.last.as_ref().map(|(i, d)| (*i, d.as_slice()))
    }
}

/// The liveness timer: due when nothing was received for `interval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    interval: Option<Duration>,
    last_received: Instant,
}

impl Liveness {
    /// A liveness timer; `None` switches checks off.
    pub fn new(interval: Option<Duration>, now: Instant) -> Self {
        Liveness {
            interval,
            last_received: now,
        }
    }

    /// Something authentic arrived from the peer.
    pub fn on_receive(&mut self, now: Instant) {
        self.last_received = self.last_received.max(now);
    }

    /// When the next check is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.interval.map(|i| self.last_received + i)
    }

    /// Whether a check is due now.
    pub fn due(&self, now: Instant) -> bool {
        self.poll_timeout().is_some_and(|t| now >= t)
    }

    /// The retransmission policy of the check.
    pub fn policy(&self) -> Option<RetransmitPolicy> {
        self.interval.map(RetransmitPolicy::liveness)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> Instant {
        crate::sim::epoch()
    }

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn strongswan_schedule() {
        let p = RetransmitPolicy::default();
        let waits: Vec<f64> = (0..=5).map(|n| p.wait(n).as_secs_f64()).collect();
        let want = [4.0, 7.2, 12.96, 23.328, 41.9904, 75.58272];
        for (w, x) in waits.iter().zip(want) {
            assert!((w - x).abs() < 1e-6, "{waits:?}");
        }
        assert!((p.total().as_secs_f64() - want.iter().sum::<f64>()).abs() < 1e-6);
        let last: f64 = want[..5].iter().sum();
        assert!((p.last_retransmission().as_secs_f64() - last).abs() < 1e-6);
        let capped = RetransmitPolicy {
            max_timeout: secs(10.0),
            ..p
        };
        assert_eq!(capped.wait(3), secs(10.0));
        assert_eq!(capped.wait(u32::MAX), secs(10.0));
    }

    #[test]
    fn retransmits_then_gives_up() {
        let p = RetransmitPolicy::default();
        let mut r = Requests::new(MessageId(0));
        let id = r.start(t0(), vec![b"req".to_vec()], p).unwrap();
        assert_eq!(id, MessageId(0));
        assert!(r.start(t0(), vec![], p).is_none(), "window size 1");
        let mut now = t0();
        for n in 0..5 {
            let deadline = r.poll_timeout().unwrap();
            assert_eq!(deadline - now, p.wait(n));
            assert_eq!(
                r.handle_timeout(deadline - secs(0.001)),
                RequestTimeout::Nothing
            );
            assert_eq!(
                r.handle_timeout(deadline),
                RequestTimeout::Retransmit(vec![b"req".to_vec()])
            );
            now = deadline;
        }
        assert_eq!(r.retransmissions(), 5);
        let deadline = r.poll_timeout().unwrap();
        assert_eq!(
            r.handle_timeout(deadline),
            RequestTimeout::GiveUp {
                id: MessageId(0),
                hints: 0
            }
        );
        assert!(!r.busy());
        assert_eq!(r.poll_timeout(), None);
    }

    #[test]
    fn response_matching() {
        let mut r = Requests::new(MessageId(1));
        r.start(t0(), vec![b"x".to_vec()], RetransmitPolicy::default())
            .unwrap();
        assert!(!r.handle_response(MessageId(0)), "stale response");
        assert!(!r.handle_response(MessageId(2)), "future response");
        assert!(r.busy());
        assert!(r.handle_response(MessageId(1)));
        assert!(!r.busy());
        assert_eq!(r.next_id(), MessageId(2));
        assert!(!r.handle_response(MessageId(1)), "duplicate response");
        assert_eq!(r.next_id(), MessageId(2));
    }

    #[test]
    fn restart_keeps_the_id() {
        let mut r = Requests::new(MessageId(0));
        r.start(t0(), vec![b"a".to_vec()], RetransmitPolicy::default())
            .unwrap();
        r.handle_timeout(t0() + secs(4.0));
        r.restart(t0() + secs(5.0), vec![b"b".to_vec()]);
        assert_eq!(r.in_flight(), Some(MessageId(0)));
        assert_eq!(r.retransmissions(), 0);
        assert_eq!(r.poll_timeout(), Some(t0() + secs(9.0)));
        assert_eq!(
            r.handle_timeout(t0() + secs(9.0)),
            RequestTimeout::Retransmit(vec![b"b".to_vec()])
        );
    }

    #[test]
    fn ids_exhausted() {
        let mut r = Requests::new(MessageId(u32::MAX));
        assert!(r.start(t0(), vec![], RetransmitPolicy::default()).is_none());
    }

    #[test]
    fn responder_window() {
        let mut w = Responses::new(MessageId(1));
        assert_eq!(w.classify(MessageId(0)), RequestClass::Drop);
        assert_eq!(w.classify(MessageId(2)), RequestClass::Drop);
        assert_eq!(w.classify(MessageId(1)), RequestClass::New);
        w.record(MessageId(1), vec![b"resp1".to_vec()]);
        assert_eq!(
            w.classify(MessageId(1)),
            RequestClass::Retransmit(&[b"resp1".to_vec()])
        );
        assert_eq!(w.classify(MessageId(2)), RequestClass::New);
        w.record(MessageId(2), vec![b"resp2".to_vec()]);
        assert_eq!(
            w.classify(MessageId(1)),
            RequestClass::Drop,
            "older than the window"
        );
        assert_eq!(w.expected(), MessageId(3));
    }

    /// A hint shortens the schedule of the request in flight once, and never lengthens it.
    #[test]
    fn a_hint_shortens_the_schedule_and_only_once() {
        let p = RetransmitPolicy::liveness(secs(5.0));
        let mut r = Requests::new(MessageId(3));
        assert!(!r.hint(t0()), "nothing in flight");
        r.start(t0(), vec![b"check".to_vec()], p).unwrap();
        assert!(matches!(
            r.handle_timeout(t0() + secs(2.0)),
            RequestTimeout::Retransmit(_)
        ));
        // Answered by INVALID_IKE_SPI at 2.01 s: next try 1 s later, then 3 in all.
        let h = t0() + secs(2.01);
        assert!(r.hint(h));
        assert!(!r.hint(h), "a second hint changes nothing");
        assert_eq!(r.hints(), 2);
        assert_eq!(r.poll_timeout(), Some(h + secs(1.0)));
        let mut now = h;
        for _ in 0..3 {
            now = r.poll_timeout().unwrap();
            assert!(matches!(
                r.handle_timeout(now),
                RequestTimeout::Retransmit(_)
            ));
        }
        let end = r.poll_timeout().unwrap();
        assert_eq!(end - now, secs(1.0));
        assert_eq!(
            r.handle_timeout(end),
            RequestTimeout::GiveUp {
                id: MessageId(3),
                hints: 2
            }
        );
        assert!(end - t0() < p.total(), "sooner than without the hint");
        // A hint near the end of a schedule adds no tries.
        let mut r = Requests::new(MessageId(0));
        r.start(
            t0(),
            vec![b"x".to_vec()],
            RetransmitPolicy::liveness(secs(0.5)),
        )
        .unwrap();
        let mut now = t0();
        for _ in 0..7 {
            now = r.poll_timeout().unwrap();
            r.handle_timeout(now);
        }
        assert!(r.hint(now));
        assert_eq!(
            r.poll_timeout(),
            Some(now + secs(0.5)),
            "the shorter wait stays"
        );
        now = r.poll_timeout().unwrap();
        assert!(matches!(
            r.handle_timeout(now),
            RequestTimeout::Retransmit(_)
        ));
        now = r.poll_timeout().unwrap();
        assert!(matches!(
            r.handle_timeout(now),
            RequestTimeout::GiveUp { hints: 1, .. }
        ));
        // A genuine answer still completes a hinted request.
        let mut r = Requests::new(MessageId(9));
        r.start(t0(), vec![b"y".to_vec()], p).unwrap();
        r.hint(t0());
        assert!(r.handle_response(MessageId(9)));
        assert_eq!(r.hints(), 0);
    }

    #[test]
    fn answered_request_is_noted_only_for_the_cached_response() {
        let mut w = Responses::new(MessageId(0));
        w.note_request(MessageId(0), [1; 16], t0());
        assert_eq!(w.take_answered(), None, "nothing cached yet");
        w.record(MessageId(0), vec![b"resp0".to_vec()]);
        w.note_request(MessageId(1), [1; 16], t0());
        assert_eq!(w.take_answered(), None, "another exchange");
        w.note_request(MessageId(0), [2; 16], t0() + secs(1.0));
        w.record(MessageId(1), vec![b"resp1".to_vec()]);
        assert_eq!(
            w.take_answered(),
            None,
            "a new response forgets the old note"
        );
        w.note_request(MessageId(1), [3; 16], t0() + secs(2.0));
        assert_eq!(
            w.take_answered(),
            Some(Answered {
                id: MessageId(1),
                request: [3; 16],
                at: t0() + secs(2.0),
                datagrams: vec![b"resp1".to_vec()],
            })
        );
        assert_eq!(w.last(), None);
    }

    #[test]
    fn liveness_schedule() {
        let mut l = Liveness::new(Some(secs(5.0)), t0());
        assert!(!l.due(t0() + secs(4.9)));
        assert!(l.due(t0() + secs(5.0)));
        l.on_receive(t0() + secs(3.0));
        assert_eq!(l.poll_timeout(), Some(t0() + secs(8.0)));
        l.on_receive(t0() + secs(1.0));
        assert_eq!(
            l.poll_timeout(),
            Some(t0() + secs(8.0)),
            "time never goes back"
        );
        let p = l.policy().unwrap();
        assert_eq!(p.tries, 8);
        assert_eq!(p.wait(7), secs(2.0));
        // Dead 18 s after the check, at most 23 s after the last message from the peer.
        assert_eq!(p.total(), secs(18.0));
        // A check interval shorter than the retry wait sets the pace.
        assert_eq!(RetransmitPolicy::liveness(secs(1.0)).total(), secs(9.0));
        let off = Liveness::new(None, t0());
        assert_eq!(off.poll_timeout(), None);
        assert!(!off.due(t0() + secs(1e6)));
    }
}
