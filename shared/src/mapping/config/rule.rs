//! One `[[rules]]` entry: its trigger, event, sources, shorthands and conditions,
//! each field path checked against what the trigger provides.

use std::collections::BTreeMap;

use serde_json::Value;
use toml::Spanned;

use super::{ConfigError, Locator, RawCondition, RawRule, currency_code, json};
use crate::capi::STANDARD_EVENTS;
use crate::ghl::workflow::REFS;
use crate::mapping::occurrence::{CALENDAR_REFS, PIPELINE_REFS, STAGE_REFS};
use crate::mapping::path::{Condition, FieldPath, Test};
use crate::mapping::privacy::{Consent, LimitedDataUse};
use crate::mapping::{Need, Pixel, Rule, Source, Trigger, UnknownTrigger};

/// `[defaults]`' `limited_data_use` and `consent`, which a rule without its own
/// takes (read in each rule's context, so its paths are checked against it).
pub(super) type Privacy = (Option<Spanned<toml::Value>>, Option<Spanned<toml::Value>>);

pub(super) fn rule(
    loc: &Locator<'_>,
    raw: &RawRule,
    aliases: &BTreeMap<String, String>,
    pixels: &[Pixel],
    defaults: &Privacy,
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
        .map_err(|e: UnknownTrigger| loc.at(&raw.trigger, e.to_string()))?;
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
    let (limited_data_use, consent) = ctx.privacy(
        &(raw.limited_data_use.clone(), raw.consent.clone()),
        defaults,
    )?;
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
        limited_data_use,
        consent,
        write_back: (raw.write_back.as_ref())
            .map(|w| super::write_back::write_back(loc, w))
            .transpose()?,
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

pub(super) struct PathContext<'a> {
    pub(super) loc: &'a Locator<'a>,
    pub(super) trigger: Trigger,
    pub(super) needs: &'a [Need],
    pub(super) aliases: &'a BTreeMap<String, String>,
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

    /// `tags`, `status`, `stage`, `pipeline`, `calendar`, `appointment_status`,
    /// `event_type` and `workflow` (an id or a name where names are given): shorthands for conditions on the trigger's entity.
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
        let workflow: &[Trigger] = &[Trigger::WorkflowFired];
        let shorthand = |key, value, triggers, field| Shorthand {
            key,
            value,
            triggers,
            field,
        };
        let keys = [
            shorthand("tags", &raw.tags, tag_triggers, None),
            shorthand("status", &raw.status, opportunity, Some("status")),
            // The stage's id or, where the change carries it, its name.
            shorthand("stage", &raw.stage, opportunity, Some(STAGE_REFS)),
            // The pipeline's or calendar's id or name.
            shorthand("pipeline", &raw.pipeline, opportunity, Some(PIPELINE_REFS)),
            shorthand("calendar", &raw.calendar, appointment, Some(CALENDAR_REFS)),
            shorthand(
                "appointment_status",
                &raw.appointment_status,
                appointment,
                Some("appointmentStatus"),
            ),
            shorthand("event_type", &raw.event_type, conversion, Some("eventType")),
            shorthand("workflow", &raw.workflow, workflow, Some(REFS)),
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

    /// `limited_data_use` and `consent`: an entry's `own`, else `defaults`'.
    pub(super) fn privacy(
        &self,
        own: &Privacy,
        defaults: &Privacy,
    ) -> Result<(LimitedDataUse, Option<Consent>), ConfigError> {
        let limited_data_use = match own.0.as_ref().or(defaults.0.as_ref()) {
            Some(raw) => self.limited_data_use(raw)?,
            None => LimitedDataUse::Off,
        };
        let consent = match own.1.as_ref().or(defaults.1.as_ref()) {
            Some(raw) => self.consent(raw)?,
            None => None,
        };
        Ok((limited_data_use, consent))
    }

    /// `limited_data_use`: `true` (Meta geolocates), `false`, `{ country = 1,
    /// state = 1000 }` (Meta's codes), or a condition (`{ field = …, one_of = […] }`)
    /// under which a contact's events are limited.
    pub(super) fn limited_data_use(
        &self,
        raw: &Spanned<toml::Value>,
    ) -> Result<LimitedDataUse, ConfigError> {
        let code = |table: &toml::Table, key: &str| -> Result<u32, ConfigError> {
            match table.get(key) {
                Some(toml::Value::Integer(n)) => u32::try_from(*n)
                    .map_err(|_| self.loc.at(raw, format!("{key} must be one of Meta's codes (0 or more)"))),
                _ => Err(self.loc.at(raw, format!("{key} must be one of Meta's codes: {{ country = 1, state = 1000 }} (0, 0: Meta geolocates)"))),
            }
        };
        match raw.get_ref() {
            toml::Value::Boolean(true) => Ok(LimitedDataUse::On { country: 0, state: 0 }),
            toml::Value::Boolean(false) => Ok(LimitedDataUse::Off),
            toml::Value::Table(t) if t.contains_key("field") => {
                Ok(LimitedDataUse::When(self.condition_value(raw)?))
            }
            toml::Value::Table(t) => {
                if let Some(extra) = t.keys().find(|k| *k != "country" && *k != "state") {
                    return Err(self.loc.at(raw, format!("unexpected key `{extra}`; limited_data_use takes country and state, or a condition with field")));
                }
                Ok(LimitedDataUse::On {
                    country: code(t, "country")?,
                    state: code(t, "state")?,
                })
            }
            _ => Err(self.loc.at(raw, "limited_data_use is true, false, { country = 1, state = 1000 }, or a condition { field = \"…\", one_of = [\"…\"] }")),
        }
    }

    /// `consent`: `"dnd"` (GHL's Do Not Disturb), `false` (none asked, overriding
    /// `[defaults]`), or a condition the contact must meet.
    pub(super) fn consent(
        &self,
        raw: &Spanned<toml::Value>,
    ) -> Result<Option<Consent>, ConfigError> {
        match raw.get_ref() {
            toml::Value::String(s) if s == "dnd" => Ok(Some(Consent::NotDnd)),
            toml::Value::Boolean(false) => Ok(None),
            toml::Value::Table(_) => Ok(Some(Consent::When(self.condition_value(raw)?))),
            _ => Err(self.loc.at(raw, "consent is \"dnd\" (GHL's Do Not Disturb), false, or a condition { field = \"custom.marketing_consent\", one_of = [\"yes\"] }")),
        }
    }

    /// A condition written inline as a table (`{ field = …, equals = … }`).
    fn condition_value(&self, raw: &Spanned<toml::Value>) -> Result<Condition, ConfigError> {
        // An inline table keeps no spans of its own: its field takes the table's.
        let mut table = raw.get_ref().as_table().cloned().unwrap_or_default();
        let field = table.remove("field");
        let mut parsed: RawCondition = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| self.loc.at(raw, e.message().trim().to_owned()))?;
        parsed.field = match field {
            Some(toml::Value::String(path)) => Some(Spanned::new(raw.span(), path)),
            Some(_) => {
                return Err(self
                    .loc
                    .at(raw, "field must be a path such as \"custom.consent\""));
            }
            None => None,
        };
        self.condition(&Spanned::new(raw.span(), parsed))
    }

    pub(super) fn condition(&self, raw: &Spanned<RawCondition>) -> Result<Condition, ConfigError> {
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
