//! A job's mark, that it is done: read before the job, written once its outputs
//! are queued. A contact webhook's mark is read with its contact's tags and
//! written with them, in one read and one write where the store keeps a contact's
//! jobs with it.

use super::SeenTags;
use crate::ghl::webhook::Webhook;
use crate::jobs::EnrichJob;
use crate::ports::state::{Remembered, StateError, StateStore};

/// Whether `job` was done before, and for a webhook carrying its contact, the
/// contact as remembered (its build uses those tags, unread again).
pub(super) async fn done_before<S: StateStore>(
    state: &S,
    job: &EnrichJob,
) -> Result<(bool, Option<Remembered>), StateError> {
    let key = job.key();
    if let EnrichJob::Webhook { body, .. } = job
        && let Ok(webhook) = Webhook::parse(body.as_bytes())
        && let (Some(contact), Some(location)) = (webhook.carried(), webhook.location_id())
    {
        let remembered = state.contact(location, &contact.id, key).await?;
        return Ok((remembered.done, Some(remembered)));
    }
    Ok((state.processed(key).await?, None))
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
