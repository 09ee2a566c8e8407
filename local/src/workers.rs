//! `serve`'s workers: two consumers, each receiving a batch from its queue of the
//! store, running the library's consumer over it (as the Lambda functions do), and
//! settling each record: deleted, or made visible again after its wait; and the
//! periodic reconciliation, as the scheduled function runs it on AWS.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use ghl_capi::batch::Retry;
use ghl_capi::dispatch::consumer::DispatchConsumer;
use ghl_capi::dispatch::replace::ReplacePolicy;
use ghl_capi::enrich::consumer::EnrichConsumer;
use ghl_capi::error::chain;
use ghl_capi::ghl::client::GhlClient;
use ghl_capi::ghl::tokens::FixedTokens;
use ghl_capi::ghl::{GhlReader, GhlWriter};
use ghl_capi::hold::HoldPolicy;
use ghl_capi::mapping::live::LiveMapping;
use ghl_capi::ports::queue::Record;
use ghl_capi::pull::audience_mirror::mirror_due;
use ghl_capi::pull::reconcile::{ReconcileSettings, reconcile};
use tokio::sync::watch;

use crate::mappings::FileMappings;
use crate::outbox::LocalCapi;
use crate::ports::{LocalQueue, LocalState};
use crate::status::{MAPPING_RECORD, MappingState};
use crate::store::{DEAD, DISPATCH, ENRICH, Store};

/// A message is dead-lettered after this many receives, as with SQS's redrive policy
/// (and as far beyond any hold).
pub const MAX_RECEIVES: u32 = 1000;
/// How long a received message stays hidden while it is handled.
const VISIBILITY: Duration = Duration::from_secs(60);
/// Idle workers look for work this often.
const POLL: Duration = Duration::from_millis(200);

/// What both workers share.
#[derive(Debug, Clone)]
pub struct Shared {
    pub store: Store,
    /// The mapping file as it runs: each batch takes the version running then.
    pub mapping: Arc<LiveMapping<FileMappings>>,
    pub hold: HoldPolicy,
    /// How long the webhooks and workflow calls enriched are kept for `mapping
    /// diff` to replay (`None`: not kept).
    pub replay_for: Option<Duration>,
}

/// Where a job kept for replay is: `replay#{received, ms}#{message id}`.
pub const REPLAY_PREFIX: &str = "replay#";

impl Shared {
    fn queue(&self, name: &'static str) -> LocalQueue {
        LocalQueue {
            store: self.store.clone(),
            name,
        }
    }

    /// Receives a batch; `None` once told to stop.
    async fn next_batch(
        &self,
        queue: &str,
        max: usize,
        stopped: &mut watch::Receiver<bool>,
    ) -> Option<Vec<Record>> {
        loop {
            if *stopped.borrow() {
                return None;
            }
            match self.store.receive(queue, max, VISIBILITY, MAX_RECEIVES) {
                Ok(batch) if !batch.is_empty() => return Some(batch),
                Ok(_) => {}
                Err(e) => tracing::error!(queue, error = %chain(&e), "cannot read the queue"),
            }
            let _ = tokio::time::timeout(POLL, stopped.changed()).await;
        }
    }

    /// Acknowledges what succeeded and schedules the retries (after the wait the
    /// consumer gave, else the hold's wait for the record's receives), in one
    /// transaction.
    fn settle(&self, queue: &str, batch: &[Record], failed: &[Retry]) {
        let mut done = Vec::new();
        let mut retries = Vec::new();
        for record in batch {
            let id = record.message_id.as_str();
            match failed.iter().find(|r| r.message_id == id) {
                Some(retry) => {
                    let wait = retry
                        .after
                        .unwrap_or_else(|| self.hold.wait(record.receives, id));
                    retries.push((id, wait));
                }
                None => done.push(id),
            }
        }
        if let Err(e) = self.store.settle(&done, &retries) {
            // Left as they are, the messages reappear after their visibility timeout.
            let ids: Vec<&str> = batch.iter().map(|r| r.message_id.as_str()).collect();
            tracing::error!(queue, message_ids = ?ids, error = %chain(&e), "cannot settle messages");
        }
    }
}

/// Enriches batches of the enrichment queue until told to stop.
pub async fn enrich(
    shared: Shared,
    ghl: impl GhlReader + GhlWriter,
    mut stopped: watch::Receiver<bool>,
) {
    let state = LocalState(shared.store.clone());
    let (source, dispatch, dead) = (
        shared.queue(ENRICH),
        shared.queue(DISPATCH),
        shared.queue(DEAD),
    );
    while let Some(batch) = shared.next_batch(ENRICH, 10, &mut stopped).await {
        let mapping = shared.mapping.current().await;
        let consumer = EnrichConsumer {
            mapping: &mapping,
            ghl: &ghl,
            state: &state,
            source: &source,
            dispatch: &dispatch,
            dead: &dead,
            policy: shared.hold,
            max_receives: MAX_RECEIVES,
        };
        let failed = consumer.handle(&batch, Utc::now()).await;
        keep_for_replay(&state, &batch, shared.replay_for).await;
        shared.settle(ENRICH, &batch, &failed);
    }
}

/// Delivers batches of the dispatch queue until told to stop.
pub async fn dispatch(shared: Shared, capi: Arc<LocalCapi>, mut stopped: watch::Receiver<bool>) {
    let state = LocalState(shared.store.clone());
    let (source, enrich, dead) = (
        shared.queue(DISPATCH),
        shared.queue(ENRICH),
        shared.queue(DEAD),
    );
    while let Some(batch) = shared.next_batch(DISPATCH, 1000, &mut stopped).await {
        let mapping = shared.mapping.current().await;
        capi.follow(&mapping);
        let consumer = DispatchConsumer {
            mapping: &mapping,
            capi: &*capi,
            state: &state,
            source: &source,
            dead: &dead,
            enrich: Some(&enrich),
            policy: shared.hold,
        };
        let failed = consumer.handle(&batch, Utc::now()).await;
        shared.settle(DISPATCH, &batch, &failed);
    }
}

/// Reconciles each location of `ghl`'s tokens at once, then every `every`, until
/// told to stop; after each round, mirrors the audiences whose `mirror_every` is
/// due through `capi` (a mirror under way is finished before a stop is heeded). A
/// location's failure is logged and counted; it runs again from its watermark next
/// time.
pub async fn reconcile_every(
    shared: Shared,
    ghl: GhlClient<FixedTokens>,
    (settings, every): (ReconcileSettings, Duration),
    capi: Arc<LocalCapi>,
    mut stopped: watch::Receiver<bool>,
) {
    let state = LocalState(shared.store.clone());
    let queue = shared.queue(ENRICH);
    let mut locations: Vec<String> = ghl.tokens().0.keys().cloned().collect();
    locations.sort();
    loop {
        // Opportunities too while the running mapping reads them.
        let mapping = shared.mapping.current().await;
        let settings = ReconcileSettings {
            opportunities: mapping.reads_opportunities(),
            ..settings
        };
        for location in &locations {
            if *stopped.borrow() {
                return;
            }
            let run = reconcile(&ghl, &state, &queue, location, &settings, Utc::now());
            // Each run is logged (and a failure counted) by the library; a failed
            // one runs again from its watermark next time.
            tokio::select! {
                _ = run => {}
                _ = stopped.changed() => return,
            }
        }
        // Each mirror is logged, counted and tried again next time by the library.
        capi.follow(&mapping);
        let audiences = &mapping.audiences;
        let policy = ReplacePolicy::default();
        mirror_due(
            &ghl,
            &state,
            &*capi,
            audiences,
            &locations,
            Utc::now(),
            policy,
        )
        .await;
        if tokio::time::timeout(every, stopped.changed()).await.is_ok() {
            return;
        }
    }
}

/// Looks for a new mapping version every `every` (so one is taken with no work
/// in hand too) and keeps [`MAPPING_RECORD`] in step, until told to stop.
pub async fn follow_mapping(shared: Shared, every: Duration, mut stopped: watch::Receiver<bool>) {
    let state = LocalState(shared.store.clone());
    let mut said: Option<MappingState> = None;
    loop {
        let running = shared.mapping.current().await;
        let refused = shared.mapping.refused().map(|r| (r.version, r.why));
        let now = MappingState {
            version: running.version.clone(),
            since: said
                .as_ref()
                .filter(|s| s.version == running.version)
                .map_or_else(Utc::now, |s| s.since),
            refused,
        };
        if said.as_ref() != Some(&now) {
            let text = ghl_capi::ports::text(&now);
            // A record kept for a year: rewritten whenever anything changes.
            let kept = Duration::from_secs(365 * 24 * 3600);
            match ghl_capi::ports::state::StateStore::set_record(
                &state,
                MAPPING_RECORD,
                &text,
                kept,
            )
            .await
            {
                Ok(()) => said = Some(now),
                Err(e) => {
                    tracing::warn!(error = %chain(&e), "cannot note the running mapping version for the status page")
                }
            }
        }
        if tokio::time::timeout(every, stopped.changed()).await.is_ok() {
            return;
        }
    }
}

/// Keeps the batch's webhooks and workflow calls for `mapping diff` (a failure to
/// is said, and costs only the replay).
async fn keep_for_replay(state: &LocalState, batch: &[Record], keep: Option<Duration>) {
    let Some(keep) = keep else {
        return;
    };
    let kept: Vec<(String, String)> = batch
        .iter()
        .filter_map(|record| {
            let job: ghl_capi::jobs::EnrichJob = serde_json::from_str(&record.body).ok()?;
            let at = match &job {
                ghl_capi::jobs::EnrichJob::Webhook { received_at, .. } => received_at,
                ghl_capi::jobs::EnrichJob::Workflow(call) => &call.received_at,
                _ => return None,
            };
            let key = format!(
                "{REPLAY_PREFIX}{:013}#{}",
                at.timestamp_millis(),
                record.message_id
            );
            Some((key, record.body.clone()))
        })
        .collect();
    if kept.is_empty() {
        return;
    }
    if let Err(e) = ghl_capi::ports::state::StateStore::set_records(state, &kept, keep).await {
        tracing::warn!(error = %chain(&e), "cannot keep this batch for mapping diff to replay");
    }
}
