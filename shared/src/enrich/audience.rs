//! Audience memberships in enrichment. Membership is a state, not an event: each
//! job that shows a contact (as GHL holds it) says, per audience, whether it is a
//! member now; the state store keeps, per contact and audience, whether it was and
//! the hashes of the row last sent, so a change sends exactly the difference and a
//! repeat sends nothing.
//!
//! Tags are read only from contacts that carry all of them (contact webhooks, or
//! the contact as GHL gives it); a workflow call or a posted conversion carries a
//! few merge fields, never the tags, and says nothing about tag audiences.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Enriched, Enricher, retry_ghl, retry_state};
use crate::capi::audience::Row;
use crate::ghl::{Contact, GhlError, GhlReader};
use crate::jobs::AudienceJob;
use crate::mapping::audience::{REMEMBERED_FOR, row};
use crate::mapping::{Audience, Occurrence};
use crate::ports::state::StateStore;

/// What the state store keeps per contact and audience (hashes only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub member: bool,
    /// The row last added (what a remove must name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row: Option<Row>,
    /// The last change's number (see [`AudienceJob::seq`]).
    pub seq: u64,
}

/// The state key of `contact_id`'s membership of `audience`.
pub fn member_key(audience: &str, location_id: &str, contact_id: &str) -> String {
    format!("member#{audience}#{location_id}#{contact_id}")
}

/// What a job says of a contact's membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    /// A member, with this row.
    Member(Row),
    /// Not a member.
    Out,
}

/// The change from `was` to `now`: rows to remove, the row to add, and the new
/// state; `None` when nothing changes (a repeat, or a contact Meta could not
/// match that was never a member).
pub fn change(was: &Member, now: &Wanted) -> Option<(Vec<Row>, Option<Row>, Member)> {
    let next = |member, row| Member {
        member,
        row,
        seq: was.seq + 1,
    };
    match (now, was.member) {
        (Wanted::Member(row), true) if was.row.as_ref() == Some(row) => None,
        // A row Meta cannot match: a member stays as last sent.
        (Wanted::Member(row), _) if !row.is_usable() => {
            if !was.member {
                crate::telemetry::audience_skipped("no_usable_key");
            }
            None
        }
        (Wanted::Member(row), _) => {
            let remove = if was.member {
                was.row.iter().cloned().collect()
            } else {
                Vec::new()
            };
            Some((remove, Some(row.clone()), next(true, Some(row.clone()))))
        }
        (Wanted::Out, true) => Some((was.row.iter().cloned().collect(), None, next(false, None))),
        (Wanted::Out, false) => None,
    }
}

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
    /// The audience changes `seen` makes; `Err` with the job's outcome when GHL or
    /// the state store failed (the job is tried again).
    pub(super) async fn audiences(&mut self, seen: Seen) -> Result<Vec<Change>, Enriched> {
        let mapping = self.mapping;
        let mut changes = Vec::new();
        for audience in mapping.audiences_for(&seen.location) {
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
            let Some((remove, add, now)) = change(&was, &wanted) else {
                continue;
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
            };
            let member = (key, serde_json::to_string(&now).unwrap_or_default());
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
                Wanted::Member(row(&contact))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(email: &str) -> Row {
        let mut values = vec![String::new(); crate::capi::audience::SCHEMA.len()];
        values[1] = email.to_owned();
        Row(values)
    }

    #[test]
    fn a_change_sends_exactly_the_difference() {
        let none = Member::default();
        let (remove, add, joined) = change(&none, &Wanted::Member(row("a"))).expect("joins");
        assert!(remove.is_empty());
        assert_eq!(add, Some(row("a")));
        assert_eq!(joined.seq, 1);
        assert_eq!(change(&joined, &Wanted::Member(row("a"))), None, "a repeat");
        let (remove, add, moved) = change(&joined, &Wanted::Member(row("b"))).expect("new e-mail");
        assert_eq!((remove, add), (vec![row("a")], Some(row("b"))));
        let (remove, add, left) = change(&moved, &Wanted::Out).expect("leaves");
        assert_eq!(
            (remove, add, left.member, left.seq),
            (vec![row("b")], None, false, 3)
        );
        assert_eq!(change(&left, &Wanted::Out), None);
        assert_eq!(
            change(&none, &Wanted::Member(row(""))),
            None,
            "no usable key"
        );
        assert_eq!(
            change(&moved, &Wanted::Member(row(""))),
            None,
            "kept as sent"
        );
    }
}
