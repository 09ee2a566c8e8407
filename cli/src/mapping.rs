//! `ghl-capi mapping check` and `ghl-capi mapping preview`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use ghl_capi::capi::score::{Coverage, Key};
use ghl_capi::ghl::webhook::Webhook;
use ghl_capi::ghl::workflow::WorkflowCall;
use ghl_capi::ghl::{Contact, parse_timestamp};
use ghl_capi::intake::workflow::event_id_of;
use ghl_capi::mapping::privacy::{Consent, LimitedDataUse};
use ghl_capi::mapping::{
    Baseline, MappedEvent, Mapping, Membership, Occurrence, Source, TokenRef, identity,
};
use ghl_capi::normalize::{HexDigest, normalize};
use serde_json::{Map, Value, json};

use crate::Outcome;
use crate::audience::{Judged, audiences_json, audiences_text, memberships};

pub fn check(file: &Path) -> anyhow::Result<Outcome> {
    let mapping = Mapping::load(file)?;
    out_text!(describe(&mapping, &file.display().to_string()))?;
    Ok(Outcome::Done)
}

/// A rule's or audience's Limited Data Use and consent, as `; …` parts.
fn privacy(ldu: &LimitedDataUse, consent: Option<&Consent>) -> String {
    ldu.describe()
        .into_iter()
        .chain(consent.map(Consent::describe))
        .map(|part| format!("; {part}"))
        .collect()
}

fn describe(mapping: &Mapping, name: &str) -> String {
    let mut text = format!(
        "{name}: valid, {} pixel(s), {} rule(s), {} audience(s)\n",
        mapping.pixels.len(),
        mapping.rules.len(),
        mapping.audiences.len()
    );
    let token = |token: &TokenRef| match token {
        TokenRef::Secret(s) => format!("secret {s}"),
        TokenRef::Env(v) => format!("env {v}"),
    };
    let locations = |locations: &[String]| {
        if locations.is_empty() {
            "all locations".to_owned()
        } else {
            locations.join(", ")
        }
    };
    for p in &mapping.pixels {
        let (token, locations) = (token(&p.access_token), locations(&p.locations));
        let test = p
            .test_event_code
            .as_ref()
            .map(|c| format!(", test events ({c})"))
            .unwrap_or_default();
        let _ = writeln!(
            text,
            "  pixel {} → dataset {} (token: {token}; {locations}{test})",
            p.name, p.dataset_id
        );
    }
    for r in &mapping.rules {
        let name = match &r.event_name {
            Source::Constant(v) => v.as_str().unwrap_or_default().to_owned(),
            Source::Field { .. } => "(from a field)".to_owned(),
        };
        let needs: Vec<&str> = r.needs.iter().map(|n| n.name()).collect();
        let _ = writeln!(
            text,
            "  rule {}: {} → {name}; {} condition(s); fetches [{}]{}{}",
            r.name,
            r.trigger,
            r.conditions.len(),
            needs.join(", "),
            privacy(&r.limited_data_use, r.consent.as_ref()),
            (r.write_back.as_ref()).map_or_else(String::new, |w| format!("; writes back {w}"))
        );
    }
    for a in &mapping.audiences {
        let members = match &a.membership {
            Membership::Tags(tags) => format!("tagged {}", tags.join(" or ")),
            Membership::Conditions { conditions, .. } => {
                format!("{} condition(s) hold", conditions.len())
            }
        };
        let _ = writeln!(
            text,
            "  audience {} → custom audience {} (token: {}; {}): members while {members}{}",
            a.name,
            a.audience_id,
            token(&a.access_token),
            locations(&a.locations),
            privacy(&a.limited_data_use, a.consent.as_ref())
        );
    }
    if mapping.pixels.is_empty() {
        text.push_str("  note: no [[pixels]]: events can be previewed and mapped, but not sent\n");
    }
    text
}

#[derive(Debug, clap::Args)]
pub struct PreviewArgs {
    /// The mapping (TOML); `builtin` for the built-in mapping.
    mapping: PathBuf,
    /// A webhook body (JSON) as GHL sends it, or a GHL workflow's call.
    webhook: PathBuf,
    /// The contact (GET /contacts/{id} JSON, with or without its {"contact": …}
    /// wrapper), for webhooks that do not carry one (opportunities, appointments, …).
    #[arg(long, value_name = "FILE")]
    contact: Option<PathBuf>,
    /// The contact's tags as last seen, comma-separated ("" for none), for tag
    /// rules. Without it, a contact webhook other than `ContactCreate` is the first
    /// sight of its contact, as in the pipeline: its tags become the baseline and no
    /// tag rule fires.
    #[arg(long, value_name = "TAGS")]
    previous_tags: Option<String>,
    /// The audiences the contact is a member of now, comma-separated, for which it
    /// joins or leaves (default: none).
    #[arg(long, value_name = "NAMES")]
    member_of: Option<String>,
    /// Judge event times as if now were this ISO-8601 time (default: the webhook's
    /// own timestamp, so old samples preview as they were).
    #[arg(long, value_name = "TIME")]
    at: Option<DateTime<Utc>>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

fn read_json(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// The contact in `path` (`GET /contacts/{id}` JSON, with or without its
/// `{"contact": …}` wrapper).
fn contact_file(path: &Path) -> anyhow::Result<Contact> {
    let mut value: Value = serde_json::from_slice(&read_json(path)?)
        .with_context(|| format!("{} is not JSON", path.display()))?;
    if let Some(inner) = value.get_mut("contact") {
        value = inner.take();
    }
    serde_json::from_value(value)
        .with_context(|| format!("{} is not a GHL contact", path.display()))
}

fn contact_for(args: &PreviewArgs, webhook: &Webhook) -> anyhow::Result<Contact> {
    match &args.contact {
        Some(path) => contact_file(path),
        None => Ok(crate::sample::carried(webhook)),
    }
}

/// What a previewed body gives: what it is (a webhook's type, or a workflow
/// call), its contact, its occurrences, whether a tag baseline was taken, and the
/// time events are judged at.
struct Read {
    /// The webhook's type, or `workflow call`.
    kind: String,
    /// How the preview's first line names it.
    title: String,
    contact_id: Option<String>,
    contact: Contact,
    occurrences: Vec<Occurrence>,
    baseline: bool,
    now: DateTime<Utc>,
    location: String,
    /// A `ContactDelete` webhook: the contact leaves every audience.
    deleted: bool,
    /// Whether its contact carries all its tags (a contact webhook, or `--contact`).
    tags_known: bool,
}

fn read_webhook(args: &PreviewArgs, webhook: &Webhook) -> anyhow::Result<Read> {
    let now = args
        .at
        .or_else(|| webhook.envelope().sent_at())
        .unwrap_or_else(Utc::now);
    let previous: Option<Vec<String>> = args.previous_tags.as_deref().map(|tags| {
        tags.split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect()
    });
    let (occurrences, baseline) = Occurrence::from_webhook(webhook, previous.as_deref(), now);
    Ok(Read {
        kind: webhook.kind().to_owned(),
        title: format!("{} webhook", webhook.kind()),
        contact_id: webhook.contact_id().map(str::to_owned),
        contact: contact_for(args, webhook)?,
        occurrences,
        baseline: baseline == Baseline::Taken,
        now,
        location: webhook.location_id().unwrap_or_default().to_owned(),
        deleted: matches!(webhook, Webhook::ContactDelete(_)),
        tags_known: args.contact.is_some()
            || matches!(
                webhook,
                Webhook::ContactCreate(_)
                    | Webhook::ContactUpdate(_)
                    | Webhook::ContactTagUpdate(_)
            ),
    })
}

/// A workflow call, with the contact as it carries it (or `--contact`), judged
/// as of its trigger time (or `--at`, else now).
fn read_workflow(args: &PreviewArgs, call: &WorkflowCall) -> anyhow::Result<Read> {
    let at = call.occurred_at.as_deref().and_then(parse_timestamp);
    let now = args.at.or(at).unwrap_or_else(Utc::now);
    let contact = match &args.contact {
        Some(path) => contact_file(path)?,
        None => call.contact.clone(),
    };
    Ok(Read {
        kind: "workflow call".to_owned(),
        title: format!("workflow call ({})", call.workflow.refs().join(" / ")),
        contact_id: Some(call.contact_id.clone()),
        contact,
        occurrences: Occurrence::of_workflow_call(call, &event_id_of(call), now, now)?.0,
        baseline: false,
        now,
        location: call.location_id.clone(),
        deleted: false,
        tags_known: args.contact.is_some(),
    })
}

pub fn preview(args: &PreviewArgs) -> anyhow::Result<Outcome> {
    let mapping = if args.mapping.as_os_str() == "builtin" {
        Mapping::builtin()
    } else {
        Mapping::load(&args.mapping)?
    };
    let body = read_json(&args.webhook)?;
    // A webhook of a type we know; else a GHL workflow's call, if it reads as one.
    let read = match (Webhook::parse(&body), WorkflowCall::parse(&body)) {
        (Ok(webhook), _) if !matches!(webhook, Webhook::Unknown(_)) => {
            read_webhook(args, &webhook)?
        }
        (_, Ok(call)) => read_workflow(args, &call)?,
        (Ok(webhook), Err(_)) => read_webhook(args, &webhook)?,
        (Err(e), Err(_)) => {
            return Err(e).with_context(|| format!("{}", args.webhook.display()));
        }
    };
    let related = Map::new();
    let results: Vec<(Occurrence, Vec<MappedEvent>)> = read
        .occurrences
        .iter()
        .map(|occ| {
            (
                occ.clone(),
                mapping.map(occ, &read.contact, &related, read.now),
            )
        })
        .collect();
    let members = memberships(
        &mapping,
        &Judged {
            contact: &read.contact,
            occurrences: &read.occurrences,
            location: &read.location,
            now: read.now,
            deleted: read.deleted,
            tags_known: read.tags_known,
        },
        args.member_of.as_deref(),
    );
    if args.json {
        let mut value = as_json(&read, &results);
        value["audiences"] = audiences_json(&read.contact, &members);
        out!("{}", serde_json::to_string_pretty(&value)?)?;
    } else {
        out_text!(as_text(&read, &results) + &audiences_text(&read.contact, &members))?;
    }
    Ok(Outcome::Done)
}

/// Each identifier: raw value, normalised value and what Meta receives.
fn identifiers(
    contact: &Contact,
) -> Vec<(&'static str, String, Option<String>, Option<HexDigest>)> {
    identity(contact)
        .map(|(field, raw)| {
            let n = normalize(field, raw, contact.country.as_deref());
            (
                field.key(),
                raw.to_owned(),
                n.as_ref().map(|n| n.as_str().to_owned()),
                n.map(|n| n.sha256()),
            )
        })
        .collect()
}

fn as_text(read: &Read, results: &[(Occurrence, Vec<MappedEvent>)]) -> String {
    let contact = &read.contact;
    let mut t = format!(
        "{} for contact {} (judged at {})\n",
        read.title,
        read.contact_id.as_deref().unwrap_or("-"),
        read.now.to_rfc3339_opts(SecondsFormat::Secs, true)
    );
    if read.baseline {
        let _ = writeln!(
            t,
            "  baseline taken, nothing fires for its tags ({}): the contact was never seen, so \
             which tag changed is unknowable; give --previous-tags to preview a change",
            contact.tags.join(", ")
        );
    }
    if results.is_empty() {
        t.push_str("  no trigger: this webhook starts no rule\n");
        return t;
    }
    for (occ, events) in results {
        let tag = occ
            .tag
            .as_ref()
            .map(|t| format!(" (tag {t})"))
            .unwrap_or_default();
        let _ = writeln!(t, "\n{}{tag}:", occ.trigger);
        if events.is_empty() {
            t.push_str("  no rule fires\n");
        }
        for e in events {
            let pixels = if e.pixels.is_empty() {
                "no pixel".to_owned()
            } else {
                e.pixels.join(", ")
            };
            match &e.outcome {
                Err(why) => {
                    let _ = writeln!(t, "  rule {}: NOT SENT: {why} [{}]", e.rule, why.code());
                }
                Ok(event) => {
                    let _ = writeln!(t, "  rule {} → {} to {pixels}", e.rule, event.event_name);
                    let _ = writeln!(
                        t,
                        "    event_id        {}",
                        event.event_id.as_deref().unwrap_or("-")
                    );
                    let at = DateTime::from_timestamp(event.event_time, 0).unwrap_or_default();
                    let _ = writeln!(
                        t,
                        "    event_time      {} ({})",
                        event.event_time,
                        at.to_rfc3339()
                    );
                    let _ = writeln!(
                        t,
                        "    action_source   {}",
                        json!(event.action_source).as_str().unwrap_or_default()
                    );
                    let coverage = Coverage::of(&event.user_data);
                    let lacking: Vec<&str> = coverage.lacking().take(4).map(Key::name).collect();
                    let _ = writeln!(
                        t,
                        "    score           {} of 10 (lacks {}{})",
                        coverage.score(),
                        lacking.join(", "),
                        if coverage.lacking().count() > lacking.len() {
                            ", …"
                        } else {
                            ""
                        }
                    );
                    t.push_str("    user_data\n");
                    for (key, raw, normalized, sha) in identifiers(contact) {
                        let _ = writeln!(
                            t,
                            "      {key:<12} {raw:?} → {} → {}",
                            normalized.as_deref().unwrap_or("(dropped)"),
                            sha.as_deref().unwrap_or("-")
                        );
                    }
                    if let Some(ext) = event.user_data.external_id.first() {
                        let _ = writeln!(t, "      {:<12} {ext}", "external_id");
                    }
                    let unhashed = [
                        ("fbc", &event.user_data.fbc),
                        ("fbp", &event.user_data.fbp),
                        ("ip", &event.user_data.client_ip_address),
                        ("user_agent", &event.user_data.client_user_agent),
                    ];
                    for (key, value) in unhashed {
                        if let Some(v) = value {
                            let _ = writeln!(t, "      {key:<12} {v} (sent as is)");
                        }
                    }
                    if !event.custom_data.is_empty() {
                        let _ = writeln!(t, "    custom_data     {}", json!(event.custom_data));
                    }
                }
            }
        }
    }
    t
}

fn as_json(read: &Read, results: &[(Occurrence, Vec<MappedEvent>)]) -> Value {
    let ids: Vec<Value> = identifiers(&read.contact)
        .into_iter()
        .map(|(key, raw, normalized, sha)| json!({"field": key, "input": raw, "normalized": normalized, "sha256": sha}))
        .collect();
    json!({
        "webhook": read.kind,
        "contactId": read.contact_id,
        "baseline": read.baseline,
        "identifiers": ids,
        "occurrences": results.iter().map(|(occ, events)| json!({
            "trigger": occ.trigger.name(),
            "tag": occ.tag,
            "events": events.iter().map(|e| match &e.outcome {
                Ok(event) => {
                    let coverage = Coverage::of(&event.user_data);
                    json!({
                        "rule": e.rule, "pixels": e.pixels, "event": event,
                        "score": coverage.score().to_string(),
                        "lacking": coverage.lacking().map(Key::wire).collect::<Vec<_>>(),
                    })
                }
                Err(why) => json!({"rule": e.rule, "pixels": e.pixels, "rejected": {"code": why.code(), "reason": why.to_string()}}),
            }).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}
