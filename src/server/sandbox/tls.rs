//! The sandbox over HTTPS, as WeChat's API is, for a sandbox running as its own process: its own
//! certificate, and — when given the CA that signs merchants' API client certificates — mutual
//! TLS as `secapi/` (refunds) requires. The handshake accepts a connection without a client
//! certificate (orderquery needs none) but refuses one signed by another CA; each request carries
//! whether its connection presented a verified certificate, and `secapi/` answers the non-XML 400
//! page WeChat answers when none was.

use std::sync::Arc;

use axum::extract::Request;
use axum::Router;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Whether the request's connection presented a client certificate the sandbox verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientCert(pub bool);

/// PEM bytes: the sandbox's certificate chain and key, and the CA of merchants' client
/// certificates (None: no mutual TLS).
#[derive(Clone)]
pub struct TlsFiles {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    pub client_ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is never printed.
        f.debug_struct("TlsFiles")
            .field("mutual_tls", &self.client_ca_pem.is_some())
            .finish_non_exhaustive()
    }
}

pub fn server_config(f: &TlsFiles) -> Result<Arc<ServerConfig>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&f.cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("the sandbox certificate is not PEM: {e}"))?;
    if certs.is_empty() {
        return Err("the sandbox certificate file holds no certificate".into());
    }
    let key = PrivateKeyDer::from_pem_slice(&f.key_pem)
        .map_err(|e| format!("the sandbox key is not a PEM private key: {e}"))?;
    let builder = ServerConfig::builder();
    let builder = match &f.client_ca_pem {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(ca) {
                let c = c.map_err(|e| format!("the client CA is not PEM: {e}"))?;
                roots
                    .add(c)
                    .map_err(|e| format!("the client CA is not a usable certificate: {e}"))?;
            }
            let verifier = WebPkiClientVerifier::builder(Arc::new(roots))
                .allow_unauthenticated()
                .build()
                .map_err(|e| format!("the client CA: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("the sandbox certificate and key do not match: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `app` over TLS on `listener` until `stop` is cancelled; each request is told whether
/// its connection presented a verified client certificate ([`ClientCert`]).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    config: Arc<ServerConfig>,
    stop: CancellationToken,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "sandbox: accept failed");
                    continue;
                }
            },
            _ = stop.cancelled() => return,
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(tls) => tls,
                // A client certificate of another CA ends here, as at WeChat.
                Err(e) => {
                    tracing::info!(%peer, error = %e, "sandbox: TLS handshake refused");
                    return;
                }
            };
            let presented = ClientCert(
                tls.get_ref()
                    .1
                    .peer_certificates()
                    .is_some_and(|c| !c.is_empty()),
            );
            let service =
                hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(presented);
                    app.clone().oneshot(req.map(axum::body::Body::new))
                });
            let io = hyper_util::rt::TokioIo::new(tls);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await
            {
                tracing::debug!(%peer, error = %e, "sandbox: connection ended");
            }
        });
    }
}

/// What `secapi/` answers a request whose connection presented no client certificate when the
/// sandbox requires one: WeChat's (nginx's) HTML 400 page, not XML.
pub fn missing_client_cert() -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        axum::http::StatusCode::BAD_REQUEST,
        [(axum::http::header::CONTENT_TYPE, "text/html")],
        "<html><head><title>400 No required SSL certificate was sent</title></head><body>\
         <center><h1>400 Bad Request</h1></center><center>No required SSL certificate was sent</center>\
         </body></html>",
    )
        .into_response()
}

/// Whether a request may reach `secapi/`: always without mutual TLS configured; with it, only
/// over a connection that presented a verified client certificate.
pub fn client_cert_ok(required: bool, req_extensions: &axum::http::Extensions) -> bool {
    !required || req_extensions.get::<ClientCert>() == Some(&ClientCert(true))
}
