//! The queue port on SQS. FIFO queues get the message's group and deduplication
//! ids; standard queues ignore them.

use aws_sdk_sqs::Client;
use ghl_capi::queue::{Outgoing, Queue, QueueError};

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
}

impl Queue for SqsQueue {
    async fn send(&self, message: Outgoing) -> Result<(), QueueError> {
        let mut request = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(message.body);
        if self.fifo {
            // A FIFO queue refuses a message without a group; one shared group keeps
            // order when the caller has none to give.
            request = request
                .message_group_id(message.group_id.unwrap_or_else(|| "default".to_owned()))
                .set_message_deduplication_id(message.dedup_id);
        }
        request.send().await.map(|_| ()).map_err(QueueError::new)
    }
}
