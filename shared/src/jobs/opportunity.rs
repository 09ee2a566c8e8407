//! An opportunity as a listing found it, queued for enrichment
//! ([`OpportunityJob`]): changed since it was last seen (reconciliation), or with
//! its history in a period (a backfill); and what the stages remember of each
//! opportunity between jobs ([`SeenOpportunity`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::among;
use crate::ghl::opportunities_api::Opportunity;
use crate::ghl::parse_timestamp;

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
/// window, never seen), or a backfill found with history in its period, for
/// enrichment to tell as the webhooks GHL would have sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpportunityJob {
    /// `{location}:{contact}:opportunity:{id}:{stage}:{status}`: one per state
    /// (a backfill's adds its listing).
    pub key: String,
    pub received_at: DateTime<Utc>,
    pub location_id: String,
    /// The start of the window it was listed in.
    pub since: DateTime<Utc>,
    pub opportunity: Opportunity,
    /// Set by a backfill: what to tell, instead of the changes since last seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill: Option<Backfilled>,
}

/// What a backfill has an opportunity job tell: webhooks of its history (by
/// kind, [`OpportunityJob::history`]), and the rules whose events it sends (all
/// when empty; `None`: none, the job only brings the audiences in step).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backfilled {
    pub told: Vec<String>,
    pub rules: Option<Vec<String>>,
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
            backfill: None,
        }
    }

    /// The job of a backfill's `listing` (its period) for one opportunity.
    pub fn backfilled(
        location_id: &str,
        opportunity: Opportunity,
        (listing, since): (&str, DateTime<Utc>),
        backfill: Backfilled,
        received_at: DateTime<Utc>,
    ) -> Self {
        let job = OpportunityJob::new(location_id, opportunity, since, received_at);
        let part = if backfill.rules.is_some() {
            ""
        } else {
            ":audiences"
        };
        OpportunityJob {
            key: format!("{}:{listing}{part}", job.key),
            backfill: Some(backfill),
            ..job
        }
    }

    /// Whether the job sends `rule`'s events (a backfill names the rules it sends).
    pub fn sends(&self, rule: &str) -> bool {
        match &self.backfill {
            None => true,
            Some(b) => b.rules.as_ref().is_some_and(|rules| among(rules, rule)),
        }
    }

    /// The webhooks that tell of the opportunity's history from `since` to `until`
    /// (now when `None`), by kind, as GHL sent them: its creation; its status
    /// unless open, changed then (or, with no time of change, created then); its
    /// stage, changed then and after its creation.
    pub fn history(&self, since: DateTime<Utc>, until: Option<DateTime<Utc>>) -> Vec<&'static str> {
        let o = &self.opportunity;
        let at = |t: &Option<String>| t.as_deref().and_then(parse_timestamp);
        let within = |t: Option<DateTime<Utc>>| {
            t.is_some_and(|t| t >= since && until.is_none_or(|until| t <= until))
        };
        let created = at(&o.created_at);
        let mut kinds = Vec::new();
        if within(created) {
            kinds.push("OpportunityCreate");
        }
        let status_at = at(&o.last_status_change_at).or(created);
        if o.status.as_deref().is_some_and(|s| s != "open") && within(status_at) {
            kinds.push("OpportunityStatusUpdate");
        }
        let stage_at = at(&o.last_stage_change_at);
        if o.pipeline_stage_id.is_some() && within(stage_at) && stage_at > created {
            kinds.push("OpportunityStageUpdate");
        }
        kinds
    }

    /// The webhook of `kind` GHL would have sent for the opportunity, timed at
    /// the change it tells of.
    pub fn webhook(&self, kind: &str) -> Value {
        let listed = &self.opportunity;
        let at = match kind {
            "OpportunityStatusUpdate" => listed.last_status_change_at.as_ref(),
            "OpportunityStageUpdate" => listed.last_stage_change_at.as_ref(),
            _ => listed.created_at.as_ref(),
        };
        let mut body = serde_json::to_value(listed).unwrap_or_else(|_| json!({}));
        body["type"] = json!(kind);
        body["locationId"] = json!(self.location_id);
        body["webhookId"] = json!(format!("{}:{kind}", self.key));
        body["timestamp"] = json!(at.or(listed.created_at.as_ref()));
        body["dateAdded"] = json!(listed.created_at);
        body
    }

    /// The kinds of webhook to tell, against the opportunity as last seen (`was`).
    pub fn told(&self, was: Option<&SeenOpportunity>) -> Vec<String> {
        match &self.backfill {
            Some(backfill) => backfill.told.clone(),
            None => {
                let created = self
                    .opportunity
                    .created_at
                    .as_deref()
                    .and_then(parse_timestamp);
                let seen = SeenOpportunity::of(&self.opportunity);
                SeenOpportunity::changes(was, &seen, created, self.since)
                    .into_iter()
                    .map(str::to_owned)
                    .collect()
            }
        }
    }
}
