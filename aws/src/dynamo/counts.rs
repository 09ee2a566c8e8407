//! Counters on DynamoDB: one item per key (`cnt#{key}`), each counter an attribute
//! of its own (`n:{name}`), each set a string set (`s:{name}`), added to with
//! `UpdateItem … ADD`, which DynamoDB applies atomically: any number of functions
//! count into the same item without a read and without a lost update. An item
//! holds at most 400 KB: sets stay small by holding short digests.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use ghl_capi::ports::state::{Added, Counts, StateError};

use super::{DynamoState, expires_in, failed};

/// Counters one `UpdateItem` adds at most (its expression stays far under 4 KB).
const PER_UPDATE: usize = 100;
/// What a counter's and a set's attribute names start with.
const PREFIX: &str = "n:";
const SET: &str = "s:";

fn counts_key(key: &str) -> AttributeValue {
    AttributeValue::S(format!("cnt#{key}"))
}

impl DynamoState {
    /// An item past its time still being swept is added to as it is: counters are
    /// kept under keys of one day, written on that day only, long before they run
    /// out.
    pub(super) async fn add_to_counts(
        &self,
        key: &str,
        added: &Added,
        keep: Duration,
    ) -> Result<(), StateError> {
        let counts = added
            .counts
            .iter()
            .map(|(name, n)| (format!("{PREFIX}{name}"), AttributeValue::N(n.to_string())));
        let sets = (added.members.iter())
            .filter(|(_, members)| !members.is_empty())
            .map(|(name, members)| (format!("{SET}{name}"), AttributeValue::Ss(members.clone())));
        let all: Vec<(String, AttributeValue)> = counts.chain(sets).collect();
        for chunk in all.chunks(PER_UPDATE) {
            let adds: Vec<String> = (0..chunk.len()).map(|i| format!("#n{i} :n{i}")).collect();
            let mut update = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", counts_key(key))
                .update_expression(format!("SET expires_at = :until ADD {}", adds.join(", ")))
                .expression_attribute_values(":until", expires_in(keep));
            for (i, (attribute, value)) in chunk.iter().enumerate() {
                update = update
                    .expression_attribute_names(format!("#n{i}"), attribute)
                    .expression_attribute_values(format!(":n{i}"), value.clone());
            }
            update
                .send()
                .await
                .map_err(|e| failed(e.into_service_error()))?;
        }
        Ok(())
    }

    /// The keys under `prefix` with counters: a scan of the table.
    pub(super) async fn counted_keys(&self, prefix: &str) -> Result<Vec<String>, StateError> {
        let items = self.scan_items(counts_key(prefix), None).await?;
        let mut keys: Vec<String> = items
            .iter()
            .filter(|item| super::live(item))
            .filter_map(|item| {
                item.get("pk")?
                    .as_s()
                    .ok()?
                    .strip_prefix("cnt#")
                    .map(str::to_owned)
            })
            .collect();
        keys.sort();
        Ok(keys)
    }

    pub(super) async fn counts_in(
        &self,
        keys: &[String],
    ) -> Result<HashMap<String, Counts>, StateError> {
        let wanted = keys.iter().map(|k| counts_key(k)).collect();
        let mut found = HashMap::new();
        for item in self.items(wanted, None).await? {
            let Some(key) = item
                .get("pk")
                .and_then(|v| v.as_s().ok())
                .and_then(|k| k.strip_prefix("cnt#"))
            else {
                continue;
            };
            let counts: Counts = item
                .iter()
                .filter_map(|(attribute, value)| {
                    if let Some(set) = attribute.strip_prefix(SET) {
                        return Some((set.to_owned(), value.as_ss().ok()?.len() as u64));
                    }
                    let name = attribute.strip_prefix(PREFIX)?;
                    let n = value.as_n().ok()?.parse::<u64>().ok()?;
                    Some((name.to_owned(), n))
                })
                .collect();
            if !counts.is_empty() {
                found.insert(key.to_owned(), counts);
            }
        }
        Ok(found)
    }
}
