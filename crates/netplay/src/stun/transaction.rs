//! The client side of one STUN transaction over UDP (RFC 8489 §6.2.1, §6.3): when to send and
//! resend the request, when to give up, and which response ends it.
//!
//! This module owns the retransmission schedule as data. It has no clock: every call takes the
//! time elapsed since the transaction started, measured by the caller.

use crate::time::{Duration, Instant};

use super::{Class, Error, Key, Message, Method, TransactionId};

/// The retransmission parameters of RFC 8489 §6.2.1.
///
/// The request is sent at 0, RTO, 3·RTO, 7·RTO... (the interval doubles each time), `rc`
/// times in all; the transaction fails `rm`·RTO after the last send. The defaults (RTO 500 ms,
/// Rc 7, Rm 16) send at 0, 0.5, 1.5, 3.5, 7.5, 15.5 and 31.5 s and give up at 39.5 s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetransmitSchedule {
    /// The initial retransmission timeout. RFC 8489 recommends 500 ms, or an estimate from
    /// earlier transactions with the same server; it should not be zero.
    pub rto: Duration,
    /// How many times the request is sent, first transmission included (0 counts as 1).
    pub rc: u32,
    /// How many RTOs to wait after the last send before giving up.
    pub rm: u32,
}

impl Default for RetransmitSchedule {
    fn default() -> Self {
        RetransmitSchedule {
            rto: Duration::from_millis(500),
            rc: 7,
            rm: 16,
        }
    }
}

impl RetransmitSchedule {
    fn sends(&self) -> u32 {
        self.rc.max(1)
    }

    /// When send number `n` (0 for the first) is due, since the start: RTO·(2^n − 1).
    /// `None` past the last send. Saturates instead of overflowing.
    pub fn send_at(&self, n: u32) -> Option<Duration> {
        if n >= self.sends() {
            return None;
        }
        let factor = if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
        Some(scale(self.rto, factor))
    }

    /// When the transaction fails without a response, since the start: the last send plus
    /// Rm·RTO.
    pub fn timeout_at(&self) -> Duration {
        let last = self.send_at(self.sends() - 1).unwrap_or(Duration::MAX);
        last.saturating_add(scale(self.rto, self.rm as u64))
    }

    /// How many sends are due at `now`: those with `send_at(n) <= now`.
    fn sends_due(&self, now: Duration) -> u32 {
        let rto = self.rto.as_nanos();
        if rto == 0 {
            return self.sends();
        }
        // RTO·(2^n − 1) <= now  ⇔  2^n <= now/RTO + 1 (integer division is exact here, as
        // 2^n − 1 is an integer), so the count is floor(log2(now/RTO + 1)) + 1.
        let q = now.as_nanos() / rto + 1;
        let due = 128 - q.leading_zeros();
        due.min(self.sends())
    }
}

/// `d · factor`, saturating at the largest `Duration` whole nanoseconds can express.
fn scale(d: Duration, factor: u64) -> Duration {
    let nanos = d.as_nanos().saturating_mul(factor as u128);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// Where a [`ClientTransaction`] stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransactionState {
    /// Waiting for a response.
    Pending,
    /// A response arrived.
    Completed,
    /// No response came in time.
    TimedOut,
}

/// What a [`ClientTransaction`] wants done now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action<'a> {
    /// Send these bytes to the server now (the first transmission or a retransmission), then
    /// poll again.
    Transmit(&'a [u8]),
    /// Nothing to do until then, unless a response arrives first.
    WaitUntil(Instant),
    /// A response arrived; the transaction is over.
    Completed,
    /// No response within the schedule; the transaction failed.
    TimedOut,
}

/// The client side of one request over UDP: retransmits on the RFC 8489 §6.2.1 schedule and
/// recognises its response.
///
/// Drive it with [`ClientTransaction::poll`] at the times [`ClientTransaction::next_timeout`]
/// gives, and offer it every decoded message from the server with
/// [`ClientTransaction::handle_response`]. Over TCP or TLS, send the request once and rely on
/// the transport (RFC 8489 §6.2.2); this type is for UDP.
#[derive(Clone, Debug)]
pub struct ClientTransaction {
    id: TransactionId,
    method: Method,
    request: Vec<u8>,
    schedule: RetransmitSchedule,
    sent: u32,
    state: TransactionState,
    /// The time of the first poll: the schedule counts from it.
    started: Option<Instant>,
}

/// `start + d`, or a time about a century later where the sum does not fit (an extreme
/// schedule must not overflow the clock).
fn after(start: Instant, d: Duration) -> Instant {
    start
        .checked_add(d)
        .unwrap_or_else(|| start + Duration::from_secs(100 * 365 * 24 * 3600))
}

impl ClientTransaction {
    /// A transaction for `request`, encoded once now with MESSAGE-INTEGRITY under `integrity`
    /// if given and with FINGERPRINT.
    ///
    /// Fails if `request` is not of class request or does not encode.
    pub fn new(
        request: &Message,
        integrity: Option<&Key>,
        schedule: RetransmitSchedule,
    ) -> Result<ClientTransaction, Error> {
        if request.typ.class != Class::Request {
            return Err(Error::NotARequest(request.typ.class));
        }
        Ok(ClientTransaction {
            id: request.transaction_id,
            method: request.typ.method,
            request: request.encode(integrity, true)?,
            schedule,
            sent: 0,
            state: TransactionState::Pending,
            started: None,
        })
    }

    /// A Binding request to a STUN server with a fresh transaction ID, no credentials,
    /// FINGERPRINT and the default schedule: server-reflexive candidate gathering.
    pub fn binding() -> ClientTransaction {
        let request = Message::request(Method::Binding);
        ClientTransaction {
            id: request.transaction_id,
            method: Method::Binding,
            // 20-byte header and 8-byte FINGERPRINT.
            request: request.encode(None, true).unwrap_or_default(),
            schedule: RetransmitSchedule::default(),
            sent: 0,
            state: TransactionState::Pending,
            started: None,
        }
    }

    /// The transaction ID responses must carry.
    pub fn transaction_id(&self) -> TransactionId {
        self.id
    }

    /// The encoded request.
    pub fn request(&self) -> &[u8] {
        &self.request
    }

    /// Where the transaction stands.
    pub fn state(&self) -> TransactionState {
        self.state
    }

    /// What to do at `now`. The first poll starts the transaction: its schedule counts from
    /// that time.
    ///
    /// A send that is due returns [`Action::Transmit`]; a caller that polls late gets one
    /// transmission for all the sends it missed, not a burst, and the schedule keeps its
    /// original times.
    pub fn poll(&mut self, now: Instant) -> Action<'_> {
        match self.state {
            TransactionState::Completed => return Action::Completed,
            TransactionState::TimedOut => return Action::TimedOut,
            TransactionState::Pending => {}
        }
        let start = *self.started.get_or_insert(now);
        let elapsed = now.saturating_duration_since(start);
        if let Some(at) = self.schedule.send_at(self.sent) {
            if elapsed < at {
                return Action::WaitUntil(after(start, at));
            }
            self.sent = self.schedule.sends_due(elapsed).max(self.sent + 1);
            return Action::Transmit(&self.request);
        }
        let deadline = self.schedule.timeout_at();
        if elapsed < deadline {
            return Action::WaitUntil(after(start, deadline));
        }
        self.state = TransactionState::TimedOut;
        Action::TimedOut
    }

    /// When [`ClientTransaction::poll`] has something to do next; `None` before the first
    /// poll (which is due at once) and once the transaction is over.
    pub fn next_timeout(&self) -> Option<Instant> {
        if self.state != TransactionState::Pending {
            return None;
        }
        let at = self
            .schedule
            .send_at(self.sent)
            .unwrap_or_else(|| self.schedule.timeout_at());
        self.started.map(|start| after(start, at))
    }

    /// Whether `message` is a response to this request: the same transaction ID and method,
    /// class success or error.
    pub fn matches(&self, message: &Message) -> bool {
        message.transaction_id == self.id
            && message.typ.method == self.method
            && message.typ.class.is_response()
    }

    /// Offers a decoded message from the server. Returns `true` if it is the first response to
    /// this request, which completes the transaction; the caller then reads it (its
    /// [`Message::reflexive_address`], its [`Message::error_code`]...). A response with unknown
    /// comprehension-required attributes means failure (RFC 8489 §6.3.3,
    /// [`Message::unknown_comprehension_required`]).
    ///
    /// For an authenticated request, check the response with
    /// [`Message::decode_verified`] first: RFC 8489 §9 has clients discard responses whose
    /// integrity fails, and keep waiting.
    pub fn handle_response(&mut self, message: &Message) -> bool {
        if self.state != TransactionState::Pending || !self.matches(message) {
            return false;
        }
        self.state = TransactionState::Completed;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stun::{Attribute, MessageType};

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    /// `v` milliseconds after a fixed start of every test's clock.
    fn at(v: u64) -> Instant {
        static T0: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *T0.get_or_init(Instant::now) + ms(v)
    }

    #[test]
    fn default_schedule_sends_seven_times_and_gives_up_at_39_5_s() {
        // RFC 8489 §6.2.1's own example.
        let s = RetransmitSchedule::default();
        let sends: Vec<u64> = (0..8)
            .filter_map(|n| s.send_at(n))
            .map(|d| d.as_millis() as u64)
            .collect();
        assert_eq!(sends, [0, 500, 1500, 3500, 7500, 15500, 31500]);
        assert_eq!(s.timeout_at(), ms(39_500));
    }

    #[test]
    fn polling_on_time_transmits_on_the_schedule_then_times_out() {
        let mut tx = ClientTransaction::binding();
        let request = tx.request().to_vec();
        let mut transmits = Vec::new();
        let mut now = at(0);
        loop {
            match tx.poll(now) {
                Action::Transmit(bytes) => {
                    assert_eq!(bytes, request.as_slice());
                    transmits.push((now - at(0)).as_millis() as u64);
                }
                Action::WaitUntil(t) => {
                    assert!(t > now);
                    assert_eq!(tx.next_timeout(), Some(t));
                    now = t;
                }
                Action::TimedOut => break,
                Action::Completed => unreachable!(),
            }
        }
        assert_eq!(transmits, [0, 500, 1500, 3500, 7500, 15500, 31500]);
        assert_eq!(now, at(39_500));
        assert_eq!(tx.state(), TransactionState::TimedOut);
        assert_eq!(tx.next_timeout(), None);
        assert_eq!(tx.poll(at(50_000)), Action::TimedOut);
    }

    #[test]
    fn a_late_poll_sends_once_for_all_missed_sends() {
        let mut tx = ClientTransaction::binding();
        assert!(matches!(tx.poll(at(0)), Action::Transmit(_)));
        // Asleep until 4 s: the sends due at 0.5, 1.5 and 3.5 s collapse into one.
        assert!(matches!(tx.poll(at(4_000)), Action::Transmit(_)));
        assert_eq!(tx.poll(at(4_000)), Action::WaitUntil(at(7_500)));
        assert!(matches!(tx.poll(at(7_500)), Action::Transmit(_)));
        assert_eq!(tx.next_timeout(), Some(at(15_500)));
    }

    #[test]
    fn polling_before_a_send_is_due_only_waits() {
        let mut tx = ClientTransaction::binding();
        assert!(matches!(tx.poll(at(0)), Action::Transmit(_)));
        assert_eq!(tx.poll(at(499)), Action::WaitUntil(at(500)));
        assert_eq!(tx.poll(at(100)), Action::WaitUntil(at(500)));
    }

    #[test]
    fn only_a_response_with_the_same_id_and_method_completes() {
        let mut tx = ClientTransaction::binding();
        assert!(matches!(tx.poll(at(0)), Action::Transmit(_)));
        let request = Message::decode(tx.request()).unwrap();
        assert_eq!(
            request.typ,
            MessageType::new(Class::Request, Method::Binding)
        );
        assert!(request.has_fingerprint());

        let other_id = Message::new(
            MessageType::new(Class::Success, Method::Binding),
            TransactionId([9; 12]),
        );
        assert!(!tx.handle_response(&other_id));
        let other_method = Message::new(
            MessageType::new(Class::Success, Method::Allocate),
            tx.transaction_id(),
        );
        assert!(!tx.handle_response(&other_method));
        let not_a_response = Message::new(
            MessageType::new(Class::Indication, Method::Binding),
            tx.transaction_id(),
        );
        assert!(!tx.handle_response(&not_a_response));
        assert_eq!(tx.state(), TransactionState::Pending);

        let addr = "198.51.100.7:40000".parse().unwrap();
        let response = Message::new(
            MessageType::new(Class::Success, Method::Binding),
            tx.transaction_id(),
        )
        .with(Attribute::XorMappedAddress(addr));
        let response = Message::decode(&response.encode(None, true).unwrap()).unwrap();
        assert!(tx.handle_response(&response));
        assert_eq!(response.reflexive_address(), Some(addr));
        assert_eq!(tx.state(), TransactionState::Completed);
        assert_eq!(tx.poll(at(500)), Action::Completed);
        assert_eq!(tx.next_timeout(), None);
        // A duplicate response to a retransmission is not consumed twice.
        assert!(!tx.handle_response(&response));
        assert!(tx.matches(&response));
    }

    #[test]
    fn new_refuses_what_is_not_a_request_and_signs_what_is() {
        let indication = Message::indication(Method::Send);
        assert_eq!(
            ClientTransaction::new(&indication, None, RetransmitSchedule::default()).unwrap_err(),
            Error::NotARequest(Class::Indication)
        );
        let key = Key::long_term("u", "r", "p");
        let tx = ClientTransaction::new(
            &Message::request(Method::Allocate).with(Attribute::RequestedTransport(17)),
            Some(&key),
            RetransmitSchedule::default(),
        )
        .unwrap();
        assert!(Message::decode_verified(tx.request(), &key).is_ok());
    }

    #[test]
    fn extreme_schedules_saturate_instead_of_overflowing() {
        let s = RetransmitSchedule {
            rto: Duration::from_secs(u64::MAX / 2),
            rc: u32::MAX,
            rm: u32::MAX,
        };
        assert!(s.send_at(100).is_some());
        let _ = s.timeout_at();
        let mut tx = ClientTransaction::binding();
        tx.schedule = s;
        assert!(matches!(tx.poll(at(0)), Action::Transmit(_)));
        // Polled an age later: the sums saturate instead of overflowing.
        let _ = tx.poll(at(0) + Duration::from_secs(1 << 40));
        let _ = tx.next_timeout();
        let zero = RetransmitSchedule {
            rto: Duration::ZERO,
            rc: 0,
            rm: 0,
        };
        assert_eq!(zero.send_at(0), Some(Duration::ZERO));
        assert_eq!(zero.send_at(1), None);
        assert_eq!(zero.timeout_at(), Duration::ZERO);
        let mut tx = ClientTransaction::binding();
        tx.schedule = zero;
        assert!(matches!(tx.poll(at(0)), Action::Transmit(_)));
        assert_eq!(tx.poll(at(0)), Action::TimedOut);
    }
}
