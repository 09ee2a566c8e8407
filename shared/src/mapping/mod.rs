//! The declarative mapping: which GHL changes become which Meta events, written by
//! the user in one TOML file (see `infra/mapping.example.toml`).
//!
//! [`Mapping::load`] refuses a file with any error and names its line;
//! [`Mapping::map`] turns one [`Occurrence`] of one contact into the events its
//! rules produce, each validated (a rejected event carries its reason).

pub mod audience;
mod build;
mod config;
pub mod live;
pub mod membership;
mod names;
mod occurrence;
mod path;
mod trigger;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::capi::{ActionSource, Rejection, ServerEvent};
use crate::ghl::workflow::REFS;
use crate::ghl::{Contact, Related};

pub use audience::{Audience, Membership};
pub use build::identity;
pub use config::ConfigError;
pub use occurrence::{Baseline, Occurrence, TriggerError, declared, tellable};
pub use path::{Condition, FieldPath, Subject, Test, as_number};
pub use trigger::{Trigger, UnknownTrigger};

/// The built-in mapping used when the user gives none.
pub const DEFAULT_MAPPING: &str = include_str!("default.toml");

/// A loaded, checked mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    /// Which text it was read from ([`crate::ports::mappings::version_of`]): every
    /// event built and every letter written under it names it.
    pub version: String,
    pub defaults: Defaults,
    pub pixels: Vec<Pixel>,
    pub rules: Vec<Rule>,
    /// The Custom Audiences it keeps in step.
    pub audiences: Vec<Audience>,
}

/// Settings every rule inherits.
#[derive(Debug, Clone, PartialEq)]
pub struct Defaults {
    pub action_source: ActionSource,
    /// Currency for values that come without one (ISO 4217, uppercase).
    pub currency: Option<String>,
    /// Conversion Leads: the CRM name sent as `lead_event_source` (with
    /// `event_source = "crm"`) on `system_generated` events; `None` sends neither.
    pub lead_event_source: Option<String>,
}

/// A Meta pixel (dataset) events are sent to.
#[derive(Debug, Clone, PartialEq)]
pub struct Pixel {
    pub name: String,
    pub dataset_id: String,
    /// Where its access token is kept; the token itself never appears in a mapping.
    pub access_token: TokenRef,
    /// Routes events to Events Manager's Test Events.
    pub test_event_code: Option<String>,
    /// The GHL locations that feed it; empty means all.
    pub locations: Vec<String>,
}

/// A reference to a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRef {
    /// A Secrets Manager secret, by name or ARN.
    Secret(String),
    /// An environment variable (local mode).
    Env(String),
}

/// Data a rule needs fetched from GHL before it can be evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Need {
    /// The full contact with its attribution (`GET /contacts/{id}`).
    Attribution,
    Notes,
    Tasks,
    Appointments,
}

impl Need {
    /// The list GHL gives for it; `None` for the contact itself.
    pub fn related(self) -> Option<Related> {
        match self {
            Need::Attribution => None,
            Need::Notes => Some(Related::Notes),
            Need::Tasks => Some(Related::Tasks),
            Need::Appointments => Some(Related::Appointments),
        }
    }

    /// The name used in mapping files, and as the related-data key for paths.
    pub fn name(self) -> &'static str {
        match self {
            Need::Attribution => "attribution",
            Need::Notes => "notes",
            Need::Tasks => "tasks",
            Need::Appointments => "appointments",
        }
    }
}

/// A value: a constant, or read from a field (with a fallback).
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    Constant(Value),
    Field {
        path: FieldPath,
        default: Option<Value>,
    },
}

/// One rule: when `trigger` happens and every condition holds, send `event_name`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    pub trigger: Trigger,
    pub event_name: Source,
    pub action_source: Option<ActionSource>,
    pub value: Option<Source>,
    pub currency: Option<Source>,
    pub lead_id: Option<Source>,
    pub external_id: Option<Source>,
    /// Extra `custom_data` keys (standard ones such as `content_name` included).
    pub custom_data: Vec<(String, Source)>,
    pub needs: Vec<Need>,
    /// The pixels it feeds, by name; empty means every pixel of the location.
    pub pixels: Vec<String>,
    pub conditions: Vec<Condition>,
}

impl Rule {
    /// The workflows its `workflow = …` names (for `workflow.fired` rules).
    pub fn named_workflows(&self) -> impl Iterator<Item = &str> {
        self.named(REFS)
    }

    /// What its shorthand on the entity's `field` (`workflow`, `stage`, …)
    /// accepts.
    pub(crate) fn named<'r>(&'r self, field: &'r str) -> impl Iterator<Item = &'r str> {
        self.conditions
            .iter()
            .filter(move |c| {
                matches!(&c.path, Some(FieldPath::Entity(keys)) if keys.len() == 1 && keys[0] == field)
            })
            .filter_map(|c| match &c.test {
                Test::OneOf(values) => Some(values),
                _ => None,
            })
            .flatten()
            .filter_map(Value::as_str)
    }

    /// The paths into the trigger's entity it reads, in its values and conditions.
    pub fn entity_paths(&self) -> Vec<&[String]> {
        self.paths()
            .filter_map(|path| match path {
                FieldPath::Entity(keys) => Some(keys.as_slice()),
                _ => None,
            })
            .collect()
    }

    /// Whether it may read what only the location's names resolve: a stage,
    /// pipeline or calendar named, or a custom field (by name or key).
    pub fn reads_names(&self) -> bool {
        let named = [
            occurrence::STAGE_REFS,
            occurrence::PIPELINE_REFS,
            occurrence::CALENDAR_REFS,
        ];
        self.paths().any(|path| match path {
            FieldPath::Custom(_) => true,
            FieldPath::Entity(keys) => keys.first().is_some_and(|k| named.contains(&k.as_str())),
            _ => false,
        })
    }

    /// Whether it needs the location's names for `occ` and `contact`: it names a
    /// stage, pipeline or calendar the change gives by id alone, or reads a custom
    /// field the contact does not carry under that id, key or name.
    pub fn wants_names(&self, occ: &Occurrence, contact: &Contact) -> bool {
        self.reads_names()
            && self.paths().any(|path| match path {
                FieldPath::Custom(key) => contact.custom_field(key).is_none(),
                FieldPath::Entity(keys) => keys.first().is_some_and(|k| occ.unnamed(k)),
                _ => false,
            })
    }

    /// Every path it reads, in its values and conditions.
    pub(crate) fn paths(&self) -> impl Iterator<Item = &FieldPath> {
        let sources = [
            Some(&self.event_name),
            self.value.as_ref(),
            self.currency.as_ref(),
            self.lead_id.as_ref(),
            self.external_id.as_ref(),
        ]
        .into_iter()
        .flatten()
        .chain(self.custom_data.iter().map(|(_, source)| source));
        let from_sources = sources.filter_map(|source| match source {
            Source::Field { path, .. } => Some(path),
            Source::Constant(_) => None,
        });
        let from_conditions = self.conditions.iter().filter_map(|c| c.path.as_ref());
        from_sources.chain(from_conditions)
    }
}

/// One event a rule produced for one occurrence, or why it could not be sent.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedEvent {
    pub rule: String,
    /// The names of the pixels it goes to.
    pub pixels: Vec<String>,
    pub outcome: Result<ServerEvent, Rejection>,
}

impl Source {
    fn resolve(&self, subject: &Subject<'_>) -> Option<Value> {
        match self {
            Source::Constant(v) => Some(v.clone()),
            Source::Field { path, default } => path
                .read(subject)
                .map(|v| v.into_owned())
                .or_else(|| default.clone()),
        }
    }
}

impl Mapping {
    /// Loads and checks the mapping file at `path`.
    pub fn load(path: &std::path::Path) -> Result<Mapping, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::unreadable(path, &e))?;
        Mapping::parse(&text, &path.display().to_string())
    }

    /// Parses and checks mapping text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Mapping, ConfigError> {
        config::parse(text, file)
    }

    /// The built-in mapping: new contact → `Lead`, opportunity won → `Purchase` with
    /// its monetary value, appointment booked → `Schedule`, posted conversions as posted,
    /// workflow calls that name their event (`"event": "Schedule"`) as named.
    pub fn builtin() -> Mapping {
        // Tested to parse; failing here is a build defect, not a runtime condition.
        #[allow(clippy::expect_used)]
        Mapping::parse(DEFAULT_MAPPING, "built-in mapping").expect("the built-in mapping is valid")
    }

    /// The names of the triggers its rules fire on (the scopes GHL must grant
    /// follow from them).
    pub fn trigger_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.rules.iter().map(|rule| rule.trigger.name())
    }

    /// The name an event is counted under: Meta's standard names and the
    /// mapping's own constant ones as they are, any other (a caller's
    /// `eventType`, a field's value) as `other`, so no caller can make metrics
    /// without bound.
    pub fn metric_name<'a>(&self, event_name: &'a str) -> &'a str {
        let constant = |rule: &Rule| matches!(&rule.event_name, Source::Constant(Value::String(s)) if s == event_name);
        if crate::capi::STANDARD_EVENTS.contains(&event_name) || self.rules.iter().any(constant) {
            event_name
        } else {
            "other"
        }
    }

    /// The name a workflow is counted under: the one of `refs` (its id and name)
    /// a rule's `workflow = …` names, else `other`, so metrics stay bounded.
    pub fn workflow_metric_name<'a>(&'a self, refs: &[&str]) -> &'a str {
        self.rules_for(Trigger::WorkflowFired)
            .flat_map(Rule::named_workflows)
            .find(|name| {
                refs.iter()
                    .any(|r| r.trim().eq_ignore_ascii_case(name.trim()))
            })
            .unwrap_or("other")
    }

    /// The audiences that take contacts of `location_id`.
    pub fn audiences_for<'a>(&'a self, location_id: &'a str) -> impl Iterator<Item = &'a Audience> {
        self.audiences.iter().filter(move |a| a.serves(location_id))
    }

    /// Whether the pixel named `pixel` names `location_id` among its locations
    /// (rather than taking it as one of "all locations").
    pub fn pixel_names(&self, pixel: &str, location_id: &str) -> bool {
        self.pixels
            .iter()
            .any(|p| p.name == pixel && p.locations.iter().any(|l| l == location_id))
    }

    /// Whether a rule or an audience reads opportunities (so reconciliation lists
    /// them too).
    pub fn reads_opportunities(&self) -> bool {
        let opportunity = Some("opportunity");
        self.rules.iter().any(|r| r.trigger.entity() == opportunity)
            || self.audiences.iter().any(|a| a.entity() == opportunity)
    }

    /// The triggers of its rules that reconciliation cannot recover when GHL never
    /// delivers their webhook ([`Trigger::recovered_by_polling`]), in the order
    /// triggers are listed.
    pub fn unrecovered_triggers(&self) -> Vec<Trigger> {
        Trigger::ALL
            .iter()
            .map(|(trigger, _)| *trigger)
            .filter(|t| t.from_webhooks() && !t.recovered_by_polling())
            .filter(|t| self.rules_for(*t).next().is_some())
            .collect()
    }

    /// The rules a trigger fires.
    pub fn rules_for(&self, trigger: Trigger) -> impl Iterator<Item = &Rule> {
        self.rules.iter().filter(move |r| r.trigger == trigger)
    }

    /// What enrichment must fetch for `trigger`, in a stable order.
    pub fn needs(&self, trigger: Trigger) -> Vec<Need> {
        let mut needs: Vec<Need> = self
            .rules_for(trigger)
            .flat_map(|r| r.needs.iter().copied())
            .collect();
        needs.sort();
        needs.dedup();
        needs
    }

    /// The pixels `rule` sends to for events of `location_id`.
    pub fn pixels_for<'a>(
        &'a self,
        rule: &'a Rule,
        location_id: &'a str,
    ) -> impl Iterator<Item = &'a Pixel> {
        self.pixels.iter().filter(move |p| {
            (rule.pixels.is_empty() || rule.pixels.contains(&p.name))
                && (p.locations.is_empty() || p.locations.iter().any(|l| l == location_id))
        })
    }

    /// The events `occurrence` produces for `contact`. `related` holds the lists
    /// enrichment fetched (`notes`, `tasks`, `appointments`); `now` decides which
    /// event times are still sendable.
    pub fn map(
        &self,
        occurrence: &Occurrence,
        contact: &Contact,
        related: &Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Vec<MappedEvent> {
        let subject = Subject::new(contact, occurrence, related);
        self.firing(&subject)
            .map(|rule| MappedEvent {
                rule: rule.name.clone(),
                pixels: self
                    .pixels_for(rule, &occurrence.location_id)
                    .map(|p| p.name.clone())
                    .collect(),
                outcome: build::event(rule, &self.defaults, &subject, now),
            })
            .collect()
    }

    /// As [`Mapping::map`], for a stream of contacts and only the rules `wanted`
    /// keeps: each event is built into `scratch`, whose buffers serve event after
    /// event, and handed to `each` with the rule that produced it.
    pub fn map_each(
        &self,
        subject: &Subject<'_>,
        now: DateTime<Utc>,
        scratch: &mut ServerEvent,
        wanted: impl Fn(&Rule) -> bool,
        mut each: impl FnMut(&Rule, Result<&ServerEvent, Rejection>),
    ) {
        for rule in self.firing(subject).filter(|rule| wanted(rule)) {
            let outcome = build::event_into(rule, &self.defaults, subject, now, scratch);
            each(rule, outcome.map(|()| &*scratch));
        }
    }

    /// The rules of `occurrence`'s trigger that do not fire for `contact`, each with
    /// the first of its conditions that fails, as [`Condition::describe`] says it.
    pub fn unmet(
        &self,
        occurrence: &Occurrence,
        contact: &Contact,
        related: &Map<String, Value>,
    ) -> Vec<(&str, String)> {
        let subject = Subject::new(contact, occurrence, related);
        self.rules_for(occurrence.trigger)
            .filter_map(|rule| {
                let failed = rule.conditions.iter().find(|c| !c.holds(&subject))?;
                Some((rule.name.as_str(), failed.describe()))
            })
            .collect()
    }

    /// The rules `subject`'s trigger fires whose conditions hold.
    fn firing<'a>(&'a self, subject: &'a Subject<'a>) -> impl Iterator<Item = &'a Rule> {
        self.rules_for(subject.occurrence.trigger)
            .filter(|rule| rule.conditions.iter().all(|c| c.holds(subject)))
    }
}
