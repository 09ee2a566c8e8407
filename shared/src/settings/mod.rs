//! Configuration from environment variables, read once at cold start. Every problem
//! is collected and reported together, naming the variable, so a misconfigured
//! function fails at once with one clear message rather than on its first message.

use std::time::Duration;

use crate::capi::client::DEFAULT_BASE_URL as GRAPH_DEFAULT_BASE_URL;
use crate::ghl::client::GhlClient;
use crate::ghl::webhook::{APP_ID_VAR, AppIds, ReplayWindow, WebhookKeys};
use crate::ghl::wire::DEFAULT_BASE_URL as GHL_DEFAULT_BASE_URL;
use crate::hold::HoldPolicy;
use crate::mapping::Mapping;
use crate::pull::reconcile::ReconcileSettings;
use crate::telemetry::Detail;

mod env;

pub use env::{Env, SettingsError};
/// `ALLOW_UNSCOPED_KEYS`: `true` lets API keys without locations post for every
/// location; unset, they post nowhere.
pub const UNSCOPED_KEYS_VAR: &str = "ALLOW_UNSCOPED_KEYS";

/// `METRIC_DETAIL`: `each` (the default) or `total`, how finely a function's
/// metrics are kept apart ([`Detail`]).
pub const METRIC_DETAIL_VAR: &str = "METRIC_DETAIL";

/// How finely a function's metrics are kept apart: [`METRIC_DETAIL_VAR`].
pub fn metric_detail(lookup: impl Fn(&str) -> Option<String>) -> Result<Detail, SettingsError> {
    let mut env = Env::new(lookup);
    let detail = match env.optional(METRIC_DETAIL_VAR) {
        None => Some(Detail::default()),
        Some(name) => env.check(
            Detail::named(&name)
                .ok_or_else(|| format!("{METRIC_DETAIL_VAR} must be each or total, not {name:?}")),
        ),
    };
    env.finish(|| detail)
}

/// Where GHL tokens are kept unless configured: `ghl-capi/ghl/{locationId}`.
pub const GHL_TOKEN_DEFAULT_PREFIX: &str = "ghl-capi/ghl/";

/// The intake function.
#[derive(Debug)]
pub struct IntakeSettings {
    pub keys: WebhookKeys,
    pub window: ReplayWindow,
    /// `GHL_APP_ID`: our marketplace app(s); required with `GHL_APP_SECRET`.
    pub apps: AppIds,
    /// `STATE_TABLE`, required with `GHL_APP_SECRET`: each install link is used once.
    pub state_table: Option<String>,
    /// `ENRICH_QUEUE_URL`.
    pub enrich_queue_url: String,
    /// `CONVERSION_API_KEYS_SECRET`: the secret holding the API keys of the
    /// conversions route; unset, the route is closed.
    pub conversion_keys_secret: Option<String>,
    /// [`UNSCOPED_KEYS_VAR`]: keys without locations may post for every location
    /// (else they post nowhere).
    pub allow_unscoped_keys: bool,
    /// `GHL_APP_SECRET`: the marketplace app's credentials; unset, installs are off.
    pub ghl_app_secret: Option<String>,
    /// `GHL_API_BASE_URL` (OAuth endpoints included).
    pub ghl_api_base_url: String,
    /// `GHL_TOKEN_SECRET_PREFIX`: where installs store token sets.
    pub ghl_token_secret_prefix: String,
    /// `OAUTH_REDIRECT_URI`: the callback URL registered with the app, if GHL must
    /// be told it.
    pub oauth_redirect_uri: Option<String>,
    /// `CONNECT_QUEUE_URL`: where installs announce their locations, for the
    /// reconciliation to seed at once; unset, the next scheduled run does.
    pub connect_queue_url: Option<String>,
    /// `GHL_COMPANY_ID`: the agencies (comma-separated) whose installs started in
    /// GHL's marketplace, without a link of ours, are taken; unset, none is.
    pub ghl_company_ids: Vec<String>,
    /// `HTTP_TIMEOUT_SECONDS`.
    pub http_timeout: Duration,
}

impl IntakeSettings {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let mut env = Env::new(lookup);
        let keys = env.check(WebhookKeys::from_lookup(&env.lookup));
        let window = env.check(ReplayWindow::from_lookup(&env.lookup));
        let enrich_queue_url = env.required("ENRICH_QUEUE_URL", "the enrichment queue's URL");
        let conversion_keys_secret = env.optional("CONVERSION_API_KEYS_SECRET");
        let allow_unscoped_keys = env.flag(UNSCOPED_KEYS_VAR);
        let ghl_app_secret = env.optional("GHL_APP_SECRET");
        let apps = match (env.optional(APP_ID_VAR), &ghl_app_secret) {
            (Some(ids), _) => AppIds::parse(&ids),
            // A marketplace app's webhooks reach every app's URL that asks: ours
            // must be told apart.
            (None, Some(_)) => AppIds::parse(&env.required(
                APP_ID_VAR,
                "the marketplace app's id (GHL's app settings), so other apps' webhooks are ignored",
            )),
            (None, None) => AppIds::default(),
        };
        let state_table = ghl_app_secret.is_some().then(|| {
            env.required(
                "STATE_TABLE",
                "where each install link is claimed, so it works once",
            )
        });
        let ghl_api_base_url = env.or("GHL_API_BASE_URL", GHL_DEFAULT_BASE_URL);
        let ghl_token_secret_prefix = env.or("GHL_TOKEN_SECRET_PREFIX", GHL_TOKEN_DEFAULT_PREFIX);
        let oauth_redirect_uri = env.optional("OAUTH_REDIRECT_URI");
        let connect_queue_url = env.optional("CONNECT_QUEUE_URL");
        let ghl_company_ids = env
            .optional("GHL_COMPANY_ID")
            .map(|ids| {
                ids.split(',')
                    .map(str::trim)
                    .filter(|id| !id.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let http_timeout = env.seconds("HTTP_TIMEOUT_SECONDS", 10);
        env.finish(|| {
            Some(IntakeSettings {
                keys: keys?,
                window: window?,
                apps,
                state_table,
                enrich_queue_url,
                conversion_keys_secret,
                allow_unscoped_keys,
                ghl_app_secret,
                ghl_api_base_url,
                ghl_token_secret_prefix,
                oauth_redirect_uri,
                connect_queue_url,
                ghl_company_ids,
                http_timeout,
            })
        })
    }
}

/// How a process spends each location's GHL budget ([`crate::ghl::budget`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GhlBudget {
    /// `GHL_ENRICHMENT_SHARE_PERCENT` (default 80): what real-time enrichment may
    /// spend of each location's window and day; the rest waits for what it leaves.
    pub enrichment_share: f64,
    /// `GHL_CONTACT_CACHE_SECONDS` (default 60; 0 turns it off): how long a contact
    /// read serves the later jobs of that contact.
    pub contact_cache: Duration,
}

impl Default for GhlBudget {
    fn default() -> Self {
        GhlBudget {
            enrichment_share: crate::ghl::budget::DEFAULT_SHARE,
            contact_cache: crate::ghl::client::DEFAULT_CONTACT_CACHE,
        }
    }
}

impl GhlBudget {
    /// `client`, spending as these settings say.
    pub fn apply<T>(self, client: GhlClient<T>) -> GhlClient<T> {
        client
            .with_enrichment_share(self.enrichment_share)
            .with_contact_cache(self.contact_cache)
    }
}

/// How a function reads GHL.
#[derive(Debug, Clone)]
pub struct GhlAccess {
    /// `GHL_API_BASE_URL`.
    pub base_url: String,
    /// `GHL_TOKEN_SECRET_PREFIX`: each location's token is the secret
    /// `{prefix}{locationId}`.
    pub token_prefix: String,
    /// `GHL_APP_SECRET`: the secret holding the marketplace app's `client_id` and
    /// `client_secret`, to refresh OAuth tokens; unset, only fixed tokens work.
    pub app_secret: Option<String>,
    /// `HTTP_TIMEOUT_SECONDS`.
    pub http_timeout: Duration,
    pub budget: GhlBudget,
}

impl GhlAccess {
    fn from_env<F: Fn(&str) -> Option<String>>(env: &mut Env<F>) -> Self {
        GhlAccess {
            base_url: env.or("GHL_API_BASE_URL", GHL_DEFAULT_BASE_URL),
            token_prefix: env.or("GHL_TOKEN_SECRET_PREFIX", GHL_TOKEN_DEFAULT_PREFIX),
            app_secret: env.optional("GHL_APP_SECRET"),
            http_timeout: env.seconds("HTTP_TIMEOUT_SECONDS", 10),
            budget: env.ghl_budget(),
        }
    }
}

/// Where a function's mapping comes from ([`Env::live_mapping`]).
#[derive(Debug)]
pub struct MappingSettings {
    /// `MAPPING_FILE` or `MAPPING_TOML`, else the built-in one: what runs while
    /// nothing is published.
    pub configured: Mapping,
    /// Where versions are published, if anywhere.
    pub published: Option<PublishedAt>,
    /// How often a running function looks for a new version.
    pub every: Duration,
}

/// The S3 object a mapping's versions are published as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedAt {
    pub bucket: String,
    pub key: String,
}

/// The enrichment function.
#[derive(Debug)]
pub struct EnrichSettings {
    pub mapping: MappingSettings,
    pub ghl: GhlAccess,
    /// `STATE_TABLE`.
    pub state_table: String,
    /// `ENRICH_QUEUE_URL`: the queue it reads, to delay rate-limited retries on.
    pub enrich_queue_url: String,
    /// `DISPATCH_QUEUE_URL`.
    pub dispatch_queue_url: String,
    /// `DEAD_LETTER_QUEUE_URL`: where refused work goes, with its reason.
    pub dead_letter_queue_url: String,
    /// How held jobs wait ([`Env::hold_policy`]).
    pub hold: HoldPolicy,
    /// `MAX_RECEIVES`: the enrichment queue's receive limit (its redrive policy's
    /// `maxReceiveCount`): a job about to reach it is dead-lettered with its cause.
    pub max_receives: u32,
}

impl EnrichSettings {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let mut env = Env::new(lookup);
        let mapping = env.live_mapping();
        let ghl = GhlAccess::from_env(&mut env);
        let state_table = env.required("STATE_TABLE", "the DynamoDB state table's name");
        let enrich_queue_url = env.required("ENRICH_QUEUE_URL", "the enrichment queue's URL");
        let dispatch_queue_url = env.required("DISPATCH_QUEUE_URL", "the dispatch queue's URL");
        let dead_letter_queue_url = env.required(
            "DEAD_LETTER_QUEUE_URL",
            "the queue dead letters are sent to",
        );
        let hold = env.hold_policy();
        let max_receives = env.number("MAX_RECEIVES", 1000).min(u64::from(u32::MAX)) as u32;
        env.finish(|| {
            Some(EnrichSettings {
                mapping: mapping?,
                ghl,
                state_table,
                enrich_queue_url,
                dispatch_queue_url,
                dead_letter_queue_url,
                hold,
                max_receives,
            })
        })
    }
}

/// The reconciliation function.
#[derive(Debug)]
pub struct ReconcileFnSettings {
    /// As for enrichment; each connected location is a secret under the prefix.
    pub ghl: GhlAccess,
    /// `STATE_TABLE`: the tags last seen, the watermarks.
    pub state_table: String,
    /// `ENRICH_QUEUE_URL`: where the changes found go.
    pub enrich_queue_url: String,
    /// How it lists ([`Env::reconcile`]); opportunities too when the running
    /// mapping reads them (set per run).
    pub reconcile: ReconcileSettings,
    /// `CONNECT_DEAD_LETTER_QUEUE_URL`: where an install's announcement whose seed
    /// was cut short too often waits for a person; unset, it is dropped with an
    /// error line (the scheduled runs seed the location still).
    pub connect_dead_letter_queue_url: Option<String>,
    /// The mapping: whether opportunities are listed, and the audiences mirrored
    /// on the schedule (`mirror_every`).
    pub mapping: MappingSettings,
    /// The Graph API audiences are mirrored through (`GRAPH_API_BASE_URL`,
    /// `GRAPH_API_VERSION`).
    pub capi_base_url: String,
    pub capi_version: String,
}

impl ReconcileFnSettings {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let mut env = Env::new(lookup);
        let mapping = env.live_mapping();
        let capi_version = env.capi_version();
        let capi_base_url = env.or("GRAPH_API_BASE_URL", GRAPH_DEFAULT_BASE_URL);
        let ghl = GhlAccess::from_env(&mut env);
        let state_table = env.required("STATE_TABLE", "the DynamoDB state table's name");
        let enrich_queue_url = env.required("ENRICH_QUEUE_URL", "the enrichment queue's URL");
        let reconcile = env.reconcile();
        let connect_dead_letter_queue_url = env.optional("CONNECT_DEAD_LETTER_QUEUE_URL");
        env.finish(|| {
            Some(ReconcileFnSettings {
                ghl,
                state_table,
                enrich_queue_url,
                reconcile,
                connect_dead_letter_queue_url,
                mapping: mapping?,
                capi_base_url,
                capi_version,
            })
        })
    }
}

/// The dispatch function.
#[derive(Debug)]
pub struct DispatchSettings {
    pub mapping: MappingSettings,
    /// `GRAPH_API_BASE_URL`.
    pub capi_base_url: String,
    /// `GRAPH_API_VERSION`.
    pub capi_version: String,
    /// `HTTP_TIMEOUT_SECONDS`.
    pub http_timeout: Duration,
    /// `DISPATCH_QUEUE_URL`: the queue it reads, and puts held events back on.
    pub dispatch_queue_url: String,
    /// `ENRICH_QUEUE_URL`: where write-backs into GHL go (`None`: none are made).
    pub enrich_queue_url: Option<String>,
    /// `DEAD_LETTER_QUEUE_URL`.
    pub dead_letter_queue_url: String,
    /// `STATE_TABLE`: where the pixels' circuit breakers are kept.
    pub state_table: String,
    /// How held events wait ([`Env::hold_policy`]).
    pub hold: HoldPolicy,
}

impl DispatchSettings {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let mut env = Env::new(lookup);
        let mapping = env.live_mapping();
        let capi_version = env.capi_version();
        let capi_base_url = env.or("GRAPH_API_BASE_URL", GRAPH_DEFAULT_BASE_URL);
        let http_timeout = env.seconds("HTTP_TIMEOUT_SECONDS", 10);
        let dispatch_queue_url = env.required("DISPATCH_QUEUE_URL", "the dispatch queue's URL");
        let enrich_queue_url = env.optional("ENRICH_QUEUE_URL");
        let dead_letter_queue_url = env.required(
            "DEAD_LETTER_QUEUE_URL",
            "the queue dead letters are sent to",
        );
        let state_table = env.required("STATE_TABLE", "the DynamoDB state table's name");
        let hold = env.hold_policy();
        env.finish(|| {
            Some(DispatchSettings {
                enrich_queue_url,
                mapping: mapping?,
                capi_base_url,
                capi_version,
                http_timeout,
                dispatch_queue_url,
                dead_letter_queue_url,
                state_table,
                hold,
            })
        })
    }
}

/// The scheduled token refresh.
#[derive(Debug)]
pub struct RefreshSettings {
    /// `GHL_API_BASE_URL`.
    pub ghl_api_base_url: String,
    /// `GHL_TOKEN_SECRET_PREFIX`: every secret under it is looked at.
    pub ghl_token_secret_prefix: String,
    /// `GHL_APP_SECRET`: the marketplace app's credentials (required here).
    pub ghl_app_secret: String,
    /// `STATE_TABLE`: where the refresh leases are taken.
    pub state_table: String,
    /// `REFRESH_AHEAD_SECONDS`: refresh what expires within this (default 2 h).
    pub ahead: Duration,
    /// `HTTP_TIMEOUT_SECONDS`.
    pub http_timeout: Duration,
}

impl RefreshSettings {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let mut env = Env::new(lookup);
        let settings = RefreshSettings {
            ghl_api_base_url: env.or("GHL_API_BASE_URL", GHL_DEFAULT_BASE_URL),
            ghl_token_secret_prefix: env.or("GHL_TOKEN_SECRET_PREFIX", GHL_TOKEN_DEFAULT_PREFIX),
            ghl_app_secret: env.required(
                "GHL_APP_SECRET",
                "the secret with the marketplace app's client_id and client_secret",
            ),
            state_table: env.required("STATE_TABLE", "the DynamoDB state table's name"),
            ahead: env.seconds("REFRESH_AHEAD_SECONDS", 7200),
            http_timeout: env.seconds("HTTP_TIMEOUT_SECONDS", 10),
        };
        env.finish(|| Some(settings))
    }
}

#[cfg(test)]
mod tests;
