//! Dispatch: delivering events to Meta, in batches of up to [`MAX_BATCH`] per
//! request; when Meta refuses a whole request for one invalid event, the batch is
//! halved until the offender stands alone, so the others are still sent and only it
//! is dead-lettered. Halving is bounded: a batch spends at most about 2·log2(n) + 4
//! requests on it, and what is still undecided then is tried again later. Errors
//! that condemn the whole request (the token, a permission, the dataset) are never
//! split: the batch is held, and its pixel paused.
//!
//! - this module: one pixel's events, delivered ([`deliver`]);
//! - [`consumer`]: the dispatch function's batch; [`sent`]: the marks of events
//!   Meta took;
//! - [`audience`]: audience changes, applied in order per contact;
//! - [`tokens`]: each pixel's access token, read where the mapping says;
//! - [`write_back`]: what is handed to enrichment to write back into GHL.

pub mod audience;
pub mod consumer;
pub mod replace;
mod sent;
pub mod tokens;
mod write_back;

use crate::capi::answer::{Disposition, classify};
use crate::capi::client::PARTNER_AGENT;
use crate::capi::{EventRequest, EventsApi, MAX_BATCH, ServerEvent, TransportError};
use crate::error::chain;

/// What became of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Meta acknowledged it, in the request it traces as `fbtrace_id`, which
    /// carried `events_received` events.
    Delivered {
        fbtrace_id: Option<String>,
        events_received: u64,
    },
    /// Send again later: Meta is down, busy or throttling.
    Retry { reason: String },
    /// Send again later: Meta is fine, but isolating this batch's invalid events
    /// took all the requests one batch may spend.
    Undecided,
    /// Hold and alert: Meta refused the whole request for its token, a permission,
    /// the dataset or the address.
    Condemned { reason: String },
    /// Meta will never take it: dead-letter with the reason.
    DeadLetter { reason: String },
}

/// Sends `events` to one pixel and says, for each (by position), what became of it.
pub async fn deliver(
    api: &impl EventsApi,
    dataset_id: &str,
    test_event_code: Option<&str>,
    events: &[ServerEvent],
) -> Vec<Delivery> {
    deliver_telling(api, dataset_id, test_event_code, events, &()).await
}

/// Told of each request's events (their positions) as soon as Meta took them.
pub trait Taken: Sync {
    fn taken(&self, events: std::ops::Range<usize>)
    -> impl std::future::Future<Output = ()> + Send;
}

/// Nobody to tell.
impl Taken for () {
    async fn taken(&self, _: std::ops::Range<usize>) {}
}

/// As [`deliver`], handing `taken` each request's events as soon as Meta took
/// them, before the next request: so a crash while a batch is being split leaves
/// those taken already on record.
pub async fn deliver_telling(
    api: &impl EventsApi,
    dataset_id: &str,
    test_event_code: Option<&str>,
    events: &[ServerEvent],
    taken: &impl Taken,
) -> Vec<Delivery> {
    // Each event's outcome starts undecided; every answer below decides a range.
    let mut outcomes: Vec<Option<Delivery>> = vec![None; events.len()];
    // Ranges still to send; a refused range comes back as its two halves.
    let mut pending: Vec<std::ops::Range<usize>> = (0..events.len())
        .step_by(MAX_BATCH)
        .map(|start| start..(start + MAX_BATCH).min(events.len()))
        .rev()
        .collect();
    let mut budget: usize = pending.iter().map(|r| requests_for(r.len())).sum();
    while let Some(range) = pending.pop() {
        if budget == 0 {
            for slot in &mut outcomes[range] {
                *slot = Some(Delivery::Undecided);
            }
            continue;
        }
        budget -= 1;
        let request = EventRequest {
            data: events[range.clone()].to_vec(),
            test_event_code: test_event_code.map(str::to_owned),
            partner_agent: Some(PARTNER_AGENT.to_owned()),
        };
        let disposition = match api.post(dataset_id, &request).await {
            Ok(answer) => classify(answer.status, &answer.body),
            // No token to send with: a person must store one; held as Meta's
            // refusal of a token would be.
            Err(missing @ TransportError::NoToken { .. }) => Disposition::Condemned {
                reason: chain(&missing),
            },
            Err(transport) => Disposition::Retry {
                reason: chain(&transport),
            },
        };
        let all = |outcome: Delivery| vec![outcome; range.len()];
        let decided = match disposition {
            Disposition::Delivered {
                events_received,
                fbtrace_id,
            } if events_received as usize == range.len() => {
                taken.taken(range.clone()).await;
                all(Delivery::Delivered {
                    fbtrace_id,
                    events_received,
                })
            }
            // Fewer than sent: no way to tell which, so all go again; their event
            // ids make the repeat harmless at Meta.
            Disposition::Delivered {
                events_received, ..
            } => all(Delivery::Retry {
                reason: format!("Meta received {events_received} of {} events", range.len()),
            }),
            Disposition::Invalid { reason } if range.len() == 1 => {
                all(Delivery::DeadLetter { reason })
            }
            Disposition::Invalid { .. } => {
                let middle = range.start + range.len() / 2;
                pending.push(middle..range.end);
                pending.push(range.start..middle);
                continue;
            }
            Disposition::Retry { reason } => all(Delivery::Retry { reason }),
            Disposition::Condemned { reason } => all(Delivery::Condemned { reason }),
        };
        for (slot, outcome) in outcomes[range].iter_mut().zip(decided) {
            *slot = Some(outcome);
        }
    }
    // Every range was decided above; should one ever not be, it is sent again,
    // never counted as delivered.
    outcomes
        .into_iter()
        .map(|outcome| {
            outcome.unwrap_or_else(|| Delivery::Retry {
                reason: "no answer decided this event".into(),
            })
        })
        .collect()
}

/// The requests a chunk of `n` events may cost: one, and enough to isolate a few
/// offenders by halving (2·log2(n) + 4); never the 2n − 1 of halving to the end.
fn requests_for(n: usize) -> usize {
    let depth = usize::BITS - n.max(1).leading_zeros();
    1 + 2 * depth as usize + 4
}
