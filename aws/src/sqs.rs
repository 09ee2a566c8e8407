//! The queue port on SQS. FIFO queues get the message's group and deduplication
//! ids; standard queues ignore them.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{MessageSystemAttributeName, SendMessageBatchRequestEntry};
use chrono::DateTime;
use ghl_capi::ops::redrive::GaveUp;
use ghl_capi::ports::queue::{Outgoing, Queue, QueueError};

/// A message received with [`SqsQueue::receive`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub receipt: String,
    pub body: String,
    /// What SQS knows of its earlier receives (for a message a queue gave up on).
    pub gave_up: GaveUp,
}

/// One SQS queue.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    url: String,
    fifo: bool,
}

impl SqsQueue {
    /// The queue at `url` (a FIFO queue's URL ends in `.fifo`).
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        let url = url.into();
        let fifo = url.ends_with(".fifo");
        SqsQueue { client, url, fifo }
    }

    /// The SDK client, to reach the account's other queues.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Receives up to `max` messages (at most 10), each hidden for `visibility`
    /// seconds: their receipt handles, bodies, and what SQS knows of their receives.
    pub async fn receive(&self, max: i32, visibility: i32) -> Result<Vec<Received>, QueueError> {
        let answer = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, 10))
            .visibility_timeout(visibility)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .map_err(QueueError::new)?;
        Ok(answer
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| {
                let attribute = |name: MessageSystemAttributeName| {
                    m.attributes.as_ref()?.get(&name)?.parse::<i64>().ok()
                };
                let at = |name| attribute(name).and_then(DateTime::from_timestamp_millis);
                let gave_up = GaveUp {
                    // This receive included, as it counts for the redrive policy.
                    receives: attribute(MessageSystemAttributeName::ApproximateReceiveCount)
                        .map_or(0, |n| n.max(1) as u32 - 1),
                    first_received: at(
                        MessageSystemAttributeName::ApproximateFirstReceiveTimestamp,
                    ),
                    last_received: at(MessageSystemAttributeName::SentTimestamp),
                };
                Some(Received {
                    receipt: m.receipt_handle?,
                    body: m.body?,
                    gave_up,
                })
            })
            .collect())
    }

    /// Deletes a received message.
    pub async fn delete(&self, receipt_handle: &str) -> Result<(), QueueError> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .send()
            .await
            .map(|_| ())
            .map_err(QueueError::new)
    }

    /// Hides a received message for `after` (SQS allows up to 12 hours), so its
    /// retry waits out a partner's rate limit instead of hitting it again.
    pub async fn delay(
        &self,
        receipt_handle: &str,
        after: std::time::Duration,
    ) -> Result<(), QueueError> {
        const MAX_VISIBILITY_SECONDS: u64 = 12 * 3600;
        // Round up: "retry in 1.5 s" must not become 1 s.
        let seconds = after.as_millis().div_ceil(1000) as u64;
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(seconds.min(MAX_VISIBILITY_SECONDS) as i32)
            .send()
            .await
            .map(|_| ())
            .map_err(QueueError::new)
    }
}

/// The longest delay SQS gives one message.
const MAX_DELAY_SECONDS: u64 = 15 * 60;

/// The most messages, and bytes, one `SendMessageBatch` takes.
const BATCH_MESSAGES: usize = 10;
const BATCH_BYTES: usize = 256 * 1024;
/// How often entries a batch call refused are sent again before giving up.
const BATCH_RETRIES: u32 = 3;

/// A group or deduplication id as SQS takes one (at most 128 characters,
/// printable ASCII without spaces): as it is when it is one, else its SHA-256 in
/// hex, which keeps distinct ids distinct and equal ones equal (a conversion's key
/// holds the caller's `eventId` and event type, which may be long or have spaces).
fn fitted(id: &str) -> String {
    if id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()) {
        return id.to_owned();
    }
    ghl_capi::normalize::sha256_hex(id).as_str().to_owned()
}

impl SqsQueue {
    /// `message`'s group, deduplication id and delay as SQS takes them: a FIFO
    /// queue refuses a message without a group (one shared group keeps order when
    /// the caller has none to give) and takes no delay of its own.
    fn attributes(&self, message: &Outgoing) -> (Option<String>, Option<String>, Option<i32>) {
        if self.fifo {
            let group = message
                .group_id
                .clone()
                .unwrap_or_else(|| "default".to_owned());
            return (
                Some(fitted(&group)),
                message.dedup_id.as_deref().map(fitted),
                None,
            );
        }
        // Round up: "in 1.5 s" must not become 1 s.
        let delay = message
            .delay
            .map(|d| (d.as_millis().div_ceil(1000) as u64).min(MAX_DELAY_SECONDS) as i32);
        (None, None, delay)
    }

    /// One `SendMessageBatch` of at most ten messages; the entries it refused.
    async fn send_batch(&self, messages: Vec<Outgoing>) -> Result<Vec<Outgoing>, QueueError> {
        let entries = messages
            .iter()
            .enumerate()
            .map(|(i, message)| {
                let (group, dedup, delay) = self.attributes(message);
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(&message.body)
                    .set_message_group_id(group)
                    .set_message_deduplication_id(dedup)
                    .set_delay_seconds(delay)
                    .build()
                    .map_err(QueueError::new)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let answer = self
            .client
            .send_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(QueueError::new)?;
        let mut refused = Vec::new();
        for failed in answer.failed {
            let again = failed
                .id
                .parse::<usize>()
                .ok()
                .and_then(|i| messages.get(i));
            match again {
                // A sender's fault (a body SQS will not take) never passes on retry.
                Some(message) if !failed.sender_fault => refused.push(message.clone()),
                _ => {
                    return Err(QueueError::new(format!(
                        "SQS refused a message of a batch: {} ({})",
                        failed.message.unwrap_or_default(),
                        failed.code
                    )));
                }
            }
        }
        Ok(refused)
    }
}

impl Queue for SqsQueue {
    async fn send(&self, message: Outgoing) -> Result<(), QueueError> {
        let (group, dedup, delay) = self.attributes(&message);
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(message.body)
            .set_message_group_id(group)
            .set_message_deduplication_id(dedup)
            .set_delay_seconds(delay)
            .send()
            .await
            .map(|_| ())
            .map_err(QueueError::new)
    }

    /// In batches of up to ten messages and 256 KiB; entries SQS refused for its
    /// own reasons are sent again a few times.
    async fn send_all(&self, messages: Vec<Outgoing>) -> Result<(), QueueError> {
        let mut batch: Vec<Outgoing> = Vec::new();
        let mut bytes = 0;
        let mut batches = Vec::new();
        for message in messages {
            let size = message.body.len();
            if batch.len() == BATCH_MESSAGES || (bytes + size > BATCH_BYTES && !batch.is_empty()) {
                batches.push(std::mem::take(&mut batch));
                bytes = 0;
            }
            bytes += size;
            batch.push(message);
        }
        batches.extend((!batch.is_empty()).then_some(batch));
        for mut batch in batches {
            for attempt in 0..=BATCH_RETRIES {
                batch = self.send_batch(batch).await?;
                if batch.is_empty() {
                    break;
                }
                if attempt == BATCH_RETRIES {
                    return Err(QueueError::new(format!(
                        "SQS refused {} messages of a batch {} times",
                        batch.len(),
                        BATCH_RETRIES + 1
                    )));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::fitted;

    #[test]
    fn ids_sqs_would_refuse_are_replaced_by_their_digest() {
        assert_eq!(fitted("loc:c1:Purchase:order-1"), "loc:c1:Purchase:order-1");
        let spaced = fitted("loc:c1:Booked call:order-1");
        let long = fitted(&format!("loc:c1:Lead:{}", "x".repeat(128)));
        for id in [&spaced, &long] {
            assert_eq!(id.len(), 64);
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        }
        assert_eq!(spaced, fitted("loc:c1:Booked call:order-1"));
        assert_ne!(spaced, fitted("loc:c1:Booked call:order-2"));
    }
}
