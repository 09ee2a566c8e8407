//! `ghl-capi backfill`: the contacts a location created in a period, and its
//! opportunities' history then when the mapping reads them, sent through the
//! pipeline (the local store's, or the stack's enrichment queue), or with
//! `--dry-run` written as request bodies in `map`'s format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use ghl_capi::capi::{MAX_BATCH, ServerEvent};
use ghl_capi::ghl::Contact;
use ghl_capi::ghl::client::GhlClient;
use ghl_capi::ghl::tokens::FixedTokens;
use ghl_capi::mapping::{Mapping, Occurrence, Trigger};
use ghl_capi::ops::map::{MapOptions, map_contacts};
use ghl_capi::ports::state::StateStore;
use ghl_capi::pull::backfill::{Backfill, Listed, Tally, backfill, progress};
use ghl_capi::settings::Env;
use ghl_capi_local::ports::LocalState;

use crate::Outcome;
use crate::map::load_mapping;
use crate::target::{Backend, EnrichQueue, Progress, Target};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The GHL location whose contacts are sent.
    #[arg(long)]
    location: String,
    /// Contacts created from this day (2026-11-01) or time (RFC 3339).
    #[arg(long, value_parser = since)]
    since: DateTime<Utc>,
    /// … to this day (its end) or time; now when left out.
    #[arg(long, value_parser = until)]
    until: Option<DateTime<Utc>>,
    /// The mapping (as for `serve`); the built-in mapping when left out.
    #[arg(long, env = "MAPPING_FILE", value_name = "FILE")]
    mapping: Option<PathBuf>,
    /// Only these rules' events (comma-separated names).
    #[arg(long, value_delimiter = ',')]
    rules: Vec<String>,
    /// Write the request bodies to stdout (as `map` does) and send nothing.
    #[arg(long, conflicts_with_all = ["aws", "resume"])]
    dry_run: bool,
    /// Go on from where the last backfill of this period stopped.
    #[arg(long)]
    resume: bool,
    #[command(flatten)]
    target: Target,
}

fn day(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

fn time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| format!("{text:?} is neither a day (2026-11-01) nor an RFC 3339 time"))
}

pub(crate) fn since(text: &str) -> Result<DateTime<Utc>, String> {
    match day(text) {
        Some(d) => Ok(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()),
        None => time(text),
    }
}

fn until(text: &str) -> Result<DateTime<Utc>, String> {
    match day(text) {
        Some(d) => Ok(d
            .and_hms_milli_opt(23, 59, 59, 999)
            .unwrap_or_default()
            .and_utc()),
        None => time(text),
    }
}

pub fn run(args: &Args) -> anyhow::Result<Outcome> {
    let mapping = load_mapping(args.mapping.as_ref())?;
    if let Some(unknown) = args
        .rules
        .iter()
        .find(|r| !mapping.rules.iter().any(|m| &m.name == *r))
    {
        let names: Vec<&str> = mapping.rules.iter().map(|r| r.name.as_str()).collect();
        anyhow::bail!(
            "the mapping has no rule named {unknown} (it has: {})",
            names.join(", ")
        );
    }
    if let Some(until) = args.until {
        anyhow::ensure!(until >= args.since, "--until is before --since");
    }
    let mut env = Env::new(|name| std::env::var(name).ok());
    let settings = env.reconcile();
    let settings = env.finish(|| Some(settings))?;
    let plan = Backfill {
        mapping: &mapping,
        rules: args.rules.clone(),
        since: args.since,
        until: args.until,
        resume: args.resume,
        pace: settings.pace(),
        patience: settings.patience,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let backend = args.target.backend().await?;
        let locations = [args.location.clone()];
        let ghl = args.target.ghl(&backend, &locations).await?;
        let queue = match args.dry_run {
            true => None,
            false => Some(args.target.enrich_queue(&backend)?),
        };
        match backend {
            Backend::Aws(sdk) => send(args, &plan, &ghl, &args.target.dynamo(&sdk), queue).await,
            Backend::Local(store) => send(args, &plan, &ghl, &LocalState(store), queue).await,
        }
    })
}

async fn send(
    args: &Args,
    plan: &Backfill<'_>,
    ghl: &GhlClient<FixedTokens>,
    state: &impl StateStore,
    queue: Option<EnrichQueue>,
) -> anyhow::Result<Outcome> {
    let location = &args.location;
    let earlier = match queue {
        Some(_) => progress(state, location, plan).await?,
        None => None,
    };
    match &earlier {
        Some(earlier) if args.resume && earlier.done => {
            eprintln!("this backfill of the period finished already: nothing is left to send");
        }
        Some(earlier) if !args.resume && !earlier.done => eprintln!(
            "a backfill of this period stopped after {} contacts; this one starts over (--resume goes on from there)",
            earlier.tally.listed
        ),
        _ => {}
    }
    let mut bar = Progress::new(&format!("backfill of location {location}"));
    let now = Utc::now();
    let mut dry = Dry::new(plan, now, args.dry_run);
    let mut each_page = |listed: Listed<'_>, tally: &Tally, total: Option<u64>| match listed {
        Listed::Contacts(contacts) => {
            bar.listed(tally.listed, total);
            dry.page(location, contacts);
        }
        Listed::Opportunities(events) => {
            bar.listed(tally.listed + tally.opportunities, None);
            dry.events(events);
        }
    };
    let outcome = backfill(
        ghl,
        state,
        queue.as_ref(),
        location,
        plan,
        now,
        &mut each_page,
    )
    .await;
    bar.done();
    let done = outcome.with_context(
        || "the backfill stopped; run it again with --resume to go on from the last page queued",
    )?;
    let text = summary(args, &done.tally, queue.is_some()) + &dry.audiences();
    // With --dry-run, standard output carries the request bodies.
    if args.dry_run {
        eprint!("{text}");
    } else {
        out_text!(text)?;
    }
    dry.outcome()
}

/// A dry run's output: request bodies, and who would join each audience.
struct Dry<'m> {
    mapping: Mapping,
    full: &'m Mapping,
    options: MapOptions,
    on: bool,
    members: BTreeMap<String, u64>,
    failed: Option<std::io::Error>,
}

impl<'m> Dry<'m> {
    fn new(plan: &Backfill<'m>, now: DateTime<Utc>, on: bool) -> Self {
        let mut mapping = plan.mapping.clone();
        mapping
            .rules
            .retain(|r| ghl_capi::jobs::among(&plan.rules, &r.name));
        Dry {
            mapping,
            full: plan.mapping,
            options: MapOptions {
                trigger: Trigger::ContactCreated,
                pixel: None,
                now,
                threads: 1,
            },
            on,
            members: BTreeMap::new(),
            failed: None,
        }
    }

    fn page(&mut self, location: &str, contacts: &[Contact]) {
        if !self.on || self.failed.is_some() {
            return;
        }
        let mut lines = Vec::new();
        for contact in contacts {
            // A contact as GHL gave it always writes back; if one ever did not, the
            // dry run fails rather than leave it out unsaid.
            if let Err(e) = serde_json::to_writer(&mut lines, contact) {
                self.failed = Some(e.into());
                return;
            }
            lines.push(b'\n');
            let listed = [Occurrence::listed(location, &contact.id, self.options.now)];
            for audience in self.full.audiences_for(location) {
                if audience.judge(contact, &listed, location, self.options.now) == Some(true) {
                    *self.members.entry(audience.name.clone()).or_default() += 1;
                }
            }
        }
        let out = std::io::stdout().lock();
        if let Err(e) = map_contacts(&self.mapping, &self.options, lines.as_slice(), out) {
            self.failed = Some(e);
        }
    }

    /// Opportunities' events, as `map` writes bodies: `{"data":[…]}` lines.
    fn events(&mut self, events: &[ServerEvent]) {
        if !self.on || self.failed.is_some() {
            return;
        }
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        for chunk in events.chunks(MAX_BATCH) {
            let line = serde_json::to_string(&serde_json::json!({ "data": chunk }))
                .map_err(std::io::Error::from)
                .and_then(|line| writeln!(out, "{line}"));
            if let Err(e) = line {
                self.failed = Some(e);
                return;
            }
        }
    }

    fn audiences(&self) -> String {
        let mut text = String::new();
        for (name, n) in &self.members {
            let _ = writeln!(
                text,
                "  audience {name}: {n} members would be synced, whatever their age"
            );
        }
        text
    }

    fn outcome(self) -> anyhow::Result<Outcome> {
        match self.failed {
            Some(e) => Err(anyhow::Error::new(e).context("cannot write the request bodies")),
            None => Ok(Outcome::Done),
        }
    }
}

/// `rule n, rule n` of a count by rule.
fn by_rule(counts: &BTreeMap<String, u64>) -> String {
    let parts: Vec<String> = counts
        .iter()
        .map(|(rule, n)| format!("{rule} {n}"))
        .collect();
    parts.join(", ")
}

fn summary(args: &Args, tally: &Tally, sent: bool) -> String {
    let events: u64 = tally.events.values().sum();
    let period = match args.until {
        Some(until) => format!("from {} to {}", args.since.to_rfc3339(), until.to_rfc3339()),
        None => format!("since {}", args.since.to_rfc3339()),
    };
    let verb = if sent {
        "queued for the pipeline"
    } else {
        "would be queued"
    };
    let opportunities = match tally.opportunities {
        0 => String::new(),
        n => format!(
            ", and {} of {n} opportunities changed then",
            tally.opportunities_queued
        ),
    };
    let mut text = format!(
        "location {}: {} contacts created {period} listed; {} {verb}{opportunities}, with {events} events ({})\n",
        args.location,
        tally.listed,
        tally.queued,
        by_rule(&tally.events),
    );
    let old: u64 = tally.too_old.values().sum();
    if old > 0 {
        let hint = if tally.for_audiences + tally.opportunities_for_audiences > 0 {
            "their contacts' audience memberships are synced"
        } else {
            "add an audience rule to use them"
        };
        let _ = writeln!(
            text,
            "  {old} events older than 7 days, which Meta no longer takes, not sent ({}); {hint}",
            by_rule(&tally.too_old)
        );
    }
    for (code, rules) in &tally.refused {
        let n: u64 = rules.values().sum();
        let _ = writeln!(
            text,
            "  {n} events refused by the mapping, {code} ({})",
            by_rule(rules)
        );
    }
    let queued = if sent { "queued" } else { "would be queued" };
    if tally.for_audiences > 0 {
        let _ = writeln!(
            text,
            "  {} contacts {queued} for their audience memberships only",
            tally.for_audiences,
        );
    }
    if tally.opportunities_for_audiences > 0 {
        let _ = writeln!(
            text,
            "  {} opportunities {queued} for their contacts' audience memberships only",
            tally.opportunities_for_audiences,
        );
    }
    text
}
