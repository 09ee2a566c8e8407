//! `ghl-capi serve`: the intake API and both consumers in one process, over the
//! local store. The same library code as on AWS handles every request and batch.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::IntoResponse;
use chrono::Utc;
use ghl_capi::capi::CapiClient;
use ghl_capi::capi::client::DEFAULT_BASE_URL as GRAPH_DEFAULT_BASE_URL;
use ghl_capi::dispatch::tokens::MappingTokens;
use ghl_capi::ghl::client::GhlClient;
use ghl_capi::ghl::install::NoInstall;
use ghl_capi::ghl::tokens::FixedTokens;
use ghl_capi::ghl::webhook::{APP_ID_VAR, AppIds, ReplayWindow, WebhookKeys};
use ghl_capi::ghl::wire::{DEFAULT_BASE_URL as GHL_DEFAULT_BASE_URL, LocationToken};
use ghl_capi::hold::HoldPolicy;
use ghl_capi::intake::{Api, MAX_BODY_BYTES, Request};
use ghl_capi::mapping::Mapping;
use ghl_capi::ports::secrets::EnvSecrets;
use ghl_capi::pull::reconcile::ReconcileSettings;
use ghl_capi::settings::{Env, GhlBudget, SettingsError, UNSCOPED_KEYS_VAR};
use tokio::sync::watch;

use crate::admin::AdminOptions;
use crate::dev::WithDemoLocation;
use crate::journal::Inbox;
use crate::outbox::LocalCapi;
use crate::ports::LocalQueue;
pub use crate::store::{DISPATCH, ENRICH};
use crate::store::{Store, StoreError};
use crate::tasks;
use crate::workers::{self, Shared};
/// GHL tokens are read from `GHL_TOKEN_<locationId>`.
pub const GHL_TOKEN_PREFIX: &str = "GHL_TOKEN_";

/// The environment variable holding the conversions route's API keys (a JSON list,
/// or one per line); unset, the route is closed.
pub const CONVERSION_KEYS_VAR: &str = "CONVERSION_API_KEYS";
/// How often `serve` reconciles each location unless told otherwise.
pub const DEFAULT_RECONCILE_EVERY: Duration = Duration::from_secs(15 * 60);
/// The mapping used when none is given.
const DEMO_MAPPING: &str = include_str!("../samples/mapping.toml");

/// What `serve` runs with.
#[derive(Debug)]
pub struct Options {
    pub listen: SocketAddr,
    pub store: PathBuf,
    pub outbox: PathBuf,
    pub mapping: Mapping,
    /// The file it came from: looked at every `mapping_every`, a new version
    /// that passes `mapping check` runs from the next batch (`None`: the demo
    /// mapping, for good).
    pub mapping_file: Option<PathBuf>,
    /// `MAPPING_REFRESH_SECONDS` (default 2).
    pub mapping_every: Duration,
    /// `REPLAY_KEEP_DAYS` (default 7; 0: none): how long the webhooks and
    /// workflow calls enriched are kept for `mapping diff` to replay.
    pub replay_for: Option<Duration>,
    pub keys: WebhookKeys,
    pub window: ReplayWindow,
    /// `GHL_APP_ID`, when GHL's marketplace webhooks come here too (and the
    /// development app under `--dev`).
    pub apps: AppIds,
    /// `--dev`: the development key, app and demo location are trusted.
    pub dev: bool,
    pub ghl_api_base_url: String,
    pub capi_base_url: String,
    pub capi_version: String,
    pub http_timeout: Duration,
    /// Each location's GHL token (a Private Integration token), from
    /// `GHL_TOKEN_<locationId>`.
    pub ghl_tokens: FixedTokens,
    pub ghl_budget: GhlBudget,
    /// The environment variable holding the conversions route's API keys.
    pub conversion_keys_var: Option<String>,
    /// `ALLOW_UNSCOPED_KEYS`: keys without locations may post for every location.
    pub allow_unscoped_keys: bool,
    /// How held work waits (`HOLD_BASE_MS`, `HOLD_CAP_SECONDS`, …, as for the
    /// functions).
    pub hold: HoldPolicy,
    /// How often each location is reconciled (`None`: never), and how
    /// (`RECONCILE_SHARE_PERCENT`, … as for the function).
    pub reconcile_every: Option<Duration>,
    pub reconcile: ReconcileSettings,
    /// Where the audit lines arrive for the journal (`None`: no journal), and
    /// how long it keeps them.
    pub journal: Option<Inbox>,
    pub journal_retention: Duration,
    /// The operator's listener (`/status`, `/metrics`), if any.
    pub admin: Option<AdminOptions>,
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
        mapping_file: Option<&std::path::Path>,
        dev: bool,
    ) -> Result<Self, SettingsError> {
        let mut env = Env::new(lookup);
        let mapping = match mapping_file {
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
        let apps = AppIds::parse(&env.or(APP_ID_VAR, ""));
        let apps = if dev {
            apps.and(crate::dev::APP_ID)
        } else {
            apps
        };
        let capi_version = env.capi_version();
        let mapping_every = env.seconds("MAPPING_REFRESH_SECONDS", 2);
        let replay_days = env.number("REPLAY_KEEP_DAYS", 7);
        let replay_for = (replay_days > 0).then(|| Duration::from_secs(replay_days * 24 * 3600));
        let http_timeout = env.seconds("HTTP_TIMEOUT_SECONDS", 10);
        let ghl_budget = env.ghl_budget();
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
        let allow_unscoped_keys = env.flag(UNSCOPED_KEYS_VAR);
        let hold = env.hold_policy();
        let reconcile = env.reconcile();
        env.finish(|| {
            let mapping = mapping?;
            let reconcile = ReconcileSettings {
                opportunities: mapping.reads_opportunities(),
                ..reconcile
            };
            Some(Options {
                listen,
                store: data_dir.join("store.db"),
                outbox: data_dir.join("outbox.jsonl"),
                mapping,
                mapping_file: mapping_file.map(std::path::Path::to_path_buf),
                mapping_every,
                replay_for,
                keys: keys?,
                window: window?,
                apps,
                dev,
                ghl_api_base_url,
                capi_base_url,
                capi_version,
                http_timeout,
                ghl_tokens,
                ghl_budget,
                conversion_keys_var,
                allow_unscoped_keys,
                hold,
                reconcile_every: Some(DEFAULT_RECONCILE_EVERY),
                reconcile,
                journal: None,
                journal_retention: crate::journal::DEFAULT_RETENTION,
                admin: None,
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
    #[error(transparent)]
    Admin(#[from] crate::admin::AdminError),
    #[error("cannot listen on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
    #[error(
        "--dev trusts a published development key: it listens on loopback only, not {0} (give --listen 127.0.0.1:PORT)"
    )]
    DevOffLoopback(SocketAddr),
    #[error(transparent)]
    Mapping(#[from] ghl_capi::mapping::live::StartError),
    #[error("cannot open the outbox: {0}")]
    Outbox(std::io::Error),
    #[error("cannot build an HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("server failed: {0}")]
    Server(std::io::Error),
    #[error(
        "serve's {0} ended in a panic (its message is above); what it had in hand is received again at the next start"
    )]
    Panicked(String),
}

type LocalApi = Api<LocalQueue, EnvSecrets, NoInstall>;

/// An exclusive lock on `{store}.lock`, held by the one `serve` of that store. The
/// system drops it when the process ends, even by `kill -9`.
fn lock_store(store: &std::path::Path) -> Result<std::fs::File, ServeError> {
    let mut path = store.as_os_str().to_owned();
    path.push(".lock");
    let path = PathBuf::from(path);
    crate::files::private_file(&path).map_err(|e| ServeError::Lock(path.clone(), e))?;
    let file = std::fs::OpenOptions::new()
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
    if let Some(dir) = options.store.parent().filter(|d| !d.as_os_str().is_empty()) {
        // Webhook bodies, the outbox and the journal: the owner's alone.
        crate::files::private_dir(dir).map_err(|e| ServeError::Lock(dir.to_owned(), e))?;
    }
    // Held until this process ends, however it ends: starting up releases the
    // messages a previous run had in hand, which must never be a live run's.
    let _only_serve = lock_store(&options.store)?;
    let store = Store::open(&options.store)?;
    store.checkpoint_behind()?;
    let released = store.release_in_hand()?;
    if options.dev && !options.listen.ip().is_loopback() {
        return Err(ServeError::DevOffLoopback(options.listen));
    }
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|e| ServeError::Listen(options.listen, e))?;
    let address = listener.local_addr().map_err(ServeError::Server)?;
    // Bound before anything is said or started: a taken address fails here.
    let admin = match options.admin {
        Some(admin) => {
            let wanted = admin.listen;
            let bound = crate::admin::bind(admin).await?;
            Some((wanted, bound))
        }
        None => None,
    };

    let file = options.mapping_file.as_deref();
    let mapping = crate::mappings::running(file, options.mapping_every, &options.mapping).await?;
    let tokens = MappingTokens::new(&mapping.running(), EnvSecrets);
    let dry = crate::outbox::dry(&tokens, &mapping.running()).await;
    let capi = CapiClient::new(
        &options.capi_base_url,
        &options.capi_version,
        tokens,
        options.http_timeout,
    )?;
    let capi = Arc::new(LocalCapi::new(capi, &options.outbox).map_err(ServeError::Outbox)?);
    let ghl = options.ghl_budget.apply(GhlClient::new(
        &options.ghl_api_base_url,
        options.ghl_tokens.clone(),
        options.http_timeout,
    )?);
    // One budget: reconciliation takes what enrichment leaves of it.
    let reconciling = match options.reconcile_every {
        Some(every) if !options.ghl_tokens.0.is_empty() => Some((ghl.clone(), every)),
        _ => None,
    };
    println!("ghl-capi serve: listening on http://{address}");
    println!("  store: {}", options.store.display());
    if released > 0 {
        println!("  {released} messages left in hand by the last run are queued again");
    }
    match &reconciling {
        Some((ghl, every)) => println!(
            "  reconciling {} locations every {}s (--reconcile-every)",
            ghl.tokens().0.len(),
            every.as_secs()
        ),
        None => println!("  reconciliation off"),
    }
    for name in &dry {
        println!(
            "  {name}: no access token, dry run: requests go to {}",
            options.outbox.display()
        );
    }

    let api = Arc::new(Api {
        keys: options.keys,
        window: options.window,
        apps: options.apps,
        queue: LocalQueue {
            store: store.clone(),
            name: ENRICH,
        },
        secrets: EnvSecrets,
        conversion_keys_secret: options.conversion_keys_var,
        allow_unscoped_keys: options.allow_unscoped_keys,
        warned_unscoped: Default::default(),
        install: NoInstall,
    });
    let (stop, stopped) = watch::channel(false);
    let pipeline = tasks::Pipeline::start().map_err(ServeError::Server)?;
    let (mut tasks, ended) = tasks::watched(pipeline.handle());
    // The journal stops last, once the workers' last lines are written.
    let (journal_stop, journal_stopped) = watch::channel(false);
    let mut last = tasks.beside();
    if let Some(inbox) = options.journal {
        let writing = inbox.write(store.clone(), options.journal_retention, journal_stopped);
        last.spawn("journal", writing);
    }
    if let Some((wanted, bound)) = admin {
        let at = bound.address()?;
        if at != wanted {
            println!("  {wanted} is taken (another serve?): the operator's listener took {at}");
        }
        println!("  status page: http://{at}/status, metrics: http://{at}/metrics");
        tasks.spawn("admin", bound.serve(store.clone(), stopped.clone()));
    }
    let shared = Shared {
        store,
        mapping: Arc::new(mapping),
        hold: options.hold,
        replay_for: options.replay_for,
    };
    let (enriching, stopping) = (shared.clone(), stopped.clone());
    match options.dev {
        true => tasks.spawn(
            "enrichment",
            workers::enrich(enriching, WithDemoLocation(ghl), stopping),
        ),
        false => tasks.spawn("enrichment", workers::enrich(enriching, ghl, stopping)),
    }
    if let Some((ghl, every)) = reconciling {
        let run = workers::reconcile_every(
            shared.clone(),
            ghl,
            (options.reconcile, every),
            Arc::clone(&capi),
            stopped.clone(),
        );
        tasks.spawn("reconciliation", run);
    }
    let following = workers::follow_mapping(shared.clone(), options.mapping_every, stopped.clone());
    tasks.spawn("mapping", following);
    tasks.spawn("dispatch", workers::dispatch(shared, capi, stopped));

    let app = axum::Router::new().fallback(move |method, uri, headers, body| {
        let api = Arc::clone(&api);
        async move { handle(&api, method, uri, headers, body).await }
    });
    // Stopped by the caller, or by a task that ended on its own: only a fault
    // ends one early, and a pipeline missing a worker must not go on taking work.
    let stopping = async move {
        tokio::select! {
            () = shutdown => {}
            task = ended.first() => {
                tracing::error!(task, "a task of serve stopped by itself: serve stops");
            }
        }
    };
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(stopping)
        .await
        .map_err(ServeError::Server);
    let _ = stop.send(true);
    let mut panicked = tasks.join().await;
    // Last: the journal keeps the lines of the batches finished above.
    let _ = journal_stop.send(true);
    panicked.extend(last.join().await);
    // Every task has ended: nothing is left on the pipeline's threads.
    drop(pipeline);
    served?;
    if panicked.is_empty() {
        Ok(())
    } else {
        Err(ServeError::Panicked(panicked.join(", ")))
    }
}

/// One request: refused from its head when that says enough (an unsigned
/// webhook), else read whole, up to the body limit, and answered.
async fn handle(
    api: &LocalApi,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> impl IntoResponse + use<> {
    let head = Request::from_http(&method, &uri, &headers, &[]);
    if api.refuse_early(&head).is_some() {
        return api.handle(head, Utc::now()).await.to_http();
    }
    // Read no further than the limit (or a client gone: nobody to answer).
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return api.too_large(&head).to_http();
    };
    let request = Request::from_http(&method, &uri, &headers, &body);
    api.handle(request, Utc::now()).await.to_http()
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
