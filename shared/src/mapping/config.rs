//! Reading a mapping file: TOML with spans, so every error names its line.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use serde::Deserialize;
use serde_json::Value;
use toml::Spanned;

use super::path::{Condition, FieldPath, Test};
use super::{Defaults, Mapping, Need, Pixel, Rule, Source, TokenRef, Trigger};
use crate::capi::{ActionSource, STANDARD_EVENTS, is_currency_code};

/// A mapping that cannot be used: which file, where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub file: String,
    /// 1-based; 0 when the error is about the file as a whole.
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.column, self.message
            )
        }
    }
}

impl ConfigError {
    pub(super) fn unreadable(path: &std::path::Path, err: &std::io::Error) -> Self {
        ConfigError {
            file: path.display().to_string(),
            line: 0,
            column: 0,
            message: format!("cannot read the mapping: {err}"),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMapping {
    version: Option<Spanned<i64>>,
    #[serde(default)]
    defaults: RawDefaults,
    #[serde(default)]
    custom_fields: BTreeMap<String, String>,
    #[serde(default)]
    pixels: Vec<Spanned<RawPixel>>,
    #[serde(default)]
    rules: Vec<Spanned<RawRule>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    action_source: Option<ActionSource>,
    currency: Option<Spanned<String>>,
    lead_event_source: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPixel {
    name: Spanned<String>,
    dataset_id: Spanned<toml::Value>,
    access_token: Spanned<toml::Value>,
    test_event_code: Option<String>,
    #[serde(default)]
    locations: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Spanned<String>,
    trigger: Spanned<String>,
    event_name: Spanned<toml::Value>,
    action_source: Option<ActionSource>,
    value: Option<Spanned<toml::Value>>,
    currency: Option<Spanned<toml::Value>>,
    lead_id: Option<Spanned<toml::Value>>,
    external_id: Option<Spanned<toml::Value>>,
    #[serde(default)]
    custom_data: BTreeMap<String, Spanned<toml::Value>>,
    needs: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pixels: Vec<Spanned<String>>,
    tags: Option<Spanned<toml::Value>>,
    status: Option<Spanned<toml::Value>>,
    stage: Option<Spanned<toml::Value>>,
    pipeline: Option<Spanned<toml::Value>>,
    appointment_status: Option<Spanned<toml::Value>>,
    event_type: Option<Spanned<toml::Value>>,
    #[serde(default)]
    when: Vec<Spanned<RawCondition>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCondition {
    field: Option<Spanned<String>>,
    equals: Option<toml::Value>,
    not_equals: Option<toml::Value>,
    one_of: Option<Vec<toml::Value>>,
    contains: Option<String>,
    exists: Option<bool>,
    greater_than: Option<f64>,
    less_than: Option<f64>,
    has_tag: Option<String>,
    lacks_tag: Option<String>,
}

/// Turns spans into line and column for errors.
struct Locator<'a> {
    text: &'a str,
    file: &'a str,
}

impl Locator<'_> {
    fn error(&self, span: Option<Range<usize>>, message: impl Into<String>) -> ConfigError {
        let (line, column) = span.map_or((0, 0), |s| {
            let before = &self.text[..s.start.min(self.text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            (line, column)
        });
        ConfigError {
            file: self.file.to_owned(),
            line,
            column,
            message: message.into(),
        }
    }

    fn at<T>(&self, spanned: &Spanned<T>, message: impl Into<String>) -> ConfigError {
        self.error(Some(spanned.span()), message)
    }
}

fn json(value: &toml::Value) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

pub(super) fn parse(text: &str, file: &str) -> Result<Mapping, ConfigError> {
    let loc = Locator { text, file };
    let raw: RawMapping =
        toml::from_str(text).map_err(|e| loc.error(e.span(), e.message().trim()))?;
    if let Some(v) = &raw.version
        && *v.get_ref() != 1
    {
        return Err(loc.at(
            v,
            "unsupported mapping version; this release reads version = 1",
        ));
    }
    let defaults = defaults(&loc, raw.defaults)?;
    let mut pixels = Vec::new();
    for p in &raw.pixels {
        let pixel = pixel(&loc, p.get_ref())?;
        if pixels.iter().any(|other: &Pixel| other.name == pixel.name) {
            return Err(loc.at(
                &p.get_ref().name,
                format!("a pixel named `{}` is already defined", pixel.name),
            ));
        }
        pixels.push(pixel);
    }
    let mut rules: Vec<Rule> = Vec::new();
    for r in &raw.rules {
        let rule = rule(&loc, r.get_ref(), &raw.custom_fields, &pixels)?;
        if rules.iter().any(|other| other.name == rule.name) {
            return Err(loc.at(
                &r.get_ref().name,
                format!("a rule named `{}` is already defined", rule.name),
            ));
        }
        rules.push(rule);
    }
    Ok(Mapping {
        defaults,
        pixels,
        rules,
    })
}

fn currency_code(loc: &Locator<'_>, raw: &Spanned<String>) -> Result<String, ConfigError> {
    let code = raw.get_ref().trim();
    if is_currency_code(code) {
        Ok(code.to_ascii_uppercase())
    } else {
        Err(loc.at(
            raw,
            format!("`{code}` is not a three-letter ISO 4217 currency code"),
        ))
    }
}

fn defaults(loc: &Locator<'_>, raw: RawDefaults) -> Result<Defaults, ConfigError> {
    Ok(Defaults {
        action_source: raw.action_source.unwrap_or_default(),
        currency: raw
            .currency
            .as_ref()
            .map(|c| currency_code(loc, c))
            .transpose()?,
        lead_event_source: match raw.lead_event_source {
            None => Some("HighLevel".to_owned()),
            Some(s) if s.trim().is_empty() => None,
            Some(s) => Some(s.trim().to_owned()),
        },
    })
}

fn pixel(loc: &Locator<'_>, raw: &RawPixel) -> Result<Pixel, ConfigError> {
    let dataset_id = match raw.dataset_id.get_ref() {
        toml::Value::String(s) => s.trim().to_owned(),
        toml::Value::Integer(n) => n.to_string(),
        _ => String::new(),
    };
    if dataset_id.is_empty() || !dataset_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(loc.at(
            &raw.dataset_id,
            "dataset_id must be the pixel's (dataset's) numeric id",
        ));
    }
    let access_token = match raw.access_token.get_ref() {
        toml::Value::Table(t) if t.len() == 1 => match t.iter().next() {
            Some((kind, toml::Value::String(name)))
                if kind == "secret" && !name.trim().is_empty() =>
            {
                TokenRef::Secret(name.trim().to_owned())
            }
            Some((kind, toml::Value::String(name))) if kind == "env" && !name.trim().is_empty() => {
                TokenRef::Env(name.trim().to_owned())
            }
            _ => return Err(loc.at(&raw.access_token, TOKEN_HELP)),
        },
        _ => return Err(loc.at(&raw.access_token, TOKEN_HELP)),
    };
    Ok(Pixel {
        name: raw.name.get_ref().trim().to_owned(),
        dataset_id,
        access_token,
        test_event_code: raw.test_event_code.clone().filter(|c| !c.trim().is_empty()),
        locations: raw
            .locations
            .iter()
            .filter(|l| l.as_str() != "*")
            .cloned()
            .collect(),
    })
}

const TOKEN_HELP: &str = "access_token must say where the token is kept, as \
    { secret = \"<Secrets Manager name>\" } or { env = \"<VARIABLE>\" }; never put the token itself in the mapping";

fn rule(
    loc: &Locator<'_>,
    raw: &RawRule,
    aliases: &BTreeMap<String, String>,
    pixels: &[Pixel],
) -> Result<Rule, ConfigError> {
    let name = raw.name.get_ref().trim().to_owned();
    if name.is_empty() {
        return Err(loc.at(
            &raw.name,
            "a rule needs a name (it is part of every event id)",
        ));
    }
    let trigger: Trigger = raw
        .trigger
        .get_ref()
        .parse()
        .map_err(|e: super::UnknownTrigger| loc.at(&raw.trigger, e.to_string()))?;
    let needs = match &raw.needs {
        None => vec![Need::Attribution],
        Some(list) => list
            .iter()
            .map(|n| {
                [
                    Need::Attribution,
                    Need::Notes,
                    Need::Tasks,
                    Need::Appointments,
                ]
                .into_iter()
                .find(|need| need.name() == n.get_ref())
                .ok_or_else(|| {
                    loc.at(
                        n,
                        format!(
                            "unknown need `{}`; expected attribution, notes, tasks or appointments",
                            n.get_ref()
                        ),
                    )
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let ctx = PathContext {
        loc,
        trigger,
        needs: &needs,
        aliases,
    };
    let source =
        |raw: &Option<Spanned<toml::Value>>| raw.as_ref().map(|r| ctx.source(r)).transpose();

    let mut event_name = ctx.source(&raw.event_name)?;
    if let Source::Constant(v) = &event_name {
        let text = v.as_str().map(str::trim).unwrap_or_default().to_owned();
        let text = text.as_str();
        if text.is_empty() {
            return Err(loc.at(
                &raw.event_name,
                "event_name must be a non-empty name, or { field = \"…\" }",
            ));
        }
        if let Some(standard) = STANDARD_EVENTS
            .iter()
            .find(|s| s.eq_ignore_ascii_case(text) && **s != text)
        {
            return Err(loc.at(&raw.event_name, format!("`{text}` would be a custom event; Meta's standard event is spelled `{standard}`")));
        }
        event_name = Source::Constant(Value::String(text.to_owned()));
    }
    let currency = source(&raw.currency)?;
    if let (Some(Source::Constant(code)), Some(raw_currency)) = (&currency, &raw.currency) {
        let code = code.as_str().unwrap_or_default().to_owned();
        currency_code(loc, &Spanned::new(raw_currency.span(), code))?;
    }
    for p in &raw.pixels {
        if !pixels.iter().any(|px| &px.name == p.get_ref()) {
            return Err(loc.at(
                p,
                format!("no pixel named `{}` is defined in [[pixels]]", p.get_ref()),
            ));
        }
    }
    let mut custom_data = Vec::new();
    for (key, value) in &raw.custom_data {
        if key == "value" || key == "currency" {
            return Err(loc.at(
                value,
                format!("set `{key}` on the rule itself, not in custom_data"),
            ));
        }
        custom_data.push((key.clone(), ctx.source(value)?));
    }
    let mut conditions = ctx.shorthands(raw)?;
    for c in &raw.when {
        conditions.push(ctx.condition(c)?);
    }
    Ok(Rule {
        name,
        trigger,
        event_name,
        action_source: raw.action_source,
        value: source(&raw.value)?,
        currency,
        lead_id: source(&raw.lead_id)?,
        external_id: source(&raw.external_id)?,
        custom_data,
        needs,
        pixels: raw.pixels.iter().map(|p| p.get_ref().clone()).collect(),
        conditions,
    })
}

/// A rule key that stands for a condition on one field of the trigger's entity.
struct Shorthand<'a> {
    key: &'static str,
    value: &'a Option<Spanned<toml::Value>>,
    /// The triggers it makes sense for.
    triggers: &'static [Trigger],
    /// The entity field it tests; `None` for the tag of a tag trigger.
    field: Option<&'static str>,
}

struct PathContext<'a> {
    loc: &'a Locator<'a>,
    trigger: Trigger,
    needs: &'a [Need],
    aliases: &'a BTreeMap<String, String>,
}

impl PathContext<'_> {
    fn path(&self, raw: &Spanned<String>) -> Result<FieldPath, ConfigError> {
        let text = raw.get_ref().trim();
        let (head, rest) = text.split_once('.').unwrap_or((text, ""));
        let need_rest = |what: &str| {
            if rest.is_empty() {
                Err(self.loc.at(
                    raw,
                    format!("`{text}` names no field; write {what}.<field>"),
                ))
            } else {
                Ok(rest.to_owned())
            }
        };
        let entity = self.trigger.entity();
        match head {
            "contact" => Ok(FieldPath::Contact(need_rest("contact")?)),
            "custom" => {
                let key = need_rest("custom")?;
                Ok(FieldPath::Custom(self.aliases.get(&key).cloned().unwrap_or(key)))
            }
            "attribution" => Ok(FieldPath::Attribution(need_rest("attribution")?)),
            "trigger" if rest == "tag" => {
                if matches!(self.trigger, Trigger::TagAdded | Trigger::TagRemoved) {
                    Ok(FieldPath::Tag)
                } else {
                    Err(self.loc.at(raw, format!("trigger.tag exists only for tag triggers, not {}", self.trigger)))
                }
            }
            "notes" | "tasks" | "appointments" => {
                if self.needs.iter().any(|n| n.name() == head) {
                    Ok(FieldPath::Related(head.to_owned()))
                } else {
                    Err(self.loc.at(raw, format!("`{head}` is fetched only when the rule lists it: needs = [\"{head}\"]")))
                }
            }
            other if Some(other) == entity => {
                let rest = need_rest(other)?;
                Ok(FieldPath::Entity(rest.split('.').map(str::to_owned).collect()))
            }
            _ => Err(self.loc.at(
                raw,
                format!(
                    "unknown field path `{text}`; paths start with contact., custom., attribution., \
                     notes, tasks, appointments{}{}",
                    if matches!(self.trigger, Trigger::TagAdded | Trigger::TagRemoved) { ", trigger.tag" } else { "" },
                    entity.map(|e| format!(" or {e}. (for {} rules)", self.trigger)).unwrap_or_default()
                ),
            )),
        }
    }

    fn source(&self, raw: &Spanned<toml::Value>) -> Result<Source, ConfigError> {
        match raw.get_ref() {
            toml::Value::Table(t) => {
                let Some(toml::Value::String(field)) = t.get("field") else {
                    return Err(self.loc.at(
                        raw,
                        "a table here must be { field = \"<path>\" } (optionally with default = …)",
                    ));
                };
                if let Some(extra) = t.keys().find(|k| *k != "field" && *k != "default") {
                    return Err(self.loc.at(
                        raw,
                        format!("unexpected key `{extra}`; only field and default are allowed"),
                    ));
                }
                Ok(Source::Field {
                    path: self.path(&Spanned::new(raw.span(), field.clone()))?,
                    default: t.get("default").map(json),
                })
            }
            other => Ok(Source::Constant(json(other))),
        }
    }

    fn list(&self, raw: &Spanned<toml::Value>) -> Result<Vec<Value>, ConfigError> {
        match raw.get_ref() {
            toml::Value::Array(items) => Ok(items.iter().map(json).collect()),
            toml::Value::Table(_) => Err(self.loc.at(raw, "expected a value or a list of values")),
            one => Ok(vec![json(one)]),
        }
    }

    /// `tags`, `status`, `stage`, `pipeline`, `appointment_status` and `event_type`:
    /// shorthands for conditions on the trigger's entity.
    fn shorthands(&self, raw: &RawRule) -> Result<Vec<Condition>, ConfigError> {
        let tag_triggers: &[Trigger] = &[Trigger::TagAdded, Trigger::TagRemoved];
        let opportunity: &[Trigger] = &[
            Trigger::OpportunityCreated,
            Trigger::OpportunityStatusChanged,
            Trigger::OpportunityStageChanged,
            Trigger::OpportunityValueChanged,
        ];
        let appointment: &[Trigger] = &[Trigger::AppointmentBooked, Trigger::AppointmentUpdated];
        let conversion: &[Trigger] = &[Trigger::ConversionPosted];
        let shorthand = |key, value, triggers, field| Shorthand {
            key,
            value,
            triggers,
            field,
        };
        let keys = [
            shorthand("tags", &raw.tags, tag_triggers, None),
            shorthand("status", &raw.status, opportunity, Some("status")),
            shorthand("stage", &raw.stage, opportunity, Some("pipelineStageId")),
            shorthand("pipeline", &raw.pipeline, opportunity, Some("pipelineId")),
            shorthand(
                "appointment_status",
                &raw.appointment_status,
                appointment,
                Some("appointmentStatus"),
            ),
            shorthand("event_type", &raw.event_type, conversion, Some("eventType")),
        ];
        let mut out = Vec::new();
        for Shorthand {
            key,
            value,
            triggers,
            field,
        } in keys
        {
            let Some(value) = value else { continue };
            if !triggers.contains(&self.trigger) {
                let names: Vec<&str> = triggers.iter().map(|t| t.name()).collect();
                return Err(self.loc.at(
                    value,
                    format!(
                        "`{key}` applies to {} rules, not {}",
                        names.join(" / "),
                        self.trigger
                    ),
                ));
            }
            out.push(Condition {
                path: Some(field.map_or(FieldPath::Tag, |f| FieldPath::Entity(vec![f.to_owned()]))),
                test: Test::OneOf(self.list(value)?),
            });
        }
        Ok(out)
    }

    fn condition(&self, raw: &Spanned<RawCondition>) -> Result<Condition, ConfigError> {
        let c = raw.get_ref();
        let mut tests = Vec::new();
        if let Some(v) = &c.equals {
            tests.push(Test::Equals(json(v)));
        }
        if let Some(v) = &c.not_equals {
            tests.push(Test::NotEquals(json(v)));
        }
        if let Some(v) = &c.one_of {
            tests.push(Test::OneOf(v.iter().map(json).collect()));
        }
        if let Some(v) = &c.contains {
            tests.push(Test::Contains(v.clone()));
        }
        if let Some(v) = c.exists {
            tests.push(Test::Exists(v));
        }
        if let Some(v) = c.greater_than {
            tests.push(Test::GreaterThan(v));
        }
        if let Some(v) = c.less_than {
            tests.push(Test::LessThan(v));
        }
        if let Some(v) = &c.has_tag {
            tests.push(Test::HasTag(v.clone()));
        }
        if let Some(v) = &c.lacks_tag {
            tests.push(Test::LacksTag(v.clone()));
        }
        let test = match tests.len() {
            1 => tests.remove(0),
            0 => return Err(self.loc.at(raw, "a condition needs one test: equals, not_equals, one_of, contains, exists, greater_than, less_than, has_tag or lacks_tag")),
            _ => return Err(self.loc.at(raw, "a condition has one test; write several [[rules.when]] entries to combine them")),
        };
        let tag_test = matches!(test, Test::HasTag(_) | Test::LacksTag(_));
        let path = match (&c.field, tag_test) {
            (Some(f), false) => Some(self.path(f)?),
            (None, true) => None,
            (Some(f), true) => {
                return Err(self.loc.at(
                    f,
                    "has_tag and lacks_tag look at the contact's tags and take no field",
                ));
            }
            (None, false) => {
                return Err(self.loc.at(raw, "this condition needs field = \"<path>\""));
            }
        };
        Ok(Condition { path, test })
    }
}
