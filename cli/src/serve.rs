//! `ghl-capi serve` and `ghl-capi demo send`.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use ghl_capi_local::admin::{AdminOptions, DEFAULT_ADMIN_LISTEN};
use ghl_capi_local::journal::JournalLayer;
use ghl_capi_local::serve::{Options, serve};
use ghl_capi_local::status::quality::Served;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::Outcome;

/// Where local mode keeps its store and outbox unless told otherwise.
pub const DEFAULT_DATA_DIR: &str = "ghl-capi-data";

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Directory of the durable store (store.db) and the dry-run outbox (outbox.jsonl).
    #[arg(long, env = "GHL_CAPI_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// The mapping (TOML); without it, a demo mapping with one dry-run pixel.
    #[arg(long, env = "MAPPING_FILE")]
    mapping: Option<PathBuf>,
    /// Trust webhooks signed with the local development key (`ghl-capi demo send`)
    /// instead of GHL's keys. For trying things out only.
    #[arg(long)]
    dev: bool,
    /// How often each location with a GHL token is reconciled: the changes no
    /// webhook delivered, found by polling (`15m`, `1h`, `90s`); `0` turns it off.
    #[arg(long, env = "RECONCILE_EVERY", default_value = "15m", value_parser = every)]
    reconcile_every: Duration,
    /// How log lines are written to stderr: `text`; `json`, one object per line
    /// with the fields the functions log (route, status, outcome, webhook and
    /// event ids, rule, pixel, `fbtrace_id`); or `auto`: text on a terminal, JSON
    /// otherwise (a service manager, a container).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Auto)]
    log_format: LogFormat,
    /// Address of the operator's listener (`/status`, `/metrics`): never the
    /// webhook listener. Any address but a loopback one needs `--admin-token`.
    /// Unset, 127.0.0.1:3001, or any free port when that is taken (printed).
    #[arg(long, env = "ADMIN_LISTEN")]
    admin_listen: Option<SocketAddr>,
    /// A host name the operator's listener answers to besides its IP addresses and
    /// `localhost` (repeat it, or comma-separate them): the name you reach it by
    /// through a proxy. Requests naming other hosts are refused (DNS rebinding).
    #[arg(long = "admin-host", env = "ADMIN_HOSTS", value_delimiter = ',')]
    admin_hosts: Vec<String>,
    /// The token the operator's listener asks for (`Authorization: Bearer …`, or
    /// as the password a browser prompts for).
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// How many days the audit journal (`ghl-capi trace`, the status page) keeps.
    #[arg(long, env = "JOURNAL_DAYS", default_value_t = 30)]
    journal_days: u32,
}

/// How `serve` writes its log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Auto,
    Text,
    Json,
}

/// Logs to stderr in `format`, at the level `RUST_LOG` says (`info` by default),
/// and copies the audit lines to `journal` whatever that level.
fn init_logs(format: LogFormat, journal: JournalLayer) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};

    let json = match format {
        LogFormat::Auto => !std::io::stderr().is_terminal(),
        LogFormat::Text => false,
        LogFormat::Json => true,
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs = match json {
        // The functions' shape, with the time (CloudWatch adds theirs).
        true => logs
            .json()
            .with_current_span(false)
            .with_span_list(false)
            .with_target(false)
            .with_filter(filter)
            .boxed(),
        false => logs.with_filter(filter).boxed(),
    };
    let journal = journal.with_filter(tracing_subscriber::filter::filter_fn(
        ghl_capi_local::journal::wanted,
    ));
    tracing_subscriber::registry()
        .with(logs)
        .with(journal)
        .init();
}

/// Records the pipeline's metrics for `/metrics`, under the functions' names.
fn init_metrics() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    ghl_capi::telemetry::describe();
    Ok(handle)
}

/// A period such as `15m`; `0` for none.
fn every(text: &str) -> Result<Duration, String> {
    if text.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("{e} (write it as 15m, 1h or 90s; 0 turns it off)"))
}

pub fn run(args: &ServeArgs) -> anyhow::Result<Outcome> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let mut options = Options::from_lookup(
        |name| std::env::var(name).ok(),
        std::env::vars(),
        args.listen,
        &args.data_dir,
        args.mapping.as_deref(),
        args.dev,
    )?;
    options.reconcile_every = Some(args.reconcile_every).filter(|every| !every.is_zero());
    let (journal, inbox) = ghl_capi_local::journal::channel();
    options.journal = Some(inbox);
    options.journal_retention = Duration::from_secs(u64::from(args.journal_days) * 24 * 3600);
    let mut locations: Vec<String> = options.ghl_tokens.0.keys().cloned().collect();
    locations.extend(
        options
            .mapping
            .pixels
            .iter()
            .flat_map(|p| p.locations.iter().cloned()),
    );
    locations.sort();
    locations.dedup();
    let pixels = (options.mapping.pixels.iter())
        .map(|p| Served {
            name: p.name.clone(),
            dataset_id: p.dataset_id.clone(),
            test: p.test_event_code.is_some(),
        })
        .collect();
    init_logs(args.log_format, journal);
    let default_admin: SocketAddr = DEFAULT_ADMIN_LISTEN.parse()?;
    options.admin = Some(AdminOptions {
        listen: args.admin_listen.unwrap_or(default_admin),
        any_free_port: args.admin_listen.is_none(),
        hosts: args.admin_hosts.clone(),
        token: args.admin_token.clone(),
        metrics: Some(init_metrics()?),
        locations,
        pixels,
    });
    if args.dev {
        out!("  --dev: webhooks signed with the development key are trusted, GHL's are not")?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async { serve(options, stop_signal()).await })?;
    Ok(Outcome::Done)
}

/// Ctrl-C, or the SIGTERM a service manager sends.
async fn stop_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// The server to send to.
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    to: String,
    /// The webhook id; send the same one twice to see the duplicate ignored.
    #[arg(long)]
    webhook_id: Option<String>,
}

/// Sends the bundled sample webhook, signed with the development key.
pub fn send(args: &SendArgs) -> anyhow::Result<Outcome> {
    let now = chrono::Utc::now();
    let webhook_id = args
        .webhook_id
        .clone()
        .unwrap_or_else(|| format!("demo-{}", now.timestamp_millis()));
    let body = ghl_capi_local::dev::sample(&webhook_id, now);
    let signature = ghl_capi_local::dev::sign(&body);
    let url = format!("{}/webhooks/ghl", args.to.trim_end_matches('/'));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (status, answer) = runtime.block_on(async {
        let response = reqwest::Client::new()
            .post(&url)
            .header("content-type", "application/json")
            .header("x-ghl-signature", signature)
            .body(body)
            .send()
            .await
            .with_context(|| format!("cannot reach {url}; is `ghl-capi serve --dev` running?"))?;
        let status = response.status();
        anyhow::Ok((status, response.text().await?))
    })?;
    out!("{} {answer}", status.as_u16())?;
    if status.is_success() {
        Ok(Outcome::Done)
    } else {
        anyhow::bail!("the server refused the sample ({status})")
    }
}
