//! The operator's listener: `/status` (the page), `/status/dead/{id}` (one dead
//! letter) and `/metrics` (Prometheus text). It is never the webhook listener, and
//! it binds to a loopback address unless an admin token guards it: with a token,
//! every request must carry it (`Authorization: Bearer`, or as a browser's Basic
//! password), compared in constant time. It answers only requests addressed to it
//! by an IP address, `localhost`, or a host name it was given (`--admin-host`): a
//! web page cannot reach it through a name of its own pointed at loopback (DNS
//! rebinding).

use std::future::Future;
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

use crate::status::quality::Served;
use crate::status::{Status, page};
use crate::store::{DEAD, Store};

/// Why the operator's listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(
        "the admin listener on {0} is not a loopback address: give it an --admin-token (ADMIN_TOKEN), or bind it to 127.0.0.1"
    )]
    Unguarded(SocketAddr),
    #[error("cannot listen on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
}

/// The operator's listener's address unless told otherwise.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:3001";

/// How the operator's listener runs.
#[derive(Debug, Clone)]
pub struct AdminOptions {
    pub listen: SocketAddr,
    /// Whether `listen` is only the default: taken (another `serve`), any free
    /// port of the same address will do, and is printed.
    pub any_free_port: bool,
    /// Host names it answers besides IP addresses and `localhost`.
    pub hosts: Vec<String>,
    /// Required for a non-loopback address.
    pub token: Option<String>,
    /// The process's Prometheus recorder, when one is installed.
    pub metrics: Option<PrometheusHandle>,
    /// The locations the page reports on (those with tokens, those pixels name).
    pub locations: Vec<String>,
    /// The mapping's pixels, for the page's match quality and readiness.
    pub pixels: Vec<Served>,
}

#[derive(Debug)]
struct Admin {
    store: Store,
    /// Host names it answers besides IP addresses and `localhost`, lowercase.
    hosts: Vec<String>,
    /// The token's digest: equal lengths, so the comparison's time says nothing.
    token: Option<[u8; 32]>,
    metrics: Option<PrometheusHandle>,
    locations: Vec<String>,
    pixels: Vec<Served>,
}

fn digest(text: &[u8]) -> [u8; 32] {
    Sha256::digest(text).into()
}

impl Admin {
    /// Whether `headers` name a host it answers for, and carry the token (when
    /// there is one).
    fn allows(&self, headers: &HeaderMap) -> bool {
        self.own_host(headers) && self.carries_token(headers)
    }

    /// Whether the request is addressed to this listener: by an IP address (a
    /// rebinding page has a name of its own), `localhost`, or a given name. A
    /// request without `Host` is no browser's.
    fn own_host(&self, headers: &HeaderMap) -> bool {
        let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
            return true;
        };
        let name = match host.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None => host.rsplit_once(':').map_or(host, |(name, _)| name),
        };
        let name = name.to_ascii_lowercase();
        let own = name.parse::<std::net::IpAddr>().is_ok()
            || name == "localhost"
            || self.hosts.contains(&name);
        if !own {
            tracing::warn!(
                host,
                "an admin request addressed to another host name: refused"
            );
        }
        own
    }

    fn carries_token(&self, headers: &HeaderMap) -> bool {
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

/// The answer to a request `admin` does not allow.
fn refusal(admin: &Admin, headers: &HeaderMap) -> Response {
    if admin.own_host(headers) {
        return refused();
    }
    (
        StatusCode::FORBIDDEN,
        "this listener answers requests to its IP address, localhost, or a name given with --admin-host\n",
    )
        .into_response()
}

async fn status(State(admin): State<Arc<Admin>>, headers: HeaderMap) -> Response {
    if !admin.allows(&headers) {
        return refusal(&admin, &headers);
    }
    let now = chrono::Utc::now();
    match Status::read(&admin.store, &admin.locations, &admin.pixels, now).await {
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
        return refusal(&admin, &headers);
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
        return refusal(&admin, &headers);
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

/// The operator's listener, bound: its address is known before anything else of
/// `serve` starts.
#[derive(Debug)]
pub struct Bound {
    listener: tokio::net::TcpListener,
    options: AdminOptions,
}

/// Binds the operator's listener. A non-loopback address without a token is
/// refused before anything is bound; the default address taken (another `serve`
/// on this machine), any free port of it is taken instead.
pub async fn bind(options: AdminOptions) -> Result<Bound, AdminError> {
    let token = options.token.as_ref().filter(|t| !t.is_empty());
    if !options.listen.ip().is_loopback() && token.is_none() {
        return Err(AdminError::Unguarded(options.listen));
    }
    let listener = match tokio::net::TcpListener::bind(options.listen).await {
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && options.any_free_port => {
            let any = SocketAddr::new(options.listen.ip(), 0);
            tokio::net::TcpListener::bind(any)
                .await
                .map_err(|e| AdminError::Listen(any, e))?
        }
        bound => bound.map_err(|e| AdminError::Listen(options.listen, e))?,
    };
    Ok(Bound { listener, options })
}

impl Bound {
    pub fn address(&self) -> Result<SocketAddr, AdminError> {
        let at = self.listener.local_addr();
        at.map_err(|e| AdminError::Listen(self.options.listen, e))
    }

    /// Serves it until `stopped` (a future for the caller to spawn).
    pub fn serve(
        self,
        store: Store,
        mut stopped: watch::Receiver<bool>,
    ) -> impl Future<Output = ()> + Send + 'static {
        let Bound { listener, options } = self;
        let token = options.token.filter(|t| !t.is_empty());
        let admin = Arc::new(Admin {
            store,
            hosts: options
                .hosts
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect(),
            token: token.map(|t| digest(t.as_bytes())),
            metrics: options.metrics,
            locations: options.locations,
            pixels: options.pixels,
        });
        let app = axum::Router::new()
            .route("/status", get(status))
            .route("/status/dead/{id}", get(letter))
            .route("/metrics", get(metrics))
            .with_state(admin);
        async move {
            let stop = async move {
                let _ = stopped.changed().await;
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
            {
                tracing::error!(error = %e, "the admin listener failed");
            }
        }
    }
}
