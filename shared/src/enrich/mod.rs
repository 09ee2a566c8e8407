//! Enrichment: from a queued webhook, conversion or workflow call to events ready
//! for Meta.
//!
//! Per batch of jobs: each job's occurrences are matched against the mapping; only
//! if a rule fires for a location some pixel serves is anything fetched from GHL,
//! and each contact (and each list of its notes, tasks or appointments) is fetched
//! once however many jobs name it.
//!
//! Failure policy: nothing accepted disappears. A body that is not a webhook (or
//! workflow call), or a
//! contact GHL no longer has (`404`), becomes one dead letter for the job, listing
//! its triggers; an event Meta would refuse becomes a letter of its own. GHL rate
//! limits wait GHL's interval; GHL outages and token trouble hold the job (and,
//! through the location's circuit breaker, every job of the location) until GHL
//! answers again ([`crate::hold`]).
//!
//! - this module: one job at a time ([`Enricher`]);
//! - [`read`]: a job read: its occurrences, and the contact as it carries it;
//! - [`reach`]: which pixels and audiences a job's location reaches (a location
//!   with no token or install here only those that name it);
//! - [`fetch`]: GHL reads shared across a batch, and made side by side;
//! - [`workflow`]: what a workflow call gives to build from, and its count;
//! - [`install`]: the tokens `INSTALL` and `UNINSTALL` webhooks concern;
//! - [`audience`]: each audience's members, as each job shows them;
//! - [`opportunity`]: the stage and status each opportunity was last seen in, and
//!   reconciliation's opportunities told as their webhooks;
//! - [`audit`]: the lines a trace reads: rules fired or not, events built;
//! - [`write_back`]: delivery written back into GHL, and its echo told apart;
//! - [`consumer`]: the enrichment function's batch.

pub mod audience;
mod audit;
pub mod consumer;
mod fetch;
mod install;
mod mark;
pub use mark::remember;
pub mod names;
mod opportunity;
mod reach;
mod read;
use read::Read;
mod workflow;
mod write_back;

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::batch::Reason;
use crate::ghl::{GhlError, GhlReader};
use crate::hold::breaker::Breakers;
use crate::hold::{HoldPolicy, Partner};
use crate::jobs::{DeadLetter, DispatchJob, EnrichJob, Stage};
use crate::mapping::{Mapping, Occurrence};
use crate::ports::state::{Remembered, StateStore};
use fetch::{Fetched, retry_ghl, retry_state};

/// A contact's tags as a job saw them, to remember once its outputs are queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenTags {
    pub location_id: String,
    pub contact_id: String,
    pub tags: Vec<String>,
    /// The contact as the job read it with its mark: the job is marked done with
    /// its tags, in one write ([`StateStore::set_tags_done`]).
    pub was: Option<Remembered>,
}

/// What became of one job.
#[derive(Debug, Clone, PartialEq)]
pub enum Enriched {
    Done {
        dispatch: Vec<DispatchJob>,
        /// The job's own letter (malformed, contact gone) and each event's that
        /// Meta would refuse.
        dead_letters: Vec<DeadLetter>,
        /// To write to the state store after the outputs are queued, so a job
        /// retried for a failed send sees the same transition again (and its event
        /// ids deduplicate at Meta).
        seen: Option<Box<SeenTags>>,
        /// Audience changes, queued for dispatch beside the events, each with the
        /// membership it makes (written once they are queued).
        audience: Vec<audience::Change>,
        /// State to write once the outputs are queued, `(key, value)`: an
        /// opportunity's stage and status as last seen.
        records: Vec<(String, String)>,
    },
    /// Try the whole job again later: not before `after` (GHL's own interval, or
    /// its location's next probe).
    Retry {
        reason: Reason,
        after: Duration,
        /// The job's triggers, for the letter it may become.
        triggers: Vec<String>,
    },
}

/// Enriches the jobs of one batch, one at a time (the caller queues a job's
/// outputs and writes its [`SeenTags`] before its contact's next change, so two
/// changes to one contact in a batch see each other); GHL reads are shared across
/// the batch, and made side by side for jobs of distinct contacts
/// ([`Enricher::prefetch`]), and so are the locations' breakers.
pub struct Enricher<'a, G, S> {
    mapping: &'a Mapping,
    fetched: Fetched<'a, G>,
    state: &'a S,
    breakers: Breakers<'a, S>,
}

impl<G, S> std::fmt::Debug for Enricher<'_, G, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enricher")
            .field("contacts_fetched", &self.fetched.contacts())
            .finish_non_exhaustive()
    }
}

impl<'a, G: GhlReader, S: StateStore> Enricher<'a, G, S> {
    pub fn new(mapping: &'a Mapping, ghl: &'a G, state: &'a S, policy: HoldPolicy) -> Self {
        Enricher {
            mapping,
            fetched: Fetched::new(ghl),
            state,
            breakers: Breakers::new(state, policy, Partner::Ghl),
        }
    }

    /// Enriches one job.
    pub async fn enrich(&mut self, job: &EnrichJob, now: DateTime<Utc>) -> Enriched {
        let read = self.read(job, mark::Prior::default(), now).await;
        self.enrich_read(job, read, now).await
    }

    /// Enriches one job from its [`Enricher::read`], made before (a batch reads
    /// its jobs first, then asks GHL for what they need side by side: [`fetch`]).
    async fn enrich_read(
        &mut self,
        job: &EnrichJob,
        read: Option<Result<Read, Enriched>>,
        now: DateTime<Utc>,
    ) -> Enriched {
        let Some(read) = read else {
            return done(vec![], vec![], None);
        };
        let mut read = match read {
            Ok(read) => read,
            Err(outcome) => return outcome,
        };
        let audiences =
            (self.mapping.audiences_for(&read.location)).any(|a| read.reaches_audience(a));
        let seen = audiences.then(|| audience::Seen {
            source: read.source.clone(),
            location: read.location.clone(),
            occurrences: read.occurrences.clone(),
            contact: read.carried.clone().filter(|_| read.seen.is_some()),
            deleted: read.deleted.clone(),
            stranger: read.stranger,
            resync: matches!(job, EnrichJob::Listed(listed) if listed.resync),
            at: now,
        });
        // Counted once the job is done, so a retried job counts its changes once.
        let missed = match job {
            EnrichJob::Listed(listed) if listed.since.is_some() => Some(&listed.location_id),
            EnrichJob::Opportunity(listed) if listed.backfill.is_none() => {
                Some(&listed.location_id)
            }
            _ => None,
        }
        .filter(|_| !read.occurrences.is_empty())
        .map(|location| (location.as_str(), read.occurrences.len()));
        let records = std::mem::take(&mut read.records);
        let mut outcome = self.build(read, now).await;
        if let Enriched::Done { records: kept, .. } = &mut outcome {
            *kept = records;
        }
        if let (Some(seen), Enriched::Done { audience, .. }) = (seen, &mut outcome) {
            match self.audiences(seen).await {
                Ok(changes) => *audience = changes,
                Err(retry) => return retry,
            }
        }
        if let Enriched::Done {
            dispatch,
            dead_letters,
            ..
        } = &mut outcome
        {
            // A backfill of some rules only: the others' events are not its to send.
            let sends = |rule: &str| match job {
                EnrichJob::Listed(listed) => listed.sends(rule),
                EnrichJob::Opportunity(listed) => listed.sends(rule),
                _ => true,
            };
            dispatch.retain(|d| sends(&d.rule));
            dead_letters.retain(|l| l.rule.as_deref().is_none_or(sends));
        }
        if let (Some((location, changes)), Enriched::Done { .. }) = (missed, &outcome) {
            tracing::info!(
                job = job.key(),
                location_id = location,
                changes,
                "reconciliation found changes no webhook delivered"
            );
            crate::telemetry::missed_changes(location, changes);
        }
        outcome
    }

    /// The events of the job's occurrences, reading GHL for what firing rules need.
    async fn build(&mut self, mut read: Read, now: DateTime<Utc>) -> Enriched {
        let mapping = self.mapping;
        let served = self.served(&read);
        let reaches: Vec<String> = mapping
            .pixels
            .iter()
            .filter(|p| read.reaches_pixel(mapping, &p.name))
            .map(|p| p.name.clone())
            .collect();
        let stranger = std::mem::take(&mut read.stranger);
        let Read {
            source,
            location,
            occurrences,
            carried,
            carried_attribution,
            seen,
            workflow,
            ..
        } = read;
        let call = occurrences
            .first()
            .map(|occ| occ.contact_id.clone())
            .unwrap_or_default();
        let counted = (source.as_str(), location.as_str(), call.as_str());
        let triggers: Vec<String> = occurrences.iter().map(trigger_name).collect();
        let firing = self.firing(&occurrences);
        if firing.is_empty() {
            self.workflow_counted(workflow.as_deref(), counted, false);
            return done(vec![], vec![], seen);
        }
        if !served && stranger {
            reach::stranger_dropped(&source, &location);
            return done(vec![], vec![], seen);
        }
        if !served {
            // Nothing could be sent: GHL is not asked, and nothing is held.
            tracing::info!(
                webhook_id = source,
                location_id = location,
                "no pixel serves this location: dropped before any GHL call"
            );
            crate::telemetry::skipped("no_pixel");
            return done(vec![], vec![], seen);
        }
        if let Some(paused) = self.paused(&location, &triggers, now).await {
            return paused;
        }
        let mut dispatch = Vec::new();
        let mut dead_letters = Vec::new();
        let mut fired = false;
        for occ in firing {
            let carrying = carried.as_ref().map(|c| (c, carried_attribution));
            let read = match self.contact(occ, carrying).await {
                Ok(contact) => self.related(occ).await.map(|related| (contact, related)),
                Err(e) => Err(e),
            };
            let (contact, related) = match read {
                Ok(read) => read,
                // GHL's answer about this job, not about GHL: the job's one letter.
                Err(
                    e @ (GhlError::NotFound
                    | GhlError::Rejected { .. }
                    | GhlError::Forbidden { .. }),
                ) => {
                    let (code, reason) = match &e {
                        GhlError::NotFound => (
                            "contact_not_found",
                            format!("GHL has no contact {}", occ.contact_id),
                        ),
                        other => (other.code(), other.to_string()),
                    };
                    let mut letter = DeadLetter::new(&source, Stage::Enrich, code, reason);
                    letter.triggers = triggers.clone();
                    dead_letters.push(letter);
                    break;
                }
                Err(e) => return self.ghl_failed(&location, &e, triggers, now).await,
            };
            // Names are read only for a rule that needs what the change and the
            // contact do not carry (a stage by name on a webhook's stage id).
            let named;
            let (occ, contact) = if mapping
                .rules_for(occ.trigger)
                .any(|r| r.wants_names(occ, &contact))
            {
                match self.names(&location, occ, now).await {
                    Ok(Some(names)) => {
                        let (mut occ, mut contact) = (occ.clone(), contact);
                        occ.name_with(&names);
                        names.name_fields(&mut contact);
                        named = occ;
                        (&named, contact)
                    }
                    Ok(None) => (occ, contact),
                    Err(e) => return self.ghl_failed(&location, &e, triggers, now).await,
                }
            } else {
                (occ, contact)
            };
            let events = self.mapping.map(occ, &contact, &related, now);
            audit::not_fired(&source, occ, &self.mapping.unmet(occ, &contact, &related));
            audit::no_consent(
                &source,
                occ,
                &self.mapping.without_consent(occ, &contact, &related),
            );
            fired |= !events.is_empty();
            for mut mapped in events {
                mapped.pixels.retain(|p| reaches.contains(p));
                match mapped.outcome {
                    Ok(event) if mapped.pixels.is_empty() => {
                        tracing::info!(
                            webhook_id = source,
                            rule = mapped.rule,
                            location_id = location,
                            "the rule feeds no pixel of this location: its event is not sent"
                        );
                        crate::telemetry::skipped("no_pixel");
                        drop(event);
                    }
                    Ok(event) => {
                        let write_back =
                            self.write_back_of(&mapped.rule, carried.as_ref(), &contact);
                        audit::built(
                            &source,
                            occ,
                            (&mapped.rule, &mapped.pixels),
                            &event,
                            &self.mapping.version,
                        );
                        dispatch.extend(mapped.pixels.iter().map(|pixel| DispatchJob {
                            pixel: pixel.clone(),
                            source: source.clone(),
                            rule: mapped.rule.clone(),
                            trigger: trigger_name(occ),
                            location_id: occ.location_id.clone(),
                            contact_id: occ.contact_id.clone(),
                            event: event.clone(),
                            mapping: self.mapping.version.clone(),
                            history: Default::default(),
                            write_back: write_back.clone(),
                        }))
                    }
                    Err(why) => {
                        let mut letter =
                            DeadLetter::new(&source, Stage::Enrich, why.code(), why.to_string());
                        letter.rule = Some(mapped.rule.clone());
                        letter.triggers = vec![trigger_name(occ)];
                        dead_letters.push(letter);
                    }
                }
            }
        }
        self.workflow_counted(workflow.as_deref(), counted, fired);
        self.breakers.succeeded(&location, now).await;
        done(dispatch, dead_letters, seen)
    }
}

impl<G, S> Enricher<'_, G, S> {
    /// Whether some rule on the job's occurrences feeds a pixel its location
    /// reaches: if none does, GHL is not asked.
    fn served(&self, read: &Read) -> bool {
        let mapping = self.mapping;
        read.occurrences.iter().any(|occ| {
            mapping.rules_for(occ.trigger).any(|rule| {
                (mapping.pixels_for(rule, &read.location))
                    .any(|p| read.reaches_pixel(mapping, &p.name))
            })
        })
    }

    /// The occurrences some rule waits on.
    fn firing<'o>(&self, occurrences: &'o [Occurrence]) -> Vec<&'o Occurrence> {
        (occurrences.iter())
            .filter(|occ| self.mapping.rules_for(occ.trigger).next().is_some())
            .collect()
    }

    /// What `rule` writes back about its event, with the contact's shape as the
    /// change showed it (the webhook's contact, when it carried one): the echo of
    /// the write shows it alike ([`crate::ghl::Contact::shape`]).
    fn write_back_of(
        &self,
        rule: &str,
        carried: Option<&crate::ghl::Contact>,
        read: &crate::ghl::Contact,
    ) -> Option<crate::jobs::WriteBack> {
        let rule = self.mapping.rules.iter().find(|r| r.name == rule)?;
        let mut write = rule.write_back.clone()?;
        write.shape = carried.unwrap_or(read).shape();
        Some(write)
    }
}

fn done(
    dispatch: Vec<DispatchJob>,
    dead_letters: Vec<DeadLetter>,
    seen: Option<Box<SeenTags>>,
) -> Enriched {
    Enriched::Done {
        dispatch,
        dead_letters,
        seen,
        audience: Vec::new(),
        records: Vec::new(),
    }
}

/// An occurrence's trigger as a letter names it: `contact.tag_added:vip` for tags.
fn trigger_name(occ: &Occurrence) -> String {
    match &occ.tag {
        Some(tag) => format!("{}:{tag}", occ.trigger.name()),
        None => occ.trigger.name().to_owned(),
    }
}
