//! A location's names (pipelines and stages, custom fields, calendars) for rules
//! written in names: read from GHL at most once an hour per location and kept in
//! the state store, read again sooner when a change names an id they do not know
//! (a stage added since), at most every few minutes. A location whose names GHL
//! will not list (a scope not granted) runs its rules on ids alone, said once per
//! batch; a GHL that is down holds the job, unless names read before serve.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Enricher;
use crate::error::chain;
use crate::ghl::names::LocationNames;
use crate::ghl::{GhlError, GhlReader};
use crate::mapping::Occurrence;
use crate::ports::state::StateStore;

/// How long a location's names are taken as read.
pub const NAMES_FRESH: chrono::Duration = chrono::Duration::hours(1);
/// How soon names that lack an id a change names are read again.
pub const NAMES_RECHECK: chrono::Duration = chrono::Duration::minutes(5);
/// How long they are kept (stale ones serve while GHL is down).
const NAMES_KEPT: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// The state record of a location's names.
pub fn names_key(location: &str) -> String {
    format!("names#{location}")
}

#[derive(Serialize, Deserialize)]
struct Kept {
    read_at: DateTime<Utc>,
    names: LocationNames,
}

impl<G: GhlReader, S: StateStore> Enricher<'_, G, S> {
    /// `location`'s names for `occ`'s rules; `None` when GHL will not list them.
    pub(super) async fn names(
        &mut self,
        location: &str,
        occ: &Occurrence,
        now: DateTime<Utc>,
    ) -> Result<Option<LocationNames>, GhlError> {
        let ids = occ.named_ids();
        if let Some(Some(names)) = self.fetched.names.get(location)
            && names.knows(&ids)
        {
            return Ok(Some(names.clone()));
        }
        let key = names_key(location);
        let kept = match self.state.record(&key).await {
            Ok(text) => text.and_then(|t| serde_json::from_str::<Kept>(&t).ok()),
            Err(e) => {
                tracing::warn!(location_id = location, error = %chain(&e), "cannot read the location's names kept: reading them from GHL");
                None
            }
        };
        if let Some(k) = &kept {
            let age = now - k.read_at;
            if age < NAMES_FRESH && (age < NAMES_RECHECK || k.names.knows(&ids)) {
                self.fetched
                    .names
                    .insert(location.to_owned(), Some(k.names.clone()));
                return Ok(Some(k.names.clone()));
            }
        }
        let names = match self.fetched.ghl().names(location).await {
            Ok(names) => {
                let text = crate::ports::text(&Kept {
                    read_at: now,
                    names: names.clone(),
                });
                if let Err(e) = self.state.set_record(&key, &text, NAMES_KEPT).await {
                    tracing::warn!(location_id = location, error = %chain(&e), "cannot keep the location's names: read again next time");
                }
                Some(names)
            }
            Err(
                e @ (GhlError::NotFound | GhlError::Forbidden { .. } | GhlError::Rejected { .. }),
            ) => {
                tracing::warn!(
                    location_id = location,
                    error = %chain(&e),
                    "GHL will not list this location's pipelines, custom fields or calendars: its rules run on ids alone (grant opportunities.readonly, locations/customFields.readonly and calendars.readonly)"
                );
                crate::telemetry::skipped("names_unreadable");
                kept.map(|k| k.names)
            }
            // Names read before serve while GHL is down; with none, the job waits.
            Err(e) => match kept {
                Some(k) => Some(k.names),
                None => return Err(e),
            },
        };
        self.fetched
            .names
            .insert(location.to_owned(), names.clone());
        Ok(names)
    }
}
