//! The state store on DynamoDB: one item per contact, keyed
//! `tags#{location}#{contact}`, with the jobs about it done lately ([`contact`]);
//! one per other job done, keyed `done#{key}`; one per kept record (a breaker, a
//! held job's history, a mark), keyed `rec#{key}`; and one per set of counters,
//! keyed `cnt#{key}` ([`counts`]); each with an `expires_at` TTL so contacts that
//! stay quiet, old jobs, records and counters age out.
//!
//! Records of the families listed by group ([`LISTED`]: the locations left to mint,
//! each location's audience members and their applied changes) also carry `grp`,
//! their key up to its last `#`, which the sparse index [`GROUP_INDEX`] is keyed by:
//! one location's records are a `Query`, never a scan of the table. Records written
//! before the index are given their `grp` once, by the first listing of their family
//! ([`group`]). Leases live in the same table ([`lease`]).

mod contact;
mod counts;
mod group;
mod lease;

use group::{group_of, grouped};
pub use lease::DynamoLease;

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, PutRequest, WriteRequest};
use ghl_capi::ports::state::{Added, Counts, Remembered, StateError, StateStore};

/// How long a contact's tags are kept after its last change.
pub const TAGS_TTL: Duration = Duration::from_secs(400 * 24 * 3600);
/// How long a job is remembered as done: longer than GHL retries (about 70 min) and
/// than a message can stay queued with its dead-letter queue (14 days max).
pub const PROCESSED_TTL: Duration = Duration::from_secs(15 * 24 * 3600);

/// The index of records by group (partition key `grp`, sort key `pk`).
pub const GROUP_INDEX: &str = "ByGroup";
/// The record families listed by group.
pub const LISTED: [&str; 3] = ["mint#", "member#", "applied#"];

/// The state table (partition key `pk`, a string; TTL attribute `expires_at`).
#[derive(Debug, Clone)]
pub struct DynamoState {
    client: Client,
    table: String,
    /// The families whose records are known to carry their group.
    indexed: std::sync::Arc<std::sync::Mutex<Vec<&'static str>>>,
}

impl DynamoState {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoState {
            client,
            table: table.into(),
            indexed: Default::default(),
        }
    }

    /// The item under `pk`, read strongly consistent or not.
    async fn get(&self, pk: AttributeValue, strong: bool) -> Result<Option<Item>, StateError> {
        let read = self.client.get_item().table_name(&self.table).key("pk", pk);
        let read = read.consistent_read(strong).send().await;
        Ok(read.map_err(|e| failed(e.into_service_error()))?.item)
    }

    /// Puts `item` in place of what its key holds.
    async fn put(&self, item: Item) -> Result<(), StateError> {
        let put = self.client.put_item().table_name(&self.table);
        let put = put.set_item(Some(item)).send().await;
        put.map(|_| ()).map_err(|e| failed(e.into_service_error()))
    }
}

fn failed(e: impl std::error::Error + Send + Sync + 'static) -> StateError {
    StateError::new(e)
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

fn record_key(key: &str) -> AttributeValue {
    AttributeValue::S(format!("rec#{key}"))
}

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// Whether a record's item is not past its time: the table's TTL sweeps late (up
/// to days), and an item past its time is gone.
fn live(item: &Item) -> bool {
    let expires_at = item
        .get("expires_at")
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(u64::MAX);
    expires_at > now_seconds()
}

impl StateStore for DynamoState {
    async fn tags(
        &self,
        location_id: &str,
        contact_id: &str,
    ) -> Result<Option<Vec<String>>, StateError> {
        self.contact_tags(location_id, contact_id).await
    }

    async fn set_tags(
        &self,
        location_id: &str,
        contact_id: &str,
        tags: &[String],
    ) -> Result<(), StateError> {
        self.update_tags(location_id, contact_id, tags).await
    }

    async fn contact(
        &self,
        location_id: &str,
        contact_id: &str,
        key: &str,
    ) -> Result<Remembered, StateError> {
        self.read_contact(location_id, contact_id, key).await
    }

    async fn set_tags_done(
        &self,
        location_id: &str,
        contact_id: &str,
        tags: &[String],
        key: &str,
        was: &Remembered,
    ) -> Result<(), StateError> {
        self.write_contact_done(location_id, contact_id, tags, key, was)
            .await
    }

    async fn processed(&self, key: &str) -> Result<bool, StateError> {
        // Read eventually consistent (half a unit): a done job comes again only
        // after its queue's visibility timeout, or as GHL's resend minutes later,
        // long after its mark spread; and a job run twice repeats its event ids and
        // finds its tags and memberships (read strongly) as it left them.
        Ok(self.get(done_key(key), false).await?.is_some())
    }

    async fn mark_processed(&self, key: &str) -> Result<(), StateError> {
        let item = [
            ("pk".to_owned(), done_key(key)),
            ("expires_at".to_owned(), expires_in(PROCESSED_TTL)),
        ];
        self.put(item.into_iter().collect()).await
    }

    async fn record(&self, key: &str) -> Result<Option<String>, StateError> {
        let item = self.get(record_key(key), true).await?;
        Ok(item
            .filter(live)
            .and_then(|item| item.get("text").and_then(|v| v.as_s().ok()).cloned()))
    }

    async fn set_record(&self, key: &str, text: &str, keep: Duration) -> Result<(), StateError> {
        let mut item = grouped(key);
        item.insert("pk".into(), record_key(key));
        item.insert("text".into(), AttributeValue::S(text.to_owned()));
        item.insert("expires_at".into(), expires_in(keep));
        self.put(item).await
    }

    /// A conditional put: absent (or run out) for `None`, the same live text
    /// otherwise.
    async fn swap_record(
        &self,
        key: &str,
        expected: Option<&str>,
        text: &str,
        keep: Duration,
    ) -> Result<bool, StateError> {
        let mut item = grouped(key);
        item.insert("pk".into(), record_key(key));
        item.insert("text".into(), AttributeValue::S(text.to_owned()));
        item.insert("expires_at".into(), expires_in(keep));
        let now = AttributeValue::N(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs()
                .to_string(),
        );
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .expression_attribute_values(":now", now);
        let put = match expected {
            None => put.condition_expression("attribute_not_exists(pk) OR expires_at <= :now"),
            Some(was) => put
                .condition_expression("#text = :was AND expires_at > :now")
                .expression_attribute_names("#text", "text")
                .expression_attribute_values(":was", AttributeValue::S(was.to_owned())),
        };
        match put.send().await {
            Ok(_) => Ok(true),
            Err(e) => match e.into_service_error() {
                e if e.is_conditional_check_failed_exception() => Ok(false),
                e => Err(failed(e)),
            },
        }
    }

    async fn delete_record(&self, key: &str) -> Result<(), StateError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", record_key(key))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| failed(e.into_service_error()))
    }

    async fn records_of(&self, keys: &[String]) -> Result<HashMap<String, String>, StateError> {
        let keys = keys.iter().map(|k| record_key(k)).collect();
        let projection = Some(("pk, expires_at, #text", ("#text", "text")));
        let mut found = HashMap::new();
        for item in self.items(keys, projection).await? {
            let key = item.get("pk").and_then(|v| v.as_s().ok());
            let text = item.get("text").and_then(|v| v.as_s().ok());
            if let Some(key) = key.and_then(|k| k.strip_prefix("rec#")) {
                found.insert(key.to_owned(), text.cloned().unwrap_or_default());
            }
        }
        Ok(found)
    }

    /// A group of a listed family (`member#{audience}#{location}#`): one `Query`
    /// of the group index. Any other prefix: a scan of the table (an operator's
    /// command, never a function's).
    async fn records_under(&self, prefix: &str) -> Result<Vec<(String, String)>, StateError> {
        let mut found = match LISTED.iter().find(|family| prefix.starts_with(**family)) {
            Some(family) if group_of(prefix) == Some(prefix) => {
                self.index(family).await?;
                self.query_group(prefix).await?
            }
            _ => self.scan(prefix).await?,
        };
        found.sort();
        Ok(found)
    }

    async fn add_counts(&self, key: &str, added: &Added, keep: Duration) -> Result<(), StateError> {
        self.add_to_counts(key, added, keep).await
    }

    async fn counts_of(&self, keys: &[String]) -> Result<HashMap<String, Counts>, StateError> {
        self.counts_in(keys).await
    }

    async fn counted_under(&self, prefix: &str) -> Result<Vec<String>, StateError> {
        self.counted_keys(prefix).await
    }

    /// `BatchWriteItem`, 25 items a call, writing again what DynamoDB left
    /// unprocessed.
    async fn set_records(
        &self,
        records: &[(String, String)],
        keep: Duration,
    ) -> Result<(), StateError> {
        for chunk in records.chunks(BATCH_WRITE) {
            let mut writes = chunk
                .iter()
                .map(|(k, text)| {
                    let mut item = grouped(k);
                    item.insert("pk".into(), record_key(k));
                    item.insert("text".into(), AttributeValue::S(text.clone()));
                    item.insert("expires_at".into(), expires_in(keep));
                    let item = PutRequest::builder()
                        .set_item(Some(item))
                        .build()
                        .map_err(failed)?;
                    Ok(WriteRequest::builder().put_request(item).build())
                })
                .collect::<Result<Vec<_>, StateError>>()?;
            for round in 0..BATCH_ROUNDS {
                if writes.is_empty() {
                    break;
                }
                backoff(round).await;
                let answer = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, writes)
                    .send()
                    .await
                    .map_err(|e| failed(e.into_service_error()))?;
                writes = answer
                    .unprocessed_items
                    .and_then(|mut u| u.remove(&self.table))
                    .unwrap_or_default();
            }
            if !writes.is_empty() {
                return Err(StateError::new(
                    "DynamoDB left items unwritten after retries",
                ));
            }
        }
        Ok(())
    }
}

impl DynamoState {
    /// The live items of `keys` (partition keys), with a projection and the one
    /// attribute name it uses, if given: `BatchGetItem`, 100 keys a call, asking
    /// again for what DynamoDB left unprocessed (it may, under load).
    async fn items(
        &self,
        keys: Vec<AttributeValue>,
        projection: Option<(&str, (&str, &str))>,
    ) -> Result<Vec<Item>, StateError> {
        let mut found = Vec::new();
        for chunk in keys.chunks(BATCH_GET) {
            let wanted = chunk
                .iter()
                .map(|k| HashMap::from([("pk".to_owned(), k.clone())]))
                .collect::<Vec<_>>();
            let mut ask = KeysAndAttributes::builder()
                .set_keys(Some(wanted))
                .consistent_read(true);
            if let Some((expression, (name, attribute))) = projection {
                ask = ask
                    .projection_expression(expression)
                    .expression_attribute_names(name, attribute);
            }
            let mut ask = Some(ask.build().map_err(failed)?);
            for round in 0..BATCH_ROUNDS {
                let Some(keys) = ask.take() else { break };
                backoff(round).await;
                let answer = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, keys)
                    .send()
                    .await
                    .map_err(|e| failed(e.into_service_error()))?;
                found.extend(
                    answer
                        .responses
                        .unwrap_or_default()
                        .remove(&self.table)
                        .unwrap_or_default()
                        .into_iter()
                        .filter(live),
                );
                ask = answer
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table));
            }
            if ask.is_some() {
                return Err(StateError::new("DynamoDB left keys unread after retries"));
            }
        }
        Ok(found)
    }
}

/// An item as DynamoDB gives it.
type Item = HashMap<String, AttributeValue>;

/// The most keys one `BatchGetItem` reads, and items one `BatchWriteItem` writes.
const BATCH_GET: usize = 100;
const BATCH_WRITE: usize = 25;
/// How often what DynamoDB left unprocessed is asked for again.
const BATCH_ROUNDS: u32 = 5;

/// Before round `round` of a batch call: nothing first, then 50 ms doubling, as
/// DynamoDB asks of those it left items unprocessed for.
async fn backoff(round: u32) {
    if round > 0 {
        tokio::time::sleep(Duration::from_millis(50 << round)).await;
    }
}
