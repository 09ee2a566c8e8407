//! Audience memberships in enrichment. Membership is a state, not an event: each
//! job that shows a contact (as GHL holds it) says, per audience, whether it is a
//! member now, and the difference from what the state store remembers is queued
//! ([`crate::mapping::membership`]).
//!
//! Tags are read only from contacts that carry all of them (contact webhooks, or
//! the contact as GHL gives it); a workflow call or a posted conversion carries a
//! few merge fields, never the tags, and says nothing about tag audiences.

use chrono::{DateTime, Utc};

use super::{Enriched, Enricher, Read, SeenTags, retry_ghl, retry_state};
use crate::ghl::{Contact, GhlError, GhlReader};
use crate::jobs::{AudienceJob, ListedJob};
use crate::mapping::audience::REMEMBERED_FOR;
use crate::mapping::membership::{Member, Wanted, change, member_key};
use crate::mapping::{Audience, Occurrence, Trigger};
use crate::ports::state::StateStore;

/// What a job gives to work memberships out from.
#[derive(Debug, Clone)]
pub(super) struct Seen {
    pub(super) source: String,
    pub(super) location: String,
    pub(super) occurrences: Vec<Occurrence>,
    /// The contact as the job carries it, when it carries all its tags.
    pub(super) contact: Option<Contact>,
    /// The contact GHL deleted, for a `ContactDelete` webhook.
    pub(super) deleted: Option<String>,
    /// A webhook of a location not connected here: only audiences naming it.
    pub(super) stranger: bool,
    /// A sync's job for a contact whose changes have a gap ([`ListedJob::resync`]).
    pub(super) resync: bool,
    pub(super) at: DateTime<Utc>,
}

/// One audience change of a job, and the membership it makes: `(key, state)`, to
/// remember once the change is queued.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub job: AudienceJob,
    pub member: (String, String),
}

impl<G: GhlReader, S: StateStore> Enricher<'_, G, S> {
    /// A listed contact as enrichment reads it: as the listing gave it, or as GHL
    /// holds it now (a member the listing did not return); one GHL no longer has
    /// is deleted. A contact reconciliation listed comes with the changes no
    /// webhook told of, found against the tags last seen now (a webhook handled
    /// since the listing leaves none); one a backfill listed, as a new contact with
    /// its tags added. `Err` with the job's outcome when GHL or the state store
    /// failed.
    pub(super) async fn listed(
        &mut self,
        job: &ListedJob,
        now: DateTime<Utc>,
    ) -> Result<Read, Enriched> {
        // The rules see the contact without the tags the write-back owns; its
        // tags are remembered as GHL has them, as reconciliation lists them.
        let mapping = self.mapping;
        let read = |raw: Option<Contact>, deleted: Option<String>| Read {
            source: job.key.clone(),
            location: job.location_id.clone(),
            occurrences: Vec::new(),
            seen: raw.as_ref().map(|c| {
                Box::new(SeenTags {
                    location_id: job.location_id.clone(),
                    contact_id: c.id.clone(),
                    tags: c.tags.clone(),
                    was: None,
                })
            }),
            carried: raw.map(|mut contact| {
                mapping.disown(&mut contact.tags);
                contact
            }),
            carried_attribution: false,
            deleted,
            records: Vec::new(),
            stranger: false,
            workflow: None,
        };
        if let Some(contact) = &job.contact {
            let mut listed = read(Some(contact.as_ref().clone()), None);
            let contact = listed.carried.clone().unwrap_or_default();
            let contact = &contact;
            if job.backfill.is_some() {
                let with_tags = self.mapping.rules_for(Trigger::TagAdded).next().is_some();
                listed.occurrences = Occurrence::for_contact_record(
                    Trigger::ContactCreated,
                    &job.location_id,
                    contact,
                    with_tags,
                    now,
                );
            } else if let Some(since) = job.since {
                let mut previous = self
                    .state
                    .tags(&job.location_id, &contact.id)
                    .await
                    .map_err(retry_state)?;
                if let Some(tags) = &mut previous {
                    self.mapping.disown(tags);
                }
                listed.occurrences =
                    Occurrence::missed(&job.location_id, contact, previous.as_deref(), since, now);
            }
            return Ok(listed);
        }
        match self
            .fetched
            .contact(&job.location_id, &job.contact_id)
            .await
        {
            Ok(contact) => Ok(read(Some(contact), None)),
            Err(GhlError::NotFound) => Ok(read(None, Some(job.contact_id.clone()))),
            Err(e) => Err(self.ghl_failed(&job.location_id, &e, vec![], now).await),
        }
    }

    /// The audience changes `seen` makes; `Err` with the job's outcome when GHL or
    /// the state store failed (the job is tried again).
    pub(super) async fn audiences(&mut self, seen: Seen) -> Result<Vec<Change>, Enriched> {
        let mapping = self.mapping;
        let mut changes = Vec::new();
        let audiences = mapping.audiences_for(&seen.location);
        for audience in audiences.filter(|a| !seen.stranger || a.names(&seen.location)) {
            let (contact_id, wanted) = match &seen.deleted {
                Some(id) => (id.clone(), Wanted::Out),
                None => match self.wanted(audience, &seen).await? {
                    Some(found) => found,
                    None => continue,
                },
            };
            let key = member_key(&audience.name, &seen.location, &contact_id);
            let was: Member = match self.state.record(&key).await {
                Ok(text) => text
                    .and_then(|t| serde_json::from_str(&t).ok())
                    .unwrap_or_default(),
                Err(e) => return Err(retry_state(e)),
            };
            // A sync's contact whose changes have a gap: as it stands, even unchanged.
            let (remove, add, now) = match change(&was, &wanted) {
                Some(change) => change,
                None if seen.resync && was.seq > 0 => (
                    Vec::new(),
                    was.row.clone().filter(|_| was.member),
                    was.clone(),
                ),
                None => continue,
            };
            tracing::info!(
                webhook_id = seen.source,
                audience = audience.name,
                location_id = seen.location,
                contact_id,
                joins = add.is_some() && !was.member,
                leaves = add.is_none(),
                seq = now.seq,
                "audience membership changes"
            );
            let job = AudienceJob {
                audience: audience.name.clone(),
                source: seen.source.clone(),
                location_id: seen.location.clone(),
                contact_id,
                seq: now.seq,
                remove,
                add,
                history: Default::default(),
                resync: seen.resync,
            };
            let member = (key, crate::ports::text(&now));
            changes.push(Change { job, member });
        }
        Ok(changes)
    }

    /// The contact and whether it belongs to `audience`, as far as `seen` tells.
    async fn wanted(
        &mut self,
        audience: &Audience,
        seen: &Seen,
    ) -> Result<Option<(String, Wanted)>, Enriched> {
        let contact = match (&seen.contact, audience.entity()) {
            (Some(contact), _) => contact.clone(),
            // A change of the entity the conditions read: the contact is read for
            // its row (once a batch, shared with the rules).
            (None, Some(entity)) => {
                let Some(occ) = seen
                    .occurrences
                    .iter()
                    .find(|occ| occ.trigger.entity() == Some(entity))
                else {
                    return Ok(None);
                };
                match self
                    .fetched
                    .contact(&occ.location_id, &occ.contact_id)
                    .await
                {
                    Ok(contact) => contact,
                    Err(GhlError::NotFound) => return Ok(None),
                    Err(e) => return Err(retry_ghl(&e, vec![])),
                }
            }
            // Tags or contact fields: only a contact the rules read already.
            (None, None) => {
                let cached = seen
                    .occurrences
                    .first()
                    .and_then(|occ| self.fetched.cached(&occ.location_id, &occ.contact_id));
                match cached {
                    Some(contact) => contact,
                    None => return Ok(None),
                }
            }
        };
        let member = audience.judge(&contact, &seen.occurrences, &seen.location, seen.at);
        Ok(member.map(|member| {
            let wanted = if member {
                Wanted::Member(audience.row(&contact))
            } else {
                Wanted::Out
            };
            (contact.id.clone(), wanted)
        }))
    }
}

/// Remembers the memberships a job changed; call once its changes are queued.
pub async fn remember_members(
    state: &impl StateStore,
    changes: &[Change],
) -> Result<(), crate::ports::state::StateError> {
    if changes.is_empty() {
        return Ok(());
    }
    let members: Vec<(String, String)> = changes.iter().map(|c| c.member.clone()).collect();
    state.set_records(&members, REMEMBERED_FOR).await
}
