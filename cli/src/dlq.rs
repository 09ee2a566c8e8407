//! `ghl-capi dlq list|redrive`: dead letters of the local store, or of an SQS queue.

use std::path::PathBuf;

use anyhow::Context;
use ghl_capi::jobs::Stage;
use ghl_capi::ops::redrive::{GaveUp, Letter, read, replay};
use ghl_capi::ports::queue::Queue;
use ghl_capi_aws::sqs::{Received, SqsQueue};
use ghl_capi_local::ports::LocalQueue;
use ghl_capi_local::serve::{DISPATCH, ENRICH};
use ghl_capi_local::store::{DEAD, Store};
use sha2::{Digest, Sha256};

use crate::Outcome;
use crate::serve::DEFAULT_DATA_DIR;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The local store's directory (as given to `serve`).
    #[arg(long, env = "GHL_CAPI_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// An SQS dead-letter queue instead of the local store.
    #[arg(long, env = "DEAD_LETTER_QUEUE_URL")]
    queue_url: Option<String>,
    /// With --queue-url: where enrichment jobs are redriven.
    #[arg(long, env = "ENRICH_QUEUE_URL")]
    enrich_queue_url: Option<String>,
    /// With --queue-url: where dispatch jobs are redriven.
    #[arg(long, env = "DISPATCH_QUEUE_URL")]
    dispatch_queue_url: Option<String>,
    /// Print each letter as a JSON line.
    #[arg(long)]
    json: bool,
    /// With --json, include each letter's job as queued (the webhook's body, with
    /// the contact's e-mail and phone in clear); by default only its SHA-256.
    #[arg(long)]
    show_bodies: bool,
}

fn show(letter: &Letter, args: &Args) -> anyhow::Result<()> {
    if args.json {
        let mut shown = serde_json::to_value(letter)?;
        if !args.show_bodies
            && let Some(fields) = shown.as_object_mut()
        {
            fields.remove("message");
            let digest = Sha256::digest(letter.message.as_bytes());
            fields.insert("message_sha256".into(), hex::encode(digest).into());
        }
        return Ok(out!("{shown}")?);
    }
    let l = &letter.letter;
    let stage = l.stage.or(letter.redrive_to).map_or("-", Stage::name);
    let triggers = if l.triggers.is_empty() {
        "-".to_owned()
    } else {
        l.triggers.join(",")
    };
    let history = &l.history;
    let tried = match (
        history.attempts,
        history.first_failure,
        history.last_failure,
    ) {
        (0, ..) => String::new(),
        (n, first, last) => format!(
            " ({n} tries{}{})",
            first
                .map(|t| format!(", first {}", t.to_rfc3339()))
                .unwrap_or_default(),
            last.map(|t| format!(", last {}", t.to_rfc3339()))
                .unwrap_or_default()
        ),
    };
    out!(
        "{:<22} {:<9} {:<24} {:<24} {}{tried}",
        l.code,
        stage,
        l.source,
        triggers,
        l.reason
    )?;
    Ok(())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

pub fn list(args: &Args) -> anyhow::Result<Outcome> {
    match &args.queue_url {
        Some(url) => runtime()?.block_on(async {
            let dead = sqs(url).await;
            // Each message is hidden once read, so it is read once; then all are
            // made visible again, ready for a redrive.
            let letters = receive_all(&dead, LIST_VISIBILITY_SECONDS).await?;
            for letter in &letters {
                show(&read(&letter.body, letter.gave_up), args)?;
            }
            for letter in &letters {
                dead.delay(&letter.receipt, std::time::Duration::ZERO)
                    .await?;
            }
            anyhow::Ok(())
        })?,
        None => {
            for stored in local(args)?.list(DEAD)? {
                show(&read(&stored.body, GaveUp::default()), args)?;
            }
        }
    }
    Ok(Outcome::Done)
}

pub fn redrive(args: &Args) -> anyhow::Result<Outcome> {
    let attempt = chrono::Utc::now().timestamp_millis().to_string();
    let mut kept = 0;
    let mut sent = 0;
    match &args.queue_url {
        Some(url) => runtime()?.block_on(async {
            let (Some(enrich), Some(dispatch)) = (&args.enrich_queue_url, &args.dispatch_queue_url)
            else {
                anyhow::bail!("redriving SQS needs --enrich-queue-url and --dispatch-queue-url");
            };
            let dead = sqs(url).await;
            let enrich = SqsQueue::new(dead.client().clone(), enrich);
            let dispatch = SqsQueue::new(dead.client().clone(), dispatch);
            for received in receive_all(&dead, 120).await? {
                let letter = read(&received.body, received.gave_up);
                let Some((stage, message)) = replay(&letter, &attempt) else {
                    kept += 1;
                    continue;
                };
                match stage {
                    Stage::Enrich => enrich.send(message).await?,
                    Stage::Dispatch => dispatch.send(message).await?,
                }
                dead.delete(&received.receipt).await?;
                sent += 1;
            }
            anyhow::Ok(())
        })?,
        None => {
            let store = local(args)?;
            runtime()?.block_on(async {
                for stored in store.list(DEAD)? {
                    let letter = read(&stored.body, GaveUp::default());
                    let Some((stage, message)) = replay(&letter, &attempt) else {
                        kept += 1;
                        continue;
                    };
                    let name = match stage {
                        Stage::Enrich => ENRICH,
                        Stage::Dispatch => DISPATCH,
                    };
                    LocalQueue {
                        store: store.clone(),
                        name,
                    }
                    .send(message)
                    .await?;
                    store.delete(&stored.id.to_string())?;
                    sent += 1;
                }
                anyhow::Ok(())
            })?;
        }
    }
    out!("redriven: {sent}; left in place (not a job of ours): {kept}")?;
    Ok(Outcome::Done)
}

fn local(args: &Args) -> anyhow::Result<Store> {
    let path = args.data_dir.join("store.db");
    anyhow::ensure!(
        path.exists(),
        "no local store at {} (start `ghl-capi serve` first, or give --queue-url)",
        path.display()
    );
    Store::open(&path).with_context(|| format!("cannot open {}", path.display()))
}

async fn sqs(url: &str) -> SqsQueue {
    let sdk = ghl_capi_aws::config::sdk_config().await;
    SqsQueue::new(aws_sdk_sqs::Client::new(&sdk), url)
}

/// How long `dlq list` may take to read the queue; it shows each message once.
const LIST_VISIBILITY_SECONDS: i32 = 30;

/// Every message of the queue, each hidden for `visibility` seconds once received.
async fn receive_all(queue: &SqsQueue, visibility: i32) -> anyhow::Result<Vec<Received>> {
    let mut all = Vec::new();
    loop {
        let batch = queue.receive(10, visibility).await?;
        if batch.is_empty() {
            return Ok(all);
        }
        all.extend(batch);
    }
}
