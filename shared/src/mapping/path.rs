//! Field paths (`contact.email`, `custom.order_value`, `opportunity.monetaryValue`, …),
//! what they read from, and the conditions rules test them with.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::Occurrence;
use crate::ghl::Contact;

/// Where a value comes from. Paths are checked against the rule's trigger when the
/// mapping loads, so at run time they can only be absent, never wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldPath {
    /// A top-level contact field by its GHL name (`contact.email`).
    Contact(String),
    /// A custom field by id or key (`custom.<id>`; aliases are resolved at load).
    Custom(String),
    /// A field of the attribution (`attribution.utmSource`): the first touch, else the last.
    Attribution(String),
    /// A field of the trigger's entity (`opportunity.status`, `conversion.customData.plan`).
    Entity(Vec<String>),
    /// Related records fetched on request (`notes`, `tasks`, `appointments`), as lists.
    Related(String),
    /// The tag of a tag trigger (`trigger.tag`).
    Tag,
}

/// Everything a rule can read while it is evaluated.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub contact: &'a Contact,
    pub occurrence: &'a Occurrence,
    /// `notes`, `tasks`, `appointments` as JSON lists, when enrichment fetched them.
    pub related: &'a Map<String, Value>,
}

impl<'a> Subject<'a> {
    pub fn new(
        contact: &'a Contact,
        occurrence: &'a Occurrence,
        related: &'a Map<String, Value>,
    ) -> Subject<'a> {
        Subject {
            contact,
            occurrence,
            related,
        }
    }
}

fn walk<'v>(mut value: &'v Value, keys: &[String]) -> Option<&'v Value> {
    for key in keys {
        value = match value {
            Value::Object(map) => map.get(key)?,
            Value::Array(list) => list.get(key.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(value)
}

impl FieldPath {
    /// The value at this path; `None` when absent or `null`.
    pub fn read<'a>(&self, subject: &Subject<'a>) -> Option<Cow<'a, Value>> {
        let found = match self {
            FieldPath::Contact(name) => subject.contact.field(name).map(Cow::Owned),
            FieldPath::Custom(id) => subject.contact.custom_field(id).map(Cow::Borrowed),
            FieldPath::Attribution(name) => {
                let c = subject.contact;
                [&c.attribution_source, &c.last_attribution_source]
                    .into_iter()
                    .flatten()
                    .find_map(|a| serde_json::to_value(a).ok()?.get(name).cloned())
                    .filter(|v| !v.is_null())
                    .map(Cow::Owned)
            }
            FieldPath::Entity(keys) => subject
                .occurrence
                .entity
                .as_ref()
                .and_then(|e| walk(e, keys))
                .map(Cow::Borrowed),
            FieldPath::Related(name) => subject.related.get(name).map(Cow::Borrowed),
            FieldPath::Tag => subject
                .occurrence
                .tag
                .as_ref()
                .map(|t| Cow::Owned(Value::String(t.clone()))),
        };
        found.filter(|v| !v.is_null())
    }
}

/// A value as text, for string fields of an event.
pub fn as_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A value as a number: JSON numbers and numeric text (`"49.90"`) both count.
pub fn as_number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|n: &f64| n.is_finite())
}

/// What a condition checks.
#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    Equals(Value),
    NotEquals(Value),
    OneOf(Vec<Value>),
    Contains(String),
    Exists(bool),
    GreaterThan(f64),
    LessThan(f64),
    HasTag(String),
    LacksTag(String),
}

/// One `[[rules.when]]` entry (or a shorthand such as `status = "won"`).
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// `None` for tag tests, which look at the contact's tags.
    pub path: Option<FieldPath>,
    pub test: Test,
}

/// Text compares case-insensitively and trimmed (GHL is not consistent about case);
/// numbers compare by value, so `40` equals `"40"` and `40.0`.
fn same(actual: &Value, expected: &Value) -> bool {
    if let (Some(a), Some(b)) = (as_number(actual), as_number(expected))
        && (actual.is_number() || expected.is_number())
    {
        return a == b;
    }
    match (actual, expected) {
        (Value::String(a), Value::String(b)) => a.trim().eq_ignore_ascii_case(b.trim()),
        (Value::Array(items), expected) => items.iter().any(|i| same(i, expected)),
        (a, b) => a == b,
    }
}

impl FieldPath {
    /// The path as the mapping writes it (`contact.email`, `trigger.tag`).
    pub fn name(&self) -> String {
        match self {
            FieldPath::Contact(name) => format!("contact.{name}"),
            FieldPath::Custom(id) => format!("custom.{id}"),
            FieldPath::Attribution(name) => format!("attribution.{name}"),
            FieldPath::Entity(keys) => keys.join("."),
            FieldPath::Related(name) => name.clone(),
            FieldPath::Tag => "trigger.tag".to_owned(),
        }
    }
}

impl Condition {
    /// What the condition tests, without its expected value (a log line says which
    /// condition stopped a rule, never a contact's data).
    pub fn describe(&self) -> String {
        let test = match &self.test {
            Test::Equals(_) => "equals",
            Test::NotEquals(_) => "not_equals",
            Test::OneOf(_) => "one_of",
            Test::Contains(_) => "contains",
            Test::Exists(true) => "exists",
            Test::Exists(false) => "absent",
            Test::GreaterThan(_) => "greater_than",
            Test::LessThan(_) => "less_than",
            Test::HasTag(_) => "has_tag",
            Test::LacksTag(_) => "lacks_tag",
        };
        match &self.path {
            Some(path) => format!("{} {test}", path.name()),
            None => format!("contact.tags {test}"),
        }
    }

    /// Whether the condition reads the change itself (`trigger.tag`, the trigger's
    /// entity) rather than the contact: a rule failing one watches other changes.
    pub fn about_the_change(&self) -> bool {
        matches!(self.path, Some(FieldPath::Tag | FieldPath::Entity(_)))
    }

    /// Whether the condition holds for `subject`.
    pub fn holds(&self, subject: &Subject<'_>) -> bool {
        let value = self.path.as_ref().and_then(|p| p.read(subject));
        let value = value.as_deref();
        match &self.test {
            Test::Equals(expected) => value.is_some_and(|v| same(v, expected)),
            Test::NotEquals(expected) => !value.is_some_and(|v| same(v, expected)),
            Test::OneOf(options) => value.is_some_and(|v| options.iter().any(|o| same(v, o))),
            Test::Contains(needle) => value.is_some_and(|v| {
                let needle = needle.to_lowercase();
                match v {
                    Value::String(s) => s.to_lowercase().contains(&needle),
                    other => other.to_string().to_lowercase().contains(&needle),
                }
            }),
            Test::Exists(wanted) => {
                let present = value.is_some_and(|v| match v {
                    Value::String(s) => !s.trim().is_empty(),
                    Value::Array(a) => !a.is_empty(),
                    _ => true,
                });
                present == *wanted
            }
            Test::GreaterThan(limit) => value.and_then(as_number).is_some_and(|n| n > *limit),
            Test::LessThan(limit) => value.and_then(as_number).is_some_and(|n| n < *limit),
            Test::HasTag(tag) => subject.contact.has_tag(tag),
            Test::LacksTag(tag) => !subject.contact.has_tag(tag),
        }
    }
}
