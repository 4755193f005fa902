//! TLS settings for `wss://` (Godot's `TLSOptions`), on rustls with the aws-lc-rs provider (the
//! one the WebRTC stack's DTLS links already; it also has post-quantum key exchange).
//!
//! Owns turning PEM certificates and keys into rustls configurations. Reading and writing TLS
//! records on a socket belongs to `transport`.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::Error;

/// TLS options for a client (`wss://`) or a server, like Godot's `TLSOptions`.
#[derive(Clone)]
pub struct TlsOptions {
    pub(crate) inner: TlsKind,
}

#[derive(Clone)]
pub(crate) enum TlsKind {
    Client {
        config: Arc<rustls::ClientConfig>,
        common_name_override: Option<String>,
    },
    Server {
        config: Arc<rustls::ServerConfig>,
    },
}

impl std::fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            TlsKind::Client {
                common_name_override,
                ..
            } => f
                .debug_struct("TlsOptions::Client")
                .field("common_name_override", common_name_override)
                .finish(),
            TlsKind::Server { .. } => f.write_str("TlsOptions::Server"),
        }
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn tls_err(e: impl std::fmt::Display) -> Error {
    Error::Tls(e.to_string())
}

/// Parses every certificate in a PEM block.
pub fn certificates_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(tls_err)?;
    if certs.is_empty() {
        return Err(Error::Tls("no certificate in PEM data".into()));
    }
    Ok(certs)
}

impl TlsOptions {
    /// Client options that verify the server's certificate and name.
    ///
    /// `trusted_chain_pem`: certificates to trust (PEM); `None` uses the bundled Mozilla roots.
    /// `common_name_override`: the name to verify instead of the URL's host.
    pub fn client(
        trusted_chain_pem: Option<&[u8]>,
        common_name_override: Option<&str>,
    ) -> Result<TlsOptions, Error> {
        let mut roots = rustls::RootCertStore::empty();
        match trusted_chain_pem {
            Some(pem) => {
                for c in certificates_from_pem(pem)? {
                    roots.add(c).map_err(tls_err)?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(tls_err)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(TlsOptions {
            inner: TlsKind::Client {
                config: Arc::new(config),
                common_name_override: common_name_override.map(str::to_string),
            },
        })
    }

    /// Client options that accept any certificate and never check the name. For tests only:
    /// this gives no protection against an attacker in the middle.
    pub fn client_unsafe() -> TlsOptions {
        let p = provider();
        let config = rustls::ClientConfig::builder_with_provider(p.clone())
            .with_safe_default_protocol_versions()
            .expect("the aws-lc-rs provider supports the default versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(p)))
            .with_no_client_auth();
        TlsOptions {
            inner: TlsKind::Client {
                config: Arc::new(config),
                common_name_override: None,
            },
        }
    }

    /// Server options from a private key and a certificate chain, both PEM.
    pub fn server(key_pem: &[u8], cert_chain_pem: &[u8]) -> Result<TlsOptions, Error> {
        let certs = certificates_from_pem(cert_chain_pem)?;
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(tls_err)?;
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(tls_err)?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(tls_err)?;
        Ok(TlsOptions {
            inner: TlsKind::Server {
                config: Arc::new(config),
            },
        })
    }

    /// Whether these are server options.
    pub fn is_server(&self) -> bool {
        matches!(self.inner, TlsKind::Server { .. })
    }

    pub(crate) fn client_connection(&self, host: &str) -> Result<rustls::ClientConnection, Error> {
        let TlsKind::Client {
            config,
            common_name_override,
        } = &self.inner
        else {
            return Err(Error::InvalidParameter(
                "server TLS options given to a client".into(),
            ));
        };
        let name = common_name_override.as_deref().unwrap_or(host);
        let name = name.trim_start_matches('[').trim_end_matches(']');
        let server_name = ServerName::try_from(name.to_string()).map_err(tls_err)?;
        rustls::ClientConnection::new(config.clone(), server_name).map_err(tls_err)
    }

    /// A rustls server connection with these (server) options, for a driver that runs its own
    /// sockets (such as the tokio driver of `netplay-server`).
    pub fn server_connection(&self) -> Result<rustls::ServerConnection, Error> {
        let TlsKind::Server { config } = &self.inner else {
            return Err(Error::InvalidParameter(
                "client TLS options given to a server".into(),
            ));
        };
        rustls::ServerConnection::new(config.clone()).map_err(tls_err)
    }

    /// The rustls server configuration (for the tokio driver).
    pub fn server_config(&self) -> Option<Arc<rustls::ServerConfig>> {
        match &self.inner {
            TlsKind::Server { config } => Some(config.clone()),
            TlsKind::Client { .. } => None,
        }
    }
}

#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
