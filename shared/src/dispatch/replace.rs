//! Replacing an audience's whole list (`usersreplace`, [`crate::capi::replace`]):
//! one session's batches sent in order under Meta's rules, each answer acted on
//! (wait, send again, start a new session, stop saying why), and the session
//! followed to its end.
//!
//! One replace at a time per audience: it takes the audience's [`replacing_key`]
//! record (a compare-and-set, so a second replace is refused), and while that record
//! stands dispatch sends no `/users` request for the audience: its own changes are
//! held, in order, and follow once the replace is done ([`super::audience`]). A
//! replace that dies leaves the record to run out (the session window and the
//! polling after it).

use std::time::{Duration, Instant};

use crate::capi::audience::{MAX_ROWS, Row};
use crate::capi::replace::{
    ReplaceOutcome, ReplaceRequest, ReplaceSession, SessionStatus, classify_replace, session_of,
};
use crate::capi::{AudiencesApi, TransportError};
use crate::error::chain;
use crate::mapping::Audience;
use crate::normalize::sha256_hex;
use crate::ports::state::{StateError, StateStore};

/// The state key that says `audience` is being replaced (its text: since when).
pub fn replacing_key(audience: &str) -> String {
    format!("replacing#{audience}")
}

/// How a replace runs. Meta's session window is 90 minutes; the default stays
/// inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplacePolicy {
    /// How long before a batch Meta asked to wait for (or failed) is sent again.
    pub wait: Duration,
    /// How often one batch is sent before the replace stops.
    pub tries: u32,
    /// How many new sessions a replace may start after one ended early.
    pub restarts: u32,
    /// How long a session is sent to: past it, a new one starts (Meta would refuse).
    pub window: Duration,
    /// How often the session's status is read once its last batch is taken, and
    /// for how long at most.
    pub poll: Duration,
    pub poll_for: Duration,
}

impl Default for ReplacePolicy {
    fn default() -> Self {
        ReplacePolicy {
            wait: Duration::from_secs(30),
            tries: 10,
            restarts: 2,
            window: Duration::from_secs(85 * 60),
            poll: Duration::from_secs(10),
            poll_for: Duration::from_secs(30 * 60),
        }
    }
}

impl ReplacePolicy {
    /// How long the replacing record stands: every session a replace may start,
    /// and the polling after the last.
    fn marked_for(&self) -> Duration {
        self.window * (self.restarts + 1) + self.poll_for + Duration::from_secs(60)
    }
}

/// What a replace did.
#[derive(Debug, Clone, PartialEq)]
pub struct Replaced {
    pub session_id: u64,
    pub batches: u32,
    pub received: u64,
    pub invalid: u64,
    /// Sessions started again after one ended early.
    pub restarts: u32,
    /// The session's status when last read (`None`: Meta did not list it).
    pub status: Option<SessionStatus>,
}

/// How far a replace is, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Batch `batch` of `of` taken: `rows` rows sent so far.
    Sent { batch: u32, of: u32, rows: u64 },
    /// A new session, after one ended early.
    Restarted,
    /// The last batch is in; Meta works on it.
    Waiting,
}

/// Why a replace did not complete. The audience keeps what Meta took; its own
/// changes go on once the replacing record is gone.
#[derive(Debug, thiserror::Error)]
pub enum ReplaceError {
    #[error("audience {audience} is being replaced already ({since}): one replace at a time")]
    Busy { audience: String, since: String },
    #[error(
        "GHL lists no member of audience {0}: a replace would empty it, which is not done (remove its members with audience sync)"
    )]
    Empty(String),
    #[error("Meta refused the audience's token or permission: {0}")]
    Held(String),
    #[error("Meta refused the replace: {0}")]
    Refused(String),
    #[error("Meta failed batch {batch} {tries} times: {reason}")]
    Unavailable {
        batch: u32,
        tries: u32,
        reason: String,
    },
    #[error("the replace's session ended early {restarts} times: {reason}")]
    Restarts { restarts: u32, reason: String },
    #[error("the state store failed: {0}")]
    State(#[from] StateError),
}

/// A session id Meta wants unique per ad account: from the audience and the time,
/// as a positive int64.
fn new_session(audience: &Audience) -> u64 {
    let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
    let digest = sha256_hex(&format!("replace:{}:{nanos}", audience.audience_id));
    u64::from_str_radix(&digest.as_str()[..15], 16).unwrap_or(1)
}

/// Replaces `audience`'s whole list with `rows`, marking it replacing in `state`
/// meanwhile.
pub async fn replace(
    api: &impl AudiencesApi,
    state: &impl StateStore,
    audience: &Audience,
    rows: &[Row],
    policy: ReplacePolicy,
    progress: &mut impl FnMut(Step),
) -> Result<Replaced, ReplaceError> {
    if rows.is_empty() {
        return Err(ReplaceError::Empty(audience.name.clone()));
    }
    let key = replacing_key(&audience.name);
    let since = format!("since {}", chrono::Utc::now().to_rfc3339());
    if !state
        .swap_record(&key, None, &since, policy.marked_for())
        .await?
    {
        let since = state.record(&key).await?.unwrap_or_default();
        return Err(ReplaceError::Busy {
            audience: audience.name.clone(),
            since,
        });
    }
    let done = sessions(api, audience, rows, policy, progress).await;
    // Its own changes go on, whatever became of the replace.
    if let Err(e) = state.delete_record(&key).await {
        tracing::warn!(audience = audience.name, error = %chain(&e), "cannot clear the replacing mark: it runs out by itself");
    }
    done
}

/// Sends the batches, session after session while one ends early, then follows
/// the last session to its end.
async fn sessions(
    api: &impl AudiencesApi,
    audience: &Audience,
    rows: &[Row],
    policy: ReplacePolicy,
    progress: &mut impl FnMut(Step),
) -> Result<Replaced, ReplaceError> {
    let mut restarts = 0;
    loop {
        match session(api, audience, rows, policy, progress).await? {
            Ok(mut replaced) => {
                progress(Step::Waiting);
                replaced.restarts = restarts;
                replaced.status = follow(api, audience, replaced.session_id, policy).await;
                return Ok(replaced);
            }
            Err(reason) if restarts < policy.restarts => {
                restarts += 1;
                tracing::warn!(
                    audience = audience.name,
                    restarts,
                    reason,
                    "the replace's session ended early: a new one starts"
                );
                progress(Step::Restarted);
            }
            Err(reason) => return Err(ReplaceError::Restarts { restarts, reason }),
        }
    }
}

/// One session: every batch taken (`Ok(Ok)`), or ended early and to be started
/// again (`Ok(Err(reason))`).
async fn session(
    api: &impl AudiencesApi,
    audience: &Audience,
    rows: &[Row],
    policy: ReplacePolicy,
    progress: &mut impl FnMut(Step),
) -> Result<Result<Replaced, String>, ReplaceError> {
    let session_id = new_session(audience);
    let started = Instant::now();
    let batches: Vec<&[Row]> = rows.chunks(MAX_ROWS).collect();
    let of = batches.len() as u32;
    let mut replaced = Replaced {
        session_id,
        batches: of,
        received: 0,
        invalid: 0,
        restarts: 0,
        status: None,
    };
    for (i, batch) in batches.into_iter().enumerate() {
        let seq = i as u32 + 1;
        let request = ReplaceRequest {
            session: ReplaceSession {
                session_id,
                batch_seq: seq,
                last_batch_flag: seq == of,
                estimated_num_total: rows.len() as u64,
            },
            rows: batch.to_vec(),
        };
        let mut tries = 0;
        loop {
            if started.elapsed() >= policy.window {
                return Ok(Err(format!(
                    "the session reached its window after {} of {of} batches",
                    seq - 1
                )));
            }
            tries += 1;
            let answer = api.users_replace(&audience.audience_id, &request).await;
            let outcome = match answer {
                Ok(answer) => classify_replace(answer.status, &answer.body, batch.len()),
                Err(missing @ TransportError::NoToken { .. }) => ReplaceOutcome::Held {
                    reason: chain(&missing),
                },
                Err(e) => ReplaceOutcome::Retry { reason: chain(&e) },
            };
            match outcome {
                ReplaceOutcome::Taken { received, invalid } => {
                    replaced.received += received;
                    replaced.invalid += invalid;
                    break;
                }
                // The last batch was taken before, its answer lost: done.
                ReplaceOutcome::Finished { .. } if seq == of && tries > 1 => break,
                ReplaceOutcome::Finished { reason } | ReplaceOutcome::Restart { reason } => {
                    return Ok(Err(reason));
                }
                ReplaceOutcome::Held { reason } => return Err(ReplaceError::Held(reason)),
                ReplaceOutcome::Refused { reason } => return Err(ReplaceError::Refused(reason)),
                ReplaceOutcome::Wait { reason } | ReplaceOutcome::Retry { reason } => {
                    if tries >= policy.tries {
                        return Err(ReplaceError::Unavailable {
                            batch: seq,
                            tries,
                            reason,
                        });
                    }
                    tracing::info!(
                        audience = audience.name,
                        session_id,
                        batch = seq,
                        tries,
                        reason,
                        "a replace batch is sent again"
                    );
                    tokio::time::sleep(policy.wait).await;
                }
            }
        }
        progress(Step::Sent {
            batch: seq,
            of,
            rows: replaced.received,
        });
    }
    Ok(Ok(replaced))
}

/// The session's status, read until Meta is done with it (or `poll_for` passes):
/// the last status read, if Meta listed the session.
async fn follow(
    api: &impl AudiencesApi,
    audience: &Audience,
    session_id: u64,
    policy: ReplacePolicy,
) -> Option<SessionStatus> {
    let started = Instant::now();
    let mut last = None;
    loop {
        match api.sessions(&audience.audience_id).await {
            Ok(answer) if (200..300).contains(&answer.status) => {
                last = session_of(&answer.body, session_id).or(last);
            }
            Ok(answer) => {
                tracing::info!(
                    audience = audience.name,
                    status = answer.status,
                    "cannot read the replace's session"
                );
            }
            Err(e) => {
                tracing::info!(audience = audience.name, error = %chain(&e), "cannot read the replace's session");
            }
        }
        if last.as_ref().is_some_and(SessionStatus::finished)
            || started.elapsed() + policy.poll > policy.poll_for
        {
            return last;
        }
        tokio::time::sleep(policy.poll).await;
    }
}
