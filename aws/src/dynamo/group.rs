//! Records listed by group: the families of [`super::LISTED`] carry `grp`, their key
//! up to its last `#`, by which the sparse index [`super::GROUP_INDEX`] lists one
//! location's records in a `Query`.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use ghl_capi::ports::state::{StateError, StateStore};

use super::{DynamoState, GROUP_INDEX, LISTED, failed, live, record_key};

/// The group a record of a listed family belongs to: its key up to its last `#`.
pub(super) fn group_of(key: &str) -> Option<&str> {
    LISTED
        .iter()
        .any(|family| key.starts_with(family))
        .then(|| key.rfind('#').map(|end| &key[..=end]))
        .flatten()
}

/// The `grp` attribute of a record of `key`, if its family is listed by group.
pub(super) fn grouped(key: &str) -> HashMap<String, AttributeValue> {
    group_of(key)
        .map(|group| ("grp".to_owned(), AttributeValue::S(group.to_owned())))
        .into_iter()
        .collect()
}

/// A listed record's key and text, if it is one and not past its time.
fn listed(item: &HashMap<String, AttributeValue>) -> Option<(String, String)> {
    if !live(item) {
        return None;
    }
    let key = item.get("pk")?.as_s().ok()?.strip_prefix("rec#")?;
    let text = item.get("text")?.as_s().ok()?;
    Some((key.to_owned(), text.clone()))
}

impl DynamoState {
    /// Every record of `group`, by the group index.
    pub(super) async fn query_group(
        &self,
        group: &str,
    ) -> Result<Vec<(String, String)>, StateError> {
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(GROUP_INDEX)
                .key_condition_expression("grp = :group")
                .expression_attribute_values(":group", AttributeValue::S(group.to_owned()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| failed(e.into_service_error()))?;
            found.extend(page.items().iter().filter_map(listed));
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(found),
            }
        }
    }

    /// Every record whose key starts with `prefix`, by a scan of the table.
    pub(super) async fn scan(&self, prefix: &str) -> Result<Vec<(String, String)>, StateError> {
        Ok(self
            .scan_items(record_key(prefix), None)
            .await?
            .iter()
            .filter_map(listed)
            .collect())
    }

    /// Every item whose key starts with `prefix` (and meets `only`), page by page.
    pub(super) async fn scan_items(
        &self,
        prefix: AttributeValue,
        only: Option<&str>,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StateError> {
        let filter = match only {
            Some(more) => format!("begins_with(pk, :prefix) and {more}"),
            None => "begins_with(pk, :prefix)".to_owned(),
        };
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression(&filter)
                .expression_attribute_values(":prefix", prefix.clone())
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| failed(e.into_service_error()))?;
            found.extend(page.items().iter().cloned());
            match page.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(found),
            }
        }
    }

    /// Gives `family`'s records written before the group index their `grp`, once
    /// per table (a mark says it was done) and per process.
    pub(super) async fn index(&self, family: &'static str) -> Result<(), StateError> {
        let known = |indexed: &std::sync::Mutex<Vec<&'static str>>| {
            indexed.lock().map(|i| i.contains(&family)).unwrap_or(false)
        };
        if known(&self.indexed) {
            return Ok(());
        }
        let mark = format!("indexed#{family}");
        if self.record(&mark).await?.is_none() {
            let unmarked = self
                .scan_items(record_key(family), Some("attribute_not_exists(grp)"))
                .await?;
            for item in &unmarked {
                let Some(key) = item.get("pk").and_then(|v| v.as_s().ok()) else {
                    continue;
                };
                let Some(group) = key.strip_prefix("rec#").and_then(group_of) else {
                    continue;
                };
                self.client
                    .update_item()
                    .table_name(&self.table)
                    .key("pk", AttributeValue::S(key.clone()))
                    .update_expression("SET grp = :group")
                    .expression_attribute_values(":group", AttributeValue::S(group.to_owned()))
                    .send()
                    .await
                    .map_err(|e| failed(e.into_service_error()))?;
            }
            tracing::info!(
                family,
                records = unmarked.len(),
                "records indexed by group, once"
            );
            self.set_record(&mark, "", Duration::from_secs(10 * 366 * 24 * 3600))
                .await?;
        }
        if let Ok(mut indexed) = self.indexed.lock() {
            indexed.push(family);
        }
        Ok(())
    }
}
