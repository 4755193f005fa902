//! Session descriptions (SDP, RFC 8866) for data-channel-only WebRTC sessions.
//!
//! This module owns the text of the offers and answers: [`parse`] reads a remote description
//! (from a browser, libdatachannel, aiortc or ourselves) into the few facts netplay needs
//! ([`RemoteDescription`]), and [`write_offer`] / [`write_answer`] write ours
//! ([`LocalDescription`]). It is a deterministic core: no I/O, no clock, no randomness (the
//! session id and credentials are inputs).
//!
//! Reading is liberal: LF or CRLF line ends, whitespace around lines and values, attributes at
//! session or media level (media level wins), audio and video m-lines around the application
//! one, several fingerprints (sha-256 is picked), fingerprint hex in either case, the legacy
//! `DTLS/SCTP` m-line and `a=sctpmap`, unknown lines and attributes ignored. It never panics
//! on any input and refuses descriptions over [`MAX_SDP_LEN`] bytes, [`MAX_MEDIA`] m-lines or
//! [`MAX_CANDIDATES`] candidates. Errors come in two kinds ([`SdpError`]): the text does not
//! parse, or it parses but describes nothing netplay can use.
//!
//! Writing follows JSEP (RFC 8829) as Chromium does: one BUNDLEd `m=application ...
//! UDP/DTLS/SCTP webrtc-datachannel` line with ICE credentials (RFC 8839), `a=ice-options:
//! trickle`, a sha-256 fingerprint and `a=setup` (RFC 8122, RFC 8842), `a=sctp-port` and
//! `a=max-message-size` (RFC 8841). An answer rejects every other m-line of the offer (port 0,
//! RFC 3264) so the m-line counts match.
//!
//! What it does not do: parse the candidates (they are handed on as `candidate:...` strings),
//! negotiate media, or keep offer/answer state; that is the peer connection's business.

use std::fmt::Write as _;
use std::net::IpAddr;

/// The largest description [`parse`] reads, in bytes (64 KiB).
pub(crate) const MAX_SDP_LEN: usize = 64 * 1024;
/// The most m-lines [`parse`] accepts in one description.
pub(crate) const MAX_MEDIA: usize = 64;
/// The most `a=candidate` lines [`parse`] accepts in one description.
pub(crate) const MAX_CANDIDATES: usize = 1000;

/// The SCTP port of a data channel m-line that does not name one (RFC 8841 section 5.2).
const DEFAULT_SCTP_PORT: u16 = 5000;
/// The one transport protocol netplay speaks (RFC 8841).
const PROTO: &str = "UDP/DTLS/SCTP";
/// The pre-RFC 8841 protocol name, with the SCTP port as the m-line's format.
const LEGACY_PROTO: &str = "DTLS/SCTP";
/// The format of a data channel m-line (RFC 8841 section 4.1).
const DATA_CHANNEL_FORMAT: &str = "webrtc-datachannel";
/// The SCTP stream count written in a legacy `a=sctpmap` line.
const LEGACY_STREAMS: u16 = 1024;

/// Why a description could not be read.
///
/// The peer connection maps [`Malformed`](SdpError::Malformed) to its `Error::InvalidSdp` and
/// [`Unusable`](SdpError::Unusable) to `Error::SdpRejected`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SdpError {
    /// The text is not valid SDP (or a value in it does not have its attribute's syntax).
    #[error("malformed SDP: {0}")]
    Malformed(String),
    /// The text parses but cannot be used: no application m-line, no ICE credentials, no
    /// sha-256 fingerprint, a protocol other than UDP/DTLS/SCTP, a limit exceeded, ...
    #[error("unusable SDP: {0}")]
    Unusable(String),
}

/// The DTLS role attribute `a=setup` (RFC 8122 section 5, RFC 8842).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Setup {
    /// Either role; the answerer chooses (what an offer says).
    ActPass,
    /// This side opens the DTLS connection (it is the DTLS client).
    Active,
    /// This side waits for the DTLS connection (it is the DTLS server).
    Passive,
}

impl Setup {
    /// The attribute value: `actpass`, `active` or `passive`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Setup::ActPass => "actpass",
            Setup::Active => "active",
            Setup::Passive => "passive",
        }
    }
}

/// A certificate fingerprint from `a=fingerprint` (RFC 8122 section 5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Fingerprint {
    /// The hash function, lower case (`sha-256`).
    pub algorithm: String,
    /// The digest.
    pub bytes: Vec<u8>,
}

/// What netplay needs from a remote description (offer or answer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RemoteDescription {
    /// `a=ice-ufrag` of the application m-line, or of the session.
    pub ice_ufrag: String,
    /// `a=ice-pwd` of the application m-line, or of the session.
    pub ice_pwd: String,
    /// `a=ice-lite`: the remote agent is a lite implementation (RFC 8445 section 2.5).
    pub ice_lite: bool,
    /// The sha-256 fingerprint of the application m-line, or of the session.
    pub fingerprint: Fingerprint,
    /// `a=setup`; when absent, [`Setup::ActPass`] in an offer and [`Setup::Active`] in an
    /// answer (RFC 8842 section 5.2 and 5.3 defaults).
    pub setup: Setup,
    /// The application m-line's `a=mid` (`"0"` if absent).
    pub mid: String,
    /// `a=sctp-port`, or the legacy `a=sctpmap:<port> webrtc-datachannel` or
    /// `m=application 9 DTLS/SCTP <port>` form; 5000 when none is given.
    pub sctp_port: u16,
    /// The application m-line uses the legacy `DTLS/SCTP` protocol (answer it in that form).
    pub legacy_sctp: bool,
    /// `a=max-message-size` (0 means no limit: the caller's business).
    pub max_message_size: Option<u64>,
    /// The application m-line's `a=candidate` lines, as `candidate:...` without `a=`.
    pub candidates: Vec<String>,
    /// `a=end-of-candidates` (RFC 8838): the candidates above are all there will be.
    pub end_of_candidates: bool,
    /// The number of m-lines.
    pub media_count: usize,
    /// The index of the application m-line among them.
    pub application_index: usize,
    /// The application mid is in an `a=group:BUNDLE` (an answer may then bundle it too).
    pub bundled: bool,
    /// The other m-lines, in order, as `m=<media> <port> <proto> <formats>` (for the answer to
    /// reject them).
    pub rejected_media: Vec<String>,
    /// The other m-lines' `a=mid`, in the same order.
    pub other_mids: Vec<Option<String>>,
}

/// What netplay writes into its offer or answer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LocalDescription<'a> {
    /// The `o=` session id; its top bit is cleared when written (JSEP: at most 2^63 - 1).
    pub session_id: u64,
    /// Our ICE username fragment (4 to 256 ICE characters).
    pub ice_ufrag: &'a str,
    /// Our ICE password (22 to 256 ICE characters).
    pub ice_pwd: &'a str,
    /// The sha-256 digest of our DTLS certificate.
    pub fingerprint_sha256: &'a [u8; 32],
    /// Our DTLS role: [`Setup::ActPass`] in an offer; in an answer `ActPass` is written as
    /// [`Setup::Active`], since an answerer must choose.
    pub setup: Setup,
    /// The application mid of an offer; an answer uses the offer's.
    pub mid: &'a str,
    /// Our SCTP port.
    pub sctp_port: u16,
    /// The largest message we take (`a=max-message-size`; 0 means no limit).
    pub max_message_size: u64,
    /// Candidates to include, as `candidate:...`; usually none, since they are trickled.
    pub candidates: &'a [String],
    /// Gathering is complete: write `a=end-of-candidates` after the candidates.
    pub end_of_candidates: bool,
}

/// One `a=` line: its name and the value after the first `:`, both trimmed.
#[derive(Clone, Copy, Debug)]
struct Attribute<'a> {
    /// The 1-based line number, for error messages.
    line: usize,
    /// The attribute name (`fingerprint`).
    name: &'a str,
    /// The value, if the line has a `:`.
    value: Option<&'a str>,
}

/// One m-line and the attributes under it.
#[derive(Debug)]
struct Media<'a> {
    /// The 1-based line number of the `m=` line.
    line: usize,
    /// The media type (`application`, `audio`).
    media: &'a str,
    /// The port (0: rejected, or bundle-only).
    port: u16,
    /// The transport protocol (`UDP/DTLS/SCTP`).
    proto: &'a str,
    /// The formats (at least one).
    formats: Vec<&'a str>,
    /// The `a=` lines of this section.
    attributes: Vec<Attribute<'a>>,
}

impl<'a> Media<'a> {
    /// The m-line, normalised to single spaces.
    fn m_line(&self) -> String {
        format!(
            "m={} {} {} {}",
            self.media,
            self.port,
            self.proto,
            self.formats.join(" ")
        )
    }

    /// The first value of attribute `name` in this section.
    fn first(&self, name: &str) -> Option<Attribute<'a>> {
        first(&self.attributes, name)
    }

    /// This section has a property attribute `name` (one without a value).
    fn has(&self, name: &str) -> bool {
        self.first(name).is_some()
    }

    /// A data channel m-line: `application` over UDP/DTLS/SCTP (with the
    /// `webrtc-datachannel` format) or the legacy DTLS/SCTP.
    fn is_data_channel(&self) -> bool {
        self.media.eq_ignore_ascii_case("application")
            && ((self.proto.eq_ignore_ascii_case(PROTO)
                && self
                    .formats
                    .iter()
                    .any(|f| f.eq_ignore_ascii_case(DATA_CHANNEL_FORMAT)))
                || self.proto.eq_ignore_ascii_case(LEGACY_PROTO))
    }

    /// Port 0 with `a=bundle-only` (RFC 8843 section 6): in use, on its BUNDLE group's
    /// transport.
    fn is_bundle_only(&self) -> bool {
        self.port == 0 && self.has("bundle-only")
    }
}

/// The first attribute called `name` (ASCII case-insensitive) in `attributes`.
fn first<'a>(attributes: &[Attribute<'a>], name: &str) -> Option<Attribute<'a>> {
    attributes
        .iter()
        .find(|a| a.name.eq_ignore_ascii_case(name))
        .copied()
}

/// A description split into its session-level attributes and its m-sections.
struct Lexed<'a> {
    /// The `a=` lines before the first m-line.
    session: Vec<Attribute<'a>>,
    /// The m-sections, in order.
    media: Vec<Media<'a>>,
}

/// At most 60 characters of `s`, for quoting peer input in an error message.
fn excerpt(s: &str) -> String {
    let mut out: String = s.chars().take(60).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// A [`SdpError::Malformed`] about line `line`.
fn malformed(line: usize, what: impl std::fmt::Display) -> SdpError {
    SdpError::Malformed(format!("line {line}: {what}"))
}

/// Splits the text into lines and sections, checking the line syntax (`<type>=<value>`), the
/// `v=0` first line, the m-line syntax and the limits.
fn lex(sdp: &str) -> Result<Lexed<'_>, SdpError> {
    if sdp.len() > MAX_SDP_LEN {
        return Err(SdpError::Unusable(format!(
            "the description is {} bytes long, over the limit of {MAX_SDP_LEN}",
            sdp.len()
        )));
    }
    let mut lexed = Lexed {
        session: Vec::new(),
        media: Vec::new(),
    };
    let mut seen_version = false;
    let mut candidates = 0usize;
    for (index, raw) in sdp.split('\n').enumerate() {
        let number = index + 1;
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        let (kind, value) = match (line.as_bytes(), line.get(2..)) {
            ([kind, b'=', ..], Some(value)) => (*kind, value.trim()),
            _ => {
                return Err(malformed(
                    number,
                    format!("expected <type>=<value>, found {:?}", excerpt(line)),
                ))
            }
        };
        if !seen_version {
            if kind != b'v' || value != "0" {
                return Err(malformed(
                    number,
                    format!("a description starts with v=0, not {:?}", excerpt(line)),
                ));
            }
            seen_version = true;
            continue;
        }
        match kind {
            b'm' => {
                if lexed.media.len() == MAX_MEDIA {
                    return Err(SdpError::Unusable(format!("more than {MAX_MEDIA} m-lines")));
                }
                lexed.media.push(parse_m_line(number, value)?);
            }
            b'a' => {
                let (name, value) = match value.split_once(':') {
                    Some((name, value)) => (name.trim(), Some(value.trim())),
                    None => (value, None),
                };
                if name.eq_ignore_ascii_case("candidate") {
                    candidates += 1;
                    if candidates > MAX_CANDIDATES {
                        return Err(SdpError::Unusable(format!(
                            "more than {MAX_CANDIDATES} candidates"
                        )));
                    }
                }
                let attribute = Attribute {
                    line: number,
                    name,
                    value,
                };
                match lexed.media.last_mut() {
                    Some(media) => media.attributes.push(attribute),
                    None => lexed.session.push(attribute),
                }
            }
            // o=, s=, t=, c=, b=, and anything newer: nothing netplay needs.
            _ => {}
        }
    }
    if !seen_version {
        return Err(SdpError::Malformed("the description is empty".into()));
    }
    Ok(lexed)
}

/// Parses the value of an `m=` line: `<media> <port>[/<count>] <proto> <format>...`.
fn parse_m_line(line: usize, value: &str) -> Result<Media<'_>, SdpError> {
    let mut fields = value.split_whitespace();
    let (Some(media), Some(port), Some(proto)) = (fields.next(), fields.next(), fields.next())
    else {
        return Err(malformed(
            line,
            format!(
                "an m-line is m=<media> <port> <proto> <format>..., not {:?}",
                excerpt(value)
            ),
        ));
    };
    let formats: Vec<&str> = fields.collect();
    if formats.is_empty() {
        return Err(malformed(
            line,
            format!("the m-line {:?} has no format", excerpt(value)),
        ));
    }
    let port_number = port.split_once('/').map_or(port, |(p, _)| p);
    let port = port_number.parse::<u16>().map_err(|_| {
        malformed(
            line,
            format!("the m-line port {:?} is not a number", excerpt(port)),
        )
    })?;
    Ok(Media {
        line,
        media,
        port,
        proto,
        formats,
        attributes: Vec::new(),
    })
}

/// A token (RFC 8866 section 9): visible ASCII except the separators.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !b"\"(),/:;<=>?@[\\]".contains(&b))
}

/// An ICE credential: `ice-char` = ALPHA / DIGIT / "+" / "/" (RFC 8839 section 5.4), `min`
/// to 256 of them.
fn check_ice_credential(attribute: Attribute<'_>, min: usize) -> Result<String, SdpError> {
    let value = attribute.value.unwrap_or("");
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
    {
        return Err(malformed(
            attribute.line,
            format!(
                "a={} {:?} has characters other than letters, digits, + and /",
                attribute.name,
                excerpt(value)
            ),
        ));
    }
    if !(min..=256).contains(&value.len()) {
        return Err(malformed(
            attribute.line,
            format!(
                "a={} is {} characters long; it takes {min} to 256",
                attribute.name,
                value.len()
            ),
        ));
    }
    Ok(value.to_owned())
}

/// Parses the value of `a=fingerprint`: `<hash function> <hex>:<hex>:...`. The digest is
/// parsed only when `with_digest` (for the one that is used).
fn parse_fingerprint(attribute: Attribute<'_>, with_digest: bool) -> Result<Fingerprint, SdpError> {
    let value = attribute.value.unwrap_or("");
    let mut fields = value.split_whitespace();
    let (Some(algorithm), Some(hex), None) = (fields.next(), fields.next(), fields.next()) else {
        return Err(malformed(
            attribute.line,
            format!(
                "a=fingerprint is <hash function> <hex digest>, not {:?}",
                excerpt(value)
            ),
        ));
    };
    let mut bytes = Vec::new();
    if with_digest {
        for pair in hex.split(':') {
            let digits = pair.as_bytes();
            let byte = match digits {
                [high, low] => hex_digit(*high)
                    .zip(hex_digit(*low))
                    .map(|(h, l)| h << 4 | l),
                _ => None,
            };
            let Some(byte) = byte else {
                return Err(malformed(
                    attribute.line,
                    format!(
                        "the fingerprint {:?} is not colon-separated hex pairs",
                        excerpt(hex)
                    ),
                ));
            };
            bytes.push(byte);
        }
    }
    Ok(Fingerprint {
        algorithm: algorithm.to_ascii_lowercase(),
        bytes,
    })
}

/// The value of one hex digit, either case.
fn hex_digit(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Parses a number attribute's value.
fn parse_number<T: std::str::FromStr>(attribute: Attribute<'_>) -> Result<T, SdpError> {
    let value = attribute.value.unwrap_or("");
    value.parse().map_err(|_| {
        malformed(
            attribute.line,
            format!(
                "a={} {:?} is not a valid number",
                attribute.name,
                excerpt(value)
            ),
        )
    })
}

/// Reads a remote description: an offer when `kind_is_offer`, else an answer.
///
/// The application m-line is the first `m=application` over UDP/DTLS/SCTP (or the legacy
/// DTLS/SCTP) that is not rejected (port 0 without `a=bundle-only`). Its attributes win over
/// the session-level ones; for a bundle-only application m-line, the attributes and candidates
/// of its BUNDLE group's first m-line (which carries the transport) come in between.
pub(crate) fn parse(sdp: &str, kind_is_offer: bool) -> Result<RemoteDescription, SdpError> {
    let lexed = lex(sdp)?;
    let media = &lexed.media;

    // Every m-line's mid: a token, and unique.
    let mut mids: Vec<Option<&str>> = Vec::with_capacity(media.len());
    for section in media {
        let mid = match section.first("mid") {
            Some(attribute) => {
                let value = attribute.value.unwrap_or("");
                if !is_token(value) {
                    return Err(malformed(
                        attribute.line,
                        format!("a=mid {:?} is not a token", excerpt(value)),
                    ));
                }
                if mids.contains(&Some(value)) {
                    return Err(SdpError::Unusable(format!(
                        "line {}: the mid {value:?} is used by two m-lines",
                        attribute.line
                    )));
                }
                Some(value)
            }
            None => None,
        };
        mids.push(mid);
    }

    let Some(application_index) = media
        .iter()
        .position(|m| m.is_data_channel() && (m.port != 0 || m.is_bundle_only()))
    else {
        return Err(no_application_reason(media));
    };
    let application = &media[application_index];
    let application_mid = mids.get(application_index).copied().flatten();
    if application_mid.is_none() && mids.contains(&Some("0")) {
        return Err(SdpError::Unusable(format!(
            "line {}: the application m-line has no a=mid, and its default \"0\" is another \
             m-line's",
            application.line
        )));
    }

    // The BUNDLE groups (RFC 8843): `a=group:BUNDLE <mid>...` at session level.
    let bundles: Vec<Vec<&str>> = lexed
        .session
        .iter()
        .filter(|a| a.name.eq_ignore_ascii_case("group"))
        .filter_map(|a| {
            let mut fields = a.value?.split_whitespace();
            fields
                .next()
                .filter(|semantics| semantics.eq_ignore_ascii_case("BUNDLE"))
                .map(|_| fields.collect())
        })
        .collect();
    let group = application_mid.and_then(|mid| bundles.iter().find(|g| g.contains(&mid)));

    // Where the transport attributes are: the application m-line, then (bundle-only) its
    // group's tag m-line, then the session.
    let transport = if application.is_bundle_only() {
        group
            .and_then(|g| g.first())
            .and_then(|tag| mids.iter().position(|mid| *mid == Some(*tag)))
            .and_then(|i| media.get(i))
            .filter(|m| m.port != 0 && m.line != application.line)
    } else {
        None
    };
    let mut levels: Vec<&[Attribute<'_>]> = vec![&application.attributes];
    if let Some(transport) = transport {
        levels.push(&transport.attributes);
    }
    levels.push(&lexed.session);
    let lookup = |name: &str| levels.iter().find_map(|level| first(level, name));

    let ice_ufrag = match lookup("ice-ufrag") {
        Some(attribute) => check_ice_credential(attribute, 4)?,
        None => return Err(SdpError::Unusable("no a=ice-ufrag".into())),
    };
    let ice_pwd = match lookup("ice-pwd") {
        Some(attribute) => check_ice_credential(attribute, 22)?,
        None => return Err(SdpError::Unusable("no a=ice-pwd".into())),
    };
    let ice_lite = lookup("ice-lite").is_some();
    let fingerprint = pick_fingerprint(&levels)?;
    let setup = parse_setup(lookup("setup"), kind_is_offer)?;

    let legacy_sctp = application.proto.eq_ignore_ascii_case(LEGACY_PROTO);
    let sctp_port = sctp_port(application, legacy_sctp)?;
    let max_message_size = application
        .first("max-message-size")
        .map(parse_number::<u64>)
        .transpose()?;

    let mut candidates = Vec::new();
    for section in std::iter::once(application).chain(transport) {
        for attribute in &section.attributes {
            if attribute.name.eq_ignore_ascii_case("candidate") {
                match attribute.value {
                    Some(value) if !value.is_empty() => {
                        candidates.push(format!("candidate:{value}"));
                    }
                    _ => return Err(malformed(attribute.line, "a=candidate without a value")),
                }
            }
        }
    }
    let end_of_candidates = lookup("end-of-candidates").is_some();

    let mut rejected_media = Vec::new();
    let mut other_mids = Vec::new();
    for (i, section) in media.iter().enumerate() {
        if i != application_index {
            rejected_media.push(section.m_line());
            other_mids.push(mids.get(i).copied().flatten().map(str::to_owned));
        }
    }

    Ok(RemoteDescription {
        ice_ufrag,
        ice_pwd,
        ice_lite,
        fingerprint,
        setup,
        mid: application_mid.unwrap_or("0").to_owned(),
        sctp_port,
        legacy_sctp,
        max_message_size,
        candidates,
        end_of_candidates,
        media_count: media.len(),
        application_index,
        bundled: group.is_some(),
        rejected_media,
        other_mids,
    })
}

/// Why no m-line is a usable data channel m-line, about the first `m=application`.
fn no_application_reason(media: &[Media<'_>]) -> SdpError {
    let Some(application) = media
        .iter()
        .find(|m| m.media.eq_ignore_ascii_case("application"))
    else {
        return SdpError::Unusable("no m=application line (data channels)".into());
    };
    let reason = if !application.is_data_channel() {
        format!(
            "the m=application line has protocol {:?} and formats {:?}; netplay needs {PROTO} \
             with {DATA_CHANNEL_FORMAT}",
            excerpt(application.proto),
            excerpt(&application.formats.join(" "))
        )
    } else {
        "the m=application line is rejected (port 0)".to_owned()
    };
    SdpError::Unusable(format!("line {}: {reason}", application.line))
}

/// The sha-256 fingerprint of the first level that has any `a=fingerprint`.
fn pick_fingerprint(levels: &[&[Attribute<'_>]]) -> Result<Fingerprint, SdpError> {
    let Some(level) = levels
        .iter()
        .find(|level| first(level, "fingerprint").is_some())
    else {
        return Err(SdpError::Unusable("no a=fingerprint".into()));
    };
    let mut algorithms = Vec::new();
    for attribute in level
        .iter()
        .filter(|a| a.name.eq_ignore_ascii_case("fingerprint"))
    {
        let header = parse_fingerprint(*attribute, false)?;
        if header.algorithm == "sha-256" {
            let fingerprint = parse_fingerprint(*attribute, true)?;
            if fingerprint.bytes.len() != 32 {
                return Err(malformed(
                    attribute.line,
                    format!(
                        "the sha-256 fingerprint has {} bytes, not 32",
                        fingerprint.bytes.len()
                    ),
                ));
            }
            return Ok(fingerprint);
        }
        algorithms.push(excerpt(&header.algorithm));
    }
    Err(SdpError::Unusable(format!(
        "no sha-256 fingerprint (only {}); netplay supports sha-256 only",
        algorithms.join(", ")
    )))
}

/// The DTLS role from `a=setup`, case-insensitive, with RFC 8842's defaults.
fn parse_setup(attribute: Option<Attribute<'_>>, kind_is_offer: bool) -> Result<Setup, SdpError> {
    let Some(attribute) = attribute else {
        return Ok(if kind_is_offer {
            Setup::ActPass
        } else {
            Setup::Active
        });
    };
    let value = attribute.value.unwrap_or("");
    let setup = if value.eq_ignore_ascii_case("actpass") {
        Setup::ActPass
    } else if value.eq_ignore_ascii_case("active") {
        Setup::Active
    } else if value.eq_ignore_ascii_case("passive") {
        Setup::Passive
    } else if value.eq_ignore_ascii_case("holdconn") {
        return Err(SdpError::Unusable(format!(
            "line {}: a=setup:holdconn (no DTLS connection) leaves no data channel",
            attribute.line
        )));
    } else {
        return Err(malformed(
            attribute.line,
            format!(
                "a=setup {:?} is not actpass, active, passive or holdconn",
                excerpt(value)
            ),
        ));
    };
    if setup == Setup::ActPass && !kind_is_offer {
        return Err(SdpError::Unusable(format!(
            "line {}: an answer must choose a=setup:active or passive, not actpass",
            attribute.line
        )));
    }
    Ok(setup)
}

/// The SCTP port: `a=sctp-port`, else the legacy `a=sctpmap:<port> webrtc-datachannel`, else
/// the legacy m-line's format, else 5000.
fn sctp_port(application: &Media<'_>, legacy: bool) -> Result<u16, SdpError> {
    let port = if let Some(attribute) = application.first("sctp-port") {
        parse_number::<u16>(attribute)?
    } else if let Some(attribute) = application.first("sctpmap") {
        let value = attribute.value.unwrap_or("");
        let number = value.split_whitespace().next().unwrap_or("");
        number.parse::<u16>().map_err(|_| {
            malformed(
                attribute.line,
                format!("a=sctpmap {:?} does not start with a port", excerpt(value)),
            )
        })?
    } else if legacy {
        let format = application.formats.first().copied().unwrap_or("");
        format.parse::<u16>().map_err(|_| {
            malformed(
                application.line,
                format!(
                    "the DTLS/SCTP m-line format {:?} is not an SCTP port",
                    excerpt(format)
                ),
            )
        })?
    } else {
        DEFAULT_SCTP_PORT
    };
    if port == 0 {
        return Err(SdpError::Unusable("SCTP port 0".into()));
    }
    Ok(port)
}

/// Writes `line` and CRLF.
fn push_line(out: &mut String, line: std::fmt::Arguments<'_>) {
    // Writing to a String cannot fail.
    let _ = out.write_fmt(line);
    out.push_str("\r\n");
}

/// The session part: `v=`, `o=`, `s=`, `t=` and the BUNDLE group if any.
fn write_session(out: &mut String, session_id: u64, bundle: Option<&str>) {
    push_line(out, format_args!("v=0"));
    push_line(
        out,
        format_args!("o=- {} 2 IN IP4 127.0.0.1", session_id & (u64::MAX >> 1)),
    );
    push_line(out, format_args!("s=-"));
    push_line(out, format_args!("t=0 0"));
    if let Some(mid) = bundle {
        push_line(out, format_args!("a=group:BUNDLE {mid}"));
    }
}

/// The default candidate's address and port for the `m=` and `c=` lines (RFC 8839 section
/// 4.2.1): the first candidate's, or the "not yet known" 0.0.0.0 port 9.
fn default_destination(candidates: &[String]) -> (IpAddr, u16) {
    candidates
        .iter()
        .find_map(|c| {
            // candidate:<foundation> <component> <transport> <priority> <address> <port> typ ...
            let mut fields = c.split_whitespace().skip(4);
            let address = fields.next()?.parse::<IpAddr>().ok()?;
            let port = fields.next()?.parse::<u16>().ok()?;
            Some((address, port))
        })
        .unwrap_or((IpAddr::from([0, 0, 0, 0]), 9))
}

/// The transport attributes: ICE credentials and options, fingerprint and DTLS role.
fn write_transport(out: &mut String, d: &LocalDescription<'_>, setup: Setup) {
    push_line(out, format_args!("a=ice-ufrag:{}", d.ice_ufrag));
    push_line(out, format_args!("a=ice-pwd:{}", d.ice_pwd));
    push_line(out, format_args!("a=ice-options:trickle"));
    let mut hex = String::with_capacity(32 * 3);
    for (i, byte) in d.fingerprint_sha256.iter().enumerate() {
        if i > 0 {
            hex.push(':');
        }
        let _ = write!(hex, "{byte:02X}");
    }
    push_line(out, format_args!("a=fingerprint:sha-256 {hex}"));
    push_line(out, format_args!("a=setup:{}", setup.as_str()));
}

/// The application m-section.
fn write_application(
    out: &mut String,
    d: &LocalDescription<'_>,
    mid: &str,
    setup: Setup,
    legacy: bool,
) {
    let (address, port) = default_destination(d.candidates);
    if legacy {
        push_line(
            out,
            format_args!("m=application {port} {LEGACY_PROTO} {}", d.sctp_port),
        );
    } else {
        push_line(
            out,
            format_args!("m=application {port} {PROTO} {DATA_CHANNEL_FORMAT}"),
        );
    }
    let family = if address.is_ipv4() { "IP4" } else { "IP6" };
    push_line(out, format_args!("c=IN {family} {address}"));
    write_transport(out, d, setup);
    push_line(out, format_args!("a=mid:{mid}"));
    if legacy {
        push_line(
            out,
            format_args!(
                "a=sctpmap:{} {DATA_CHANNEL_FORMAT} {LEGACY_STREAMS}",
                d.sctp_port
            ),
        );
    } else {
        push_line(out, format_args!("a=sctp-port:{}", d.sctp_port));
    }
    push_line(
        out,
        format_args!("a=max-message-size:{}", d.max_message_size),
    );
    for candidate in d.candidates {
        push_line(out, format_args!("a={candidate}"));
    }
    if d.end_of_candidates {
        push_line(out, format_args!("a=end-of-candidates"));
    }
}

/// Our offer: one BUNDLEd data channel m-line.
pub(crate) fn write_offer(d: &LocalDescription<'_>) -> String {
    let mut out = String::with_capacity(640);
    write_session(&mut out, d.session_id, Some(d.mid));
    write_application(&mut out, d, d.mid, d.setup, false);
    out
}

/// An answer to `offer`: the application m-line answered (with the offer's mid, in the
/// offer's form: legacy DTLS/SCTP if the offer used it), the other m-lines echoed rejected
/// (port 0, same media, protocol, formats and mid: RFC 3264 section 6, RFC 8829 section
/// 5.3.1) so the m-line counts match; a BUNDLE group with the application mid only, if the
/// offer bundled it.
pub(crate) fn write_answer(d: &LocalDescription<'_>, offer: &RemoteDescription) -> String {
    let mut out = String::with_capacity(640 + 96 * offer.rejected_media.len());
    let mid = offer.mid.as_str();
    write_session(&mut out, d.session_id, offer.bundled.then_some(mid));
    let setup = match d.setup {
        Setup::ActPass => Setup::Active,
        other => other,
    };
    let mut rejected = offer.rejected_media.iter().zip(&offer.other_mids);
    for index in 0..offer.media_count {
        if index == offer.application_index {
            write_application(&mut out, d, mid, setup, offer.legacy_sctp);
        } else if let Some((m_line, rejected_mid)) = rejected.next() {
            write_rejected(&mut out, d, setup, m_line, rejected_mid.as_deref());
        }
    }
    out
}

/// A rejected m-section: the offer's m-line with port 0, its mid, and our transport
/// attributes (as Chromium writes them; parsers that want credentials in every m-section find
/// them).
fn write_rejected(
    out: &mut String,
    d: &LocalDescription<'_>,
    setup: Setup,
    m_line: &str,
    mid: Option<&str>,
) {
    let mut fields = m_line.trim_start_matches("m=").split_whitespace();
    let media = fields.next().unwrap_or("application");
    let proto = fields.nth(1).unwrap_or(PROTO);
    let formats: Vec<&str> = fields.collect();
    let formats = if formats.is_empty() {
        "0".to_owned()
    } else {
        formats.join(" ")
    };
    push_line(out, format_args!("m={media} 0 {proto} {formats}"));
    push_line(out, format_args!("c=IN IP4 0.0.0.0"));
    write_transport(out, d, setup);
    if let Some(mid) = mid {
        push_line(out, format_args!("a=mid:{mid}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `sdp` with CRLF line ends, as it travels.
    fn crlf(sdp: &str) -> String {
        sdp.lines().map(|l| format!("{l}\r\n")).collect()
    }

    /// Chromium 13x, `createDataChannel` then `createOffer` (bundle policy balanced).
    const CHROMIUM_OFFER: &str = r"v=0
o=- 979679538165330572 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0
a=extmap-allow-mixed
a=msid-semantic: WMS
m=application 40487 UDP/DTLS/SCTP webrtc-datachannel
c=IN IP4 192.0.2.2
a=candidate:279121289 1 udp 2113937151 192.0.2.2 40487 typ host generation 0 network-cost 999
a=candidate:399597881 1 udp 2113942271 fd00::2 48345 typ host generation 0 network-cost 999
a=ice-ufrag:RE1d
a=ice-pwd:d7343QInGQyaGVMLZXidhzfl
a=ice-options:trickle
a=fingerprint:sha-256 F8:CF:8F:38:9D:2D:06:64:58:B6:45:AC:4A:32:DE:7E:BB:7A:43:A1:D9:22:E7:D7:C5:CB:C0:0E:33:B9:3B:48
a=setup:actpass
a=mid:0
a=sctp-port:5000
a=max-message-size:262144
";

    /// Chromium's answer to a data channel offer.
    const CHROMIUM_ANSWER: &str = r"v=0
o=- 3266050170776616313 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0
a=extmap-allow-mixed
a=msid-semantic: WMS
m=application 9 UDP/DTLS/SCTP webrtc-datachannel
c=IN IP4 0.0.0.0
a=ice-ufrag:ck+j
a=ice-pwd:/tXW3Ep9O6J0yXpHu4zEl8eo
a=ice-options:trickle
a=fingerprint:sha-256 95:0B:E3:DB:94:A8:B2:CB:0D:D2:B5:95:52:F7:C9:01:9A:59:EB:BE:A5:2A:02:9A:70:D0:FA:2A:B4:8D:33:92
a=setup:active
a=mid:0
a=sctp-port:5000
a=max-message-size:262144
";

    /// Chromium, `addTransceiver('audio')` and `createDataChannel`: audio first.
    const CHROMIUM_AUDIO_AND_DATA_OFFER: &str = r"v=0
o=- 8661192906578112060 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0 1
a=extmap-allow-mixed
a=msid-semantic: WMS
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126
c=IN IP4 0.0.0.0
a=rtcp:9 IN IP4 0.0.0.0
a=ice-ufrag:yZpq
a=ice-pwd:980U7Ihs1HrwvpNds6SOJJdi
a=ice-options:trickle
a=fingerprint:sha-256 DD:D6:68:3B:9F:11:C2:27:32:1A:61:31:CA:77:5A:F1:4E:D2:20:06:03:1E:C6:19:18:7A:D5:04:6F:87:90:B5
a=setup:actpass
a=mid:0
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid
a=sendrecv
a=msid:- db83276d-6233-4ac0-9f9b-1271a1813f90
a=rtcp-mux
a=rtcp-rsize
a=rtpmap:111 opus/48000/2
a=rtcp-fb:111 transport-cc
a=fmtp:111 minptime=10;useinbandfec=1
a=rtpmap:63 red/48000/2
a=fmtp:63 111/111
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:13 CN/8000
a=rtpmap:110 telephone-event/48000
a=rtpmap:126 telephone-event/8000
a=ssrc:4092286136 cname:9o/knwRD/37h0Ues
a=ssrc:4092286136 msid:- db83276d-6233-4ac0-9f9b-1271a1813f90
m=application 9 UDP/DTLS/SCTP webrtc-datachannel
c=IN IP4 0.0.0.0
a=ice-ufrag:yZpq
a=ice-pwd:980U7Ihs1HrwvpNds6SOJJdi
a=ice-options:trickle
a=fingerprint:sha-256 DD:D6:68:3B:9F:11:C2:27:32:1A:61:31:CA:77:5A:F1:4E:D2:20:06:03:1E:C6:19:18:7A:D5:04:6F:87:90:B5
a=setup:actpass
a=mid:1
a=sctp-port:5000
a=max-message-size:262144
";

    /// Firefox 12x: the fingerprint at session level, credentials at media level.
    const FIREFOX_OFFER: &str = r"v=0
o=mozilla...THIS_IS_SDPARTA-128.0 6614394564286410541 0 IN IP4 0.0.0.0
s=-
t=0 0
a=sendrecv
a=fingerprint:sha-256 5B:7E:0D:11:9C:3A:B4:28:E1:77:90:2F:6A:C5:41:DE:08:93:FA:1C:66:B2:3D:E4:70:59:8A:0F:C3:D1:27:9E
a=group:BUNDLE 0
a=ice-options:trickle
a=msid-semantic:WMS *
m=application 9 UDP/DTLS/SCTP webrtc-datachannel
c=IN IP4 0.0.0.0
a=sendrecv
a=ice-pwd:1b4c3e6f4b2b6c84d0b0e1c3b1c7e5e9
a=ice-ufrag:8f2a1c3d
a=mid:0
a=setup:actpass
a=sctp-port:5000
a=max-message-size:1073741823
";

    /// Firefox's answer after gathering: candidates and end-of-candidates.
    const FIREFOX_ANSWER: &str = r"v=0
o=mozilla...THIS_IS_SDPARTA-128.0 2218745629143187316 0 IN IP4 0.0.0.0
s=-
t=0 0
a=sendrecv
a=fingerprint:sha-256 0A:9D:4B:E2:33:71:C8:5F:16:A0:8E:7C:D9:42:B1:6E:F3:25:90:CA:57:1B:E8:3D:64:AF:02:78:C1:9B:4E:D5
a=group:BUNDLE 0
a=ice-options:trickle
a=msid-semantic:WMS *
m=application 54321 UDP/DTLS/SCTP webrtc-datachannel
c=IN IP4 192.0.2.7
a=candidate:0 1 UDP 2122252543 192.0.2.7 54321 typ host
a=candidate:1 1 TCP 2105524479 192.0.2.7 9 typ host tcptype active
a=sendrecv
a=end-of-candidates
a=ice-pwd:a0e1b2c3d4e5f60718293a4b5c6d7e8f
a=ice-ufrag:c3d4e5f6
a=mid:0
a=setup:active
a=sctp-port:5000
a=max-message-size:1073741823
";

    /// aiortc 1.x: candidates before the credentials, three fingerprints.
    const AIORTC_OFFER: &str = r"v=0
o=- 4004445541 4004445541 IN IP4 0.0.0.0
s=-
t=0 0
a=group:BUNDLE 0
a=msid-semantic:WMS *
m=application 38575 UDP/DTLS/SCTP webrtc-datachannel
c=IN IP4 192.0.2.2
a=mid:0
a=sctp-port:5000
a=max-message-size:262144
a=candidate:f957a2332b1715da3b0ef8ba684454eb 1 udp 2130706431 192.0.2.2 38575 typ host
a=candidate:d0bcf3d9c29a2bc887618212a1623bfa 1 udp 2130706431 fd00::2 44017 typ host
a=end-of-candidates
a=ice-ufrag:I3Mn
a=ice-pwd:gF5fdsg1TnKqKb6NRDUxPB
a=fingerprint:sha-256 75:07:D1:05:E9:78:FF:DB:DC:30:EC:AA:0B:AB:94:D9:31:09:42:C2:0E:0A:6D:3F:7F:F7:56:3D:98:1D:C7:8F
a=fingerprint:sha-384 F6:0B:CF:9F:99:E4:90:84:33:9A:02:DA:1F:05:4B:62:93:75:5D:8E:CC:E0:AC:6C:D2:9A:10:DE:D7:FA:2C:A8:C4:67:D1:ED:3E:AC:CC:60:18:C6:93:AA:2B:79:47:32
a=fingerprint:sha-512 42:24:12:5E:24:5D:A8:A0:99:92:0D:77:82:2A:7A:9C:2F:E2:B4:E9:84:B2:A6:6B:67:62:01:0A:99:56:97:70:2F:70:04:56:14:F8:97:DA:47:9A:CD:9F:45:B0:57:FA:E8:24:2B:2D:52:16:AB:16:C6:CC:27:15:55:1A:D6:05
a=setup:actpass
";

    /// aiortc's answer.
    const AIORTC_ANSWER: &str = r"v=0
o=- 4004445541 4004445541 IN IP4 0.0.0.0
s=-
t=0 0
a=group:BUNDLE 0
a=msid-semantic:WMS *
m=application 35560 UDP/DTLS/SCTP webrtc-datachannel
c=IN IP4 192.0.2.2
a=mid:0
a=sctp-port:5000
a=max-message-size:262144
a=candidate:f957a2332b1715da3b0ef8ba684454eb 1 udp 2130706431 192.0.2.2 35560 typ host
a=end-of-candidates
a=ice-ufrag:yZZ5
a=ice-pwd:0MGnq8QMQCHyQnUBexaiVS
a=fingerprint:sha-256 01:7B:39:58:F2:FA:68:D6:34:14:B1:EF:68:15:5A:50:D2:17:6A:A7:E1:28:5E:74:AB:65:E8:D5:D2:CC:F3:CD
a=fingerprint:sha-384 ED:38:CA:2F:93:E3:EE:86:CA:42:BF:98:75:30:98:63:EF:74:C4:22:26:49:35:C6:3D:66:88:E8:AA:C4:68:18:D5:47:8D:3A:03:C5:2F:00:5D:81:DA:07:1B:1B:90:14
a=setup:active
";

    /// libdatachannel 0.2x (node-datachannel) after gathering: session-level fingerprint.
    const LIBDATACHANNEL_OFFER: &str = r"v=0
o=rtc 3359962898 0 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0
a=msid-semantic:WMS *
a=ice-options:ice2,trickle
a=fingerprint:sha-256 34:72:A7:38:62:2F:47:DF:97:B9:B0:A3:36:0E:9F:13:29:51:CC:B5:02:E8:5C:44:F0:58:06:76:73:17:3F:F6
m=application 48031 UDP/DTLS/SCTP webrtc-datachannel
c=IN IP4 192.0.2.2
a=mid:0
a=sendrecv
a=sctp-port:5000
a=max-message-size:262144
a=setup:actpass
a=ice-ufrag:cL/4
a=ice-pwd:ZjoyZQNKgTjy0D5kv7c7Mf
a=candidate:2 1 UDP 2116026111 fd00::2 48031 typ host
a=candidate:1 1 UDP 2114977791 192.0.2.2 48031 typ host
a=end-of-candidates
";

    /// libdatachannel's answer, before gathering.
    const LIBDATACHANNEL_ANSWER: &str = r"v=0
o=rtc 4217350495 0 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0
a=msid-semantic:WMS *
a=ice-options:ice2,trickle
a=fingerprint:sha-256 25:3E:EE:75:02:CD:7E:F4:64:A9:E5:B3:FF:7C:85:D6:9E:CA:E4:75:79:C6:D6:9F:EE:E7:FF:23:14:A4:23:06
m=application 9 UDP/DTLS/SCTP webrtc-datachannel
c=IN IP4 0.0.0.0
a=mid:0
a=sendrecv
a=sctp-port:5000
a=max-message-size:262144
a=setup:active
a=ice-ufrag:7E6o
a=ice-pwd:jKKcMD91TxEb8KdJDSWLZp
";

    /// Chromium before 2017 and Firefox before 63: DTLS/SCTP with the port as the format, and
    /// `a=sctpmap`.
    const LEGACY_OFFER: &str = r"v=0
o=- 1234 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE data
m=application 9 DTLS/SCTP 5001
c=IN IP4 0.0.0.0
a=ice-ufrag:Zx9P
a=ice-pwd:Kq7vN2mR4tY8wB1cD5fG3hJ6
a=fingerprint:sha-256 AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99
a=setup:actpass
a=mid:data
a=sctpmap:5001 webrtc-datachannel 1024
";

    /// Every real description, with whether it is an offer.
    const REAL: [(&str, bool); 10] = [
        (CHROMIUM_OFFER, true),
        (CHROMIUM_ANSWER, false),
        (CHROMIUM_AUDIO_AND_DATA_OFFER, true),
        (FIREFOX_OFFER, true),
        (FIREFOX_ANSWER, false),
        (AIORTC_OFFER, true),
        (AIORTC_ANSWER, false),
        (LIBDATACHANNEL_OFFER, true),
        (LIBDATACHANNEL_ANSWER, false),
        (LEGACY_OFFER, true),
    ];

    const FINGERPRINT: [u8; 32] = [
        0x00, 0x01, 0x0a, 0x1f, 0x20, 0x7f, 0x80, 0xab, 0xcd, 0xef, 0xff, 0x10, 0x32, 0x54, 0x76,
        0x98, 0xba, 0xdc, 0xfe, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb,
        0xcc, 0xdd,
    ];

    fn local(setup: Setup, candidates: &[String], end_of_candidates: bool) -> LocalDescription<'_> {
        LocalDescription {
            session_id: 0x0123_4567_89ab_cdef,
            ice_ufrag: "nP+q",
            ice_pwd: "abcdefghij/KLMNOPQRST+uv",
            fingerprint_sha256: &FINGERPRINT,
            setup,
            mid: "0",
            sctp_port: 5000,
            max_message_size: 262_144,
            candidates,
            end_of_candidates,
        }
    }

    fn parse_offer(sdp: &str) -> RemoteDescription {
        match parse(&crlf(sdp), true) {
            Ok(d) => d,
            Err(e) => panic!("offer refused: {e}\n{sdp}"),
        }
    }

    fn parse_answer(sdp: &str) -> RemoteDescription {
        match parse(&crlf(sdp), false) {
            Ok(d) => d,
            Err(e) => panic!("answer refused: {e}\n{sdp}"),
        }
    }

    fn unusable(sdp: &str, is_offer: bool) -> String {
        match parse(sdp, is_offer) {
            Err(SdpError::Unusable(m)) => m,
            other => panic!("expected Unusable, got {other:?}"),
        }
    }

    fn malformed_error(sdp: &str) -> String {
        match parse(sdp, true) {
            Err(SdpError::Malformed(m)) => m,
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    /// `CHROMIUM_OFFER` with `from` replaced by `to`.
    fn chromium_with(from: &str, to: &str) -> String {
        assert!(CHROMIUM_OFFER.contains(from), "{from:?} not in the sample");
        CHROMIUM_OFFER.replace(from, to)
    }

    #[test]
    fn offer_round_trips() {
        let candidates = vec![
            "candidate:1 1 udp 2130706431 192.0.2.9 50000 typ host".to_owned(),
            "candidate:2 1 udp 1694498815 198.51.100.4 61000 typ srflx raddr 192.0.2.9 rport 50000"
                .to_owned(),
        ];
        let d = local(Setup::ActPass, &candidates, true);
        let sdp = write_offer(&d);
        let remote = parse(&sdp, true).unwrap();
        assert_eq!(remote.ice_ufrag, d.ice_ufrag);
        assert_eq!(remote.ice_pwd, d.ice_pwd);
        assert!(!remote.ice_lite);
        assert_eq!(remote.fingerprint.algorithm, "sha-256");
        assert_eq!(remote.fingerprint.bytes, FINGERPRINT);
        assert_eq!(remote.setup, Setup::ActPass);
        assert_eq!(remote.mid, "0");
        assert_eq!(remote.sctp_port, 5000);
        assert!(!remote.legacy_sctp);
        assert_eq!(remote.max_message_size, Some(262_144));
        assert_eq!(remote.candidates, candidates);
        assert!(remote.end_of_candidates);
        assert_eq!((remote.media_count, remote.application_index), (1, 0));
        assert!(remote.bundled);
        assert!(remote.rejected_media.is_empty() && remote.other_mids.is_empty());
    }

    #[test]
    fn answer_round_trips() {
        let offer = parse_offer(CHROMIUM_OFFER);
        let d = local(Setup::Active, &[], false);
        let sdp = write_answer(&d, &offer);
        let remote = parse(&sdp, false).unwrap();
        assert_eq!(remote.ice_ufrag, d.ice_ufrag);
        assert_eq!(remote.ice_pwd, d.ice_pwd);
        assert_eq!(remote.fingerprint.bytes, FINGERPRINT);
        assert_eq!(remote.setup, Setup::Active);
        assert_eq!(remote.mid, offer.mid);
        assert_eq!(remote.sctp_port, 5000);
        assert_eq!(remote.max_message_size, Some(262_144));
        assert!(remote.candidates.is_empty());
        assert!(!remote.end_of_candidates);
        assert_eq!((remote.media_count, remote.application_index), (1, 0));
    }

    #[test]
    fn offer_has_the_jsep_lines_in_chromium_order() {
        let sdp = write_offer(&local(Setup::ActPass, &[], false));
        let expected = "v=0\r\n\
            o=- 81985529216486895 2 IN IP4 127.0.0.1\r\n\
            s=-\r\n\
            t=0 0\r\n\
            a=group:BUNDLE 0\r\n\
            m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n\
            c=IN IP4 0.0.0.0\r\n\
            a=ice-ufrag:nP+q\r\n\
            a=ice-pwd:abcdefghij/KLMNOPQRST+uv\r\n\
            a=ice-options:trickle\r\n\
            a=fingerprint:sha-256 00:01:0A:1F:20:7F:80:AB:CD:EF:FF:10:32:54:76:98:BA:DC:FE:11:\
            22:33:44:55:66:77:88:99:AA:BB:CC:DD\r\n\
            a=setup:actpass\r\n\
            a=mid:0\r\n\
            a=sctp-port:5000\r\n\
            a=max-message-size:262144\r\n";
        assert_eq!(sdp, expected);
    }

    #[test]
    fn session_id_top_bit_is_cleared() {
        let mut d = local(Setup::ActPass, &[], false);
        d.session_id = u64::MAX;
        let sdp = write_offer(&d);
        assert!(sdp.contains(&format!("o=- {} 2 IN IP4 127.0.0.1\r\n", i64::MAX)));
    }

    #[test]
    fn end_of_candidates_is_written_only_when_gathering_is_complete() {
        let candidates = vec!["candidate:1 1 udp 2130706431 192.0.2.9 50000 typ host".to_owned()];
        let partial = write_offer(&local(Setup::ActPass, &candidates, false));
        assert!(partial.contains("a=candidate:1 1 udp 2130706431 192.0.2.9 50000 typ host\r\n"));
        assert!(!partial.contains("end-of-candidates"));
        let complete = write_offer(&local(Setup::ActPass, &candidates, true));
        assert!(complete.ends_with("typ host\r\na=end-of-candidates\r\n"));
    }

    #[test]
    fn m_and_c_lines_carry_the_first_candidate_as_default_destination() {
        let v6 = vec!["candidate:1 1 udp 2130706431 2001:db8::5 40000 typ host".to_owned()];
        let sdp = write_offer(&local(Setup::ActPass, &v6, false));
        assert!(sdp.contains("m=application 40000 UDP/DTLS/SCTP webrtc-datachannel\r\n"));
        assert!(sdp.contains("c=IN IP6 2001:db8::5\r\n"));
        let mdns = vec!["candidate:1 1 udp 2130706431 abc.local 40000 typ host".to_owned()];
        let sdp = write_offer(&local(Setup::ActPass, &mdns, false));
        assert!(sdp
            .contains("m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n"));
    }

    #[test]
    fn chromium_offer_is_read() {
        let d = parse_offer(CHROMIUM_OFFER);
        assert_eq!(
            (d.ice_ufrag.as_str(), d.ice_pwd.as_str()),
            ("RE1d", "d7343QInGQyaGVMLZXidhzfl")
        );
        assert_eq!(d.fingerprint.bytes.first(), Some(&0xf8));
        assert_eq!(d.fingerprint.bytes.len(), 32);
        assert_eq!(d.setup, Setup::ActPass);
        assert_eq!(d.mid, "0");
        assert_eq!(d.sctp_port, 5000);
        assert_eq!(d.max_message_size, Some(262_144));
        assert_eq!(d.candidates.len(), 2);
        assert_eq!(
            d.candidates[0],
            "candidate:279121289 1 udp 2113937151 192.0.2.2 40487 typ host generation 0 network-cost 999"
        );
        assert!(!d.end_of_candidates);
        assert!(d.bundled);
    }

    #[test]
    fn chromium_answer_is_read() {
        let d = parse_answer(CHROMIUM_ANSWER);
        assert_eq!(d.setup, Setup::Active);
        assert_eq!(d.ice_ufrag, "ck+j");
        assert_eq!(d.fingerprint.bytes.last(), Some(&0x92));
    }

    #[test]
    fn chromium_audio_and_data_offer_is_read() {
        let d = parse_offer(CHROMIUM_AUDIO_AND_DATA_OFFER);
        assert_eq!((d.media_count, d.application_index), (2, 1));
        assert_eq!(d.mid, "1");
        assert_eq!(
            d.rejected_media,
            ["m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126"]
        );
        assert_eq!(d.other_mids, [Some("0".to_owned())]);
        assert_eq!(d.ice_ufrag, "yZpq");
    }

    #[test]
    fn firefox_offer_takes_the_session_level_fingerprint() {
        let d = parse_offer(FIREFOX_OFFER);
        assert_eq!(d.fingerprint.bytes.first(), Some(&0x5b));
        assert_eq!(d.ice_ufrag, "8f2a1c3d");
        assert_eq!(d.ice_pwd, "1b4c3e6f4b2b6c84d0b0e1c3b1c7e5e9");
        assert_eq!(d.max_message_size, Some(1_073_741_823));
        assert_eq!(d.setup, Setup::ActPass);
    }

    #[test]
    fn firefox_answer_is_read_with_its_candidates() {
        let d = parse_answer(FIREFOX_ANSWER);
        assert_eq!(d.setup, Setup::Active);
        assert_eq!(d.candidates.len(), 2);
        assert!(d.candidates[1].starts_with("candidate:1 1 TCP"));
        assert!(d.end_of_candidates);
    }

    #[test]
    fn aiortc_offer_picks_sha256_among_three_fingerprints() {
        let d = parse_offer(AIORTC_OFFER);
        assert_eq!(d.fingerprint.algorithm, "sha-256");
        assert_eq!(d.fingerprint.bytes.first(), Some(&0x75));
        assert_eq!(d.fingerprint.bytes.len(), 32);
        assert_eq!(d.candidates.len(), 2);
        assert!(d.end_of_candidates);
        assert_eq!(d.ice_ufrag, "I3Mn");
    }

    #[test]
    fn aiortc_answer_is_read() {
        let d = parse_answer(AIORTC_ANSWER);
        assert_eq!(d.setup, Setup::Active);
        assert_eq!(d.fingerprint.bytes.first(), Some(&0x01));
    }

    #[test]
    fn libdatachannel_offer_takes_the_session_level_fingerprint() {
        let d = parse_offer(LIBDATACHANNEL_OFFER);
        assert_eq!(d.fingerprint.bytes.first(), Some(&0x34));
        assert_eq!(d.ice_ufrag, "cL/4");
        assert_eq!(d.candidates.len(), 2);
        assert!(d.end_of_candidates);
    }

    #[test]
    fn libdatachannel_answer_is_read() {
        let d = parse_answer(LIBDATACHANNEL_ANSWER);
        assert_eq!(d.setup, Setup::Active);
        assert_eq!(d.ice_pwd, "jKKcMD91TxEb8KdJDSWLZp");
    }

    #[test]
    fn legacy_sctpmap_gives_the_sctp_port() {
        let d = parse_offer(LEGACY_OFFER);
        assert!(d.legacy_sctp);
        assert_eq!(d.sctp_port, 5001);
        assert_eq!(d.mid, "data");
    }

    #[test]
    fn legacy_m_line_format_gives_the_sctp_port() {
        let sdp = LEGACY_OFFER.replace("a=sctpmap:5001 webrtc-datachannel 1024\n", "");
        let d = parse_offer(&sdp);
        assert_eq!(d.sctp_port, 5001);
    }

    #[test]
    fn sctp_port_defaults_to_5000() {
        let d = parse_offer(&chromium_with("a=sctp-port:5000\n", ""));
        assert_eq!(d.sctp_port, 5000);
        let d = parse_offer(&chromium_with("a=sctp-port:5000", "a=sctp-port:6000"));
        assert_eq!(d.sctp_port, 6000);
    }

    #[test]
    fn legacy_offer_is_answered_in_the_legacy_form() {
        let offer = parse_offer(LEGACY_OFFER);
        let mut d = local(Setup::Active, &[], false);
        d.sctp_port = 5002;
        let sdp = write_answer(&d, &offer);
        assert!(sdp.contains("m=application 9 DTLS/SCTP 5002\r\n"));
        assert!(sdp.contains("a=sctpmap:5002 webrtc-datachannel 1024\r\n"));
        assert!(
            sdp.contains("a=group:BUNDLE data\r\na=mid:data\r\n") || sdp.contains("a=mid:data\r\n")
        );
        let answer = parse(&sdp, false).unwrap();
        assert!(answer.legacy_sctp);
        assert_eq!(answer.sctp_port, 5002);
    }

    #[test]
    fn max_message_size_is_optional() {
        let d = parse_offer(&chromium_with("a=max-message-size:262144\n", ""));
        assert_eq!(d.max_message_size, None);
    }

    #[test]
    fn mid_defaults_to_0() {
        let d = parse_offer(&chromium_with("a=mid:0\n", ""));
        assert_eq!(d.mid, "0");
        assert!(!d.bundled);
    }

    #[test]
    fn answer_setup_defaults_to_active() {
        let d = parse_answer(&CHROMIUM_ANSWER.replace("a=setup:active\n", ""));
        assert_eq!(d.setup, Setup::Active);
    }

    #[test]
    fn offer_setup_defaults_to_actpass() {
        let d = parse_offer(&chromium_with("a=setup:actpass\n", ""));
        assert_eq!(d.setup, Setup::ActPass);
    }

    #[test]
    fn setup_is_case_insensitive() {
        let d = parse_offer(&chromium_with("a=setup:actpass", "a=setup:ActPass"));
        assert_eq!(d.setup, Setup::ActPass);
        let d = parse_answer(&CHROMIUM_ANSWER.replace("a=setup:active", "a=setup:PASSIVE"));
        assert_eq!(d.setup, Setup::Passive);
    }

    #[test]
    fn actpass_in_an_answer_is_unusable() {
        let sdp = CHROMIUM_ANSWER.replace("a=setup:active", "a=setup:actpass");
        assert!(unusable(&sdp, false).contains("actpass"));
    }

    #[test]
    fn setup_holdconn_is_unusable() {
        let sdp = chromium_with("a=setup:actpass", "a=setup:holdconn");
        assert!(unusable(&sdp, true).contains("holdconn"));
    }

    #[test]
    fn unknown_setup_value_is_malformed() {
        assert!(
            malformed_error(&chromium_with("a=setup:actpass", "a=setup:both")).contains("both")
        );
    }

    #[test]
    fn actpass_written_into_an_answer_becomes_active() {
        let offer = parse_offer(CHROMIUM_OFFER);
        let sdp = write_answer(&local(Setup::ActPass, &[], false), &offer);
        assert!(sdp.contains("a=setup:active\r\n"));
        let sdp = write_answer(&local(Setup::Passive, &[], false), &offer);
        assert!(sdp.contains("a=setup:passive\r\n"));
    }

    #[test]
    fn media_level_attributes_win_over_session_level() {
        let sdp = FIREFOX_OFFER
            .replace(
                "a=ice-options:trickle\n",
                "a=ice-options:trickle\na=ice-ufrag:SESSION\na=ice-pwd:sessionsessionsessionsession\na=setup:passive\n",
            )
            .replace(
                "a=ice-pwd:1b4c3e6f4b2b6c84d0b0e1c3b1c7e5e9\n",
                "a=ice-pwd:1b4c3e6f4b2b6c84d0b0e1c3b1c7e5e9\na=fingerprint:sha-256 \
                 11:11:11:11:11:11:11:11:11:11:11:11:11:11:11:11:11:11:11:11:11:11:11:11:11:11:11:11:11:11:11:11\n",
            );
        let d = parse_offer(&sdp);
        assert_eq!(d.ice_ufrag, "8f2a1c3d");
        assert_eq!(d.ice_pwd, "1b4c3e6f4b2b6c84d0b0e1c3b1c7e5e9");
        assert_eq!(d.setup, Setup::ActPass);
        assert_eq!(d.fingerprint.bytes, [0x11; 32]);
    }

    #[test]
    fn session_level_attributes_are_used_when_the_media_has_none() {
        let sdp = FIREFOX_OFFER
            .replace("a=ice-pwd:1b4c3e6f4b2b6c84d0b0e1c3b1c7e5e9\n", "")
            .replace("a=ice-ufrag:8f2a1c3d\n", "")
            .replace(
                "a=ice-options:trickle\n",
                "a=ice-options:trickle\na=ice-lite\na=ice-ufrag:SESSION\na=ice-pwd:sessionsessionsessionsession\n",
            );
        let d = parse_offer(&sdp);
        assert_eq!(d.ice_ufrag, "SESSION");
        assert_eq!(d.ice_pwd, "sessionsessionsessionsession");
        assert!(d.ice_lite);
    }

    #[test]
    fn lf_line_ends_and_surrounding_whitespace_are_accepted() {
        let crlf_parsed = parse_offer(CHROMIUM_OFFER);
        let lf = parse(CHROMIUM_OFFER, true).unwrap();
        assert_eq!(lf, crlf_parsed);
        let padded: String = CHROMIUM_OFFER
            .lines()
            .map(|l| format!("  {l} \t\r\n"))
            .collect();
        let padded = format!("\n\r\n {padded}\n\n");
        assert_eq!(parse(&padded, true).unwrap(), crlf_parsed);
    }

    #[test]
    fn fingerprint_hex_is_read_in_either_case() {
        let upper = parse_offer(CHROMIUM_OFFER);
        let lower_hex = CHROMIUM_OFFER.replace(
            "sha-256 F8:CF:8F:38:9D:2D:06:64:58:B6:45:AC:4A:32:DE:7E:BB:7A:43:A1:D9:22:E7:D7:C5:CB:C0:0E:33:B9:3B:48",
            "SHA-256 f8:cf:8f:38:9d:2d:06:64:58:b6:45:ac:4a:32:de:7e:bb:7a:43:a1:d9:22:e7:d7:c5:cb:c0:0e:33:b9:3b:48",
        );
        let lower = parse_offer(&lower_hex);
        assert_eq!(lower.fingerprint, upper.fingerprint);
        assert_eq!(lower.fingerprint.algorithm, "sha-256");
    }

    #[test]
    fn fingerprint_is_written_upper_case_and_colon_separated() {
        let sdp = write_offer(&local(Setup::ActPass, &[], false));
        assert!(sdp.contains(
            "a=fingerprint:sha-256 00:01:0A:1F:20:7F:80:AB:CD:EF:FF:10:32:54:76:98:BA:DC:FE:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD\r\n"
        ));
    }

    #[test]
    fn fingerprint_other_than_sha256_only_is_unusable() {
        let sdp = chromium_with("a=fingerprint:sha-256", "a=fingerprint:sha-1");
        let message = unusable(&sdp, true);
        assert!(
            message.contains("sha-1") && message.contains("sha-256"),
            "{message}"
        );
    }

    #[test]
    fn sha256_fingerprint_of_the_wrong_length_is_malformed() {
        let sdp = chromium_with(":3B:48\n", ":3B\n");
        assert!(malformed_error(&sdp).contains("31 bytes"));
    }

    #[test]
    fn fingerprint_with_bad_hex_is_malformed() {
        let sdp = chromium_with("F8:CF:8F", "F8:CG:8F");
        assert!(malformed_error(&sdp).contains("hex"));
        let sdp = chromium_with("F8:CF:8F", "F8::CF8F");
        assert!(malformed_error(&sdp).contains("hex"));
        let sdp = chromium_with("F8:CF:8F", "+8:CF:8F");
        assert!(malformed_error(&sdp).contains("hex"));
    }

    #[test]
    fn unknown_lines_and_attributes_are_ignored() {
        let sdp = chromium_with(
            "a=mid:0\n",
            "a=mid:0\na=x-unknown:1 2 3\na=another-flag\nb=AS:30\ni=info\nz=whatever\n",
        );
        assert_eq!(parse_offer(&sdp), parse_offer(CHROMIUM_OFFER));
    }

    #[test]
    fn missing_application_m_line_is_unusable() {
        let audio_only: String = CHROMIUM_AUDIO_AND_DATA_OFFER
            .split("m=application")
            .next()
            .unwrap_or_default()
            .to_owned();
        assert!(unusable(&audio_only, true).contains("no m=application"));
        let session_only = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";
        assert!(unusable(session_only, true).contains("no m=application"));
    }

    #[test]
    fn application_m_line_without_udp_dtls_sctp_is_unusable() {
        let sdp = chromium_with("UDP/DTLS/SCTP", "TCP/DTLS/SCTP");
        assert!(unusable(&sdp, true).contains("UDP/DTLS/SCTP"));
        let sdp = chromium_with("webrtc-datachannel", "something-else");
        assert!(unusable(&sdp, true).contains("webrtc-datachannel"));
    }

    #[test]
    fn rejected_application_m_line_is_unusable() {
        let sdp = CHROMIUM_ANSWER.replace("m=application 9", "m=application 0");
        assert!(unusable(&sdp, false).contains("port 0"));
    }

    #[test]
    fn missing_ice_ufrag_is_unusable() {
        let sdp = chromium_with("a=ice-ufrag:RE1d\n", "");
        assert!(unusable(&sdp, true).contains("ice-ufrag"));
    }

    #[test]
    fn missing_ice_pwd_is_unusable() {
        let sdp = chromium_with("a=ice-pwd:d7343QInGQyaGVMLZXidhzfl\n", "");
        assert!(unusable(&sdp, true).contains("ice-pwd"));
    }

    #[test]
    fn missing_fingerprint_is_unusable() {
        let sdp = FIREFOX_OFFER
            .lines()
            .filter(|l| !l.starts_with("a=fingerprint"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(unusable(&sdp, true).contains("fingerprint"));
    }

    #[test]
    fn ice_credentials_outside_the_ice_grammar_are_malformed() {
        assert!(
            malformed_error(&chromium_with("a=ice-ufrag:RE1d", "a=ice-ufrag:RE:d"))
                .contains("ice-ufrag")
        );
        assert!(
            malformed_error(&chromium_with("a=ice-ufrag:RE1d", "a=ice-ufrag:RE1"))
                .contains("4 to 256")
        );
        assert!(
            malformed_error(&chromium_with("d7343QInGQyaGVMLZXidhzfl", "short"))
                .contains("22 to 256")
        );
    }

    #[test]
    fn description_must_start_with_v0() {
        assert!(malformed_error(&CHROMIUM_OFFER.replace("v=0\n", "")).contains("v=0"));
        assert!(malformed_error(&CHROMIUM_OFFER.replace("v=0\n", "v=1\n")).contains("v=0"));
        assert!(malformed_error("").contains("empty"));
        assert!(malformed_error(" \r\n\r\n").contains("empty"));
    }

    #[test]
    fn line_without_type_and_equals_is_malformed() {
        let message = malformed_error(&chromium_with("s=-\n", "s=-\nhello world\n"));
        assert!(message.starts_with("line 4:"), "{message}");
        malformed_error(&chromium_with("s=-\n", "s=-\né=x\n"));
        malformed_error(&chromium_with("s=-\n", "s=-\na\n"));
    }

    #[test]
    fn m_line_with_a_bad_port_or_missing_format_is_malformed() {
        malformed_error(&chromium_with("m=application 40487", "m=application x"));
        malformed_error(&chromium_with("m=application 40487", "m=application 70000"));
        malformed_error(&chromium_with(" webrtc-datachannel\n", "\n"));
        let d = parse_offer(&chromium_with(
            "m=application 40487",
            "m=application 40487/2",
        ));
        assert_eq!(d.application_index, 0);
    }

    #[test]
    fn bad_numbers_are_malformed() {
        malformed_error(&chromium_with("a=sctp-port:5000", "a=sctp-port:65536"));
        malformed_error(&chromium_with(
            "a=max-message-size:262144",
            "a=max-message-size:-1",
        ));
        malformed_error(&LEGACY_OFFER.replace("a=sctpmap:5001", "a=sctpmap:x"));
    }

    #[test]
    fn duplicate_mid_is_unusable() {
        let sdp = CHROMIUM_AUDIO_AND_DATA_OFFER.replace("a=mid:1", "a=mid:0");
        assert!(unusable(&sdp, true).contains("two m-lines"));
    }

    #[test]
    fn mid_that_is_not_a_token_is_malformed() {
        malformed_error(&chromium_with("a=mid:0", "a=mid:a b"));
        malformed_error(&chromium_with("a=mid:0", "a=mid:"));
    }

    #[test]
    fn description_over_64_kib_is_refused() {
        let padding = "a=x-padding:0123456789012345678901234567890123456789\n".repeat(1300);
        let sdp = chromium_with("a=mid:0\n", &format!("a=mid:0\n{padding}"));
        assert!(sdp.len() > MAX_SDP_LEN);
        assert!(unusable(&sdp, true).contains("limit"));
    }

    #[test]
    fn more_than_64_m_lines_are_refused() {
        let audio = "m=audio 9 UDP/TLS/RTP/SAVPF 0\n".repeat(64);
        let sdp = chromium_with(
            "a=msid-semantic: WMS\n",
            &format!("a=msid-semantic: WMS\n{audio}"),
        );
        assert!(unusable(&sdp, true).contains("64 m-lines"));
        let audio = "m=audio 9 UDP/TLS/RTP/SAVPF 0\n".repeat(63);
        let sdp = chromium_with(
            "a=msid-semantic: WMS\n",
            &format!("a=msid-semantic: WMS\n{audio}"),
        );
        assert_eq!(parse_offer(&sdp).media_count, 64);
    }

    #[test]
    fn more_than_1000_candidates_are_refused() {
        // The sample has 2 candidates of its own.
        let line = "a=candidate:1 1 udp 2130706431 192.0.2.2 40487 typ host\n";
        let sdp = chromium_with("a=mid:0\n", &format!("a=mid:0\n{}", line.repeat(998)));
        assert_eq!(parse_offer(&sdp).candidates.len(), MAX_CANDIDATES);
        let sdp = chromium_with("a=mid:0\n", &format!("a=mid:0\n{}", line.repeat(999)));
        assert!(unusable(&sdp, true).contains("1000 candidates"));
    }

    #[test]
    fn bundle_only_application_uses_the_bundle_tag_transport() {
        let sdp = CHROMIUM_AUDIO_AND_DATA_OFFER
            .replace(
                "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\nc=IN IP4 0.0.0.0\n\
                 a=ice-ufrag:yZpq\na=ice-pwd:980U7Ihs1HrwvpNds6SOJJdi\n",
                "m=application 0 UDP/DTLS/SCTP webrtc-datachannel\nc=IN IP4 0.0.0.0\na=bundle-only\n",
            )
            .replace(
                "a=rtcp:9 IN IP4 0.0.0.0\n",
                "a=rtcp:9 IN IP4 0.0.0.0\na=candidate:1 1 udp 2130706431 192.0.2.2 40487 typ host\n",
            );
        assert!(sdp.contains("a=bundle-only"));
        let d = parse_offer(&sdp);
        assert_eq!(d.application_index, 1);
        assert_eq!(d.ice_ufrag, "yZpq");
        assert_eq!(
            d.candidates,
            ["candidate:1 1 udp 2130706431 192.0.2.2 40487 typ host"]
        );
    }

    #[test]
    fn answer_to_audio_and_application_offer_rejects_the_audio_m_line() {
        let offer = parse_offer(CHROMIUM_AUDIO_AND_DATA_OFFER);
        let sdp = write_answer(&local(Setup::Active, &[], false), &offer);
        let m_lines: Vec<&str> = sdp.lines().filter(|l| l.starts_with("m=")).collect();
        assert_eq!(
            m_lines,
            [
                "m=audio 0 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126",
                "m=application 9 UDP/DTLS/SCTP webrtc-datachannel"
            ]
        );
        assert!(sdp.contains("a=group:BUNDLE 1\r\n"));
        let audio = sdp
            .split("m=application")
            .next()
            .and_then(|s| s.split("m=audio").nth(1))
            .unwrap_or_default();
        for line in [
            "c=IN IP4 0.0.0.0\r\n",
            "a=ice-ufrag:nP+q\r\n",
            "a=fingerprint:sha-256 00:01:0A",
            "a=setup:active\r\n",
            "a=mid:0\r\n",
        ] {
            assert!(
                audio.contains(line),
                "{line:?} missing from the rejected section {audio:?}"
            );
        }
        let answer = parse(&sdp, false).unwrap();
        assert_eq!((answer.media_count, answer.application_index), (2, 1));
        assert_eq!(answer.mid, "1");
        assert_eq!(answer.other_mids, [Some("0".to_owned())]);
    }

    #[test]
    fn answer_has_no_bundle_group_when_the_offer_had_none() {
        let offer = parse_offer(&chromium_with("a=group:BUNDLE 0\n", ""));
        assert!(!offer.bundled);
        let sdp = write_answer(&local(Setup::Active, &[], false), &offer);
        assert!(!sdp.contains("a=group"));
    }

    #[test]
    fn application_without_mid_cannot_take_another_m_lines_0() {
        let sdp = CHROMIUM_AUDIO_AND_DATA_OFFER.replace("a=mid:1\n", "");
        assert!(unusable(&sdp, true).contains("a=mid"));
    }

    #[test]
    fn error_kinds_display_their_message() {
        let e = SdpError::Unusable("no a=ice-pwd".into());
        assert_eq!(e.to_string(), "unusable SDP: no a=ice-pwd");
        let e = SdpError::Malformed("line 1: x".into());
        assert_eq!(e.to_string(), "malformed SDP: line 1: x");
    }

    #[test]
    fn garbage_never_panics() {
        let long_line = "a".repeat(70_000);
        let garbage = [
            "",
            "\0",
            "=",
            "v=",
            "v=0",
            "v=0\nm=",
            "v=0\nm=application",
            "v=0\nm=application 9",
            "v=0\nm=application 9 UDP/DTLS/SCTP",
            "v=0\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\na=fingerprint:sha-256",
            "v=0\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\na=fingerprint:sha-256 :",
            "v=0\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\na=fingerprint:sha-256 A",
            "v=0\nm=application 9 DTLS/SCTP x\na=ice-ufrag:aaaa\na=ice-pwd:aaaaaaaaaaaaaaaaaaaaaa",
            "v=0\na=group:BUNDLE\nm=application 0 UDP/DTLS/SCTP webrtc-datachannel\na=bundle-only\na=mid:0",
            "v=0\na=group:BUNDLE 0\nm=application 0 UDP/DTLS/SCTP webrtc-datachannel\na=bundle-only\na=mid:0",
            "v=0\na=:\na=\na=::::\nm=a b c d",
            "é=0\n",
            "v=0\né",
            "v=0\nmé",
            "v=0\n\u{feff}m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
            "\u{1F600}\u{1F600}\u{1F600}",
            &long_line,
        ];
        for sdp in garbage {
            for is_offer in [true, false] {
                assert!(parse(sdp, is_offer).is_err(), "{sdp:?} was accepted");
            }
        }
    }

    /// A deterministic xorshift64 generator.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        /// A number below `n` (0 when `n` is 0).
        fn below(&mut self, n: usize) -> usize {
            if n == 0 {
                0
            } else {
                (self.next() % n as u64) as usize
            }
        }
    }

    /// Lines that exercise the parser's edges, inserted by the mutator.
    const TRICKY_LINES: [&str; 16] = [
        "a=fingerprint:sha-256 ZZ",
        "a=fingerprint:sha-256",
        "m=application 0 UDP/DTLS/SCTP webrtc-datachannel",
        "m=application 9 DTLS/SCTP 5000",
        "m=audio 9",
        "a=setup:holdconn",
        "a=setup:",
        "a=mid:0",
        "a=mid:1",
        "a=group:BUNDLE 0 1 2",
        "a=bundle-only",
        "a=sctp-port:99999",
        "a=sctpmap:",
        "a=candidate:",
        "a=ice-ufrag:",
        "é=ü",
    ];

    /// `sdp` with one to four random edits: a byte replaced, a range deleted or duplicated, a
    /// tricky line inserted, or the end cut off.
    fn mutate(sdp: &str, rng: &mut XorShift) -> String {
        const BYTES: &[u8] = b" :=\r\n\t0189aAfFmv/+-.\xff\xc3\x80";
        let mut bytes = sdp.as_bytes().to_vec();
        for _ in 0..=rng.below(4) {
            let at = rng.below(bytes.len() + 1);
            match rng.below(5) {
                0 => {
                    if let Some(b) = bytes.get_mut(at) {
                        *b = BYTES[rng.below(BYTES.len())];
                    }
                }
                1 => {
                    let end = (at + rng.below(40)).min(bytes.len());
                    bytes.drain(at..end);
                }
                2 => {
                    let end = (at + rng.below(200)).min(bytes.len());
                    let copy = bytes[at..end].to_vec();
                    bytes.splice(at..at, copy);
                }
                3 => {
                    let line = format!("\n{}\n", TRICKY_LINES[rng.below(TRICKY_LINES.len())]);
                    bytes.splice(at..at, line.into_bytes());
                }
                _ => bytes.truncate(at),
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[test]
    fn mutated_descriptions_never_panic_and_accepted_offers_get_valid_answers() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let samples: Vec<String> = REAL.iter().map(|(sdp, _)| crlf(sdp)).collect();
        let d = local(Setup::Active, &[], false);
        let mut accepted = 0;
        for case in 0..1000 {
            let sample = &samples[case % samples.len()];
            let sdp = mutate(sample, &mut rng);
            let _ = parse(&sdp, false);
            if let Ok(offer) = parse(&sdp, true) {
                accepted += 1;
                let answer_sdp = write_answer(&d, &offer);
                let answer = match parse(&answer_sdp, false) {
                    Ok(answer) => answer,
                    Err(e) => {
                        panic!("case {case}: our answer is refused: {e}\n{sdp}\n{answer_sdp}")
                    }
                };
                assert_eq!(answer.media_count, offer.media_count, "case {case}");
                assert_eq!(
                    answer.application_index, offer.application_index,
                    "case {case}"
                );
                assert_eq!(answer.mid, offer.mid, "case {case}");
            }
        }
        // The mutations are small: many still parse, so the property is exercised.
        assert!(accepted > 100, "only {accepted} mutated offers parsed");
    }

    #[test]
    fn real_offers_get_answers_that_parse() {
        for (sdp, is_offer) in REAL {
            if !is_offer {
                continue;
            }
            let offer = parse_offer(sdp);
            let answer = parse(
                &write_answer(&local(Setup::Active, &[], false), &offer),
                false,
            )
            .unwrap();
            assert_eq!(answer.media_count, offer.media_count);
            assert_eq!(answer.mid, offer.mid);
            assert_eq!(answer.legacy_sctp, offer.legacy_sctp);
        }
    }
}
