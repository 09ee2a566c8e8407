//! Where an operator's command works: the local store (`--data-dir`, as `serve`
//! uses it) or the deployed stack (`--aws`: its state table, GHL tokens from
//! Secrets Manager); and how it shows its progress.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use ghl_capi::ghl::client::GhlClient;
use ghl_capi::ghl::oauth::TokenSet;
use ghl_capi::ghl::tokens::FixedTokens;
use ghl_capi::ghl::wire::{DEFAULT_BASE_URL, LocationToken};
use ghl_capi::ports::queue::{Outgoing, Queue, QueueError};
use ghl_capi::ports::secrets::VersionedSecrets;
use ghl_capi::settings::GHL_TOKEN_DEFAULT_PREFIX;
use ghl_capi_aws::dynamo::DynamoState;
use ghl_capi_aws::sqs::SqsQueue;
use ghl_capi_local::ports::LocalQueue;
use ghl_capi_local::serve::{ENRICH, GHL_TOKEN_PREFIX};
use ghl_capi_local::store::Store;
use indicatif::{ProgressBar, ProgressStyle};

use crate::serve::DEFAULT_DATA_DIR;

const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, clap::Args)]
pub struct Target {
    /// The local store's directory (as given to `serve`).
    #[arg(long, env = "GHL_CAPI_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// Work on the deployed stack instead: its state table, GHL tokens from Secrets
    /// Manager (with the usual `AWS_*` settings).
    #[arg(long)]
    aws: bool,
    /// With --aws: the stack's state table.
    #[arg(long, env = "STATE_TABLE", required_if_eq("aws", "true"))]
    state_table: Option<String>,
    /// With --aws: where the GHL token sets are kept.
    #[arg(long, env = "GHL_TOKEN_SECRET_PREFIX", default_value = GHL_TOKEN_DEFAULT_PREFIX)]
    token_prefix: String,
    #[arg(long, env = "GHL_API_BASE_URL", default_value = DEFAULT_BASE_URL)]
    ghl_api_base_url: String,
    /// With --aws: the stack's enrichment queue, for commands that queue work.
    #[arg(long, env = "ENRICH_QUEUE_URL")]
    enrich_queue_url: Option<String>,
}

/// The store a command works on.
pub(crate) enum Backend {
    Local(Store),
    Aws(Box<aws_config::SdkConfig>),
}

impl Target {
    /// The local store, or the AWS configuration.
    pub(crate) async fn backend(&self) -> anyhow::Result<Backend> {
        if self.aws {
            return Ok(Backend::Aws(Box::new(
                ghl_capi_aws::config::sdk_config().await,
            )));
        }
        std::fs::create_dir_all(&self.data_dir)
            .with_context(|| format!("cannot create {}", self.data_dir.display()))?;
        Ok(Backend::Local(Store::open(
            &self.data_dir.join("store.db"),
        )?))
    }

    /// The stack's state table.
    pub(crate) fn dynamo(&self, sdk: &aws_config::SdkConfig) -> DynamoState {
        DynamoState::new(
            aws_sdk_dynamodb::Client::new(sdk),
            self.state_table.clone().unwrap_or_default(),
        )
    }

    /// The queue work goes to for enrichment: the store's, or the stack's.
    pub(crate) fn enrich_queue(&self, backend: &Backend) -> anyhow::Result<EnrichQueue> {
        Ok(match backend {
            Backend::Local(store) => EnrichQueue::Local(LocalQueue {
                store: store.clone(),
                name: ENRICH,
            }),
            Backend::Aws(sdk) => {
                let url = self.enrich_queue_url.clone().context(
                    "with --aws, name the stack's enrichment queue: --enrich-queue-url or ENRICH_QUEUE_URL",
                )?;
                EnrichQueue::Aws(SqsQueue::new(aws_sdk_sqs::Client::new(sdk), url))
            }
        })
    }

    /// GHL, with each location's token as stored: `GHL_TOKEN_<location>`, or
    /// with --aws the current token set in Secrets Manager (never refreshed here:
    /// refreshing belongs to the functions, under their lease).
    pub(crate) async fn ghl(
        &self,
        backend: &Backend,
        locations: &[String],
    ) -> anyhow::Result<GhlClient<FixedTokens>> {
        let sdk = match backend {
            Backend::Aws(sdk) => Some(&**sdk),
            Backend::Local(_) => None,
        };
        ghl_with(sdk, &self.token_prefix, &self.ghl_api_base_url, locations).await
    }
}

/// GHL for `locations`, each with its token as stored: with `sdk`, the current
/// token set under `token_prefix` in Secrets Manager, else `GHL_TOKEN_<location>`.
pub(crate) async fn ghl_with(
    sdk: Option<&aws_config::SdkConfig>,
    token_prefix: &str,
    base_url: &str,
    locations: &[String],
) -> anyhow::Result<GhlClient<FixedTokens>> {
    let mut tokens = HashMap::new();
    if let Some(sdk) = sdk {
        let secrets = ghl_capi_aws::secrets::SecretsManager::new(
            aws_sdk_secretsmanager::Client::new(sdk),
            Duration::from_secs(60),
        );
        for location in locations {
            let name = format!("{token_prefix}{location}");
            let set = secrets.current(&name).await.ok().flatten();
            let token = set.and_then(|s| TokenSet::parse(s.value.expose()));
            let token = token.with_context(|| format!("no GHL token set in secret {name}"))?;
            tokens.insert(location.clone(), LocationToken(token.access_token));
        }
    } else {
        for location in locations {
            let var = format!("{GHL_TOKEN_PREFIX}{location}");
            let token = std::env::var(&var)
                .with_context(|| format!("set {var} to the location's GHL token"))?;
            tokens.insert(location.clone(), LocationToken(token));
        }
    }
    Ok(GhlClient::new(base_url, FixedTokens(tokens), TIMEOUT)?)
}

/// The enrichment queue of a [`Backend`].
pub(crate) enum EnrichQueue {
    Local(LocalQueue),
    Aws(SqsQueue),
}

impl Queue for EnrichQueue {
    async fn send(&self, message: Outgoing) -> Result<(), QueueError> {
        match self {
            EnrichQueue::Local(queue) => queue.send(message).await,
            EnrichQueue::Aws(queue) => queue.send(message).await,
        }
    }

    async fn send_all(&self, messages: Vec<Outgoing>) -> Result<(), QueueError> {
        match self {
            EnrichQueue::Local(queue) => queue.send_all(messages).await,
            EnrichQueue::Aws(queue) => queue.send_all(messages).await,
        }
    }
}

/// A progress bar on a terminal, a line every few seconds otherwise.
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    what: String,
    /// What is counted: `contacts listed`, `batches sent`.
    unit: &'static str,
    last_line: std::time::Instant,
}

impl Progress {
    /// Progress of listing `what`.
    pub(crate) fn new(what: &str) -> Self {
        Progress::counting(what, "contacts listed")
    }

    /// Progress of `what`, counted in `unit`.
    pub(crate) fn counting(what: &str, unit: &'static str) -> Self {
        let what = what.to_owned();
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template(&format!(
                    "{{spinner}} {{msg}} {{pos}}/{{len}} {unit} ({{per_sec}}, {{eta}} left)"
                ))
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_message(what.clone());
            bar
        });
        Progress {
            bar,
            what,
            unit,
            last_line: std::time::Instant::now(),
        }
    }

    pub(crate) fn listed(&mut self, n: u64, total: Option<u64>) {
        match &self.bar {
            Some(bar) => {
                if let Some(total) = total {
                    bar.set_length(total);
                }
                bar.set_position(n);
            }
            None if self.last_line.elapsed() >= Duration::from_secs(5) => {
                self.last_line = std::time::Instant::now();
                let of = total.map(|t| format!(" of {t}")).unwrap_or_default();
                eprintln!("{}: {n}{of} {}", self.what, self.unit);
            }
            None => {}
        }
    }

    pub(crate) fn done(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
