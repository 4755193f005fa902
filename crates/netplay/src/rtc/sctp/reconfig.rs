//! Stream resets (RFC 6525): our Outgoing SSN Reset Requests, one in flight at a time and
//! retransmitted until answered, and the answers to the peer's requests, performed at once
//! or deferred until our cumulative TSN reaches the peer's last TSN.
//!
//! Only the Outgoing SSN Reset Request is performed; the peer's other requests (incoming
//! reset, SSN/TSN reset, adding streams) are denied, which RFC 6525 allows and data
//! channels never need (both sides reset their own outgoing streams, and we offer the
//! maximum stream count from the start).

use crate::time::Instant;
use std::collections::VecDeque;

use super::assoc::Association;
use super::chunk::{self, Chunk, Params, Reader};
use super::{SctpError, SctpEvent};

// Re-configuration Response results (RFC 6525 4.4).
const SUCCESS_NOTHING_TO_DO: u32 = 0;
const SUCCESS_PERFORMED: u32 = 1;
const DENIED: u32 = 2;
const ERROR_BAD_SEQUENCE_NUMBER: u32 = 5;
const IN_PROGRESS: u32 = 6;

/// Responses queued for the peer; older ones are dropped (the peer retransmits).
const MAX_RESPONSES: usize = 4;

/// Our request in flight.
#[derive(Debug)]
struct OutRequest {
    seq: u32,
    streams: Vec<u16>,
    last_tsn: u32,
}

/// Stream reset state of an association.
#[derive(Debug)]
pub(super) struct Reconfig {
    /// Streams whose reset waits for their queued data to be sent, or for the request in
    /// flight to finish.
    requested: Vec<u16>,
    in_flight: Option<OutRequest>,
    send_request: bool,
    timer: Option<Instant>,
    /// The peer answered In Progress: the retry that the timer brings is not an error.
    retry_after_in_progress: bool,
    next_seq: u32,
    /// The peer's next expected request sequence number.
    peer_next_seq: u32,
    /// The last peer request processed and our result for it.
    last_peer: Option<(u32, u32)>,
    responses: VecDeque<(u32, u32)>,
}

impl Reconfig {
    pub(super) fn new(my_initial_tsn: u32) -> Reconfig {
        Reconfig {
            requested: Vec::new(),
            in_flight: None,
            send_request: false,
            timer: None,
            retry_after_in_progress: false,
            next_seq: my_initial_tsn,
            peer_next_seq: 0,
            last_peer: None,
            responses: VecDeque::new(),
        }
    }

    /// Request sequence numbers of the peer start at its Initial TSN.
    pub(super) fn start(&mut self, peer_initial_tsn: u32) {
        self.peer_next_seq = peer_initial_tsn;
        self.last_peer = None;
    }

    pub(super) fn timer(&self) -> Option<Instant> {
        self.timer
    }

    fn respond(&mut self, seq: u32, result: u32) {
        if self.responses.len() >= MAX_RESPONSES {
            self.responses.pop_front();
        }
        self.responses.push_back((seq, result));
    }

    /// The deferred incoming reset was performed: tell the peer.
    pub(super) fn deferred_reset_performed(&mut self) {
        if let Some((seq, IN_PROGRESS)) = self.last_peer {
            self.last_peer = Some((seq, SUCCESS_PERFORMED));
            self.respond(seq, SUCCESS_PERFORMED);
        }
    }
}

impl Association {
    /// Resets the outgoing side of `streams` (RFC 6525 Outgoing SSN Reset) once their queued
    /// messages are sent; [`send`](Self::send) refuses them meanwhile.
    /// [`SctpEvent::OutgoingStreamsReset`] follows when the peer performed the reset
    /// (or [`SctpEvent::OutgoingStreamsResetFailed`] if it refused).
    pub(crate) fn reset_streams(&mut self, streams: &[u16]) {
        if self.is_closed() {
            return;
        }
        for &stream in streams {
            if !self.tx.is_resetting(stream) {
                self.tx.set_resetting(stream, true);
                self.reconfig.requested.push(stream);
            }
        }
    }

    /// Starts a request for the requested streams whose data is all sent, if none is in
    /// flight.
    fn start_reset_request(&mut self, max_streams: usize) {
        let rc = &mut self.reconfig;
        if rc.in_flight.is_some() || rc.requested.is_empty() {
            return;
        }
        if !self.peer_supports_reconfig() {
            let streams = std::mem::take(&mut self.reconfig.requested);
            for &s in &streams {
                self.tx.set_resetting(s, false);
            }
            tracing::debug!(?streams, "SCTP peer cannot reset streams");
            self.events
                .push(SctpEvent::OutgoingStreamsResetFailed(streams));
            return;
        }
        let tx = &self.tx;
        let mut ready = Vec::new();
        self.reconfig.requested.retain(|&s| {
            if ready.len() < max_streams && !tx.stream_has_queued(s) {
                ready.push(s);
                false
            } else {
                true
            }
        });
        if ready.is_empty() {
            return;
        }
        let rc = &mut self.reconfig;
        rc.in_flight = Some(OutRequest {
            seq: rc.next_seq,
            streams: ready,
            last_tsn: self.tx.last_assigned_tsn(),
        });
        rc.send_request = true;
        rc.retry_after_in_progress = false;
    }

    /// Appends RE-CONFIG chunks (responses, then our request) that are due and fit.
    pub(super) fn write_reconfig(&mut self, out: &mut Vec<u8>, max: usize, now: Instant) {
        // A request holds up to this many streams in an otherwise empty packet.
        let max_streams = (max - chunk::COMMON_HEADER_LEN - 4 - 16) / 2;
        self.start_reset_request(max_streams);
        let rc = &mut self.reconfig;
        while let Some(&(seq, result)) = rc.responses.front() {
            if out.len() + 16 > max {
                return;
            }
            let start = out.len();
            chunk::put_chunk_header(out, chunk::RE_CONFIG, 0, 0);
            let mut value = [0u8; 8];
            value[..4].copy_from_slice(&seq.to_be_bytes());
            value[4..].copy_from_slice(&result.to_be_bytes());
            chunk::put_param(out, chunk::PARAM_RECONFIG_RESPONSE, &value);
            chunk::end_chunk(out, start);
            rc.responses.pop_front();
        }
        if !rc.send_request {
            return;
        }
        let Some(req) = &rc.in_flight else {
            rc.send_request = false;
            return;
        };
        let len = 4 + 16 + 2 * req.streams.len();
        if out.len() + chunk::padded(len) > max {
            return;
        }
        let start = out.len();
        chunk::put_chunk_header(out, chunk::RE_CONFIG, 0, 0);
        let mut value = Vec::with_capacity(12 + 2 * req.streams.len());
        value.extend_from_slice(&req.seq.to_be_bytes());
        value.extend_from_slice(&rc.peer_next_seq.wrapping_sub(1).to_be_bytes());
        value.extend_from_slice(&req.last_tsn.to_be_bytes());
        for s in &req.streams {
            value.extend_from_slice(&s.to_be_bytes());
        }
        chunk::put_param(out, chunk::PARAM_OUTGOING_RESET, &value);
        chunk::end_chunk(out, start);
        rc.send_request = false;
        rc.timer = Some(now + self.tx.rto());
    }

    /// The reconfiguration timer: retransmit the request in flight.
    pub(super) fn reconfig_timeout(&mut self, now: Instant) {
        if self.reconfig.timer.is_none_or(|t| t > now) {
            return;
        }
        self.reconfig.timer = None;
        if self.reconfig.in_flight.is_none() {
            return;
        }
        let retry = std::mem::take(&mut self.reconfig.retry_after_in_progress);
        if !retry && self.count_error("RE-CONFIG") {
            return;
        }
        self.reconfig.send_request = true;
    }

    /// A RE-CONFIG chunk from the peer.
    pub(super) fn on_reconfig(&mut self, c: &Chunk<'_>, now: Instant) -> Result<(), SctpError> {
        for param in Params::new(c.value, chunk::RE_CONFIG).take(4) {
            let param = param?;
            let mut r = Reader::new(param.value);
            let Some(seq) = r.u32() else {
                return Err(SctpError::malformed(
                    chunk::RE_CONFIG,
                    "RE-CONFIG parameter truncated",
                ));
            };
            match param.kind {
                chunk::PARAM_OUTGOING_RESET => {
                    let (Some(_response_seq), Some(last_tsn)) = (r.u32(), r.u32()) else {
                        return Err(SctpError::malformed(
                            chunk::RE_CONFIG,
                            "reset request truncated",
                        ));
                    };
                    if !r.rest().len().is_multiple_of(2) {
                        return Err(SctpError::malformed(chunk::RE_CONFIG, "odd stream list"));
                    }
                    let streams: Vec<u16> = r
                        .rest()
                        .chunks_exact(2)
                        .map(|b| u16::from_be_bytes([b[0], b[1]]))
                        .collect();
                    self.on_outgoing_reset_request(seq, last_tsn, streams);
                }
                chunk::PARAM_INCOMING_RESET
                | chunk::PARAM_SSN_TSN_RESET
                | chunk::PARAM_ADD_OUTGOING_STREAMS
                | chunk::PARAM_ADD_INCOMING_STREAMS => self.deny_request(seq),
                chunk::PARAM_RECONFIG_RESPONSE => {
                    let Some(result) = r.u32() else {
                        return Err(SctpError::malformed(chunk::RE_CONFIG, "response truncated"));
                    };
                    self.on_reconfig_response(seq, result, now);
                }
                other => tracing::debug!(kind = other, "unknown RE-CONFIG parameter ignored"),
            }
        }
        Ok(())
    }

    /// RFC 6525 5.2.2: the peer resets its outgoing streams, so our incoming ones.
    fn on_outgoing_reset_request(&mut self, seq: u32, last_tsn: u32, streams: Vec<u16>) {
        let rc = &mut self.reconfig;
        if seq == rc.peer_next_seq.wrapping_sub(1) {
            // A retransmission: answer as before.
            let result = match rc.last_peer {
                Some((s, result)) if s == seq => result,
                _ => ERROR_BAD_SEQUENCE_NUMBER,
            };
            rc.respond(seq, result);
            return;
        }
        if seq != rc.peer_next_seq {
            rc.respond(seq, ERROR_BAD_SEQUENCE_NUMBER);
            return;
        }
        if self.rx.has_pending_reset() {
            // One deferred reset at a time; the peer asks again later.
            rc.respond(seq, IN_PROGRESS);
            return;
        }
        rc.peer_next_seq = seq.wrapping_add(1);
        let result = if self.rx.reached(last_tsn) {
            self.rx.reset_streams(&streams);
            self.events.push(SctpEvent::IncomingStreamsReset(streams));
            SUCCESS_PERFORMED
        } else {
            self.rx.defer_reset(last_tsn, streams);
            IN_PROGRESS
        };
        self.reconfig.last_peer = Some((seq, result));
        self.reconfig.respond(seq, result);
    }

    /// Requests we do not perform are denied (consuming their sequence number).
    fn deny_request(&mut self, seq: u32) {
        let rc = &mut self.reconfig;
        if seq == rc.peer_next_seq {
            rc.peer_next_seq = seq.wrapping_add(1);
            rc.last_peer = Some((seq, DENIED));
            rc.respond(seq, DENIED);
        } else if seq == rc.peer_next_seq.wrapping_sub(1) {
            let result = rc
                .last_peer
                .filter(|&(s, _)| s == seq)
                .map_or(ERROR_BAD_SEQUENCE_NUMBER, |(_, r)| r);
            rc.respond(seq, result);
        } else {
            rc.respond(seq, ERROR_BAD_SEQUENCE_NUMBER);
        }
    }

    /// The peer's answer to our request.
    fn on_reconfig_response(&mut self, seq: u32, result: u32, now: Instant) {
        let rc = &mut self.reconfig;
        if rc.in_flight.as_ref().is_none_or(|r| r.seq != seq) {
            return;
        }
        self.assoc_errors = 0;
        match result {
            IN_PROGRESS => {
                rc.send_request = false;
                rc.retry_after_in_progress = true;
                rc.timer = Some(now + self.tx.rto());
            }
            SUCCESS_NOTHING_TO_DO | SUCCESS_PERFORMED => {
                let Some(req) = rc.in_flight.take() else {
                    return;
                };
                rc.next_seq = rc.next_seq.wrapping_add(1);
                rc.timer = None;
                rc.send_request = false;
                for &s in &req.streams {
                    self.tx.reset_ssn(s);
                }
                self.events
                    .push(SctpEvent::OutgoingStreamsReset(req.streams));
            }
            _ => {
                let Some(req) = rc.in_flight.take() else {
                    return;
                };
                tracing::debug!(result, streams = ?req.streams, "SCTP peer refused our stream reset");
                rc.next_seq = rc.next_seq.wrapping_add(1);
                rc.timer = None;
                rc.send_request = false;
                for &s in &req.streams {
                    self.tx.set_resetting(s, false);
                }
                self.events
                    .push(SctpEvent::OutgoingStreamsResetFailed(req.streams));
            }
        }
    }
}
