//! A sans-IO SCTP association for WebRTC data channels (RFC 9260 over DTLS, RFC 8261).
//!
//! Work in progress: the association replaces the SCTP layer of str0m.
#![allow(dead_code)]
