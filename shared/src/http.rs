//! The one way this crate builds HTTP clients: every call bounded in time, connecting
//! included, so a stuck partner turns into a retry rather than a hung function.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// A client whose requests give up after `timeout` (connecting after at most 5 s).
pub(crate) fn client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    let builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)));
    // Without the shared setup, reqwest builds its own, which fails (or not) alike.
    match tls() {
        Some(tls) => builder.use_preconfigured_tls(tls),
        None => builder,
    }
    .build()
}

/// The TLS setup every client of this process shares, as reqwest would build it:
/// its crypto, the platform's verifier, HTTP/1.1. Building one reads and parses
/// the system's root certificates (3–9 ms); a function builds two or three clients
/// at its cold start. Only the setup is shared: each client keeps its own pool of
/// connections, on the runtime that made them.
fn tls() -> Option<rustls::ClientConfig> {
    static SHARED: OnceLock<Option<rustls::ClientConfig>> = OnceLock::new();
    let built = SHARED.get_or_init(|| {
        let provider = rustls::crypto::CryptoProvider::get_default()
            .cloned()
            .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
        let verifier = rustls_platform_verifier::Verifier::new(provider.clone()).ok()?;
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .ok()?
            // "Dangerous" only in name: the platform's verifier checks every chain.
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Some(config)
    });
    built.clone()
}

/// A base URL without its trailing slash, ready for `{base}{path}`.
pub(crate) fn base(url: &str) -> String {
    url.trim_end_matches('/').to_owned()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::time::Duration;

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Set in the process the test runs itself in.
    const CHILD: &str = "GHL_CAPI_TLS_TEST_CHILD";

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/tls")
            .join(name)
    }

    /// A TLS server on a free port of 127.0.0.1 presenting `cert`, answering every
    /// request `204`.
    async fn server(cert: &str, key: &str) -> u16 {
        let certs = CertificateDer::pem_file_iter(fixture(cert))
            .expect("certificate file")
            .collect::<Result<Vec<_>, _>>()
            .expect("certificates");
        let key = PrivateKeyDer::from_pem_file(fixture(key)).expect("key");
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("server setup");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("port");
        let port = listener.local_addr().expect("address").port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut request = [0; 4096];
                    let _ = tls.read(&mut request).await;
                    let answer =
                        "HTTP/1.1 204 No Content\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
                    let _ = tls.write_all(answer.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        port
    }

    /// The shared setup trusts what the platform trusts and nothing else. Run in a
    /// process of its own whose platform trusts only the test CA (`SSL_CERT_FILE`),
    /// read when the first client is built.
    #[test]
    fn clients_take_a_chain_to_the_platforms_roots_and_refuse_any_other() {
        let name = "http::tests::clients_take_a_chain_to_the_platforms_roots_and_refuse_any_other";
        if std::env::var_os(CHILD).is_none() {
            let exe = std::env::current_exe().expect("the test binary");
            let status = std::process::Command::new(exe)
                .args(["--exact", name, "--test-threads", "1"])
                .env("SSL_CERT_FILE", fixture("ca.pem"))
                .env(CHILD, "1")
                .status()
                .expect("the test in a process of its own");
            assert!(status.success(), "{status}");
            return;
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let client = super::client(Duration::from_secs(5)).expect("client");
            assert!(super::tls().is_some(), "the clients' shared setup was built");
            let trusted = server("localhost.pem", "localhost.key").await;
            let answer = (client.get(format!("https://localhost:{trusted}/")).send())
                .await
                .expect("a chain to a trusted root is taken");
            assert_eq!(answer.status(), 204);
            let stranger = server("stranger.pem", "stranger.key").await;
            let refused = (client.get(format!("https://localhost:{stranger}/")).send())
                .await
                .expect_err("a certificate no root vouches for is refused");
            let why = format!("{refused:?}");
            assert!(why.contains("InvalidCertificate"), "{why}");
        });
    }
}
