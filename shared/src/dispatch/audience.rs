//! Audience changes in dispatch: per audience, one `DELETE` of the rows to take
//! out, then one `POST` of the rows to add (up to 10,000 rows a request, in a
//! session when a change spans more).
//!
//! Order per contact and audience is kept by number, not by the queue: each change
//! carries one more than the last ([`AudienceJob::seq`]); the state store keeps the
//! last applied. A change already applied is done; one whose predecessor is still
//! held waits for it; a batch's consecutive changes of one contact are folded into
//! their net rows. A gap heals: a change that waited past the hold's `gap_limit`
//! (its predecessor lost, or a letter), a redriven one and a sync's send the
//! contact's current membership instead, and settle every change up to it. Meta's refusals that no retry can mend (a flagged or missing
//! audience) dead-letter the change with Meta's words and count it (the alarm on
//! audience errors); the rest are held as events are. While the audience's whole
//! list is being replaced ([`super::replace`]), its changes are held, and follow.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::consumer::DispatchConsumer;
use super::replace::replacing_key;
use crate::batch::{Outcome, Reason};
use crate::capi::audience::{
    MAX_ROWS, Operation, Row, Session, UsersOutcome, UsersRequest, classify_users,
};
use crate::capi::{AudiencesApi, EventsApi, TransportError};
use crate::error::chain;
use crate::hold::code;
use crate::jobs::{AudienceJob, DeadLetter, Stage};
use crate::mapping::Audience;
use crate::mapping::membership::{self, Member, member_key, net, restate};
use crate::normalize::sha256_hex;
use crate::ports::queue::{Queue, Record};
use crate::ports::state::StateStore;

/// How long the last applied change is remembered: as long as the membership.
const APPLIED_FOR: Duration = crate::mapping::audience::REMEMBERED_FOR;

/// The state key of the last change applied to `job`'s contact and audience.
fn applied_key(job: &AudienceJob) -> String {
    membership::applied_key(&job.audience, &job.location_id, &job.contact_id)
}

/// One audience's changes in a batch, per contact (its applied key).
type ByContact<'r> = BTreeMap<String, Vec<(&'r Record, AudienceJob)>>;

/// A change ready to send: its contact's applied key, the number to record as
/// applied once it is, its record and itself.
type Ready<'r> = (String, u64, &'r Record, AudienceJob);

/// A letter about `job`.
fn letter(job: &AudienceJob, code: &str, reason: String) -> DeadLetter {
    let mut letter = DeadLetter::new(&job.source, Stage::Dispatch, code, reason);
    letter.rule = Some(format!("audience:{}", job.audience));
    letter.history = job.history.clone();
    letter
}

/// What one audience's requests came to.
struct Sent {
    outcome: UsersOutcome,
    removed: u64,
    added: u64,
    invalid: u64,
}

impl<A: EventsApi + AudiencesApi, S: StateStore, Q: Queue> DispatchConsumer<'_, A, S, Q> {
    /// Applies a batch's audience changes; each record's outcome.
    pub(super) async fn audiences<'r>(
        &self,
        jobs: Vec<(&'r Record, AudienceJob)>,
        now: DateTime<Utc>,
    ) -> Vec<(&'r Record, AudienceJob, Outcome)> {
        let mut settled = Vec::new();
        // Per audience, per contact (its applied key), its changes by number.
        let mut by_audience: BTreeMap<String, ByContact<'r>> = BTreeMap::new();
        for (record, job) in jobs {
            if self.audience(&job.audience).is_none() {
                let why = format!("the mapping has no audience named {}", job.audience);
                let outcome = Outcome::DeadLetter(letter(&job, "unknown_audience", why));
                settled.push((record, job, outcome));
                continue;
            }
            by_audience
                .entry(job.audience.clone())
                .or_default()
                .entry(applied_key(&job))
                .or_default()
                .push((record, job));
        }
        for (name, contacts) in by_audience {
            let Some(audience) = self.audience(&name) else {
                continue;
            };
            if let Some(reason) = self.replacing(&name).await {
                for (_, changes) in contacts {
                    settled.extend(self.hold_all(changes, &reason, now));
                }
                continue;
            }
            let mut ready = Vec::new();
            let (mut remove, mut add) = (Vec::new(), Vec::new());
            for (key, mut changes) in contacts {
                changes.sort_by_key(|(_, job)| job.seq);
                let applied = match self.state.record(&key).await {
                    Ok(text) => text.and_then(|t| t.parse::<u64>().ok()).unwrap_or(0),
                    Err(e) => {
                        let reason = Reason::of("state_store_failed", &e);
                        settled.extend(self.hold_all(changes, &reason, now));
                        continue;
                    }
                };
                if changes
                    .iter()
                    .any(|(_, job)| self.overdue(job, applied, now))
                {
                    match self.current(&changes).await {
                        Ok(Some(current)) => {
                            let jobs: Vec<&AudienceJob> = changes.iter().map(|(_, j)| j).collect();
                            let (out, into, upto) = restate(&current, &jobs, applied);
                            remove.extend(out);
                            add.extend(into);
                            ready.extend(
                                changes.into_iter().map(|(r, j)| (key.clone(), upto, r, j)),
                            );
                        }
                        // Nothing remembered of the contact: its changes in hand, in order.
                        Ok(None) => {
                            let jobs: Vec<&AudienceJob> = changes.iter().map(|(_, j)| j).collect();
                            let (out, into) = net(&jobs);
                            let upto = changes.last().map_or(applied, |(_, j)| j.seq.max(applied));
                            remove.extend(out);
                            add.extend(into);
                            ready.extend(
                                changes.into_iter().map(|(r, j)| (key.clone(), upto, r, j)),
                            );
                        }
                        Err(e) => {
                            let reason = Reason::of("state_store_failed", &e);
                            settled.extend(self.hold_all(changes, &reason, now));
                        }
                    }
                    continue;
                }
                let mut next = applied + 1;
                let mut consecutive = Vec::new();
                for (record, job) in changes {
                    if job.seq < next {
                        tracing::info!(
                            source = job.source,
                            audience = job.audience,
                            seq = job.seq,
                            "this audience change was applied already: not sent again"
                        );
                        settled.push((record, job, Outcome::Done));
                    } else if job.seq == next {
                        next += 1;
                        consecutive.push((key.clone(), job.seq, record, job));
                    } else {
                        let reason = Reason::new(
                            "waiting_for_earlier_change",
                            format!(
                                "change {} of this contact in audience {} is not applied yet",
                                next, job.audience
                            ),
                        );
                        let outcome = self.hold_change(&job, reason, now);
                        settled.push((record, job, outcome));
                    }
                }
                let jobs: Vec<&AudienceJob> = consecutive.iter().map(|(_, _, _, j)| j).collect();
                let (out, into) = net(&jobs);
                remove.extend(out);
                add.extend(into);
                ready.extend(consecutive);
            }
            if ready.is_empty() {
                continue;
            }
            let sent = self.send(audience, remove, add).await;
            settled.extend(self.settle_changes(audience, ready, sent, now).await);
        }
        settled
    }

    /// Whether `job` brings its contact in step at once: asked to (a redrive, a
    /// sync), or waiting for an earlier change longer than the hold allows for one
    /// (that change may never come: lost, or a letter).
    fn overdue(&self, job: &AudienceJob, applied: u64, now: DateTime<Utc>) -> bool {
        let waited = job
            .history
            .first_failure
            .and_then(|since| (now - since).to_std().ok())
            .is_some_and(|waited| waited >= self.policy.gap_limit);
        if job.resync || (job.seq > applied + 1 && waited) {
            tracing::info!(
                source = job.source,
                audience = job.audience,
                location_id = job.location_id,
                contact_id = job.contact_id,
                seq = job.seq,
                applied,
                redriven = job.resync,
                "this contact's audience changes have a gap: its current membership is sent"
            );
            return true;
        }
        false
    }

    /// The contact's membership as enrichment last worked it out (`None` when
    /// nothing is remembered).
    async fn current(
        &self,
        changes: &[(&Record, AudienceJob)],
    ) -> Result<Option<Member>, crate::ports::state::StateError> {
        let Some((_, job)) = changes.first() else {
            return Ok(None);
        };
        let key = member_key(&job.audience, &job.location_id, &job.contact_id);
        let text = self.state.record(&key).await?;
        Ok(text.and_then(|t| serde_json::from_str::<Member>(&t).ok()))
    }

    /// Why the audience's changes wait, if they must: its whole list is being
    /// replaced (Meta takes no `/users` call meanwhile), or that cannot be read.
    async fn replacing(&self, audience: &str) -> Option<Reason> {
        match self.state.record(&replacing_key(audience)).await {
            Ok(None) => None,
            Ok(Some(since)) => Some(Reason::new(
                code::AUDIENCE_REPLACING,
                format!("audience {audience} is being replaced ({since}): its changes follow"),
            )),
            Err(e) => Some(Reason::of("state_store_failed", &e)),
        }
    }

    /// Every change of `changes` held with `reason`.
    fn hold_all<'r>(
        &self,
        changes: Vec<(&'r Record, AudienceJob)>,
        reason: &Reason,
        now: DateTime<Utc>,
    ) -> Vec<(&'r Record, AudienceJob, Outcome)> {
        changes
            .into_iter()
            .map(|(record, job)| {
                let outcome = self.hold_change(&job, reason.clone(), now);
                (record, job, outcome)
            })
            .collect()
    }

    fn audience(&self, name: &str) -> Option<&Audience> {
        self.mapping.audiences.iter().find(|a| a.name == name)
    }

    /// Sends the removes, then the adds, stopping at the first request not applied.
    async fn send(&self, audience: &Audience, remove: Vec<Row>, add: Vec<Row>) -> Sent {
        let mut sent = Sent {
            outcome: UsersOutcome::Applied {
                received: 0,
                invalid: 0,
                fbtrace_id: None,
            },
            removed: 0,
            added: 0,
            invalid: 0,
        };
        for (operation, rows) in [(Operation::Remove, remove), (Operation::Add, add)] {
            if rows.is_empty() {
                continue;
            }
            let (outcome, received, invalid) = users(self.capi, audience, operation, rows).await;
            sent.invalid += invalid;
            match operation {
                Operation::Remove => sent.removed += received,
                Operation::Add => sent.added += received,
            }
            let applied = matches!(outcome, UsersOutcome::Applied { .. });
            sent.outcome = outcome;
            if !applied {
                break;
            }
        }
        sent
    }

    /// Each ready change's outcome, given what its audience's requests came to.
    async fn settle_changes<'r>(
        &self,
        audience: &Audience,
        ready: Vec<Ready<'r>>,
        sent: Sent,
        now: DateTime<Utc>,
    ) -> Vec<(&'r Record, AudienceJob, Outcome)> {
        let name = audience.name.as_str();
        crate::telemetry::audience_rows(name, "removed", sent.removed);
        crate::telemetry::audience_rows(name, "added", sent.added);
        crate::telemetry::audience_rows(name, "invalid", sent.invalid);
        let settled_for_good = match &sent.outcome {
            UsersOutcome::Applied { .. } => {
                tracing::info!(
                    audience = name,
                    changes = ready.len(),
                    rows_removed = sent.removed,
                    rows_added = sent.added,
                    rows_invalid = sent.invalid,
                    "audience rows sent"
                );
                true
            }
            UsersOutcome::Refused { code, .. } => {
                crate::telemetry::audience_error(name, code);
                let rows = ready
                    .iter()
                    .map(|(_, _, _, j)| j.remove.len() + usize::from(j.add.is_some()));
                crate::telemetry::audience_rows(name, "refused", rows.sum::<usize>() as u64);
                true
            }
            UsersOutcome::Held { .. } => {
                self.capi.audience_token_refused(&audience.audience_id);
                false
            }
            UsersOutcome::Retry { .. } => false,
        };
        if settled_for_good {
            // Applied, or refused for good: later changes of these contacts go on.
            let mut last: HashMap<&str, u64> = HashMap::new();
            for (key, upto, _, _) in &ready {
                let seq = last.entry(key.as_str()).or_default();
                *seq = (*seq).max(*upto);
            }
            let marks: Vec<(String, String)> = last
                .into_iter()
                .map(|(key, seq)| (key.to_owned(), seq.to_string()))
                .collect();
            if let Err(e) = self.state.set_records(&marks, APPLIED_FOR).await {
                // Each would be sent again: adding and removing are idempotent at Meta.
                tracing::warn!(audience = name, changes = marks.len(), error = %chain(&e), "cannot record audience changes as applied");
            }
        }
        ready
            .into_iter()
            .map(|(_, _, record, job)| {
                let outcome = match &sent.outcome {
                    UsersOutcome::Applied { .. } => Outcome::Done,
                    UsersOutcome::Refused { code, reason } => {
                        Outcome::DeadLetter(letter(&job, code, reason.clone()))
                    }
                    UsersOutcome::Held { reason } => self.hold_change(
                        &job,
                        Reason::new(code::META_REQUEST_REFUSED, reason.clone()),
                        now,
                    ),
                    UsersOutcome::Retry { reason } => self.hold_change(
                        &job,
                        Reason::new(code::META_UNAVAILABLE, reason.clone()),
                        now,
                    ),
                };
                (record, job, outcome)
            })
            .collect()
    }

    /// `job` cannot be applied now: back on the queue with its history, or a
    /// letter once held as long as the failure allows.
    fn hold_change(&self, job: &AudienceJob, reason: Reason, now: DateTime<Utc>) -> Outcome {
        let mut held = job.clone();
        held.history.failed(reason.code, &reason.text, now);
        let key = applied_key(job);
        crate::batch::hold_or_letter(
            &self.policy,
            &held,
            &key,
            Duration::ZERO,
            reason,
            now,
            |code, why| letter(&held, code, why),
        )
    }
}

/// Sends `rows` to `audience` in requests of up to [`MAX_ROWS`], in one session
/// when they take more than one; the first outcome that is not applied, or the
/// last, with the rows Meta received and found invalid.
pub async fn users(
    api: &impl AudiencesApi,
    audience: &Audience,
    operation: Operation,
    rows: Vec<Row>,
) -> (UsersOutcome, u64, u64) {
    let total = rows.len();
    let chunks: Vec<&[Row]> = rows.chunks(MAX_ROWS).collect();
    let session_id = (chunks.len() > 1).then(|| session_id(audience, total));
    let (mut received, mut invalid) = (0, 0);
    let mut outcome = UsersOutcome::Applied {
        received: 0,
        invalid: 0,
        fbtrace_id: None,
    };
    for (i, chunk) in chunks.iter().enumerate() {
        let request = UsersRequest {
            operation,
            rows: chunk.to_vec(),
            session: session_id.map(|session_id| Session {
                session_id,
                batch_seq: i as u32 + 1,
                last_batch_flag: i + 1 == chunks.len(),
                estimated_num_total: total as u64,
            }),
        };
        outcome = match api.users(&audience.audience_id, &request).await {
            Ok(answer) => classify_users(answer.status, &answer.body, chunk.len()),
            // No token to send with: a person must store one; held as Meta's
            // refusal of a token would be.
            Err(missing @ TransportError::NoToken { .. }) => UsersOutcome::Held {
                reason: chain(&missing),
            },
            Err(e) => UsersOutcome::Retry { reason: chain(&e) },
        };
        match &outcome {
            UsersOutcome::Applied {
                received: r,
                invalid: n,
                ..
            } => {
                received += r;
                invalid += n;
            }
            _ => break,
        }
    }
    (outcome, received, invalid)
}

/// A session id Meta wants unique per ad account: from the audience, the time and
/// the size, as a positive int64.
fn session_id(audience: &Audience, rows: usize) -> u64 {
    let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default();
    let digest = sha256_hex(&format!("{}:{nanos}:{rows}", audience.audience_id));
    u64::from_str_radix(&digest.as_str()[..15], 16).unwrap_or(1)
}
