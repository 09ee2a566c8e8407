//! The operator's listener: `/status` (the page), `/status/dead/{id}` (one dead
//! letter) and `/metrics` (Prometheus text). It is never the webhook listener, and
//! it binds to a loopback address unless an admin token guards it: with a token,
//! every request must carry it (`Authorization: Bearer`, or as a browser's Basic
//! password), compared in constant time.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use metrics_exporter_prometheus::PrometheusHandle;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::serve::ServeError;
use crate::status::{Status, page};
use crate::store::{DEAD, Store};

/// The operator's listener's address unless told otherwise.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:3001";

/// How the operator's listener runs.
#[derive(Debug, Clone)]
pub struct AdminOptions {
    pub listen: SocketAddr,
    /// Required for a non-loopback address.
    pub token: Option<String>,
    /// The process's Prometheus recorder, when one is installed.
    pub metrics: Option<PrometheusHandle>,
    /// The locations the page reports on (those with tokens, those pixels name).
    pub locations: Vec<String>,
}

#[derive(Debug)]
struct Admin {
    store: Store,
    /// The token's digest: equal lengths, so the comparison's time says nothing.
    token: Option<[u8; 32]>,
    metrics: Option<PrometheusHandle>,
    locations: Vec<String>,
}

fn digest(text: &[u8]) -> [u8; 32] {
    Sha256::digest(text).into()
}

impl Admin {
    /// Whether `headers` carry the token (always, when there is none).
    fn allows(&self, headers: &HeaderMap) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let Some(given) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let given = if let Some(bearer) = given.strip_prefix("Bearer ") {
            bearer.trim().as_bytes().to_vec()
        } else if let Some(basic) = given.strip_prefix("Basic ") {
            // A browser's prompt: any user name, the token as the password.
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(basic.trim())
                .unwrap_or_default();
            match decoded.iter().position(|b| *b == b':') {
                Some(colon) => decoded[colon + 1..].to_vec(),
                None => return false,
            }
        } else {
            return false;
        };
        bool::from(digest(&given).ct_eq(token))
    }
}

fn refused() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Basic realm=\"ghl-capi admin\"")],
        "the admin token is required\n",
    )
        .into_response()
}

async fn status(State(admin): State<Arc<Admin>>, headers: HeaderMap) -> Response {
    if !admin.allows(&headers) {
        return refused();
    }
    match Status::read(&admin.store, &admin.locations, chrono::Utc::now()).await {
        Ok(status) => Html(page::render(&status)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot read the status page's figures");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot read the store: {e}\n"),
            )
                .into_response()
        }
    }
}

async fn letter(
    State(admin): State<Arc<Admin>>,
    Path(id): Path<i64>,
    headers: HeaderMap,
) -> Response {
    if !admin.allows(&headers) {
        return refused();
    }
    let listed = match admin.store.list(DEAD) {
        Ok(listed) => listed,
        Err(e) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot read the store: {e}\n"),
            )
                .into_response();
        }
    };
    let found = listed
        .into_iter()
        .find(|stored| stored.id == id)
        .and_then(|stored| {
            serde_json::from_str::<ghl_capi::jobs::LetterMessage>(&stored.body).ok()
        });
    match found {
        Some(message) => Html(page::letter(&message.dead_letter, id)).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "no such dead letter (redriven, or never)\n",
        )
            .into_response(),
    }
}

async fn metrics(State(admin): State<Arc<Admin>>, headers: HeaderMap) -> Response {
    if !admin.allows(&headers) {
        return refused();
    }
    match &admin.metrics {
        Some(handle) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            handle.render(),
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "no metrics recorder in this process\n",
        )
            .into_response(),
    }
}

/// Binds the operator's listener and serves it until `stopped`. A non-loopback
/// address without a token is refused before anything is bound.
pub async fn start(
    options: AdminOptions,
    store: Store,
    mut stopped: watch::Receiver<bool>,
) -> Result<JoinHandle<()>, ServeError> {
    let token = options.token.filter(|t| !t.is_empty());
    if !options.listen.ip().is_loopback() && token.is_none() {
        return Err(ServeError::AdminUnguarded(options.listen));
    }
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|e| ServeError::Listen(options.listen, e))?;
    let address = listener.local_addr().map_err(ServeError::Server)?;
    println!("  status page: http://{address}/status, metrics: http://{address}/metrics");
    let admin = Arc::new(Admin {
        store,
        token: token.map(|t| digest(t.as_bytes())),
        metrics: options.metrics,
        locations: options.locations,
    });
    let app = axum::Router::new()
        .route("/status", get(status))
        .route("/status/dead/{id}", get(letter))
        .route("/metrics", get(metrics))
        .with_state(admin);
    Ok(tokio::spawn(async move {
        let stop = async move {
            let _ = stopped.changed().await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!(error = %e, "the admin listener failed");
        }
    }))
}
