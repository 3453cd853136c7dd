//! The agent's connection to the bridge: HTTPS requests (login, schedule) and the signaling
//! WebSocket, over rustls with the trust the configuration names (a CA file, or the bridge's
//! own self-signed certificate pinned).

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::config;

/// Longest HTTP response read, in bytes.
const MAX_RESPONSE: usize = 4 * 1024 * 1024;
/// Time allowed to connect and for one request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A byte stream to the bridge, plain or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The signaling WebSocket.
pub type Ws = WebSocketStream<Box<dyn Io>>;

/// Why talking to the bridge failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The configuration cannot work (a bad URL, an unreadable certificate).
    #[error("{0}")]
    Config(String),
    /// The bridge could not be reached or the connection broke.
    #[error("cannot reach the bridge: {0}")]
    Connect(String),
    /// The bridge answered with an error.
    #[error("the bridge answered {status}: {body}")]
    Status {
        /// HTTP status.
        status: u16,
        /// Its body.
        body: String,
    },
}

/// Where the bridge is and how to trust it.
#[derive(Clone)]
pub struct Bridge {
    host: String,
    port: u16,
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

/// Accepts exactly one certificate (the bridge's self-signed one); signatures are still checked.
#[derive(Debug)]
struct Pinned {
    certificate: CertificateDer<'static>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.certificate.as_ref() {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the bridge's certificate is not the pinned one".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn certificates(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, NetError> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| NetError::Config(format!("cannot read {}: {e}", path.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| NetError::Config(format!("{}: not PEM certificates: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(NetError::Config(format!(
            "{} holds no certificate",
            path.display()
        )));
    }
    Ok(certs)
}

impl Bridge {
    /// From the configuration.
    pub fn new(server: &config::Server) -> Result<Self, NetError> {
        let (tls, rest) = if let Some(rest) = server.url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = server.url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(NetError::Config(format!("bad server.url {}", server.url)));
        };
        let authority = rest.split('/').next().unwrap_or_default();
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse()
                    .map_err(|_| NetError::Config(format!("bad port in {}", server.url)))?,
            ),
            None => (authority.to_string(), if tls { 443 } else { 80 }),
        };
        let tls = if tls {
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| NetError::Config(e.to_string()))?;
            let config = match (&server.ca_file, &server.pinned_certificate) {
                (Some(ca), None) => {
                    let mut roots = rustls::RootCertStore::empty();
                    for cert in certificates(ca)? {
                        roots
                            .add(cert)
                            .map_err(|e| NetError::Config(format!("{}: {e}", ca.display())))?;
                    }
                    builder.with_root_certificates(roots).with_no_client_auth()
                }
                (None, Some(pinned)) => {
                    let certificate = certificates(pinned)?.remove(0);
                    builder
                        .dangerous()
                        .with_custom_certificate_verifier(Arc::new(Pinned {
                            certificate,
                            provider,
                        }))
                        .with_no_client_auth()
                }
                _ => {
                    return Err(NetError::Config(
                        "an https bridge needs server.ca_file or server.pinned_certificate".into(),
                    ));
                }
            };
            let name = ServerName::try_from(host.clone())
                .map_err(|e| NetError::Config(format!("bad host {host}: {e}")))?;
            Some((TlsConnector::from(Arc::new(config)), name))
        } else {
            None
        };
        Ok(Self { host, port, tls })
    }

    async fn stream(&self) -> Result<Box<dyn Io>, NetError> {
        let tcp = tokio::time::timeout(
            REQUEST_TIMEOUT,
            TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| NetError::Connect("timed out".into()))?
        .map_err(|e| NetError::Connect(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => Ok(Box::new(tcp)),
            Some((connector, name)) => {
                let tls =
                    tokio::time::timeout(REQUEST_TIMEOUT, connector.connect(name.clone(), tcp))
                        .await
                        .map_err(|_| NetError::Connect("TLS timed out".into()))?
                        .map_err(|e| NetError::Connect(format!("TLS: {e}")))?;
                Ok(Box::new(tls))
            }
        }
    }

    /// One HTTP/1.1 request with a JSON body; the response's JSON (or an error).
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, NetError> {
        tokio::time::timeout(
            REQUEST_TIMEOUT,
            self.request_inner(method, path, token, body),
        )
        .await
        .map_err(|_| NetError::Connect("the request timed out".into()))?
    }

    async fn request_inner(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, NetError> {
        let mut stream = self.stream().await?;
        let payload = if method == "GET" {
            String::new()
        } else {
            body.to_string()
        };
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{auth}\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.host,
            payload.len()
        );
        let io = |e: std::io::Error| NetError::Connect(e.to_string());
        stream.write_all(head.as_bytes()).await.map_err(io)?;
        stream.write_all(payload.as_bytes()).await.map_err(io)?;
        let mut raw = Vec::new();
        (&mut stream)
            .take(MAX_RESPONSE as u64)
            .read_to_end(&mut raw)
            .await
            .or_else(|e| {
                // A TLS peer closing without close_notify still delivered the whole response.
                if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    Ok(0)
                } else {
                    Err(e)
                }
            })
            .map_err(io)?;
        let text = String::from_utf8_lossy(&raw);
        let (head, rest) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| NetError::Connect("a truncated response".into()))?;
        let status: u16 = head
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| NetError::Connect("not an HTTP response".into()))?;
        let chunked = head.lines().any(|l| {
            let l = l.to_ascii_lowercase();
            l.starts_with("transfer-encoding:") && l.contains("chunked")
        });
        let body = if chunked {
            unchunk(rest)
        } else {
            rest.to_string()
        };
        if !(200..300).contains(&status) {
            return Err(NetError::Status { status, body });
        }
        if body.trim().is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_str(&body).map_err(|e| NetError::Connect(format!("bad JSON: {e}")))
    }

    /// Opens the signaling WebSocket with the session token.
    pub async fn websocket(&self, token: &str) -> Result<Ws, NetError> {
        let scheme = if self.tls.is_some() { "wss" } else { "ws" };
        let mut request = format!("{scheme}://{}:{}/ws", self.host, self.port)
            .into_client_request()
            .map_err(|e| NetError::Config(e.to_string()))?;
        request.headers_mut().insert(
            "Authorization",
            format!("Bearer {token}")
                .parse()
                .map_err(|_| NetError::Config("bad token".into()))?,
        );
        let stream = self.stream().await?;
        let (ws, _) = tokio::time::timeout(
            REQUEST_TIMEOUT,
            tokio_tungstenite::client_async(request, stream),
        )
        .await
        .map_err(|_| NetError::Connect("the WebSocket handshake timed out".into()))?
        .map_err(|e| NetError::Connect(format!("WebSocket: {e}")))?;
        Ok(ws)
    }
}

fn unchunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        // `get`: a chunk size from the network may not fall on a character boundary.
        let (Some(chunk), false) = (after.get(..n), n == 0) else {
            break;
        };
        out.push_str(chunk);
        rest = after.get(n + 2..).unwrap_or_default();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_decode_and_bad_sizes_never_panic() {
        assert_eq!(unchunk("5\r\nhello\r\n1\r\n!\r\n0\r\n\r\n"), "hello!");
        // A size past the end, and one that splits a two-byte character.
        assert_eq!(unchunk("ff\r\nshort\r\n"), "");
        assert_eq!(unchunk("1\r\nđ\r\n0\r\n\r\n"), "");
        assert_eq!(unchunk("zz\r\n"), "");
    }
}
