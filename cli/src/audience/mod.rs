//! Audiences on the command line: what `mapping preview` shows of them (which
//! audiences a body makes its contact join or leave, and its row, key by key),
//! and `ghl-capi audience sync`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use ghl_capi::capi::client::{
    DEFAULT_API_VERSION as DEFAULT_GRAPH_VERSION, DEFAULT_BASE_URL as GRAPH_DEFAULT_BASE_URL,
};
use ghl_capi::ghl::Contact;
use ghl_capi::ghl::client::GhlClient;
use ghl_capi::ghl::tokens::FixedTokens;
use ghl_capi::jobs::EnrichJob;
use ghl_capi::mapping::audience::{RowKey, row_keys};
use ghl_capi::mapping::{Audience, Mapping, Occurrence};
use ghl_capi::ports::queue::Queue;
use ghl_capi::ports::state::StateStore;
use ghl_capi::pull::audience_sync::{list_members, plan};
use ghl_capi_local::ports::LocalState;
use serde_json::{Value, json};

use crate::Outcome;
use crate::target::{Backend, Progress, Target};

mod replace;

use replace::replace;

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
    /// Replace the audience's whole list at Meta with its members as GHL lists them
    /// now, in one usersreplace session (which does not reset the ad sets' learning,
    /// as adds and removes do), instead of sending the difference through the
    /// pipeline. It lists every location the audience takes; its own changes wait
    /// meanwhile, and follow.
    #[arg(long)]
    replace: bool,
    /// With --replace: how long before a batch Meta asked to wait for is sent again.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    replace_wait: Duration,
    /// With --replace: how often the session's status is read once its batches are in.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    replace_poll: Duration,
    #[arg(long, env = "GRAPH_API_BASE_URL", default_value = GRAPH_DEFAULT_BASE_URL)]
    graph_api_base_url: String,
    #[arg(long, env = "GRAPH_API_VERSION", default_value = DEFAULT_GRAPH_VERSION)]
    graph_api_version: String,
    #[command(flatten)]
    target: Target,
}

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
        "audience {} takes every location: name the one to sync with --location (with \
         --replace, every one it takes: members of a location not named leave)",
        audience.name
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let backend = args.target.backend().await?;
        let ghl = args.target.ghl(&backend, &locations).await?;
        if args.replace {
            return replace(args, &mapping, audience, &locations, &ghl, backend).await;
        }
        let queue = args.target.enrich_queue(&backend)?;
        match backend {
            Backend::Aws(sdk) => {
                let state = args.target.dynamo(&sdk);
                run(args, audience, &locations, &ghl, &state, &queue).await
            }
            Backend::Local(store) => {
                run(args, audience, &locations, &ghl, &LocalState(store), &queue).await
            }
        }
    })
}

/// Lists, plans and (unless a dry run) queues each location's sync.
async fn run(
    args: &SyncArgs,
    audience: &Audience,
    locations: &[String],
    ghl: &GhlClient<FixedTokens>,
    state: &impl StateStore,
    queue: &impl Queue,
) -> anyhow::Result<Outcome> {
    let now = Utc::now();
    let listing = format!("sync-{}", now.format("%Y%m%dT%H%M%S%.3fZ"));
    for location in locations {
        let mut progress =
            Progress::new(&format!("audience {}, location {location}", audience.name));
        let listed = list_members(ghl, audience, location, now, &mut |n, total| {
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
                .map(|job| EnrichJob::Listed(job.clone()).outgoing())
                .collect::<Result<Vec<_>, _>>()?;
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
        if !plan.gaps.is_empty() {
            out!(
                "  {verb}: {} whose changes have a gap (one lost, or a dead letter), sent as they stand",
                plan.gaps.len()
            )?;
        }
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
