//! Delivery written back into GHL ([`crate::jobs::write_back`]): the tag, custom
//! fields and note of an event Meta took, or the task of one that became a letter,
//! through enrichment's GHL client and its location's breaker.
//!
//! - **Budget.** A write waits, held, while fewer than a quarter of the location's
//!   10-second window is left ([`GhlWriter::reserved`]): real-time reads go first.
//!   Write-backs run in a FIFO group of their own, so one held holds no change.
//! - **Once.** The job is done once (its key); a task once per contact and cause
//!   (a record kept 400 days); a note or task redelivered after GHL took it but
//!   before the job was marked done is found among the contact's and not made again.
//! - **No loop.** The tags written are the pipeline's own, which no rule sees
//!   ([`crate::mapping::Mapping::disown`]); notes and tasks end with
//!   [`SIGNATURE`], which no rule fires on; and a `ContactUpdate` showing the
//!   contact as the event was built from it, with the values written, is this
//!   write's echo ([`Enricher::echoed`]): `contact.updated` does not fire for it.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Enriched, Enricher, done, retry_state};
use crate::batch::Reason;
use crate::capi::score::Score;
use crate::ghl::contacts_api::CustomFieldInput;
use crate::ghl::{Contact, GhlError, GhlReader, GhlWriter, Related};
use crate::jobs::write_back::SIGNATURE;
use crate::jobs::{After, DeadLetter, Stage, WriteBackJob, Written};
use crate::mapping::Occurrence;
use crate::ports::state::{StateError, StateStore};

/// How long a write waits for its echo (`ContactUpdate`): GHL sends it within
/// seconds; past this, a change is a person's.
const ECHO_FOR: Duration = Duration::from_secs(600);
/// How long a task's cause is remembered for its contact.
const TASKED_FOR: Duration = Duration::from_secs(400 * 24 * 3600);
/// The title of the task of a letter.
const TASK_TITLE: &str = "Meta could not use this contact's event";

/// What a write left to recognise its echo by.
#[derive(Debug, Serialize, Deserialize)]
struct Echo {
    shape: String,
    values: Vec<Value>,
}

fn echo_key(location: &str, contact: &str) -> String {
    format!("echo#{location}#{contact}")
}

fn task_key(job: &WriteBackJob, code: &str) -> String {
    format!("wrote#task#{}#{}#{code}", job.location_id, job.contact_id)
}

impl<G: GhlReader + GhlWriter, S: StateStore> Enricher<'_, G, S> {
    /// Writes `job` into GHL; `receives` is how often its record came (above 1, a
    /// note or task may be in GHL already).
    pub async fn write_back(
        &mut self,
        job: &WriteBackJob,
        receives: u32,
        now: DateTime<Utc>,
    ) -> Enriched {
        let location = job.location_id.as_str();
        let triggers = vec!["write_back".to_owned()];
        if let Some(paused) = self.paused(location, &triggers, now).await {
            return paused;
        }
        if let Some(after) = self.fetched.ghl().reserved(location) {
            let reason = Reason::new(
                crate::ghl::reader::code::BUDGET_RESERVED,
                format!("GHL's budget for location {location} is kept for real-time reads"),
            );
            crate::telemetry::written_back("any", "deferred");
            return Enriched::Retry {
                reason,
                after,
                triggers,
            };
        }
        let wrote = match &job.after {
            After::Sent { score } => self.sent(job, Score(*score), receives, now).await,
            After::Lettered { code, reason } => self.task(job, (code, reason), receives, now).await,
        };
        match wrote {
            Ok(wrote) => {
                tracing::info!(
                    webhook_id = job.source,
                    location_id = location,
                    contact_id = job.contact_id,
                    rule = job.rule,
                    event_id = job.event_id,
                    wrote = wrote.join(" "),
                    "written back into GHL"
                );
                self.breakers.succeeded(location, now).await;
                done(vec![], vec![], None)
            }
            Err(Failed::State(e)) => retry_state(e),
            Err(Failed::Ghl(GhlError::NotFound)) => {
                tracing::info!(
                    webhook_id = job.source,
                    location_id = location,
                    contact_id = job.contact_id,
                    event_id = job.event_id,
                    "GHL has no such contact any more: nothing written back"
                );
                crate::telemetry::written_back("any", "no_contact");
                done(vec![], vec![], None)
            }
            Err(Failed::Ghl(e @ (GhlError::Rejected { .. } | GhlError::Forbidden { .. }))) => {
                crate::telemetry::written_back("any", "refused");
                let mut reason = format!("GHL refused the write-back of rule {}: {e}", job.rule);
                if (job.write.fields.iter()).any(|(_, f)| CustomFieldInput::is_key(f)) {
                    reason.push_str(
                        "; a field named by key is written by the id the location's names give \
                         it: grant locations/customFields.readonly (ghl-capi oauth url asks for \
                         it), create the field in GHL, or name it by id",
                    );
                }
                let mut letter = DeadLetter::new(&job.key, Stage::Enrich, e.code(), reason);
                letter.rule = Some(job.rule.clone());
                letter.event_id = Some(job.event_id.clone()).filter(|id| !id.is_empty());
                letter.triggers = triggers;
                done(vec![], vec![letter], None)
            }
            Err(Failed::Ghl(e)) => {
                crate::telemetry::written_back("any", "held");
                self.ghl_failed(location, &e, triggers, now).await
            }
        }
    }

    /// The tag, fields and note of an event Meta took: what was written.
    async fn sent(
        &mut self,
        job: &WriteBackJob,
        score: Score,
        receives: u32,
        now: DateTime<Utc>,
    ) -> Result<Vec<&'static str>, Failed> {
        let (location, contact) = (job.location_id.as_str(), job.contact_id.as_str());
        let write = &job.write;
        let ids = self.field_ids(job, now).await?;
        let fields: Vec<(String, Value)> = (write.fields.iter().zip(ids))
            .map(|((what, _), field)| (field, value(job, *what, score)))
            .collect();
        let mut wrote = Vec::new();
        if write.tag.is_some() || !fields.is_empty() {
            // Before the write: its echo may come before the write's answer.
            let echo = Echo {
                shape: write.shape.clone(),
                values: fields.iter().map(|(_, v)| v.clone()).collect(),
            };
            let text = crate::ports::text(&echo);
            self.state
                .set_record(&echo_key(location, contact), &text, ECHO_FOR)
                .await?;
        }
        let ghl = self.fetched.ghl();
        if let Some(tag) = &write.tag {
            ghl.add_tag(location, contact, tag).await?;
            crate::telemetry::written_back("tag", "written");
            wrote.push("tag");
        }
        if !fields.is_empty() {
            ghl.set_fields(location, contact, &fields).await?;
            crate::telemetry::written_back("fields", "written");
            wrote.push("fields");
        }
        if write.note {
            let body = format!(
                "Sent {} to Meta at {}, event id {}, score {score}. {SIGNATURE}",
                job.event_name,
                job.at.to_rfc3339_opts(SecondsFormat::Secs, true),
                job.event_id
            );
            if receives > 1 && self.holds(job, Related::Notes, &job.event_id).await? {
                crate::telemetry::written_back("note", "there_already");
            } else {
                ghl.add_note(location, contact, &body).await?;
                crate::telemetry::written_back("note", "written");
                wrote.push("note");
            }
        }
        Ok(wrote)
    }

    /// Each field the job writes, as GHL's update takes it: by id, a key
    /// resolved through the location's names (GHL's spec asks for the id; its
    /// docs take either), else by key when GHL will not list the names.
    async fn field_ids(
        &mut self,
        job: &WriteBackJob,
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, Failed> {
        let fields = &job.write.fields;
        if !fields.iter().any(|(_, f)| CustomFieldInput::is_key(f)) {
            return Ok(fields.iter().map(|(_, f)| f.clone()).collect());
        }
        let listed = Occurrence::listed(&job.location_id, &job.contact_id, now);
        let names = self.names(&job.location_id, &listed, now).await?;
        let id = |field: &String| match &names {
            Some(names) if CustomFieldInput::is_key(field) => {
                names.custom_field(field).map(str::to_owned)
            }
            _ => None,
        };
        Ok(fields
            .iter()
            .map(|(_, f)| id(f).unwrap_or_else(|| f.clone()))
            .collect())
    }

    /// The task of a letter, once per contact and cause.
    async fn task(
        &mut self,
        job: &WriteBackJob,
        (code, reason): (&str, &str),
        receives: u32,
        now: DateTime<Utc>,
    ) -> Result<Vec<&'static str>, Failed> {
        let key = task_key(job, code);
        let mark = format!("cause {code} {SIGNATURE}");
        let tasked = self.state.record(&key).await?.is_some()
            || (receives > 1 && self.holds(job, Related::Tasks, &mark).await?);
        if tasked {
            crate::telemetry::written_back("task", "there_already");
            return Ok(Vec::new());
        }
        let body = format!(
            "{} event {} (rule {}) will not reach Meta: {reason}\n\nFix what it says, then \
             redrive it: ghl-capi dlq redrive. {mark}",
            job.event_name, job.event_id, job.rule
        );
        let due = now + chrono::Duration::days(1);
        let ghl = self.fetched.ghl();
        ghl.add_task(&job.location_id, &job.contact_id, (TASK_TITLE, &body), due)
            .await?;
        crate::telemetry::written_back("task", "written");
        let at = now.to_rfc3339_opts(SecondsFormat::Secs, true);
        self.state.set_record(&key, &at, TASKED_FOR).await?;
        Ok(vec!["task"])
    }

    /// Whether the contact's notes or tasks hold one whose body has `mark` (this
    /// write-back's, made before its job was marked done).
    async fn holds(
        &mut self,
        job: &WriteBackJob,
        list: Related,
        mark: &str,
    ) -> Result<bool, Failed> {
        let ghl = self.fetched.ghl();
        let records = ghl.related(&job.location_id, &job.contact_id, list).await?;
        let found = (records.as_array().into_iter().flatten())
            .filter_map(|r| r.get("body").and_then(Value::as_str))
            .any(|body| body.contains(mark) && body.contains(SIGNATURE));
        Ok(found)
    }
}

impl<G: GhlReader, S: StateStore> Enricher<'_, G, S> {
    /// Whether `contact`, as a `ContactUpdate` shows it, is the echo of a write:
    /// alike in all but what writes set, with the values written. An echo is
    /// taken once (its record goes); a person's change since shows otherwise.
    pub(super) async fn echoed(
        &mut self,
        location: &str,
        contact: &Contact,
    ) -> Result<bool, StateError> {
        let key = echo_key(location, &contact.id);
        let Some(text) = self.state.record(&key).await? else {
            return Ok(false);
        };
        let Ok(echo) = serde_json::from_str::<Echo>(&text) else {
            // Written by another build: the update is taken as a person's.
            tracing::warn!(
                location_id = location,
                contact_id = contact.id,
                "an unreadable write-back echo record: the update fires its rules"
            );
            crate::telemetry::written_back("any", "echo_unreadable");
            return Ok(false);
        };
        let carries = |v: &Value| contact.custom_fields.iter().any(|f| alike(&f.value, v));
        if echo.shape != contact.shape() || !echo.values.iter().all(carries) {
            return Ok(false);
        }
        self.state.delete_record(&key).await?;
        tracing::info!(
            location_id = location,
            contact_id = contact.id,
            "the contact's update is the echo of our own write-back: contact.updated does not fire"
        );
        crate::telemetry::skipped("own_write_back");
        Ok(true)
    }
}

/// What a write-back's field gets.
fn value(job: &WriteBackJob, what: Written, score: Score) -> Value {
    match what {
        Written::SentAt => Value::from(job.at.to_rfc3339_opts(SecondsFormat::Secs, true)),
        Written::EventId => Value::from(job.event_id.clone()),
        Written::EventName => Value::from(job.event_name.clone()),
        Written::Score => Value::from(score.to_string()),
    }
}

/// Values alike as GHL gives them back: text trimmed, a number as its text.
fn alike(a: &Value, b: &Value) -> bool {
    let text = |v: &Value| match v {
        Value::String(s) => s.trim().to_owned(),
        other => other.to_string(),
    };
    text(a) == text(b)
}

/// Why a write-back stopped.
enum Failed {
    Ghl(GhlError),
    State(StateError),
}

impl From<GhlError> for Failed {
    fn from(e: GhlError) -> Self {
        Failed::Ghl(e)
    }
}

impl From<StateError> for Failed {
    fn from(e: StateError) -> Self {
        Failed::State(e)
    }
}
