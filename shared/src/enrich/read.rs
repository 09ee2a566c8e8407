//! A job read for enrichment: its occurrences, and what it carries of the contact.

use chrono::{DateTime, Utc};

use super::mark::Prior;
use super::{Enriched, Enricher, SeenTags, done, opportunity, retry_ghl, retry_state, workflow};
use crate::ghl::webhook::{Envelope, Webhook};
use crate::ghl::{Contact, GhlReader};
use crate::jobs::{DeadLetter, EnrichJob, Stage, StaleWebhook};
use crate::mapping::{Baseline, Occurrence, Trigger};
use crate::ports::state::StateStore;

/// What a job gives to build from.
pub(super) struct Read {
    pub(super) source: String,
    pub(super) location: String,
    pub(super) occurrences: Vec<Occurrence>,
    /// The contact as the job carries it, if it does.
    pub(super) carried: Option<Contact>,
    /// Whether that includes its attribution (then no rule needs GHL for it).
    pub(super) carried_attribution: bool,
    /// Set for contact webhooks, whose contact carries all its tags.
    pub(super) seen: Option<Box<SeenTags>>,
    /// The contact a `ContactDelete` webhook is about.
    pub(super) deleted: Option<String>,
    /// State to write once the job's outputs are queued.
    pub(super) records: Vec<(String, String)>,
    /// A webhook of a location not connected here ([`super::reach`]).
    pub(super) stranger: bool,
    /// A workflow call's workflow (what names it), counted once it is handled.
    pub(super) workflow: Option<Vec<String>>,
}

impl<G: GhlReader, S: StateStore> Enricher<'_, G, S> {
    /// The job's occurrences and what it carries; `None` when it is not about a
    /// contact's events (an install), `Err` with its outcome when it is settled
    /// already. `prior`: what the caller read of it already (its webhook parsed,
    /// the carried contact as the state store holds it).
    pub(super) async fn read(
        &mut self,
        job: &EnrichJob,
        prior: Prior,
        now: DateTime<Utc>,
    ) -> Option<Result<Read, Enriched>> {
        let Prior {
            webhook: parsed,
            remembered,
        } = prior;
        let mut webhook = match job {
            EnrichJob::Conversion(job) => {
                return Some(Ok(Read {
                    source: job.event_id.clone(),
                    location: job.conversion.location_id.clone(),
                    occurrences: vec![Occurrence::for_conversion(
                        &job.contact_id,
                        &job.conversion,
                        now,
                    )],
                    carried: None,
                    carried_attribution: false,
                    seen: None,
                    deleted: None,
                    records: Vec::new(),
                    stranger: false,
                    workflow: None,
                }));
            }
            EnrichJob::Workflow(job) => return Some(workflow::read(job, now)),
            EnrichJob::Listed(job) => return Some(self.listed(job, now).await),
            EnrichJob::Opportunity(job) => return Some(self.opportunity(job, now).await),
            EnrichJob::Stale(stale) => return Some(Err(stale_letter(stale))),
            // Written by the consumer ([`super::write_back`]), never read here.
            EnrichJob::WriteBack(_) => return None,
            EnrichJob::Webhook { key, body, .. } => match parsed
                .map(Ok)
                .unwrap_or_else(|| Webhook::parse(body.as_bytes()))
            {
                Ok(webhook) => webhook,
                // Verified, but not a webhook as this build reads it: kept for a
                // redrive once a build reads it.
                Err(e) => {
                    let mut letter =
                        DeadLetter::new(key, Stage::Enrich, "malformed_webhook", e.to_string());
                    letter.triggers = Envelope::of(body.as_bytes())
                        .and_then(|(envelope, _)| envelope.kind)
                        .into_iter()
                        .collect();
                    return Some(Err(done(vec![], vec![letter], None)));
                }
            },
        };
        let key = job.key();
        if let Some(settled) = self.install(&webhook).await {
            return settled.err().map(Err);
        }
        // The rules see the contact without the tags the write-back owns; its
        // tags are remembered as GHL has them, as reconciliation lists them.
        let raw_tags = match &mut webhook {
            Webhook::ContactCreate(e)
            | Webhook::ContactUpdate(e)
            | Webhook::ContactTagUpdate(e) => {
                let raw = e.contact.tags.clone();
                self.mapping.disown(&mut e.contact.tags);
                raw
            }
            _ => Vec::new(),
        };
        let carried = webhook.carried().cloned();
        let location = webhook.location_id().unwrap_or_default().to_owned();
        // The contact changed: a read of it the reader kept from before is stale
        // (this batch's reads come after every webhook of it).
        if let (
            Webhook::ContactCreate(e)
            | Webhook::ContactUpdate(e)
            | Webhook::ContactTagUpdate(e)
            | Webhook::ContactDndUpdate(e)
            | Webhook::ContactDelete(e),
            EnrichJob::Webhook { received_at, .. },
        ) = (&webhook, job)
        {
            (self.fetched.ghl()).forget(&location, &e.contact.id, *received_at);
        }
        let stranger = match self.fetched.ghl().connected(&location).await {
            Ok(connected) => !connected,
            Err(e) => return Some(Err(retry_ghl(&e, vec![webhook.kind().to_owned()]))),
        };
        let deleted = match &webhook {
            Webhook::ContactDelete(e) => Some(e.contact.id.clone()),
            _ => None,
        };
        // The contact as the consumer read it with the job's mark (the job is
        // marked with its tags), else its tags read now (marked apart).
        let (mut previous, was) = match (&carried, remembered) {
            (Some(_), Some(remembered)) => (remembered.tags.clone(), Some(remembered)),
            (Some(contact), None) => match self.state.tags(&location, &contact.id).await {
                Ok(tags) => (tags, None),
                Err(e) => return Some(Err(retry_state(e))),
            },
            (None, _) => (None, None),
        };
        if let Some(tags) = &mut previous {
            self.mapping.disown(tags);
        }
        let (mut occurrences, baseline) =
            Occurrence::from_webhook(&webhook, previous.as_deref(), now);
        // Only where a write-back may have caused it and a rule would fire on it.
        let watched = self.mapping.writes_back()
            && self
                .mapping
                .rules_for(Trigger::ContactUpdated)
                .next()
                .is_some();
        if let (Webhook::ContactUpdate(e), true) = (&webhook, watched) {
            match self.echoed(&location, &e.contact).await {
                Ok(false) => {}
                Ok(true) => occurrences.retain(|o| o.trigger != Trigger::ContactUpdated),
                Err(e) => return Some(Err(retry_state(e))),
            }
        }
        if let Some(trigger) = Occurrence::without_contact(&webhook)
            && !stranger
            && self.mapping.rules_for(trigger).next().is_some()
        {
            return Some(Err(missing_contact(key, &webhook, trigger)));
        }
        if let (Baseline::Taken, Some(contact)) = (baseline, &carried) {
            // Which tag changed is unknowable for a contact never seen: its tags
            // are remembered, and tag rules fire from the next change on.
            tracing::info!(
                webhook_id = key,
                location_id = location,
                contact_id = contact.id,
                tags = contact.tags.len(),
                "first sight of this contact: its tags are the baseline, no tag rule fires"
            );
            crate::telemetry::tag_baseline();
        }
        let seen = carried.as_ref().map(|c| {
            Box::new(SeenTags {
                location_id: location.clone(),
                contact_id: c.id.clone(),
                tags: raw_tags,
                was,
            })
        });
        Some(Ok(Read {
            source: key.to_owned(),
            location,
            occurrences,
            carried,
            // Contact webhooks may carry attribution, but not reliably all of it.
            carried_attribution: false,
            seen,
            deleted,
            records: opportunity::remembered(&webhook).into_iter().collect(),
            stranger,
            workflow: None,
        }))
    }
}

/// The letter of a webhook that names no contact while rules wait on its trigger:
/// whose change it is cannot be known, so the rules cannot fire. Kept with the
/// cause in words, never a generic parse error.
fn missing_contact(key: &str, webhook: &Webhook, trigger: Trigger) -> Enriched {
    let known = if matches!(webhook, Webhook::TaskCreate(_)) {
        " (a gap GHL's maintainers confirm for TaskCreate: highlevel-api-docs issue 332)"
    } else {
        ""
    };
    let reason = format!(
        "GHL's {} webhook came without the contact's id{known}: whose {} it is cannot be \
         known, so the {trigger} rules cannot fire for it; nothing was sent",
        webhook.kind(),
        trigger.entity().unwrap_or("change"),
    );
    let mut letter = DeadLetter::new(key, Stage::Enrich, "missing_contact", reason);
    letter.triggers = vec![webhook.kind().to_owned()];
    done(vec![], vec![letter], None)
}

/// The letter of a webhook GHL delivered too late to act on by itself: kept for a
/// person to redrive.
fn stale_letter(stale: &StaleWebhook) -> Enriched {
    let reason = format!(
        "GHL delivered this webhook {} s after sending it, and deliveries older than {} s \
         (GHL_WEBHOOK_MAX_AGE_SECONDS) are not acted on by themselves (a resend from GHL's \
         webhook log, or a long retry): redrive it (ghl-capi dlq redrive) to have it handled; \
         a webhook handled before is not handled again",
        stale.age_seconds, stale.max_age_seconds
    );
    let mut letter = DeadLetter::new(&stale.key, Stage::Enrich, "stale_delivery", reason);
    letter.triggers = Envelope::of(stale.body.as_bytes())
        .and_then(|(envelope, _)| envelope.kind)
        .into_iter()
        .collect();
    done(vec![], vec![letter], None)
}
