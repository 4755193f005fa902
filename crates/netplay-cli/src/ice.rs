//! The ICE server options the WebRTC commands share (`rtc-echo`, `chat`).

use clap::Args;
use netplay::rtc::{IceServer, PeerConfig};

/// STUN and TURN servers for a command's connections.
#[derive(Args, Debug, Default)]
pub(crate) struct IceArgs {
    /// A STUN or TURN server over UDP (`stun:HOST[:PORT]`, `turn:HOST[:PORT]`); repeatable.
    #[arg(long = "ice-server")]
    pub(crate) ice_servers: Vec<String>,
    /// TURN user name (with --credential).
    #[arg(long, requires = "credential")]
    username: Option<String>,
    /// TURN password (with --username).
    #[arg(long, requires = "username")]
    credential: Option<String>,
}

impl IceArgs {
    /// Adds the servers to `config`, TURN ones with the credentials.
    pub(crate) fn apply(&self, config: &mut PeerConfig) {
        for url in &self.ice_servers {
            config.ice_servers.push(if url.starts_with("turn") {
                IceServer::turn(
                    url.clone(),
                    self.username.clone().unwrap_or_default(),
                    self.credential.clone().unwrap_or_default(),
                )
            } else {
                IceServer::stun(url.clone())
            });
        }
    }

    /// Whether a TURN server is among them.
    pub(crate) fn has_turn(&self) -> bool {
        self.ice_servers.iter().any(|u| u.starts_with("turn"))
    }
}
