//! TLS client sessions over buffers (rustls, ring): the caller owns the socket.
//!
//! ```text
//! config  = TlsConfig::new(ca_pem, client_pem, insecure)   // once per kubeconfig
//! session = config.session("host", now_unix_seconds)       // once per connection
//! loop { send(session.take_output()); session.receive(socket_bytes, &mut plain)? }
//! ```
//!
//! No I/O and no clock: certificate validity is checked against the wall-clock time
//! the caller passes to `session`. `receive` takes everything one socket read brought
//! and appends every plaintext byte those records completed to a buffer the caller
//! owns (the seam for the informer core: decrypt into its scratch, then decode).
use std::io::Read;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, Resumption, WebPkiServerVerifier};
use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::time_provider::TimeProvider;
use rustls::{
    AlertDescription, CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct,
    Error, RootCertStore, SignatureScheme,
};

/// Why a session failed, as OpenSSL's verify messages and reasons name it, so the
/// caller's one-line errors read the same whichever library did the TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSessionError {
    /// The server's certificate was refused (`TLS verification of … failed: …`).
    Verification(String),
    /// Anything else in the handshake or record layer (`TLS handshake with … failed: …`).
    Protocol(String),
}

impl TlsSessionError {
    pub fn message(&self) -> &str {
        match self {
            TlsSessionError::Verification(m) | TlsSessionError::Protocol(m) => m,
        }
    }
}

/// Settings shared by every session of one kubeconfig cluster/user.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    provider: Arc<CryptoProvider>,
    verifier: Arc<dyn ServerCertVerifier>,
    client: Option<Arc<CertifiedKey>>,
}

impl TlsConfig {
    /// `ca_pem`: the PEM bundle to trust (required unless `insecure`); `client`: a PEM
    /// certificate chain and its PEM key (PKCS#8, PKCS#1 RSA or SEC1 EC), unencrypted.
    pub fn new(
        ca_pem: Option<&[u8]>,
        client: Option<(&[u8], &[u8])>,
        insecure: bool,
    ) -> Result<Self, String> {
        let provider = Arc::new(ring::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = if insecure {
            Arc::new(NoVerification(provider.clone()))
        } else {
            let pem = ca_pem.ok_or("no certificate authority")?;
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| format!("certificate-authority: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("certificate-authority: {e}"))?;
            }
            if roots.is_empty() {
                return Err("certificate-authority: no PEM certificate".into());
            }
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| format!("certificate-authority: {e}"))?
        };
        let client = match client {
            None => None,
            Some((cert_pem, key_pem)) => {
                let chain = CertificateDer::pem_slice_iter(cert_pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("client-certificate: {e}"))?;
                if chain.is_empty() {
                    return Err("client-certificate: no PEM certificate".into());
                }
                let key = PrivateKeyDer::from_pem_slice(key_pem)
                    .map_err(|e| format!("client-key: {e}"))?;
                let signer = provider
                    .key_provider
                    .load_private_key(key)
                    .map_err(|e| format!("client-key: {e}"))?;
                Some(Arc::new(CertifiedKey::new(chain, signer)))
            }
        };
        Ok(TlsConfig {
            provider,
            verifier,
            client,
        })
    }

    /// A session to `server_name` (SNI for a DNS name, and the name the certificate
    /// must carry; an IP address is matched against IP SANs), offering ALPN
    /// `http/1.1`, certificates checked at `now` (seconds since the Unix epoch).
    pub fn session(&self, server_name: &str, now: f64) -> Result<TlsSession, TlsSessionError> {
        let name = ServerName::try_from(server_name.to_owned()).map_err(|_| {
            TlsSessionError::Protocol(format!("invalid server name {server_name:?}"))
        })?;
        let time = Arc::new(FixedTime(UnixTime::since_unix_epoch(
            std::time::Duration::from_secs_f64(now.max(0.0)),
        )));
        let builder = ClientConfig::builder_with_details(self.provider.clone(), time)
            .with_protocol_versions(rustls::DEFAULT_VERSIONS)
            .map_err(|e| TlsSessionError::Protocol(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(self.verifier.clone());
        let mut config = match &self.client {
            Some(key) => builder.with_client_cert_resolver(Arc::new(OneKey(key.clone()))),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config.resumption = Resumption::disabled();
        let conn = ClientConnection::new(Arc::new(config), name)
            .map_err(|e| TlsSessionError::Protocol(e.to_string()))?;
        Ok(TlsSession {
            conn,
            eof: false,
            failed: None,
        })
    }
}

/// One client connection's TLS state. Not thread-safe by itself (`&mut self`).
pub struct TlsSession {
    conn: ClientConnection,
    eof: bool,
    failed: Option<TlsSessionError>,
}

impl TlsSession {
    /// Feed what one socket read brought (empty: the peer closed) and append the
    /// plaintext it completed to `plain`. Records torn across reads wait inside.
    /// Returns whether the stream has ended (close_notify, or the socket closed).
    pub fn receive(
        &mut self,
        mut input: &[u8],
        plain: &mut Vec<u8>,
    ) -> Result<bool, TlsSessionError> {
        if let Some(failed) = &self.failed {
            return Err(failed.clone());
        }
        let result = self.receive_inner(&mut input, plain);
        if let Err(e) = &result {
            self.failed = Some(e.clone());
        }
        result
    }

    fn receive_inner(
        &mut self,
        input: &mut &[u8],
        plain: &mut Vec<u8>,
    ) -> Result<bool, TlsSessionError> {
        let closing = input.is_empty();
        loop {
            if !input.is_empty() || closing {
                // Reading from a slice cannot fail; a full buffer inside rustls is
                // an error of its own, drained below before the next read.
                match self.conn.read_tls(input) {
                    Ok(_) => {}
                    Err(e) => return Err(TlsSessionError::Protocol(e.to_string())),
                }
            }
            let state = self.conn.process_new_packets().map_err(failure)?;
            let want = state.plaintext_bytes_to_read();
            if want > 0 {
                let start = plain.len();
                plain.resize(start + want, 0);
                let mut filled = 0;
                while filled < want {
                    match self.conn.reader().read(&mut plain[start + filled..]) {
                        Ok(0) => break,
                        Ok(n) => filled += n,
                        Err(_) => break,
                    }
                }
                plain.truncate(start + filled);
            }
            if state.peer_has_closed() || closing {
                self.eof = true;
                return Ok(true);
            }
            if input.is_empty() {
                return Ok(false);
            }
        }
    }

    /// Queue `data` (a request) to be encrypted; `take_output` hands out the records.
    pub fn write(&mut self, data: &[u8]) -> Result<(), TlsSessionError> {
        use std::io::Write;
        self.conn
            .writer()
            .write_all(data)
            .map_err(|e| TlsSessionError::Protocol(e.to_string()))
    }

    /// The bytes to send now (handshake messages, alerts, encrypted writes).
    pub fn take_output(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        while self.conn.wants_write() {
            if self.conn.write_tls(&mut out).is_err() {
                break;
            }
        }
        out
    }

    /// Records are waiting for `take_output` (handshake, alerts, answers to a TLS 1.3
    /// key update).
    pub fn wants_write(&self) -> bool {
        self.conn.wants_write()
    }

    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    pub fn eof(&self) -> bool {
        self.eof
    }

    /// The protocol the server chose by ALPN, if any.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.conn.alpn_protocol()
    }

    /// The negotiated cipher suite and protocol version, e.g. `TLS13_AES_128_GCM_SHA256`.
    pub fn cipher(&self) -> Option<String> {
        self.conn
            .negotiated_cipher_suite()
            .map(|s| format!("{:?}", s.suite()))
    }
}

/// A rustls error in OpenSSL's words (its verify messages, its alert reasons).
fn failure(err: Error) -> TlsSessionError {
    match err {
        Error::InvalidCertificate(cert) => {
            TlsSessionError::Verification(certificate_message(&cert))
        }
        Error::AlertReceived(alert) => TlsSessionError::Protocol(alert_reason(alert)),
        Error::NoCertificatesPresented => {
            TlsSessionError::Verification("the server presented no certificate".into())
        }
        other => TlsSessionError::Protocol(other.to_string()),
    }
}

fn certificate_message(err: &CertificateError) -> String {
    match err {
        CertificateError::UnknownIssuer => "unable to get local issuer certificate".into(),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "certificate has expired".into()
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "certificate is not yet valid".into()
        }
        CertificateError::BadSignature => "certificate signature failure".into(),
        CertificateError::Revoked => "certificate revoked".into(),
        CertificateError::NotValidForNameContext { expected, .. } => match expected {
            ServerName::IpAddress(ip) => format!(
                "IP address mismatch, certificate is not valid for '{}'.",
                std::net::IpAddr::from(*ip)
            ),
            other => format!(
                "Hostname mismatch, certificate is not valid for '{}'.",
                other.to_str()
            ),
        },
        CertificateError::NotValidForName => "certificate is not valid for the server name".into(),
        other => format!("certificate verify failed ({other:?})"),
    }
}

/// OpenSSL's reason for a received alert (`SSLV3_ALERT_…`, `TLSV1_ALERT_…`).
fn alert_reason(alert: AlertDescription) -> String {
    let (prefix, name) = match alert {
        AlertDescription::HandshakeFailure => ("SSLV3", "HANDSHAKE_FAILURE"),
        AlertDescription::BadCertificate => ("SSLV3", "BAD_CERTIFICATE"),
        AlertDescription::UnsupportedCertificate => ("SSLV3", "UNSUPPORTED_CERTIFICATE"),
        AlertDescription::CertificateRevoked => ("SSLV3", "CERTIFICATE_REVOKED"),
        AlertDescription::CertificateExpired => ("SSLV3", "CERTIFICATE_EXPIRED"),
        AlertDescription::CertificateUnknown => ("SSLV3", "CERTIFICATE_UNKNOWN"),
        AlertDescription::UnknownCA => ("TLSV1", "UNKNOWN_CA"),
        AlertDescription::AccessDenied => ("TLSV1", "ACCESS_DENIED"),
        AlertDescription::DecryptError => ("TLSV1", "DECRYPT_ERROR"),
        AlertDescription::ProtocolVersion => ("TLSV1", "PROTOCOL_VERSION"),
        AlertDescription::InternalError => ("TLSV1", "INTERNAL_ERROR"),
        AlertDescription::UnrecognisedName => ("TLSV1", "UNRECOGNIZED_NAME"),
        AlertDescription::NoApplicationProtocol => ("TLSV1", "NO_APPLICATION_PROTOCOL"),
        AlertDescription::CertificateRequired => ("TLSV13", "CERTIFICATE_REQUIRED"),
        other => return format!("TLS alert {other:?}"),
    };
    format!("{prefix}_ALERT_{name}")
}

/// The caller's wall-clock time, read once per connection.
#[derive(Debug)]
struct FixedTime(UnixTime);

impl TimeProvider for FixedTime {
    fn current_time(&self) -> Option<UnixTime> {
        Some(self.0)
    }
}

#[derive(Debug)]
struct OneKey(Arc<CertifiedKey>);

impl ResolvesClientCert for OneKey {
    fn resolve(&self, _hints: &[&[u8]], schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        // Offered whenever the key can sign with one of the server's schemes.
        self.0.key.choose_scheme(schemes).map(|_| self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// insecure-skip-tls-verify: any certificate, any name (handshake signatures still
/// checked, so the session is at least with the holder of the presented key).
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
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
    ) -> Result<HandshakeSignatureValid, Error> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verification_failures_read_as_openssl_words_them() {
        let unknown = Error::InvalidCertificate(CertificateError::UnknownIssuer);
        assert_eq!(
            failure(unknown),
            TlsSessionError::Verification("unable to get local issuer certificate".into())
        );
        let ip = ServerName::try_from("127.0.0.1").unwrap().to_owned();
        let name = Error::InvalidCertificate(CertificateError::NotValidForNameContext {
            expected: ip,
            presented: vec!["DnsName(\"kubernetes\")".into()],
        });
        assert_eq!(
            failure(name).message(),
            "IP address mismatch, certificate is not valid for '127.0.0.1'."
        );
        let host = ServerName::try_from("api.example").unwrap().to_owned();
        let name = Error::InvalidCertificate(CertificateError::NotValidForNameContext {
            expected: host,
            presented: vec![],
        });
        assert_eq!(
            failure(name).message(),
            "Hostname mismatch, certificate is not valid for 'api.example'."
        );
        let expired = Error::InvalidCertificate(CertificateError::Expired);
        assert_eq!(failure(expired).message(), "certificate has expired");
    }

    #[test]
    fn alerts_are_named_by_openssl_reasons_and_are_not_verification_failures() {
        let alert = failure(Error::AlertReceived(AlertDescription::CertificateRequired));
        assert_eq!(
            alert,
            TlsSessionError::Protocol("TLSV13_ALERT_CERTIFICATE_REQUIRED".into())
        );
        let alert = failure(Error::AlertReceived(AlertDescription::UnknownCA));
        assert_eq!(alert.message(), "TLSV1_ALERT_UNKNOWN_CA");
    }

    #[test]
    fn unusable_pem_is_refused_with_the_field_it_came_from() {
        let err = TlsConfig::new(Some(b"nothing here"), None, false).unwrap_err();
        assert_eq!(err, "certificate-authority: no PEM certificate");
        let err = TlsConfig::new(None, None, false).unwrap_err();
        assert_eq!(err, "no certificate authority");
        let insecure = TlsConfig::new(None, None, true).unwrap();
        let bad = TlsConfig::new(None, Some((b"x", b"y")), true).unwrap_err();
        assert!(bad.starts_with("client-certificate"), "{bad}");
        // A session needs a name that is a DNS name or an IP address.
        assert!(insecure.session("not a name!", 0.0).is_err());
        let session = insecure.session("127.0.0.1", 1.8e9).unwrap();
        assert!(session.is_handshaking() && !session.eof());
    }

    #[test]
    fn a_new_session_starts_with_a_client_hello_and_eof_ends_it() {
        let settings = TlsConfig::new(None, None, true).unwrap();
        let mut session = settings.session("kubernetes.local", 1.8e9).unwrap();
        let hello = session.take_output();
        assert_eq!(hello[0], 0x16, "a handshake record");
        assert!(session.take_output().is_empty());
        let mut plain = Vec::new();
        assert_eq!(session.receive(b"", &mut plain), Ok(true));
        assert!(session.eof() && plain.is_empty());
    }
}
