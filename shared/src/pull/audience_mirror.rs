//! `ghl-capi audience sync --replace`: an audience's whole list replaced with its
//! members as GHL lists them now, in one `usersreplace` session
//! ([`crate::dispatch::replace`]), which does not reset its ad sets' learning as
//! adds and removes do.
//!
//! Every location the audience takes is listed first ([`list_members`]); then the
//! replace runs, the audience's own changes held meanwhile; then the state store is
//! brought in step: each contact with no change of its own in flight is recorded as
//! the replace left it (member or not, with its row), by a compare-and-set on its
//! membership, so one that changed meanwhile keeps its change, which is sent after
//! the replace, in order.
//!
//! An audience whose mapping entry says `mirror_every` is mirrored so on the
//! reconciliation's schedule ([`mirror_due`]): the `reconcile` function and
//! `serve`'s reconciliation run it when the last mirror is that old.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::capi::AudiencesApi;
use crate::capi::audience::Row;
use crate::dispatch::replace::{ReplaceError, ReplacePolicy, Replaced, Step, replace};
use crate::ghl::client::GhlClient;
use crate::ghl::tokens::TokenSource;
use crate::mapping::Audience;
use crate::mapping::audience::REMEMBERED_FOR;
use crate::mapping::membership::{Member, applied_key, member_key};
use crate::ports::state::{StateError, StateStore};
use crate::pull::audience_sync::{SyncError, list_members};

/// How long the applied marks the mirror writes are kept: as the membership.
const APPLIED_FOR: Duration = REMEMBERED_FOR;

/// Why a mirror did not complete.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error(transparent)]
    Listing(#[from] SyncError),
    #[error(transparent)]
    Replace(#[from] ReplaceError),
    #[error("cannot record the audience's members after the replace: {0}")]
    State(#[from] StateError),
}

/// How far a mirror is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MirrorStep<'a> {
    /// Listing `location`: `listed` contacts of `total`.
    Listing {
        location: &'a str,
        listed: u64,
        total: Option<u64>,
    },
    Replacing(Step),
}

/// What a mirror did.
#[derive(Debug, Clone, PartialEq)]
pub struct Mirrored {
    /// Contacts GHL listed, and those of them that belong.
    pub listed: u64,
    pub members: u64,
    /// Members Meta could not match (no e-mail or phone): not sent.
    pub unusable: u64,
    /// Contacts beyond the search's reach, not listed.
    pub beyond: u64,
    pub replaced: Replaced,
    /// Contacts whose membership was recorded as the replace left it.
    pub recorded: u64,
    /// Contacts with a change of their own in flight: it follows the replace.
    pub in_flight: u64,
}

/// A contact of a location.
type Whom = (String, String);

/// Each member record under `prefix` of `location`, by contact, with its text.
async fn records(
    state: &impl StateStore,
    prefix: &str,
) -> Result<BTreeMap<String, String>, StateError> {
    Ok(state
        .records_under(prefix)
        .await?
        .into_iter()
        .filter_map(|(key, text)| Some((key.strip_prefix(prefix)?.to_owned(), text)))
        .collect())
}

/// Replaces `audience`'s list with its members in `locations` as GHL lists them at
/// `now`, and records what the replace left.
pub async fn mirror<T: TokenSource>(
    ghl: &GhlClient<T>,
    state: &impl StateStore,
    api: &impl AudiencesApi,
    audience: &Audience,
    (locations, now): (&[String], DateTime<Utc>),
    policy: ReplacePolicy,
    progress: &mut impl FnMut(MirrorStep<'_>),
) -> Result<Mirrored, MirrorError> {
    let mut wanted: BTreeMap<Whom, Row> = BTreeMap::new();
    let (mut listed, mut members, mut unusable, mut beyond) = (0, 0, 0, 0);
    // What the state store says before the replace: who was a member, and how far
    // each contact's changes were applied.
    let mut was: BTreeMap<Whom, String> = BTreeMap::new();
    let mut applied: BTreeMap<Whom, u64> = BTreeMap::new();
    for location in locations {
        let found = list_members(ghl, audience, location, now, &mut |n, total| {
            progress(MirrorStep::Listing {
                location,
                listed: n,
                total,
            });
        })
        .await?;
        (listed, beyond) = (listed + found.listed, beyond + found.beyond);
        for (id, contact) in found.members {
            members += 1;
            let row = audience.row(&contact);
            if row.is_usable() {
                wanted.insert((location.clone(), id), row);
            } else {
                unusable += 1;
            }
        }
        let whom = |id: String| (location.clone(), id);
        let prefix = member_key(&audience.name, location, "");
        was.extend(
            records(state, &prefix)
                .await?
                .into_iter()
                .map(|(id, t)| (whom(id), t)),
        );
        let prefix = applied_key(&audience.name, location, "");
        applied.extend(
            records(state, &prefix)
                .await?
                .into_iter()
                .filter_map(|(id, t)| Some((whom(id), t.parse().ok()?))),
        );
    }
    let rows: Vec<Row> = wanted.values().cloned().collect();
    let replaced = replace(api, state, audience, &rows, policy, &mut |step| {
        progress(MirrorStep::Replacing(step));
    })
    .await?;
    let mut mirrored = Mirrored {
        listed,
        members,
        unusable,
        beyond,
        replaced,
        recorded: 0,
        in_flight: 0,
    };
    let whom: BTreeSet<&Whom> = wanted.keys().chain(was.keys()).collect();
    for who in whom {
        let text = was.get(who);
        let before: Member = text
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default();
        if applied.get(who).copied().unwrap_or(0) < before.seq {
            // A change of its own is on its way to Meta: it follows the replace.
            mirrored.in_flight += 1;
            continue;
        }
        let row = wanted.get(who).cloned();
        if before.member == row.is_some() && before.row == row {
            continue;
        }
        let after = Member {
            member: row.is_some(),
            row,
            seq: before.seq + 1,
        };
        let (location, contact) = who;
        let key = member_key(&audience.name, location, contact);
        let swapped = state
            .swap_record(
                &key,
                text.map(String::as_str),
                &crate::ports::text(&after),
                REMEMBERED_FOR,
            )
            .await?;
        if !swapped {
            mirrored.in_flight += 1;
            continue;
        }
        let mark = applied_key(&audience.name, location, contact);
        state
            .set_record(&mark, &after.seq.to_string(), APPLIED_FOR)
            .await?;
        mirrored.recorded += 1;
    }
    Ok(mirrored)
}

/// The state key of the time `audience` was last mirrored.
fn mirrored_key(audience: &str) -> String {
    format!("mirrored#{audience}")
}

/// Mirrors each audience of `audiences` whose `mirror_every` has passed since its
/// last mirror, each through the locations it takes (all of `connected` when it
/// names none). Each outcome is logged and counted (`AudienceMirrors`); a failed
/// mirror is tried again at the next run.
pub async fn mirror_due<T: TokenSource>(
    ghl: &GhlClient<T>,
    state: &impl StateStore,
    api: &impl AudiencesApi,
    audiences: &[Audience],
    connected: &[String],
    now: DateTime<Utc>,
    policy: ReplacePolicy,
) -> Vec<(String, Result<Mirrored, MirrorError>)> {
    let mut done = Vec::new();
    for audience in audiences {
        let Some(every) = audience.mirror_every else {
            continue;
        };
        let key = mirrored_key(&audience.name);
        let last = match state.record(&key).await {
            Ok(text) => text.and_then(|t| DateTime::parse_from_rfc3339(&t).ok()),
            Err(e) => {
                done.push((audience.name.clone(), Err(MirrorError::State(e))));
                continue;
            }
        };
        let due = last.is_none_or(|at| (now - at.to_utc()).to_std().unwrap_or_default() >= every);
        if !due {
            continue;
        }
        let locations = if audience.locations.is_empty() {
            connected
        } else {
            &audience.locations[..]
        };
        let outcome = mirror(
            ghl,
            state,
            api,
            audience,
            (locations, now),
            policy,
            &mut |_| {},
        )
        .await;
        match &outcome {
            Ok(m) => {
                tracing::info!(
                    audience = audience.name,
                    members = m.replaced.received,
                    recorded = m.recorded,
                    in_flight = m.in_flight,
                    session_id = m.replaced.session_id,
                    "audience mirrored: its list replaced with GHL's members"
                );
                crate::telemetry::audience_mirror(&audience.name, true);
                let kept = state.set_record(&key, &now.to_rfc3339(), every * 2).await;
                if let Err(e) = kept {
                    tracing::warn!(audience = audience.name, error = %crate::error::chain(&e), "cannot record the mirror's time: it runs again next time");
                }
            }
            Err(e) => {
                tracing::error!(audience = audience.name, error = %crate::error::chain(e), alert = "audience_mirror_failed", "the audience's scheduled mirror failed: it is tried again at the next run");
                crate::telemetry::audience_mirror(&audience.name, false);
            }
        }
        done.push((audience.name.clone(), outcome));
    }
    done
}
