//! A workflow call that declares the trigger it tells of (its Custom Data
//! `trigger`), told as that trigger's webhook from the opportunity or appointment
//! it carries ([`WorkflowCall::webhook`]), so the trigger's rules fire from it as
//! from GHL's webhook of the same change.

use chrono::{DateTime, Utc};

use super::Trigger;
use crate::ghl::webhook::Webhook;
use crate::ghl::workflow::WorkflowCall;

/// Why a call's declared trigger cannot be told: intake refuses such calls, so
/// only a build that reads calls otherwise meets one here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TriggerError {
    #[error("trigger {0:?} is not one a workflow call can tell ({list})", list = tellable().join(", "))]
    Untellable(String),
    #[error(
        "trigger {trigger} needs the {entity} the call does not carry (run the workflow on an {entity} trigger)"
    )]
    Missing {
        trigger: &'static str,
        entity: &'static str,
    },
    #[error("the call's {entity} does not read as {trigger}'s webhook: {why}")]
    Unreadable {
        trigger: &'static str,
        entity: &'static str,
        why: String,
    },
}

impl super::Occurrence {
    /// A workflow call's occurrences, as enrichment (and `mapping preview`) reads
    /// it: its `workflow.fired` occurrence ([`super::Occurrence::for_workflow`]),
    /// and the declared trigger's, told as its webhook (returned too, for what a
    /// webhook leaves to remember); the call's event id is `event_id`, its time the
    /// trigger's when it says, else `received_at`.
    pub fn of_workflow_call(
        call: &WorkflowCall,
        event_id: &str,
        received_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(Vec<super::Occurrence>, Option<Webhook>), TriggerError> {
        let at = call
            .occurred_at
            .as_deref()
            .and_then(crate::ghl::parse_timestamp)
            .unwrap_or(received_at);
        let mut occurrences = vec![super::Occurrence::for_workflow(call, event_id, received_at)];
        let Some((trigger, webhook)) = declared(call, event_id, at)? else {
            return Ok((occurrences, None));
        };
        let (told, _) = super::Occurrence::from_webhook(&webhook, None, now);
        occurrences.extend(told.into_iter().filter(|o| o.trigger == trigger));
        Ok((occurrences, Some(webhook)))
    }
}

/// The triggers a workflow call can declare, by the names mapping files use.
pub fn tellable() -> Vec<&'static str> {
    Trigger::ALL
        .iter()
        .filter(|(t, _)| t.told_by_workflow().is_some())
        .map(|(_, name)| *name)
        .collect()
}

/// The trigger `call` declares, with the webhook it is told as; `None` when it
/// declares none.
pub fn declared(
    call: &WorkflowCall,
    event_id: &str,
    at: DateTime<Utc>,
) -> Result<Option<(Trigger, Webhook)>, TriggerError> {
    let Some(named) = &call.trigger else {
        return Ok(None);
    };
    let trigger: Trigger = named
        .trim()
        .parse()
        .map_err(|_| TriggerError::Untellable(named.clone()))?;
    let kind = trigger
        .told_by_workflow()
        .ok_or_else(|| TriggerError::Untellable(named.clone()))?;
    let (name, entity) = (trigger.name(), trigger.entity().unwrap_or("entity"));
    let body = call
        .webhook(kind, event_id, at)
        .ok_or(TriggerError::Missing {
            trigger: name,
            entity,
        })?;
    let webhook =
        Webhook::parse(body.to_string().as_bytes()).map_err(|e| TriggerError::Unreadable {
            trigger: name,
            entity,
            why: e.to_string(),
        })?;
    Ok(Some((trigger, webhook)))
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value, json};

    use super::*;
    use crate::mapping::{Mapping, Occurrence};

    const MAPPING: &str = r#"
        version = 1
        [[pixels]]
        name = "main"
        dataset_id = "123"
        access_token = { env = "T" }
        [[rules]]
        name = "won"
        trigger = "opportunity.status_changed"
        status = "won"
        event_name = "Purchase"
        value = { field = "opportunity.monetaryValue" }
        currency = "USD"
        needs = []
        [[rules]]
        name = "booked"
        trigger = "opportunity.stage_changed"
        stage = ["stage-booked", "Booked"]
        event_name = "Schedule"
        needs = []
    "#;

    fn call(extra: Value) -> WorkflowCall {
        let mut body = json!({"contact_id": "c1", "email": "ana@example.com",
            "location": {"id": "loc"}, "workflow": {"id": "wf", "name": "Deal"},
            "id": "opp-1", "status": "won", "lead_value": "1500", "pipeline_id": "pipe-1",
            "pipleline_stage": "Booked"});
        body.as_object_mut()
            .expect("object")
            .extend(extra.as_object().cloned().unwrap_or_default());
        WorkflowCall::parse(body.to_string().as_bytes()).expect("a call")
    }

    /// The events `mapping` makes of `webhook`'s occurrences of `trigger`.
    fn events(mapping: &Mapping, webhook: &Webhook, trigger: Trigger) -> Vec<Value> {
        let now = Utc::now();
        let (occurrences, _) = Occurrence::from_webhook(webhook, None, now);
        let contact = crate::ghl::Contact {
            id: "c1".into(),
            email: Some("ana@example.com".into()),
            ..Default::default()
        };
        occurrences
            .iter()
            .filter(|o| o.trigger == trigger)
            .flat_map(|o| mapping.map(o, &contact, &Map::new(), now))
            .filter_map(|m| serde_json::to_value(m.outcome.ok()?).ok())
            .collect()
    }

    #[test]
    fn a_declared_trigger_fires_the_rule_a_webhook_of_the_same_change_fires_with_its_event_id() {
        let mapping = Mapping::parse(MAPPING, "m.toml").expect("mapping");
        let now = Utc::now();
        let won = call(json!({"customData": {"trigger": "opportunity.status_changed"}}));
        let (trigger, told) = declared(&won, "ev-1", now)
            .expect("tellable")
            .expect("declared");
        assert_eq!(trigger, Trigger::OpportunityStatusChanged);
        let from_call = events(&mapping, &told, trigger);
        let webhook = Webhook::parse(
            json!({"type": "OpportunityStatusUpdate", "locationId": "loc", "id": "opp-1",
                "contactId": "c1", "status": "won", "monetaryValue": 1500, "pipelineId": "pipe-1",
                "pipelineStageId": "stage-booked", "webhookId": "wh-1", "timestamp": now.to_rfc3339()})
            .to_string()
            .as_bytes(),
        )
        .expect("a webhook");
        let from_webhook = events(&mapping, &webhook, trigger);
        assert_eq!(from_call.len(), 1, "{from_call:?}");
        assert_eq!(
            from_call[0]["event_id"], from_webhook[0]["event_id"],
            "one change, one id"
        );
        assert_eq!(from_call[0]["custom_data"]["value"], 1500.0);

        // `stage = …` takes the stage's id (the webhook's) or its name (the call's).
        let staged = call(json!({"customData": {"trigger": "opportunity.stage_changed"}}));
        let (trigger, told) = declared(&staged, "ev-2", now)
            .expect("ok")
            .expect("declared");
        assert_eq!(events(&mapping, &told, trigger).len(), 1);
        let mut by_id = webhook.clone();
        if let Webhook::OpportunityStatusUpdate(o) = &webhook {
            by_id = Webhook::OpportunityStageUpdate(o.clone());
        }
        assert_eq!(
            events(&mapping, &by_id, Trigger::OpportunityStageChanged).len(),
            1
        );

        let undeclared = call(json!({}));
        assert!(declared(&undeclared, "ev-3", now).expect("ok").is_none());
    }

    #[test]
    fn a_trigger_a_call_cannot_tell_is_named_with_what_it_can() {
        let now = Utc::now();
        let tagged = call(json!({"customData": {"trigger": "contact.tag_added"}}));
        let refused = declared(&tagged, "e", now).unwrap_err().to_string();
        assert!(
            refused.contains("opportunity.stage_changed") && refused.contains("appointment.booked"),
            "{refused}"
        );
        let booked = call(json!({"trigger": "appointment.booked"}));
        let missing = declared(&booked, "e", now).unwrap_err();
        assert_eq!(
            missing,
            TriggerError::Missing {
                trigger: "appointment.booked",
                entity: "appointment"
            }
        );
    }
}
