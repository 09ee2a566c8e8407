//! `ghl-capi serve`: the intake API and both consumers in one process, over the
//! local store. The same library code as on AWS handles every request and batch.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::IntoResponse;
use chrono::Utc;
use ghl_capi::batch::Retry;
use ghl_capi::capi::CapiClient;
use ghl_capi::capi::client::DEFAULT_BASE_URL as GRAPH_DEFAULT_BASE_URL;
use ghl_capi::dispatch::consumer::dispatch_records;
use ghl_capi::dispatch::tokens::pixel_tokens;
use ghl_capi::enrich::consumer::enrich_records;
use ghl_capi::ghl::client::GhlClient;
use ghl_capi::ghl::install::NoInstall;
use ghl_capi::ghl::tokens::FixedTokens;
use ghl_capi::ghl::webhook::{ReplayWindow, WebhookKeys};
use ghl_capi::ghl::wire::{DEFAULT_BASE_URL as GHL_DEFAULT_BASE_URL, LocationToken};
use ghl_capi::intake::{Api, Request};
use ghl_capi::mapping::Mapping;
use ghl_capi::ports::queue::Record;
use ghl_capi::ports::secrets::EnvSecrets;
use ghl_capi::settings::{Env, SettingsError};
use tokio::sync::watch;

use crate::outbox::LocalCapi;
use crate::ports::{LocalQueue, LocalState};
use crate::store::{DEAD, Store, StoreError};

/// The enrichment queue's name.
pub const ENRICH: &str = "enrich";
/// The dispatch queue's name.
pub const DISPATCH: &str = "dispatch";
/// GHL tokens are read from `GHL_TOKEN_<locationId>`.
pub const GHL_TOKEN_PREFIX: &str = "GHL_TOKEN_";

/// The environment variable holding the conversions route's API keys (a JSON list,
/// or one per line); unset, the route is closed.
pub const CONVERSION_KEYS_VAR: &str = "CONVERSION_API_KEYS";
/// The mapping used when none is given.
const DEMO_MAPPING: &str = include_str!("../samples/mapping.toml");

/// A message is dead-lettered after this many receives, as with SQS's redrive policy.
const MAX_RECEIVES: u32 = 6;
/// How long a received message stays hidden while it is handled.
const VISIBILITY: Duration = Duration::from_secs(60);
/// Idle workers look for work this often (and at once when something is queued).
const POLL: Duration = Duration::from_millis(200);

/// What `serve` runs with.
#[derive(Debug)]
pub struct Options {
    pub listen: SocketAddr,
    pub store: PathBuf,
    pub outbox: PathBuf,
    pub mapping: Mapping,
    pub keys: WebhookKeys,
    pub window: ReplayWindow,
    pub ghl_api_base_url: String,
    pub capi_base_url: String,
    pub capi_version: String,
    pub http_timeout: Duration,
    /// Each location's GHL token (a Private Integration token), from
    /// `GHL_TOKEN_<locationId>`.
    pub ghl_tokens: FixedTokens,
    /// The environment variable holding the conversions route's API keys.
    pub conversion_keys_var: Option<String>,
}

impl Options {
    /// Options from the command line's choices and the environment (the same
    /// variables as the functions: `GHL_API_BASE_URL`, `GRAPH_API_BASE_URL`,
    /// `GRAPH_API_VERSION`, `HTTP_TIMEOUT_SECONDS`, the webhook keys and window).
    /// With `dev`, webhooks must be signed with the development key instead.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        vars: impl Iterator<Item = (String, String)>,
        listen: SocketAddr,
        data_dir: &std::path::Path,
        mapping: Option<&std::path::Path>,
        dev: bool,
    ) -> Result<Self, SettingsError> {
        let mut env = Env::new(lookup);
        let mapping = match mapping {
            Some(path) => env.check(Mapping::load(path)),
            None => env.check(Mapping::parse(DEMO_MAPPING, "demo mapping")),
        };
        let keys = if dev {
            env.check(crate::dev::keys())
        } else {
            let lookup = |name: &str| env.optional(name);
            let keys = WebhookKeys::from_lookup(lookup);
            env.check(keys)
        };
        let window = {
            let window = ReplayWindow::from_lookup(|name: &str| env.optional(name));
            env.check(window)
        };
        let capi_version = env.capi_version();
        let http_timeout = env.seconds("HTTP_TIMEOUT_SECONDS", 10);
        let ghl_api_base_url = env.or("GHL_API_BASE_URL", GHL_DEFAULT_BASE_URL);
        let capi_base_url = env.or("GRAPH_API_BASE_URL", GRAPH_DEFAULT_BASE_URL);
        let ghl_tokens = FixedTokens(
            vars.filter_map(|(name, value)| {
                let location = name.strip_prefix(GHL_TOKEN_PREFIX)?;
                Some((location.to_owned(), LocationToken(value)))
            })
            .collect(),
        );
        let conversion_keys_var = env
            .optional(CONVERSION_KEYS_VAR)
            .map(|_| CONVERSION_KEYS_VAR.to_owned());
        env.finish(|| {
            Some(Options {
                listen,
                store: data_dir.join("store.db"),
                outbox: data_dir.join("outbox.jsonl"),
                mapping: mapping?,
                keys: keys?,
                window: window?,
                ghl_api_base_url,
                capi_base_url,
                capi_version,
                http_timeout,
                ghl_tokens,
                conversion_keys_var,
            })
        })
    }
}

/// Why `serve` stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "another `ghl-capi serve` is using {0}; stop it first, or give this one its own --data-dir"
    )]
    StoreBusy(PathBuf),
    #[error("cannot lock {0}: {1}")]
    Lock(PathBuf, std::io::Error),
    #[error("cannot listen on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
    #[error("cannot open the outbox: {0}")]
    Outbox(std::io::Error),
    #[error("cannot build an HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("server failed: {0}")]
    Server(std::io::Error),
}

type LocalApi = Api<LocalQueue, EnvSecrets, NoInstall>;

/// An exclusive lock on `{store}.lock`, held by the one `serve` of that store. The
/// system drops it when the process ends, even by `kill -9`.
fn lock_store(store: &std::path::Path) -> Result<std::fs::File, ServeError> {
    let mut path = store.as_os_str().to_owned();
    path.push(".lock");
    let path = PathBuf::from(path);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| ServeError::Lock(path.clone(), e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(ServeError::StoreBusy(store.to_owned())),
        Err(std::fs::TryLockError::Error(e)) => Err(ServeError::Lock(path, e)),
    }
}

/// Serves until `shutdown` resolves; then finishes the batches in hand and returns.
pub async fn serve(
    options: Options,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    // Held until this process ends, however it ends: starting up releases the
    // messages a previous run had in hand, which must never be a live run's.
    let _only_serve = lock_store(&options.store)?;
    let store = Store::open(&options.store)?;
    let released = store.release_in_hand()?;
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|e| ServeError::Listen(options.listen, e))?;
    let address = listener.local_addr().map_err(ServeError::Server)?;

    let (tokens, missing) = pixel_tokens(&options.mapping, &EnvSecrets).await;
    let capi = CapiClient::new(
        &options.capi_base_url,
        &options.capi_version,
        tokens,
        options.http_timeout,
    )?;
    let capi = LocalCapi::new(capi, &options.outbox).map_err(ServeError::Outbox)?;
    let ghl = GhlClient::new(
        &options.ghl_api_base_url,
        options.ghl_tokens,
        options.http_timeout,
    )?;
    println!("ghl-capi serve: listening on http://{address}");
    println!("  store: {}", options.store.display());
    if released > 0 {
        println!("  {released} messages left in hand by the last run are queued again");
    }
    for (pixel, _) in &missing {
        println!(
            "  pixel {pixel}: no access token, dry run: requests go to {}",
            options.outbox.display()
        );
    }

    let api = Arc::new(Api {
        keys: options.keys,
        window: options.window,
        queue: LocalQueue {
            store: store.clone(),
            name: ENRICH,
        },
        secrets: EnvSecrets,
        conversion_keys_secret: options.conversion_keys_var,
        install: NoInstall,
    });
    let (stop, stopped) = watch::channel(false);
    let mapping = Arc::new(options.mapping);
    let enrich = tokio::spawn(enrich_worker(
        store.clone(),
        Arc::clone(&mapping),
        ghl,
        stopped.clone(),
    ));
    let dispatch = tokio::spawn(dispatch_worker(store, mapping, capi, stopped));

    let app = axum::Router::new().fallback(move |method, uri, headers, body| {
        let api = Arc::clone(&api);
        async move { handle(&api, method, uri, headers, body).await }
    });
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(ServeError::Server);
    let _ = stop.send(true);
    let _ = tokio::join!(enrich, dispatch);
    served
}

async fn handle(
    api: &LocalApi,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse + use<> {
    let request = Request::from_http(&method, &uri, &headers, &body);
    api.handle(request, Utc::now()).await.to_http()
}

/// Waits before a retry: what the consumer asked for, else doubling from 1 s.
fn backoff(retry: &Retry, receives: u32) -> Duration {
    retry.after.unwrap_or_else(|| {
        Duration::from_secs(1 << receives.saturating_sub(1).min(8)).min(Duration::from_secs(300))
    })
}

/// Receives a batch; `None` once told to stop.
async fn next_batch(
    store: &Store,
    queue: &str,
    max: usize,
    stopped: &mut watch::Receiver<bool>,
) -> Option<Vec<crate::store::Received>> {
    loop {
        if *stopped.borrow() {
            return None;
        }
        match store.receive(queue, max, VISIBILITY, MAX_RECEIVES) {
            Ok(batch) if !batch.is_empty() => return Some(batch),
            Ok(_) => {}
            Err(e) => tracing::error!(queue, error = %e, "cannot read the queue"),
        }
        let _ = tokio::time::timeout(POLL, stopped.changed()).await;
    }
}

/// Acknowledges what succeeded and schedules the retries.
fn settle(store: &Store, queue: &str, batch: &[crate::store::Received], failed: &[Retry]) {
    for received in batch {
        let id = &received.record.message_id;
        let outcome = match failed.iter().find(|r| &r.message_id == id) {
            Some(retry) => store.retry_after(id, backoff(retry, received.receives)),
            None => store.delete(id),
        };
        if let Err(e) = outcome {
            // Left as it is, the message reappears after its visibility timeout.
            tracing::error!(queue, error = %e, "cannot settle a message");
        }
    }
}

fn records(batch: &[crate::store::Received]) -> Vec<Record> {
    batch.iter().map(|r| r.record.clone()).collect()
}

async fn enrich_worker(
    store: Store,
    mapping: Arc<Mapping>,
    ghl: GhlClient<FixedTokens>,
    mut stopped: watch::Receiver<bool>,
) {
    let state = LocalState(store.clone());
    let dispatch = LocalQueue {
        store: store.clone(),
        name: DISPATCH,
    };
    let dead = LocalQueue {
        store: store.clone(),
        name: DEAD,
    };
    while let Some(batch) = next_batch(&store, ENRICH, 10, &mut stopped).await {
        let failed = enrich_records(
            &mapping,
            &ghl,
            &state,
            &dispatch,
            &dead,
            &records(&batch),
            Utc::now(),
        )
        .await;
        settle(&store, ENRICH, &batch, &failed);
    }
}

async fn dispatch_worker(
    store: Store,
    mapping: Arc<Mapping>,
    capi: LocalCapi,
    mut stopped: watch::Receiver<bool>,
) {
    let dead = LocalQueue {
        store: store.clone(),
        name: DEAD,
    };
    while let Some(batch) = next_batch(&store, DISPATCH, 1000, &mut stopped).await {
        let failed = dispatch_records(&mapping, &capi, &dead, &records(&batch), Utc::now()).await;
        settle(&store, DISPATCH, &batch, &failed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_has_one_serve_at_a_time() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = dir.path().join("store.db");
        let first = lock_store(&store).expect("the first serve locks the store");
        let second = lock_store(&store).expect_err("a second serve is refused");
        assert!(matches!(&second, ServeError::StoreBusy(p) if p == &store));
        assert!(second.to_string().contains("another `ghl-capi serve`"));
        drop(first);
        lock_store(&store).expect("free again once the first has ended");
    }
}
