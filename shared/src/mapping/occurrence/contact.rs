//! The occurrences of a contact as GHL holds it (a listing, a backfill), outside
//! any webhook: its creation, its last update, its tags, and the tag changes since
//! the tags last seen.

use chrono::{DateTime, Utc};

use super::{Occurrence, Trigger};
use crate::ghl::Contact;

impl Occurrence {
    /// A contact-only occurrence (used for backfills of `GET /contacts/{id}` records):
    /// the change is the contact's creation or last update, whichever the trigger
    /// is about.
    pub fn for_contact(
        trigger: Trigger,
        location_id: &str,
        contact: &Contact,
        now: DateTime<Utc>,
    ) -> Occurrence {
        let mut one = Occurrence::blank(trigger, now);
        one.refill_for_contact(trigger, location_id, contact, None, now);
        one
    }

    /// An occurrence with nothing in it yet, to be refilled.
    fn blank(trigger: Trigger, at: DateTime<Utc>) -> Occurrence {
        Occurrence {
            trigger,
            location_id: String::new(),
            contact_id: String::new(),
            entity: None,
            tag: None,
            change: String::new(),
            at,
        }
    }

    /// [`Occurrence::for_contact`] written over `self`, into the strings it has; with
    /// `tag`, the occurrence of that tag (its change is the tag, not a time).
    fn refill_for_contact(
        &mut self,
        trigger: Trigger,
        location_id: &str,
        contact: &Contact,
        with_tag: Option<&str>,
        now: DateTime<Utc>,
    ) {
        let (stamp, at) = match trigger {
            Trigger::ContactUpdated => (contact.date_updated.as_deref(), contact.date_updated()),
            _ => (contact.date_added.as_deref(), contact.date_added()),
        };
        // Every field named, so one added later cannot be left over from before.
        let Occurrence {
            trigger: was,
            location_id: location,
            contact_id,
            entity,
            tag,
            change,
            at: when,
        } = self;
        *was = trigger;
        location.clear();
        location.push_str(contact.location_id.as_deref().unwrap_or(location_id));
        contact_id.clear();
        contact_id.push_str(&contact.id);
        *entity = None;
        change.clear();
        change.extend([trigger.name(), ":"]);
        match with_tag {
            Some(name) => {
                change.push_str(&name.to_lowercase());
                let kept = tag.get_or_insert_default();
                kept.clear();
                kept.push_str(name);
            }
            None => {
                change.push_str(stamp.unwrap_or_default());
                *tag = None;
            }
        }
        *when = at.unwrap_or(now);
    }

    /// The occurrences of a backfilled contact: for tag triggers one per tag it
    /// carries (a backfill has no history, so each counts as added or removed);
    /// otherwise one, as [`Occurrence::for_contact`], and for a new contact with
    /// `with_tags`, one "tag added" per tag too (a new contact had no tags before).
    pub fn for_contact_record(
        trigger: Trigger,
        location_id: &str,
        contact: &Contact,
        with_tags: bool,
        now: DateTime<Utc>,
    ) -> Vec<Occurrence> {
        let mut all = Vec::new();
        Occurrence::refill_for_contact_record(
            &mut all,
            (trigger, with_tags),
            location_id,
            contact,
            now,
        );
        all
    }

    /// [`Occurrence::for_contact_record`] written into `all`, reusing the strings of
    /// the occurrences already there (a backfill makes them afresh for every contact).
    pub fn refill_for_contact_record(
        all: &mut Vec<Occurrence>,
        (trigger, with_tags): (Trigger, bool),
        location_id: &str,
        contact: &Contact,
        now: DateTime<Utc>,
    ) {
        let tagged = matches!(trigger, Trigger::TagAdded | Trigger::TagRemoved);
        let created_tags = trigger == Trigger::ContactCreated && with_tags;
        let count = match (tagged, created_tags) {
            (true, _) => contact.tags.len(),
            (false, true) => 1 + contact.tags.len(),
            (false, false) => 1,
        };
        all.resize_with(count, || Occurrence::blank(trigger, now));
        for (i, one) in all.iter_mut().enumerate() {
            let (kind, tag) = match (tagged, i) {
                (true, _) => (trigger, contact.tags.get(i)),
                (false, 0) => (trigger, None),
                (false, _) => (Trigger::TagAdded, contact.tags.get(i - 1)),
            };
            one.refill_for_contact(kind, location_id, contact, tag.map(String::as_str), now);
        }
    }

    /// The changes of a listed contact that reconciliation finds against
    /// `previous`, its tags as last seen (`None`: never seen): its creation, if it
    /// was created at or after `since` (as a webhook tells it: with each of its
    /// tags added), and the tags added or removed since. A contact never seen and
    /// older than `since` has no known past: its tags become its baseline, and it
    /// gives none. A tag change is identified by the contact's change time, so a
    /// change listed twice is one change.
    pub fn missed(
        location_id: &str,
        contact: &Contact,
        previous: Option<&[String]>,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Vec<Occurrence> {
        let created = previous.is_none() && contact.date_added().is_some_and(|at| at >= since);
        let mut out = Vec::new();
        if created {
            out.push(Occurrence::for_contact(
                Trigger::ContactCreated,
                location_id,
                contact,
                now,
            ));
        }
        let previous = match previous {
            Some(seen) => seen,
            None if created => &[],
            None => return out,
        };
        let delivery = format!(
            "listed:{}",
            contact.date_updated.as_deref().unwrap_or_default()
        );
        let at = contact.date_updated().unwrap_or(now);
        out.extend(tag_changes(location_id, contact, previous, &delivery, at));
        out
    }
}

/// The tags added and removed since `previous`: each change identified by the tag
/// and the `delivery` that told of it.
pub(super) fn tag_changes(
    location: &str,
    contact: &Contact,
    previous: &[String],
    delivery: &str,
    at: DateTime<Utc>,
) -> Vec<Occurrence> {
    let seen = |list: &[String], tag: &str| list.iter().any(|t| t.eq_ignore_ascii_case(tag));
    let added = contact
        .tags
        .iter()
        .filter(|t| !seen(previous, t))
        .map(|t| (Trigger::TagAdded, t));
    let removed = previous
        .iter()
        .filter(|t| !seen(&contact.tags, t))
        .map(|t| (Trigger::TagRemoved, t));
    added
        .chain(removed)
        .map(|(trigger, tag)| Occurrence {
            trigger,
            location_id: location.to_owned(),
            contact_id: contact.id.clone(),
            entity: None,
            tag: Some(tag.clone()),
            change: format!("{}:{}@{delivery}", trigger.name(), tag.to_lowercase(),),
            at,
        })
        .collect()
}
