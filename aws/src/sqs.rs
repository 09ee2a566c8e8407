//! The queue port on SQS. FIFO queues get the message's group and deduplication
//! ids; standard queues ignore them.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::MessageSystemAttributeName;
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

impl Queue for SqsQueue {
    async fn send(&self, message: Outgoing) -> Result<(), QueueError> {
        let mut request = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(message.body);
        if self.fifo {
            // A FIFO queue refuses a message without a group; one shared group keeps
            // order when the caller has none to give. (It takes no delay of its own.)
            request = request
                .message_group_id(message.group_id.unwrap_or_else(|| "default".to_owned()))
                .set_message_deduplication_id(message.dedup_id);
        } else if let Some(delay) = message.delay {
            // Round up: "in 1.5 s" must not become 1 s.
            let seconds = delay.as_millis().div_ceil(1000) as u64;
            request = request.delay_seconds(seconds.min(MAX_DELAY_SECONDS) as i32);
        }
        request.send().await.map(|_| ()).map_err(QueueError::new)
    }
}
