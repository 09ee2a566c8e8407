//! Audiences on the command line: what `mapping preview` shows of them (which
//! audiences a body makes its contact join or leave, and its row, key by key),
//! and `ghl-capi audience sync`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use ghl_capi::ghl::Contact;
use ghl_capi::ghl::client::GhlClient;
use ghl_capi::ghl::oauth::TokenSet;
use ghl_capi::ghl::tokens::FixedTokens;
use ghl_capi::ghl::wire::{DEFAULT_BASE_URL, LocationToken};
use ghl_capi::jobs::EnrichJob;
use ghl_capi::mapping::audience::{RowKey, row_keys};
use ghl_capi::mapping::{Audience, Mapping, Occurrence};
use ghl_capi::ops::audience_sync::{list_members, plan};
use ghl_capi::ports::queue::{Outgoing, Queue};
use ghl_capi::ports::secrets::VersionedSecrets;
use ghl_capi::ports::state::StateStore;
use ghl_capi::settings::GHL_TOKEN_DEFAULT_PREFIX;
use ghl_capi_aws::dynamo::DynamoState;
use ghl_capi_aws::sqs::SqsQueue;
use ghl_capi_local::ports::{LocalQueue, LocalState};
use ghl_capi_local::serve::{ENRICH, GHL_TOKEN_PREFIX};
use ghl_capi_local::store::Store;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::Outcome;
use crate::serve::DEFAULT_DATA_DIR;

/// What the previewed body does to one audience's membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Move {
    Joins,
    Leaves,
    StaysIn,
    StaysOut,
    /// The body says nothing of what makes a member (a condition on another kind
    /// of change, or tags a workflow call does not carry).
    Unknown,
}

impl Move {
    fn words(self) -> &'static str {
        match self {
            Move::Joins => "joins",
            Move::Leaves => "leaves",
            Move::StaysIn => "stays a member",
            Move::StaysOut => "stays out",
            Move::Unknown => "unchanged: this body says nothing of its membership",
        }
    }
}

/// What a previewed body shows of its contact.
#[derive(Debug)]
pub(crate) struct Judged<'a> {
    pub(crate) contact: &'a Contact,
    pub(crate) occurrences: &'a [Occurrence],
    pub(crate) location: &'a str,
    pub(crate) now: DateTime<Utc>,
    /// A `ContactDelete` webhook: the contact leaves every audience.
    pub(crate) deleted: bool,
    /// Whether the contact carries all its tags.
    pub(crate) tags_known: bool,
}

/// Each audience of the body's location, and what the body does to it.
pub(crate) fn memberships<'m>(
    mapping: &'m Mapping,
    read: &Judged<'_>,
    member_of: Option<&str>,
) -> Vec<(&'m str, &'m str, Move)> {
    let was: Vec<&str> = member_of
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .collect();
    mapping
        .audiences
        .iter()
        .filter(|a| a.serves(read.location))
        .map(|a| {
            let judged = if read.deleted {
                Some(false)
            } else if a.entity().is_none() && !read.tags_known {
                None
            } else {
                a.judge(read.contact, read.occurrences, read.location, read.now)
            };
            let member = was.contains(&a.name.as_str());
            let moved = match (judged, member) {
                (None, _) => Move::Unknown,
                (Some(true), false) => Move::Joins,
                (Some(true), true) => Move::StaysIn,
                (Some(false), true) => Move::Leaves,
                (Some(false), false) => Move::StaysOut,
            };
            (a.name.as_str(), a.audience_id.as_str(), moved)
        })
        .collect()
}

pub(crate) fn audiences_text(contact: &Contact, members: &[(&str, &str, Move)]) -> String {
    if members.is_empty() {
        return String::new();
    }
    let mut t = String::from("\naudiences:\n");
    for (name, id, moved) in members {
        let _ = writeln!(t, "  {name} ({id}): {}", moved.words());
    }
    if members
        .iter()
        .any(|(_, _, m)| matches!(m, Move::Joins | Move::Leaves))
    {
        t.push_str("  row (raw → normalised → sent)\n");
        for RowKey {
            key,
            input,
            normalized,
            value,
        } in row_keys(contact)
        {
            let sent = if value.is_empty() {
                "-"
            } else {
                value.as_str()
            };
            let _ = writeln!(
                t,
                "    {key:<10} {input:?} → {} → {sent}",
                normalized.as_deref().unwrap_or("(dropped)")
            );
        }
    }
    t
}

pub(crate) fn audiences_json(contact: &Contact, members: &[(&str, &str, Move)]) -> Value {
    let row: Vec<Value> = row_keys(contact)
        .into_iter()
        .map(|k| json!({"key": k.key, "input": k.input, "normalized": k.normalized, "sha256": k.value}))
        .collect();
    json!(
        members
            .iter()
            .map(
                |(name, id, moved)| json!({"audience": name, "audienceId": id,
            "change": format!("{moved:?}").to_lowercase(), "row": row})
            )
            .collect::<Vec<_>>()
    )
}

#[derive(Debug, clap::Args)]
pub struct SyncArgs {
    /// The audience, by its name in the mapping.
    audience: String,
    /// The mapping that defines it.
    #[arg(long, env = "MAPPING_FILE")]
    mapping: PathBuf,
    /// A GHL location to sync (repeatable); by default those the audience lists.
    #[arg(long = "location")]
    locations: Vec<String>,
    /// Show what would change, and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// The local store's directory (as given to `serve`), whose pipeline sends
    /// the changes.
    #[arg(long, env = "GHL_CAPI_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// Sync the deployed stack instead: its state table and enrichment queue, GHL
    /// tokens from Secrets Manager (with the usual `AWS_*` settings).
    #[arg(long)]
    aws: bool,
    /// With --aws: the stack's state table.
    #[arg(long, env = "STATE_TABLE", required_if_eq("aws", "true"))]
    state_table: Option<String>,
    /// With --aws: the stack's enrichment queue.
    #[arg(long, env = "ENRICH_QUEUE_URL", required_if_eq("aws", "true"))]
    enrich_queue_url: Option<String>,
    /// With --aws: where the GHL token sets are kept.
    #[arg(long, env = "GHL_TOKEN_SECRET_PREFIX", default_value = GHL_TOKEN_DEFAULT_PREFIX)]
    token_prefix: String,
    #[arg(long, env = "GHL_API_BASE_URL", default_value = DEFAULT_BASE_URL)]
    ghl_api_base_url: String,
}

const TIMEOUT: Duration = Duration::from_secs(30);

pub fn sync(args: &SyncArgs) -> anyhow::Result<Outcome> {
    let mapping = Mapping::load(&args.mapping)?;
    let audience = mapping
        .audiences
        .iter()
        .find(|a| a.name == args.audience)
        .with_context(|| {
            let names: Vec<&str> = mapping.audiences.iter().map(|a| a.name.as_str()).collect();
            format!(
                "the mapping has no audience named {} (it has: {})",
                args.audience,
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            )
        })?;
    let locations = if args.locations.is_empty() {
        audience.locations.clone()
    } else {
        args.locations.clone()
    };
    anyhow::ensure!(
        !locations.is_empty(),
        "audience {} takes every location: name the one to sync with --location",
        audience.name
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        if args.aws {
            let sdk = ghl_capi_aws::lambda::sdk_config().await;
            let secrets = ghl_capi_aws::secrets::SecretsManager::new(
                aws_sdk_secretsmanager::Client::new(&sdk),
                Duration::from_secs(60),
            );
            let mut tokens = HashMap::new();
            for location in &locations {
                let name = format!("{}{location}", args.token_prefix);
                let set = secrets.current(&name).await.ok().flatten();
                let token = set.and_then(|s| TokenSet::parse(s.value.expose()));
                let token = token.with_context(|| format!("no GHL token set in secret {name}"))?;
                tokens.insert(location.clone(), LocationToken(token.access_token));
            }
            let state = DynamoState::new(
                aws_sdk_dynamodb::Client::new(&sdk),
                args.state_table.clone().unwrap_or_default(),
            );
            let queue = SqsQueue::new(
                aws_sdk_sqs::Client::new(&sdk),
                args.enrich_queue_url.clone().unwrap_or_default(),
            );
            run(
                args,
                audience,
                &locations,
                FixedTokens(tokens),
                &state,
                &queue,
            )
            .await
        } else {
            let tokens = locations
                .iter()
                .filter_map(|l| {
                    let token = std::env::var(format!("{GHL_TOKEN_PREFIX}{l}")).ok()?;
                    Some((l.clone(), LocationToken(token)))
                })
                .collect();
            std::fs::create_dir_all(&args.data_dir)
                .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
            let store = Store::open(&args.data_dir.join("store.db"))?;
            let queue = LocalQueue {
                store: store.clone(),
                name: ENRICH,
            };
            run(
                args,
                audience,
                &locations,
                FixedTokens(tokens),
                &LocalState(store),
                &queue,
            )
            .await
        }
    })
}

/// Lists, plans and (unless a dry run) queues each location's sync.
async fn run(
    args: &SyncArgs,
    audience: &Audience,
    locations: &[String],
    tokens: FixedTokens,
    state: &impl StateStore,
    queue: &impl Queue,
) -> anyhow::Result<Outcome> {
    let ghl = GhlClient::new(&args.ghl_api_base_url, tokens, TIMEOUT)?;
    let now = Utc::now();
    let listing = format!("sync-{}", now.format("%Y%m%dT%H%M%S%.3fZ"));
    for location in locations {
        let mut progress = Progress::new(&audience.name, location);
        let listed = list_members(&ghl, audience, location, now, &mut |n, total| {
            progress.listed(n, total);
        })
        .await?;
        progress.done();
        let (count, beyond, filtered) = (listed.listed, listed.beyond, listed.filtered);
        let plan = plan(state, audience, location, listed).await?;
        let jobs = plan.jobs(&listing, location, now);
        if !args.dry_run {
            let messages = jobs
                .iter()
                .map(|job| {
                    let job = EnrichJob::Listed(job.clone());
                    Ok(Outgoing {
                        body: serde_json::to_string(&job)?,
                        group_id: Some(job.group_id()),
                        dedup_id: Some(job.key().to_owned()),
                        delay: None,
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            queue
                .send_all(messages)
                .await
                .context("cannot queue the sync's jobs for the pipeline")?;
        }
        let how = if filtered { "by tag" } else { "all contacts" };
        out!(
            "audience {} ({}), location {location}: {count} contacts listed ({how}), {} members in GHL",
            audience.name,
            audience.audience_id,
            plan.join.len() + plan.unchanged.len() + plan.unusable as usize,
        )?;
        let verb = if args.dry_run {
            "would queue"
        } else {
            "queued"
        };
        out!(
            "  {verb}: {} to add (or update), {} to remove; {} already in; {} without e-mail or phone (not sent)",
            plan.join.len(),
            plan.leave.len(),
            plan.unchanged.len(),
            plan.unusable
        )?;
        if beyond > 0 {
            out!(
                "  note: {beyond} contacts lie beyond GHL's search reach (10,000 a search) and were not listed"
            )?;
        }
    }
    if !args.dry_run {
        out!(
            "the pipeline sends the difference to Meta; follow it in serve's log or the dashboard"
        )?;
    }
    Ok(Outcome::Done)
}

/// A progress bar on a terminal, a line every few seconds otherwise.
struct Progress {
    bar: Option<ProgressBar>,
    what: String,
    last_line: std::time::Instant,
}

impl Progress {
    fn new(audience: &str, location: &str) -> Self {
        let what = format!("audience {audience}, location {location}");
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {msg} {pos}/{len} contacts listed ({per_sec}, {eta} left)",
                )
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_message(what.clone());
            bar
        });
        Progress {
            bar,
            what,
            last_line: std::time::Instant::now(),
        }
    }

    fn listed(&mut self, n: u64, total: Option<u64>) {
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
                eprintln!("{}: {n}{of} contacts listed", self.what);
            }
            None => {}
        }
    }

    fn done(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
