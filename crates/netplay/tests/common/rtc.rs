//! Two native peer connections with the signaling wired directly, and waits with deadlines.

use std::time::{Duration, Instant};

use netplay::rtc::{
    ChannelId, DataChannelOptions, Event, GatheringState, PeerConfig, PeerConnection, ReadyState,
};

/// How long [`Pair::until`] waits unless told otherwise.
pub(crate) const DEADLINE: Duration = Duration::from_secs(10);

/// Two peers and the events each produced, with the signaling wired directly.
pub(crate) struct Pair {
    pub p1: PeerConnection,
    pub p2: PeerConnection,
    pub events1: Vec<Event>,
    pub events2: Vec<Event>,
    /// Relay the candidates (off: the peers never find each other).
    pub relay_candidates: bool,
    /// How long [`Pair::until`] waits.
    pub deadline: Duration,
}

impl Pair {
    pub(crate) fn new(config1: PeerConfig, config2: PeerConfig) -> Pair {
        Pair {
            p1: PeerConnection::new(config1).unwrap(),
            p2: PeerConnection::new(config2).unwrap(),
            events1: Vec::new(),
            events2: Vec::new(),
            relay_candidates: true,
            deadline: DEADLINE,
        }
    }

    /// Two peers with the same configuration.
    pub(crate) fn with_config(config: PeerConfig) -> Pair {
        Pair::new(config.clone(), config)
    }

    /// Two peers on loopback.
    pub(crate) fn loopback() -> Pair {
        Pair::with_config(PeerConfig::loopback())
    }

    /// Creates the channel `label` with `options` on both peers: (p1's, p2's).
    pub(crate) fn create_channel(
        &mut self,
        label: &str,
        options: DataChannelOptions,
    ) -> (ChannelId, ChannelId) {
        let ch1 = self.p1.create_data_channel(label, options.clone()).unwrap();
        let ch2 = self.p2.create_data_channel(label, options).unwrap();
        (ch1, ch2)
    }

    /// `p1` creates the offer.
    pub(crate) fn offer(&mut self) {
        self.p1.create_offer().unwrap();
    }

    /// One round: poll both, relay both ways.
    pub(crate) fn step(&mut self) {
        self.p1.poll();
        self.p2.poll();
        let candidates = self.relay_candidates;
        relay(&mut self.p1, &mut self.p2, &mut self.events1, candidates);
        relay(&mut self.p2, &mut self.p1, &mut self.events2, candidates);
    }

    /// Steps until `done` holds; panics after [`Pair::deadline`].
    pub(crate) fn until(&mut self, what: &str, done: impl FnMut(&mut Pair) -> bool) {
        self.until_within(what, self.deadline, done);
    }

    /// Steps until `done` holds; panics after `limit`.
    pub(crate) fn until_within(
        &mut self,
        what: &str,
        limit: Duration,
        mut done: impl FnMut(&mut Pair) -> bool,
    ) {
        let deadline = Instant::now() + limit;
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {:?} / {:?}",
                self.events1,
                self.events2
            );
            self.step();
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Steps until a channel the remote opened in-band is announced on `p2` (or `p1`);
    /// returns it.
    pub(crate) fn received_channel(&mut self, on_p2: bool) -> ChannelId {
        let what = format!("DataChannelReceived on {}", if on_p2 { "p2" } else { "p1" });
        let mut received = None;
        self.until(&what, |p| {
            let events = if on_p2 { &p.events2 } else { &p.events1 };
            received = events.iter().find_map(|e| match e {
                Event::DataChannelReceived(id) => Some(*id),
                _ => None,
            });
            received.is_some()
        });
        received.unwrap()
    }

    /// Steps until `ch1` on `p1` and `ch2` on `p2` are open.
    pub(crate) fn open(&mut self, ch1: ChannelId, ch2: ChannelId) {
        self.until("both channels open", |p| {
            p.p1.channel(ch1).unwrap().ready_state() == ReadyState::Open
                && p.p2.channel(ch2).unwrap().ready_state() == ReadyState::Open
        });
    }
}

/// Two peers on `config` with the channel `chat` of `options` on both, connected and open.
pub(crate) fn connected_pair(
    config: PeerConfig,
    options: DataChannelOptions,
) -> (Pair, ChannelId, ChannelId) {
    let mut pair = Pair::with_config(config);
    let (ch1, ch2) = pair.create_channel("chat", options);
    pair.offer();
    pair.open(ch1, ch2);
    (pair, ch1, ch2)
}

/// Hands what `from` produced to `to`: its descriptions (applied locally too) and, if
/// `candidates`, its candidates. Every event goes to `log`.
pub(crate) fn relay(
    from: &mut PeerConnection,
    to: &mut PeerConnection,
    log: &mut Vec<Event>,
    candidates: bool,
) {
    while let Some(event) = from.poll_event() {
        match &event {
            Event::SessionDescriptionCreated { kind, sdp } => {
                from.set_local_description(*kind, sdp).unwrap();
                to.set_remote_description(*kind, sdp).unwrap();
            }
            Event::IceCandidateCreated {
                mid,
                index,
                candidate,
            } if candidates => to.add_ice_candidate(mid, *index, candidate).unwrap(),
            _ => {}
        }
        log.push(event);
    }
}

/// Polls `pc` alone until gathering completes; returns the events and how long it took.
/// `each_round` runs after every poll (a test server answering, say).
pub(crate) fn gather_with(
    pc: &mut PeerConnection,
    limit: Duration,
    mut each_round: impl FnMut(&mut PeerConnection),
) -> (Vec<Event>, Duration) {
    let start = Instant::now();
    let mut events = Vec::new();
    loop {
        pc.poll();
        events.extend(std::iter::from_fn(|| pc.poll_event()));
        if pc.gathering_state() == GatheringState::Complete {
            return (events, start.elapsed());
        }
        assert!(
            start.elapsed() < limit,
            "gathering did not complete within {limit:?}: {events:?}"
        );
        each_round(pc);
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Polls `pc` alone until gathering completes; returns the events and how long it took.
pub(crate) fn gather(pc: &mut PeerConnection, limit: Duration) -> (Vec<Event>, Duration) {
    gather_with(pc, limit, |_| {})
}

/// The candidate lines among `events`.
pub(crate) fn candidates(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::IceCandidateCreated { candidate, .. } => Some(candidate.clone()),
            _ => None,
        })
        .collect()
}

/// The values of the `$variant` events among `$events`, in order: the connection states of
/// `values!(events, Event::ConnectionStateChanged)`, say.
macro_rules! values {
    ($events:expr, $variant:path) => {
        $events
            .iter()
            .filter_map(|e| match e {
                $variant(value) => Some(value.clone()),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
}
pub(crate) use values;
