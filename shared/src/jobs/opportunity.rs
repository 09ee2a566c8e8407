//! An opportunity as reconciliation listed it, changed since it was last seen,
//! queued for enrichment ([`OpportunityJob`]); and what the stages remember of
//! each opportunity between jobs ([`SeenOpportunity`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ghl::opportunities_api::Opportunity;

/// The stage and status an opportunity was last seen in: remembered from its
/// webhooks and from reconciliation's listings, under [`SeenOpportunity::key`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeenOpportunity {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

impl SeenOpportunity {
    /// The state key of opportunity `id` of `location`.
    pub fn key(location: &str, id: &str) -> String {
        format!("opportunity#{location}#{id}")
    }

    /// The webhooks that tell of `now`'s difference from `was` (`None`: never seen),
    /// by kind: a new opportunity's creation (created at or after `since`, with its
    /// status unless open), a changed status, a changed stage. A field either side
    /// does not know is not compared.
    pub fn changes(
        was: Option<&SeenOpportunity>,
        now: &SeenOpportunity,
        created: Option<DateTime<Utc>>,
        since: DateTime<Utc>,
    ) -> Vec<&'static str> {
        let differs =
            |a: &Option<String>, b: &Option<String>| matches!((a, b), (Some(a), Some(b)) if a != b);
        let mut kinds = Vec::new();
        match was {
            None if created.is_some_and(|at| at >= since) => {
                kinds.push("OpportunityCreate");
                if now.status.as_deref().is_some_and(|s| s != "open") {
                    kinds.push("OpportunityStatusUpdate");
                }
            }
            None => {}
            Some(was) => {
                if differs(&was.status, &now.status) {
                    kinds.push("OpportunityStatusUpdate");
                }
                if differs(&was.stage, &now.stage) {
                    kinds.push("OpportunityStageUpdate");
                }
            }
        }
        kinds
    }

    /// As the search lists `opportunity`.
    pub fn of(opportunity: &Opportunity) -> Self {
        SeenOpportunity {
            stage: opportunity.pipeline_stage_id.clone(),
            status: opportunity.status.clone(),
        }
    }
}

/// An opportunity reconciliation found changed since last seen (or created in its
/// window, never seen), for enrichment to tell as the webhooks GHL would have sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpportunityJob {
    /// `{location}:{contact}:opportunity:{id}:{stage}:{status}`: one per state.
    pub key: String,
    pub received_at: DateTime<Utc>,
    pub location_id: String,
    /// The start of the window it was listed in.
    pub since: DateTime<Utc>,
    pub opportunity: Opportunity,
}

impl OpportunityJob {
    pub fn new(
        location_id: &str,
        opportunity: Opportunity,
        since: DateTime<Utc>,
        received_at: DateTime<Utc>,
    ) -> Self {
        let part = |v: &Option<String>| v.clone().unwrap_or_default();
        OpportunityJob {
            key: format!(
                "{location_id}:{}:opportunity:{}:{}:{}",
                part(&opportunity.contact_id),
                opportunity.id,
                part(&opportunity.pipeline_stage_id),
                part(&opportunity.status)
            ),
            received_at,
            location_id: location_id.to_owned(),
            since,
            opportunity,
        }
    }
}
