//! `ghl-capi mapping diff OLD NEW`: the webhooks and workflow calls `serve` kept,
//! or with `--location` the recent contacts of each location named, with what
//! happened to them ([`crate::sample`]), run through both mappings;
//! per rule, which events would start or stop being sent, and for whom (contact
//! ids only), and each name the new version uses that a location lacks (`!`).
//! `mapping publish --location` shows the same before it asks, and publishes
//! nothing that names what a location lacks.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ghl_capi::ghl::client::GhlClient;
use ghl_capi::ghl::names::LocationNames;
use ghl_capi::ghl::tokens::FixedTokens;
use ghl_capi::mapping::Mapping;

use anyhow::bail;
use ghl_capi::ports::state::StateStore;
use ghl_capi_local::workers::REPLAY_PREFIX;

use crate::Outcome;
use crate::sample::Changed;
use crate::target::{Backend, Target};

#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// The mapping as it is (`mapping pull` prints the live one).
    old: PathBuf,
    /// The mapping as it would be.
    new: PathBuf,
    /// A location whose recent contacts (read from GHL) are replayed (repeat);
    /// without one, the webhooks and workflow calls `serve` kept in --data-dir.
    #[arg(long = "location")]
    locations: Vec<String>,
    /// How many of each location's most recent contacts.
    #[arg(long, default_value_t = 20)]
    contacts: usize,
    #[command(flatten)]
    target: Target,
}

pub fn run(args: &DiffArgs) -> anyhow::Result<Outcome> {
    let old = Mapping::load(&args.old)?;
    let new = Mapping::load(&args.new)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let backend = args.target.backend().await?;
        if args.locations.is_empty() {
            let Backend::Local(store) = &backend else {
                bail!("the stack keeps no webhooks to replay: give --location to replay recent contacts");
            };
            let state = ghl_capi_local::ports::LocalState(store.clone());
            let kept = state.records_under(REPLAY_PREFIX).await?;
            let (sample, unreadable) = crate::sample::kept(&kept);
            let left_out = match unreadable {
                0 => String::new(),
                n => format!(" ({n} that no longer read as a job left out)"),
            };
            let head = format!(
                "{} kept webhook(s) and workflow call(s) replayed{left_out}, version {} → {}\n",
                sample.len(),
                old.version,
                new.version
            );
            out_text!(head + &changes(&sample, &old, &new))?;
            return Ok(Outcome::Done);
        }
        let ghl = args.target.ghl(&backend, &args.locations).await?;
        for location in &args.locations {
            let replay = between(&ghl, &old, &new, location, args.contacts).await?;
            out_text!(replay.text)?;
        }
        Ok(Outcome::Done)
    })
}

/// Per event line, the contacts for which it starts or stops being sent.
fn changes(sample: &[Changed], old: &Mapping, new: &Mapping) -> String {
    let mut changes: BTreeMap<(String, char), Vec<String>> = BTreeMap::new();
    for changed in sample {
        let (was, will) = (changed.sent(old), changed.sent(new));
        let started = will.iter().filter(|e| !was.contains(e)).map(|e| (e, '+'));
        let stopped = was.iter().filter(|e| !will.contains(e)).map(|e| (e, '-'));
        for (event, sign) in started.chain(stopped) {
            let who = &changed.contact.id;
            let list = changes.entry((event.clone(), sign)).or_default();
            if !list.contains(who) {
                list.push(who.clone());
            }
        }
    }
    if changes.is_empty() {
        return "  no contact's events change\n".into();
    }
    let mut text = String::new();
    for ((event, sign), who) in changes {
        let verb = if sign == '+' { "starts" } else { "stops" };
        text.push_str(&format!(
            "  {sign} {event}: {verb} for {} contact(s): {}\n",
            who.len(),
            who.join(", ")
        ));
    }
    text
}

/// A location's replay: what changes, in words, and what names the new version
/// uses that the location lacks.
pub(crate) struct Replay {
    pub(crate) text: String,
    pub(crate) lacking: Vec<String>,
}

/// What changes for `location`'s `most` most recent contacts from `old` to `new`.
pub(crate) async fn between(
    ghl: &GhlClient<FixedTokens>,
    old: &Mapping,
    new: &Mapping,
    location: &str,
    most: usize,
) -> anyhow::Result<Replay> {
    let names = match ghl.location_names(location).await {
        Ok(names) => names,
        // Rules in names then match on ids alone, as they would run.
        Err(e) => {
            eprintln!(
                "ghl-capi: {location}'s names cannot be read ({e}): rules in names are judged on ids alone"
            );
            LocationNames::default()
        }
    };
    // A change's appointments are read when either mapping fires on them.
    let both = Mapping {
        rules: old.rules.iter().chain(&new.rules).cloned().collect(),
        ..new.clone()
    };
    let sample = crate::sample::recent(ghl, &both, &names, location, most).await?;
    let mut text = format!(
        "{location}: {} recent contact(s) replayed, version {} → {}\n",
        sample.len(),
        old.version,
        new.version
    );
    let lacking = new.lacking(location, &names);
    for line in &lacking {
        text.push_str(&format!("  ! {line}\n"));
    }
    text.push_str(&changes(&sample, old, new));
    Ok(Replay { text, lacking })
}
