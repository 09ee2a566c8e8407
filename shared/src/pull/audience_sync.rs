//! `ghl-capi audience sync`: bring one audience of one location in step with GHL.
//!
//! GHL's contact search lists the contacts that should be members (by each of
//! the audience's tags, page by page ([`crate::pull::listing`]), through the
//! budget of a backfill ([`crate::ghl::budget`]); GHL's
//! filter semantics are not documented, so every contact listed is judged again
//! here, and a refused filter falls back to listing every contact). The state
//! store says who is a member now. Each listed member, and each member no longer
//! listed, becomes a [`ListedJob`] on the enrichment queue: the pipeline sends the
//! difference, in order with the webhooks' own changes, held through outages as
//! any change is.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::ghl::budget::Use;
use crate::ghl::client::GhlClient;
use crate::ghl::tokens::TokenSource;
use crate::ghl::{Contact, GhlError};
use crate::jobs::ListedJob;
use crate::mapping::Audience;
use crate::mapping::membership::{Member, Wanted, applied_key, change, member_key};
use crate::ports::state::{StateError, StateStore};
use crate::pull::listing::Lister;

/// Why a sync could not run.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(
        "audience {audience}'s conditions read {entity} changes, which GHL's contact search \
         cannot list: its members follow those changes as they happen"
    )]
    NotListable {
        audience: String,
        entity: &'static str,
    },
    #[error("GHL failed the listing: {0}")]
    Ghl(#[source] GhlError),
    #[error("cannot read the audience's members: {0}")]
    State(#[source] StateError),
}

/// What the listing found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Listed {
    /// The contacts that belong, by id.
    pub members: BTreeMap<String, Contact>,
    /// Contacts GHL returned (the same one under two tags counts once).
    pub listed: u64,
    /// Whether GHL's tag filter was used (else every contact was listed).
    pub filtered: bool,
    /// Contacts beyond the search's reach (10,000 per search, without a cursor):
    /// not listed.
    pub beyond: u64,
}

/// Lists `location`'s contacts that belong to `audience` (judged at `now`),
/// telling `progress` after each page how many were listed of how many.
pub async fn list_members<T: TokenSource>(
    ghl: &GhlClient<T>,
    audience: &Audience,
    location: &str,
    now: DateTime<Utc>,
    progress: &mut impl FnMut(u64, Option<u64>),
) -> Result<Listed, SyncError> {
    if let Some(entity) = audience.entity() {
        return Err(SyncError::NotListable {
            audience: audience.name.clone(),
            entity,
        });
    }
    let by_tag: Vec<Vec<Value>> = audience
        .tags()
        .iter()
        .map(|t| vec![json!({"field": "tags", "operator": "eq", "value": t})])
        .collect();
    match list(ghl, audience, location, now, progress, &by_tag).await {
        // The filter is not one GHL takes: every contact, judged here.
        Err(GhlError::Rejected { .. }) if !by_tag.is_empty() => {
            tracing::warn!(
                audience = audience.name,
                location_id = location,
                "GHL refused the tag filter: listing every contact instead"
            );
            list(ghl, audience, location, now, progress, &[]).await
        }
        listed => listed,
    }
    .map_err(SyncError::Ghl)
}

/// The contacts each search of `searches` lists (every contact when there are
/// none) that belong to `audience`, each counted once.
async fn list<T: TokenSource>(
    ghl: &GhlClient<T>,
    audience: &Audience,
    location: &str,
    now: DateTime<Utc>,
    progress: &mut impl FnMut(u64, Option<u64>),
    searches: &[Vec<Value>],
) -> Result<Listed, GhlError> {
    let mut found = Listed {
        filtered: !searches.is_empty(),
        ..Listed::default()
    };
    let everyone = [Vec::new()];
    let searches = if searches.is_empty() {
        &everyone[..]
    } else {
        searches
    };
    let mut seen = BTreeSet::new();
    for filters in searches {
        let mut pages = Lister::new(ghl, (location, Use::Backfill), filters.clone());
        while let Some(contacts) = pages.next_page().await? {
            for contact in contacts {
                if !seen.insert(contact.id.clone()) {
                    continue;
                }
                found.listed += 1;
                if audience.judge(&contact, &[], location, now) == Some(true) {
                    found.members.insert(contact.id.clone(), contact);
                }
            }
            progress(found.listed, pages.total);
        }
        found.beyond += pages.beyond;
    }
    Ok(found)
}

/// What a sync will do.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Members GHL lists that the audience lacks (or holds with an old row).
    pub join: Vec<Contact>,
    /// Members GHL lists, already in as they are.
    pub unchanged: Vec<Contact>,
    /// Members the listing no longer returned: read again, and most likely out.
    pub leave: Vec<String>,
    /// Members Meta could not match (no e-mail or phone): not sent.
    pub unusable: u64,
    /// Contacts whose applied changes lag their membership (a change lost, or
    /// lettered): each is sent as it stands, whatever else the sync finds.
    pub gaps: BTreeSet<String>,
}

/// Compares the listing with the audience's members in the state store.
pub async fn plan(
    state: &impl StateStore,
    audience: &Audience,
    location: &str,
    listed: Listed,
) -> Result<Plan, SyncError> {
    let prefix = member_key(&audience.name, location, "");
    let now: BTreeMap<String, Member> = state
        .records_under(&prefix)
        .await
        .map_err(SyncError::State)?
        .into_iter()
        .filter_map(|(key, text)| {
            let member: Member = serde_json::from_str(&text).ok()?;
            Some((key.strip_prefix(&prefix)?.to_owned(), member))
        })
        .collect();
    let applied_prefix = applied_key(&audience.name, location, "");
    let applied: BTreeMap<String, u64> = state
        .records_under(&applied_prefix)
        .await
        .map_err(SyncError::State)?
        .into_iter()
        .filter_map(|(key, text)| {
            Some((
                key.strip_prefix(&applied_prefix)?.to_owned(),
                text.parse().ok()?,
            ))
        })
        .collect();
    let mut plan = Plan {
        gaps: now
            .iter()
            .filter(|(id, member)| applied.get(*id).copied().unwrap_or(0) < member.seq)
            .map(|(id, _)| id.clone())
            .collect(),
        ..Plan::default()
    };
    for (id, contact) in listed.members {
        let row = audience.row(&contact);
        if !row.is_usable() {
            plan.unusable += 1;
            continue;
        }
        let was = now.get(&id).cloned().unwrap_or_default();
        match change(&was, &Wanted::Member(row)) {
            Some(_) => plan.join.push(contact),
            None => plan.unchanged.push(contact),
        }
    }
    let listed: BTreeSet<&str> = plan
        .join
        .iter()
        .chain(&plan.unchanged)
        .map(|c| c.id.as_str())
        .collect();
    plan.leave = now
        .into_iter()
        .filter(|(id, member)| member.member && !listed.contains(id.as_str()))
        .map(|(id, _)| id)
        .collect();
    Ok(plan)
}

impl Plan {
    /// The jobs that carry it out, for enrichment: each joining member as listed,
    /// each leaving one by id, and each other contact with a gap in its changes
    /// (as listed, or by id), those with a gap sent as they stand. `listing` names
    /// this sync in their keys.
    pub fn jobs(&self, listing: &str, location: &str, now: DateTime<Utc>) -> Vec<ListedJob> {
        let listed = self.join.iter().chain(&self.unchanged);
        let joins = listed
            .filter(|c| self.join.contains(c) || self.gaps.contains(&c.id))
            .map(|c| ListedJob::new(listing, location, &c.id, Some(c.clone()), now));
        let named: BTreeSet<&str> = self
            .join
            .iter()
            .chain(&self.unchanged)
            .map(|c| c.id.as_str())
            .collect();
        let leaves = self.leave.iter().chain(
            self.gaps
                .iter()
                .filter(|id| !named.contains(id.as_str()) && !self.leave.contains(id)),
        );
        let leaves = leaves.map(|id| ListedJob::new(listing, location, id, None, now));
        joins
            .chain(leaves)
            .map(|mut job| {
                job.resync = self.gaps.contains(&job.contact_id);
                job
            })
            .collect()
    }
}
