//! `ghl-capi audience sync --replace`: the audience's whole list replaced at Meta
//! with its members as GHL lists them now ([`mirror`]), with progress and what it
//! came to; with `--dry-run`, what it would send.

use std::time::Duration;

use chrono::Utc;
use ghl_capi::capi::CapiClient;
use ghl_capi::capi::audience::MAX_ROWS;
use ghl_capi::dispatch::replace::{ReplacePolicy, Step};
use ghl_capi::dispatch::tokens::MappingTokens;
use ghl_capi::ghl::client::GhlClient;
use ghl_capi::ghl::tokens::FixedTokens;
use ghl_capi::mapping::audience::row;
use ghl_capi::mapping::{Audience, Mapping};
use ghl_capi::ports::secrets::{EnvSecrets, SecretStore};
use ghl_capi::ports::state::StateStore;
use ghl_capi::pull::audience_mirror::{MirrorStep, Mirrored, mirror};
use ghl_capi::pull::audience_sync::list_members;
use ghl_capi_local::ports::LocalState;

use super::SyncArgs;
use crate::Outcome;
use crate::target::{Backend, Progress};

const TIMEOUT: Duration = Duration::from_secs(60);

/// Replaces (or, with `--dry-run`, shows the replace of) `audience` in `locations`.
pub(super) async fn replace(
    args: &SyncArgs,
    mapping: &Mapping,
    audience: &Audience,
    locations: &[String],
    ghl: &GhlClient<FixedTokens>,
    backend: Backend,
) -> anyhow::Result<Outcome> {
    if args.dry_run {
        return dry_run(audience, locations, ghl).await;
    }
    match backend {
        Backend::Aws(sdk) => {
            let secrets = ghl_capi_aws::secrets::SecretsManager::new(
                aws_sdk_secretsmanager::Client::new(&sdk),
                Duration::from_secs(60),
            );
            let state = args.target.dynamo(&sdk);
            run(args, mapping, audience, locations, ghl, &state, secrets).await
        }
        Backend::Local(store) => {
            let state = LocalState(store);
            run(args, mapping, audience, locations, ghl, &state, EnvSecrets).await
        }
    }
}

/// Lists, replaces and records, showing how far it is.
async fn run<S: SecretStore>(
    args: &SyncArgs,
    mapping: &Mapping,
    audience: &Audience,
    locations: &[String],
    ghl: &GhlClient<FixedTokens>,
    state: &impl StateStore,
    secrets: S,
) -> anyhow::Result<Outcome> {
    let tokens = MappingTokens::new(mapping, secrets);
    let meta = CapiClient::new(
        &args.graph_api_base_url,
        &args.graph_api_version,
        tokens,
        TIMEOUT,
    )?;
    let policy = ReplacePolicy {
        wait: args.replace_wait,
        poll: args.replace_poll,
        ..ReplacePolicy::default()
    };
    let mut listing = Progress::new(&format!("audience {}", audience.name));
    let mut sending: Option<Progress> = None;
    let mirrored = mirror(
        ghl,
        state,
        &meta,
        audience,
        (locations, Utc::now()),
        policy,
        &mut |step| match step {
            MirrorStep::Listing { listed, total, .. } => listing.listed(listed, total),
            MirrorStep::Replacing(Step::Sent { batch, of, .. }) => {
                let bar = sending.get_or_insert_with(|| {
                    listing.done();
                    Progress::counting(&format!("replacing {}", audience.name), "batches sent")
                });
                bar.listed(u64::from(batch), Some(u64::from(of)));
            }
            MirrorStep::Replacing(Step::Restarted) => {
                eprintln!("the replace's session ended early: a new one starts");
            }
            MirrorStep::Replacing(Step::Waiting) => {
                if let Some(bar) = &sending {
                    bar.done();
                }
                eprintln!("every batch is in: waiting for Meta to match them");
            }
        },
    )
    .await?;
    said(audience, locations, &mirrored)?;
    Ok(Outcome::Done)
}

/// What the replace came to.
fn said(audience: &Audience, locations: &[String], m: &Mirrored) -> anyhow::Result<()> {
    let r = &m.replaced;
    out!(
        "audience {} ({}): replaced with {} members of {} contacts listed in {} location(s), in {} batch(es) of session {}",
        audience.name,
        audience.audience_id,
        r.received,
        m.listed,
        locations.len(),
        r.batches,
        r.session_id
    )?;
    if r.restarts > 0 {
        out!(
            "  the session ended early {} time(s) and was started again",
            r.restarts
        )?;
    }
    match &r.status {
        Some(s) => out!(
            "  Meta: {}, {} received, {} matched, {} invalid",
            s.stage.as_deref().unwrap_or("stage not given"),
            s.num_received.unwrap_or(r.received),
            s.num_matched.map_or("?".to_owned(), |n| n.to_string()),
            s.num_invalid_entries.unwrap_or(r.invalid)
        )?,
        None => out!("  Meta did not list the session: check the audience in Ads Manager")?,
    }
    out!(
        "  state: {} contacts recorded as the replace left them; {} with a change of their own in flight, which follows",
        m.recorded,
        m.in_flight
    )?;
    if m.unusable > 0 {
        out!(
            "  {} members without e-mail or phone (not sent)",
            m.unusable
        )?;
    }
    if m.beyond > 0 {
        out!(
            "  note: {} contacts lie beyond GHL's search reach (10,000 a search) and were not listed",
            m.beyond
        )?;
    }
    Ok(())
}

/// What a replace would send: the members listed, in batches.
async fn dry_run(
    audience: &Audience,
    locations: &[String],
    ghl: &GhlClient<FixedTokens>,
) -> anyhow::Result<Outcome> {
    let now = Utc::now();
    let (mut listed, mut usable, mut unusable) = (0, 0u64, 0);
    for location in locations {
        let mut progress =
            Progress::new(&format!("audience {}, location {location}", audience.name));
        let found = list_members(ghl, audience, location, now, &mut |n, total| {
            progress.listed(n, total);
        })
        .await?;
        progress.done();
        listed += found.listed;
        for contact in found.members.values() {
            if row(contact).is_usable() {
                usable += 1;
            } else {
                unusable += 1;
            }
        }
    }
    out!(
        "audience {} ({}): would replace its list with {usable} members of {listed} contacts listed in {} location(s), in {} batch(es); {unusable} without e-mail or phone (not sent)",
        audience.name,
        audience.audience_id,
        locations.len(),
        usable.div_ceil(MAX_ROWS as u64).max(1)
    )?;
    Ok(Outcome::Done)
}
