//! The state store on DynamoDB: one item per contact, keyed `tags#{location}#{contact}`,
//! and one per job done, keyed `done#{key}`, each with an `expires_at` TTL so
//! contacts that stay quiet and old jobs age out.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use ghl_capi::enrich::{StateError, StateStore};

/// How long a contact's tags are kept after its last change.
pub const TAGS_TTL: Duration = Duration::from_secs(400 * 24 * 3600);
/// How long a job is remembered as done: longer than GHL retries (about 70 min) and
/// than a message can stay queued with its dead-letter queue (14 days max).
pub const PROCESSED_TTL: Duration = Duration::from_secs(15 * 24 * 3600);

/// The state table (partition key `pk`, a string; TTL attribute `expires_at`).
#[derive(Debug, Clone)]
pub struct DynamoState {
    client: Client,
    table: String,
}

impl DynamoState {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoState {
            client,
            table: table.into(),
        }
    }
}

fn key(location_id: &str, contact_id: &str) -> AttributeValue {
    AttributeValue::S(format!("tags#{location_id}#{contact_id}"))
}

fn failed(e: impl std::fmt::Display) -> StateError {
    StateError(e.to_string())
}

fn expires_in(ttl: Duration) -> AttributeValue {
    let at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        + ttl;
    AttributeValue::N(at.as_secs().to_string())
}

fn done_key(key: &str) -> AttributeValue {
    AttributeValue::S(format!("done#{key}"))
}

impl StateStore for DynamoState {
    async fn tags(
        &self,
        location_id: &str,
        contact_id: &str,
    ) -> Result<Option<Vec<String>>, StateError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", key(location_id, contact_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| failed(e.into_service_error()))?
            .item;
        let Some(item) = item else { return Ok(None) };
        let tags = match item.get("tags") {
            Some(AttributeValue::L(list)) => {
                list.iter().filter_map(|v| v.as_s().ok().cloned()).collect()
            }
            _ => Vec::new(),
        };
        Ok(Some(tags))
    }

    async fn set_tags(
        &self,
        location_id: &str,
        contact_id: &str,
        tags: &[String],
    ) -> Result<(), StateError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", key(location_id, contact_id))
            .item(
                "tags",
                AttributeValue::L(tags.iter().cloned().map(AttributeValue::S).collect()),
            )
            .item("expires_at", expires_in(TAGS_TTL))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| failed(e.into_service_error()))
    }

    async fn processed(&self, key: &str) -> Result<bool, StateError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", done_key(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| failed(e.into_service_error()))?
            .item;
        Ok(item.is_some())
    }

    async fn mark_processed(&self, key: &str) -> Result<(), StateError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", done_key(key))
            .item("expires_at", expires_in(PROCESSED_TTL))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| failed(e.into_service_error()))
    }
}
