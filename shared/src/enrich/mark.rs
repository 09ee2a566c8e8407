//! A job's mark, that it is done: read before the job, written once its outputs
//! are queued. A contact webhook's mark is read with its contact's tags and
//! written with them, in one read and one write where the store keeps a contact's
//! jobs with it.

use super::SeenTags;
use crate::ghl::webhook::Webhook;
use crate::jobs::EnrichJob;
use crate::ports::state::{Remembered, StateError, StateStore};

/// What was read of a job to tell whether it was done, kept for its build: its
/// webhook parsed, and the contact that carries as remembered.
#[derive(Default)]
pub(super) struct Prior {
    pub(super) webhook: Option<Webhook>,
    pub(super) remembered: Option<Remembered>,
}

/// Whether `job` was done before, and what was read to tell (for a webhook
/// carrying its contact, the contact as remembered: its build uses those tags,
/// unread again).
pub(super) async fn done_before<S: StateStore>(
    state: &S,
    job: &EnrichJob,
) -> Result<(bool, Prior), StateError> {
    let key = job.key();
    let webhook = match job {
        EnrichJob::Webhook { body, .. } => Webhook::parse(body.as_bytes()).ok(),
        _ => None,
    };
    let carried = (webhook.as_ref()).and_then(|w| Some((w.location_id()?, w.carried()?)));
    let (done, remembered) = match carried {
        Some((location, contact)) => {
            let remembered = state.contact(location, &contact.id, key).await?;
            (remembered.done, Some(remembered))
        }
        None => (state.processed(key).await?, None),
    };
    Ok((
        done,
        Prior {
            webhook,
            remembered,
        },
    ))
}

/// Remembers the tags a job saw, and with them, when the job read its mark with
/// them, that the job `done` is done: whether it marked it. Call once its outputs
/// are queued.
pub async fn remember(
    state: &impl StateStore,
    seen: &SeenTags,
    done: Option<&str>,
) -> Result<bool, StateError> {
    let (location, contact) = (&seen.location_id, &seen.contact_id);
    match (done, &seen.was) {
        (Some(key), Some(was)) => {
            let written = state.set_tags_done(location, contact, &seen.tags, key, was);
            written.await.map(|()| true)
        }
        _ => (state.set_tags(location, contact, &seen.tags).await).map(|()| false),
    }
}
