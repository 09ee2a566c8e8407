//! The marks of events Meta took, by pixel, name and id: so a redelivered job is
//! not sent again, and another owner's event with the same name and id is told
//! apart (and lettered: Meta would drop it as a repeat).

use std::time::Duration;

use super::Taken;
use crate::capi::ServerEvent;
use crate::error::chain;
use crate::jobs::{DeadLetter, DispatchJob};
use crate::mapping::Pixel;
use crate::ports::queue::Record;
use crate::ports::state::StateStore;

/// Records that Meta took a request's events, each with its owner, so a
/// redelivered job is not sent again and another owner's event with the same name
/// and id is told apart.
pub(super) struct SentMarks<'a, 'r, S> {
    pub(super) state: &'a S,
    pub(super) pixel: &'a Pixel,
    pub(super) jobs: &'a [(&'r Record, DispatchJob)],
}

impl<S: StateStore> Taken for SentMarks<'_, '_, S> {
    async fn taken(&self, events: std::ops::Range<usize>) {
        let marks: Vec<(String, String)> = self.jobs[events]
            .iter()
            .filter_map(|(_, job)| Some((sent_key(self.pixel, &job.event)?, job.owner())))
            .collect();
        if marks.is_empty() {
            return;
        }
        if let Err(e) = self.state.set_records(&marks, SENT_FOR).await {
            // Meta took them; should one come again, Meta drops the repeat by its id.
            tracing::warn!(pixel = self.pixel.name, events = marks.len(), error = %chain(&e), "cannot mark events as sent");
        }
    }
}

/// How long an event Meta took is remembered: past the 7 days Meta takes an
/// event's time back.
const SENT_FOR: Duration = Duration::from_secs(8 * 24 * 3600);

/// The mark of `job`'s event sent to `pixel`'s dataset, when it has an id: by
/// name and id, as Meta tells events apart.
pub(super) fn sent_key(pixel: &Pixel, event: &ServerEvent) -> Option<String> {
    let id = event.event_id.as_deref()?;
    Some(format!(
        "sent#{}#{}#{id}",
        pixel.dataset_id, event.event_name
    ))
}

/// Whether Meta takes two events as one: the same name and id (events without an
/// id are never the same).
pub(super) fn same_event(a: &ServerEvent, b: &ServerEvent) -> bool {
    a.event_id.is_some() && a.event_id == b.event_id && a.event_name == b.event_name
}

/// The letter of `job`, whose event's name and id Meta took (or is taking) for
/// `owner`'s event: Meta would drop it as a repeat, so it is not sent.
pub(super) fn reused(job: &DispatchJob, pixel: &Pixel, owner: &str) -> DeadLetter {
    let reason = format!(
        "event id {} was already used for another {} event sent to pixel {} ({owner}); Meta keeps \
         one event per name and id in a dataset and would drop this one as its repeat: give each \
         conversion an event id of its own",
        job.event.event_id.as_deref().unwrap_or_default(),
        job.event.event_name,
        pixel.name
    );
    super::consumer::letter(job, "event_id_reused", reason)
}

/// What spreads one event's waits from another's.
pub(super) fn event_key(job: &DispatchJob) -> &str {
    job.event.event_id.as_deref().unwrap_or(&job.source)
}
