//! A second reading for webhooks that fail typed parsing only because GHL wrote a
//! number as text or text as a number (`"monetaryValue": "1250.50"`, `"postalCode":
//! 94025`): where the meaning is clear, such values are rewritten to their type and
//! the body is read again. Nothing else is guessed at.

use serde_json::{Map, Value};

/// Fields GHL means as numbers.
const NUMBERS: [&str; 1] = ["monetaryValue"];
/// Fields GHL means as booleans.
const BOOLEANS: [&str; 1] = ["dnd"];
/// Fields GHL means as text: ids, and contact fields that can look like numbers.
const TEXT: [&str; 19] = [
    "id",
    "locationId",
    "contactId",
    "companyId",
    "userId",
    "webhookId",
    "appId",
    "versionId",
    "pipelineId",
    "pipelineStageId",
    "calendarId",
    "assignedTo",
    "phone",
    "postalCode",
    "address1",
    "city",
    "state",
    "firstName",
    "lastName",
];

/// The body with such values rewritten, or `None` when there was nothing to rewrite
/// (or it is not JSON).
pub(super) fn coerced(body: &[u8]) -> Option<Vec<u8>> {
    let mut value: Value = serde_json::from_slice(body).ok()?;
    let Value::Object(fields) = &mut value else {
        return None;
    };
    if !rewrite(fields) {
        return None;
    }
    serde_json::to_vec(&value).ok()
}

/// Rewrites the fields of `object` and of the objects nested in it; whether any
/// changed.
fn rewrite(object: &mut Map<String, Value>) -> bool {
    let mut changed = false;
    for (key, value) in object.iter_mut() {
        let rewritten = match value {
            Value::String(text) if NUMBERS.contains(&key.as_str()) => text
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number),
            Value::String(text) if BOOLEANS.contains(&key.as_str()) => {
                match text.trim().to_ascii_lowercase().as_str() {
                    "true" => Some(Value::Bool(true)),
                    "false" => Some(Value::Bool(false)),
                    _ => None,
                }
            }
            Value::Number(n) if TEXT.contains(&key.as_str()) => Some(Value::String(n.to_string())),
            Value::Object(inner) => {
                changed |= rewrite(inner);
                None
            }
            _ => None,
        };
        if let Some(new) = rewritten {
            *value = new;
            changed = true;
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_as_text_and_text_as_numbers_are_read_as_meant() {
        let body = json!({"type": "OpportunityStatusUpdate", "id": 42, "monetaryValue": " 1250.5 ",
            "appointment": {"contactId": 7}, "dnd": "True", "name": 12, "status": "won"});
        let fixed: Value = serde_json::from_slice(
            &coerced(&serde_json::to_vec(&body).expect("json")).expect("rewritten"),
        )
        .expect("json");
        assert_eq!(
            fixed,
            json!({"type": "OpportunityStatusUpdate", "id": "42", "monetaryValue": 1250.5,
                "appointment": {"contactId": "7"}, "dnd": true, "name": 12, "status": "won"}),
            "a name written as a number is not guessed at"
        );
        assert_eq!(coerced(br#"{"id": "c1"}"#), None, "nothing to rewrite");
        assert_eq!(coerced(br#"{"monetaryValue": "a lot"}"#), None);
        assert_eq!(coerced(b"[1]"), None);
    }
}
