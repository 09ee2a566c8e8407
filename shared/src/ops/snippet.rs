//! What to paste into a GHL workflow so that its action calls `/workflows/ghl` for
//! one rule (`ghl-capi workflow snippet`): the URL, the key's header, the Custom
//! Webhook action's body with GHL's merge fields, or the plain Webhook action's
//! Custom Data, and what the rule reads that only the user can fill in. A rule on
//! an opportunity or appointment trigger gets the plain action's Custom Data with
//! the `trigger` the call declares.

use serde_json::{Map, Value, json};

use crate::ghl::workflow::merge;
use crate::mapping::{Mapping, Trigger};

/// The route's path.
pub const PATH: &str = "/workflows/ghl";

/// What to paste, for one rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Snippet {
    pub rule: String,
    /// The route's full URL.
    pub url: String,
    /// The workflow the call names: the rule's first `workflow = …`, else the
    /// rule's name (a rule that names none fires on any workflow).
    pub workflow: String,
    /// The Custom Webhook action's raw JSON body, with merge fields, in the
    /// order it is shown ([`Snippet::body`] as JSON).
    pub fields: Vec<(String, String)>,
    /// What the rule reads from the call that no merge field is known to give,
    /// each as the body key to add and what it must hold.
    pub to_add: Vec<(String, &'static str)>,
    /// For a rule on an opportunity or appointment trigger: the trigger the call
    /// declares (its Custom Data `trigger`), to be told as that trigger's webhook.
    /// Only the plain Webhook action's standard payload carries the opportunity or
    /// appointment, so no Custom Webhook body is offered.
    pub tells: Option<Trigger>,
}

/// Why there is no snippet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnippetError {
    #[error("the mapping has no rule {name}; its workflow.fired rules: {}", if rules.is_empty() { "none".to_owned() } else { rules.join(", ") })]
    NoRule { name: String, rules: Vec<String> },
    #[error(
        "rule {name} fires on {trigger}, which no workflow call tells (a call fires workflow.fired rules, or declares one of: {})",
        crate::mapping::tellable().join(", ")
    )]
    NotWorkflow { name: String, trigger: Trigger },
}

/// `base` as the route's URL: a stack's `WorkflowUrl` output as it is, an API's
/// base URL with the route's path.
pub fn route_url(base: &str) -> String {
    let base = base.trim().trim_end_matches('/');
    if base.ends_with(PATH) {
        base.to_owned()
    } else {
        format!("{base}{PATH}")
    }
}

/// The rule's name as an id's prefix: lowercase letters, digits and dashes.
fn slug(name: &str) -> String {
    let mut slug: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    slug = slug.trim_matches('-').to_owned();
    if slug.is_empty() {
        "workflow".into()
    } else {
        slug
    }
}

impl Snippet {
    /// The snippet for `rule_name`; `location` writes the location's id into the
    /// body (the key is scoped to it anyway) instead of its merge field.
    pub fn for_rule(
        mapping: &Mapping,
        rule_name: &str,
        location: Option<&str>,
        base_url: &str,
    ) -> Result<Snippet, SnippetError> {
        let rule = mapping
            .rules
            .iter()
            .find(|r| r.name == rule_name)
            .ok_or_else(|| SnippetError::NoRule {
                name: rule_name.to_owned(),
                rules: mapping
                    .rules_for(Trigger::WorkflowFired)
                    .map(|r| r.name.clone())
                    .collect(),
            })?;
        let tells = (rule.trigger != Trigger::WorkflowFired).then_some(rule.trigger);
        if tells.is_some_and(|t| t.told_by_workflow().is_none()) {
            return Err(SnippetError::NotWorkflow {
                name: rule.name.clone(),
                trigger: rule.trigger,
            });
        }
        let workflow = rule
            .named_workflows()
            .next()
            .unwrap_or(&rule.name)
            .to_owned();
        // One id per run of the action (the contact and the second it ran), the
        // same for GHL's retries of that run.
        let event_id = format!(
            "{}-{}-{}",
            slug(&rule.name),
            merge::CONTACT_ID,
            merge::RIGHT_NOW
        );
        let location_id = location.unwrap_or(merge::LOCATION_ID).to_owned();
        let mut fields = vec![
            ("locationId".to_owned(), location_id),
            ("contactId".to_owned(), merge::CONTACT_ID.to_owned()),
            ("workflow".to_owned(), workflow.clone()),
            ("eventId".to_owned(), event_id),
        ];
        if let Some(trigger) = tells {
            fields.push(("trigger".to_owned(), trigger.name().to_owned()));
        }
        fields.extend(
            merge::CONTACT
                .iter()
                .map(|(field, merged)| ((*field).to_owned(), (*merged).to_owned())),
        );
        Ok(Snippet {
            rule: rule.name.clone(),
            url: route_url(base_url),
            workflow,
            fields,
            to_add: to_add(&rule.entity_paths()),
            tells,
        })
    }
}

/// The body's fields the plain Webhook action sends as Custom Data: the call's
/// own, under the same names, so it is read alike whatever GHL's standard payload
/// calls them.
const CUSTOM_DATA: [&str; 5] = ["locationId", "contactId", "workflow", "eventId", "trigger"];

/// The Custom Data row that carries the key, for a plain Webhook action that offers
/// no header (the route takes it out of the body before anything keeps it).
pub const KEY_ROW: &str = crate::ghl::workflow::KEY_FIELDS[0];

impl Snippet {
    /// The route's URL with `key` as its last segment: for a plain Webhook action
    /// that offers no header.
    pub fn url_with_key(&self, key: &str) -> String {
        format!("{}/{key}", self.url)
    }

    /// The plain Webhook action's Custom Data entries (key, value).
    pub fn custom_data(&self) -> impl Iterator<Item = &(String, String)> {
        self.fields
            .iter()
            .filter(|(key, _)| CUSTOM_DATA.contains(&key.as_str()))
    }

    /// The body as JSON.
    pub fn body(&self) -> Value {
        let fields: Map<String, Value> = self
            .fields
            .iter()
            .map(|(key, value)| (key.clone(), json!(value)))
            .collect();
        Value::Object(fields)
    }

    /// The body as the action's raw body field shows it: one field a line, in
    /// order.
    pub fn body_text(&self) -> String {
        let lines: Vec<String> = self
            .fields
            .iter()
            .map(|(key, value)| format!("  {}: {}", json!(key), json!(value)))
            .collect();
        format!("{{\n{}\n}}", lines.join(",\n"))
    }
}

/// What the rule's `workflow.` paths read that the snippet leaves to the user.
fn to_add(paths: &[&[String]]) -> Vec<(String, &'static str)> {
    let mut wanted: Vec<(String, &'static str)> = Vec::new();
    for keys in paths {
        let want = match keys.first().map(String::as_str) {
            Some("event") => Some((
                "event".to_owned(),
                "the Meta event name (Schedule, Lead, …)",
            )),
            Some("value") => Some((
                "value".to_owned(),
                "a number, or a merge field that gives one",
            )),
            Some("currency") => Some(("currency".to_owned(), "a three-letter ISO 4217 code")),
            Some("occurredAt") => Some((
                "occurredAt".to_owned(),
                "when the trigger happened, ISO-8601",
            )),
            Some("customData") => keys.get(1).map(|key| {
                (
                    format!("customData.{key}"),
                    "any value, under \"customData\" (or a Custom Data entry)",
                )
            }),
            Some(object @ ("triggerData" | "body")) => Some((
                keys.join("."),
                if object == "body" {
                    "a field of the Webhook action's standard payload: use that action"
                } else {
                    "trigger data: only the Webhook action's standard payload carries it"
                },
            )),
            _ => None,
        };
        if let Some(want) = want
            && !wanted.iter().any(|(key, _)| *key == want.0)
        {
            wanted.push(want);
        }
    }
    wanted
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPPING: &str = r#"
        version = 1
        [[rules]]
        name = "Booked call → Schedule"
        trigger = "workflow.fired"
        workflow = ["Booked call", "wf-2"]
        event_name = "Schedule"
        value = { field = "workflow.value" }
        [rules.custom_data]
        plan = { field = "workflow.customData.plan" }
        [[rules]]
        name = "lead"
        trigger = "contact.created"
        event_name = "Lead"
        [[rules]]
        name = "won"
        trigger = "opportunity.status_changed"
        status = "won"
        event_name = "Purchase"
    "#;

    #[test]
    fn a_rules_snippet_names_its_workflow_and_what_is_left_to_fill_in() {
        let mapping = Mapping::parse(MAPPING, "m.toml").expect("mapping");
        let snippet = Snippet::for_rule(
            &mapping,
            "Booked call → Schedule",
            Some("loc"),
            "https://x.example/",
        )
        .expect("snippet");
        assert_eq!(snippet.url, "https://x.example/workflows/ghl");
        assert_eq!(
            snippet.url_with_key("ck_x"),
            "https://x.example/workflows/ghl/ck_x"
        );
        assert_eq!(snippet.workflow, "Booked call");
        let body = snippet.body();
        assert_eq!(body["locationId"], "loc");
        assert_eq!(body["contactId"], "{{contact.id}}");
        let text: Value = serde_json::from_str(&snippet.body_text()).expect("the text is JSON");
        assert_eq!(text, body);
        assert!(
            snippet
                .body_text()
                .starts_with("{\n  \"locationId\": \"loc\",\n")
        );
        let id = body["eventId"].as_str().expect("id");
        assert!(
            id.starts_with("booked-call---schedule-{{contact.id}}-{{right_now.year}}"),
            "{id}"
        );
        let added: Vec<&str> = snippet.to_add.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(added, ["value", "customData.plan"]);
        assert_eq!(route_url("https://x.example/workflows/ghl"), snippet.url);

        let not = Snippet::for_rule(&mapping, "lead", None, "http://h").unwrap_err();
        assert!(not.to_string().contains("contact.created"), "{not}");
        assert!(
            not.to_string().contains("opportunity.stage_changed"),
            "{not}"
        );
        let told = Snippet::for_rule(&mapping, "won", None, "http://h").expect("told");
        assert_eq!(told.tells, Some(Trigger::OpportunityStatusChanged));
        let rows: Vec<&str> = told.custom_data().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            rows,
            ["locationId", "contactId", "workflow", "eventId", "trigger"]
        );
        assert_eq!(told.body()["trigger"], "opportunity.status_changed");
        assert_eq!(snippet.tells, None);
        let none = Snippet::for_rule(&mapping, "nope", None, "http://h").unwrap_err();
        assert!(
            none.to_string().contains("Booked call → Schedule"),
            "{none}"
        );
    }
}
