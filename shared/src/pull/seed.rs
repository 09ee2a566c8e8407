//! `ghl-capi reconcile --seed`: a location's baseline. Which tag a webhook added
//! is knowable only against the tags last seen; a contact never seen has none, so
//! its first tag webhook can only record them. One full listing records every
//! contact's tags as enrichment remembers them, sending nothing, so the first
//! webhook after an install fires its tag rules. A contact the pipeline has seen
//! already keeps what its webhooks said. Once the listing is complete, the location
//! counts as seeded.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ghl::GhlError;
use crate::ghl::budget::Use;
use crate::ghl::client::GhlClient;
use crate::ghl::tokens::TokenSource;
use crate::ports::state::{StateError, StateStore};
use crate::pull::listing::Lister;

/// How long a location's seeding is remembered.
const SEEDED_FOR: Duration = Duration::from_secs(3 * 366 * 24 * 3600);

/// Why a seeding stopped.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("GHL failed the listing: {0}")]
    Ghl(#[source] GhlError),
    #[error("cannot record the baseline: {0}")]
    State(#[source] StateError),
}

/// What a seeding did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seeded {
    pub at: DateTime<Utc>,
    /// Contacts listed.
    pub listed: u64,
    /// Contacts whose tags became their baseline.
    pub recorded: u64,
    /// Contacts the pipeline had seen already: left as their webhooks said.
    pub known: u64,
    /// Contacts beyond the search's reach: not listed.
    #[serde(default)]
    pub beyond: u64,
}

/// The state key of `location`'s seeding.
fn seeded_key(location: &str) -> String {
    format!("seeded#{location}")
}

/// Lists every contact of `location`, asking at most once every `pace`, and
/// records the tags of those never seen, telling `progress` after each page how
/// many were listed of how many.
pub async fn seed<T: TokenSource>(
    ghl: &GhlClient<T>,
    state: &impl StateStore,
    location: &str,
    now: DateTime<Utc>,
    pace: Duration,
    progress: &mut impl FnMut(u64, Option<u64>),
) -> Result<Seeded, SeedError> {
    let mut seeded = Seeded {
        at: now,
        ..Seeded::default()
    };
    let mut pages = Lister::new(ghl, (location, Use::Reconcile), Vec::new()).paced(pace);
    while let Some(contacts) = pages.next_page().await.map_err(SeedError::Ghl)? {
        for contact in contacts {
            let known = state
                .tags(location, &contact.id)
                .await
                .map_err(SeedError::State)?;
            if known.is_some() {
                seeded.known += 1;
                continue;
            }
            state
                .set_tags(location, &contact.id, &contact.tags)
                .await
                .map_err(SeedError::State)?;
            seeded.recorded += 1;
        }
        progress(pages.listed, pages.total);
    }
    seeded.listed = pages.listed;
    seeded.beyond = pages.beyond;
    let text = crate::ports::text(&seeded);
    state
        .set_record(&seeded_key(location), &text, SEEDED_FOR)
        .await
        .map_err(SeedError::State)?;
    crate::telemetry::baseline_taken(location);
    Ok(seeded)
}

/// `location`'s last complete seeding, if it has one.
pub async fn seeded(state: &impl StateStore, location: &str) -> Result<Option<Seeded>, StateError> {
    let text = state.record(&seeded_key(location)).await?;
    Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
}
