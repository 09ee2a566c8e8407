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
pub mod privacy;
mod rule;
mod trigger;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::capi::{ActionSource, Rejection, ServerEvent};
use crate::ghl::{Contact, Related};

pub use audience::{Audience, Membership};
pub use build::identity;
pub use config::ConfigError;
pub use occurrence::{Baseline, Occurrence, TriggerError, declared, tellable};
pub use path::{Condition, FieldPath, Subject, Test, as_number};
pub use rule::Rule;
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

/// A rule that does not fire for a change, as [`Mapping::unmet`] finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmet<'a> {
    pub rule: &'a str,
    /// The condition that stops it, as [`Condition::describe`] says it.
    pub condition: String,
    /// Whether that condition reads the change: the rule watches another tag or
    /// entity, which is detail, not news.
    pub other_change: bool,
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

    /// Whether a rule writes back into GHL (then the app needs `contacts.write`).
    pub fn writes_back(&self) -> bool {
        self.rules.iter().any(|r| r.write_back.is_some())
    }

    /// What it asks of GHL beyond reading contacts: the scopes it needs.
    pub fn wants(&self) -> crate::ghl::install::Wants {
        crate::ghl::install::Wants {
            names: self.reads_names(),
            writes: self.writes_back(),
        }
    }

    /// The tags its rules write back: the pipeline's own, which no rule sees.
    pub fn owned_tags(&self) -> impl Iterator<Item = &str> {
        (self.rules.iter()).filter_map(|r| r.write_back.as_ref()?.tag.as_deref())
    }

    /// `tags` (a contact's, or as last seen) as the rules see them: without the
    /// tags the write-back owns, so a tag the pipeline wrote is no tag change, no
    /// condition's and no baseline's.
    pub fn disown(&self, tags: &mut Vec<String>) {
        let owned: Vec<&str> = self.owned_tags().collect();
        if !owned.is_empty() {
            tags.retain(|t| !owned.iter().any(|o| o.eq_ignore_ascii_case(t.trim())));
        }
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
    /// the condition that stops it: the first about the change that fails (the rule
    /// watches another tag or entity), else the first that fails.
    pub fn unmet(
        &self,
        occurrence: &Occurrence,
        contact: &Contact,
        related: &Map<String, Value>,
    ) -> Vec<Unmet<'_>> {
        let subject = Subject::new(contact, occurrence, related);
        let fails = |c: &&Condition| !c.holds(&subject);
        self.rules_for(occurrence.trigger)
            .filter_map(|rule| {
                let conditions = &rule.conditions;
                let failed = (conditions
                    .iter()
                    .filter(|c| c.about_the_change())
                    .find(fails))
                .or_else(|| conditions.iter().find(fails))?;
                Some(Unmet {
                    rule: rule.name.as_str(),
                    condition: failed.describe(),
                    other_change: failed.about_the_change(),
                })
            })
            .collect()
    }

    /// The rules of `occurrence`'s trigger whose conditions hold for `contact` but
    /// whose consent it lacks, each with why: they send nothing for it.
    pub fn without_consent(
        &self,
        occurrence: &Occurrence,
        contact: &Contact,
        related: &Map<String, Value>,
    ) -> Vec<(&str, String)> {
        let subject = Subject::new(contact, occurrence, related);
        self.rules_for(occurrence.trigger)
            .filter(|rule| rule.conditions.iter().all(|c| c.holds(&subject)))
            .filter_map(|rule| {
                let consent = rule.consent.as_ref()?;
                (!consent.given(&subject)).then(|| (rule.name.as_str(), consent.lacking()))
            })
            .collect()
    }

    /// The rules `subject`'s trigger fires: their conditions hold, and the contact
    /// gave the consent they ask.
    fn firing<'a>(&'a self, subject: &'a Subject<'a>) -> impl Iterator<Item = &'a Rule> {
        self.rules_for(subject.occurrence.trigger).filter(|rule| {
            rule.conditions.iter().all(|c| c.holds(subject))
                && rule.consent.as_ref().is_none_or(|c| c.given(subject))
        })
    }
}
