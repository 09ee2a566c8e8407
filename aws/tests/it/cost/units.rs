//! Billable units from what was sent: each service's own rule for what one request
//! or one unit is.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use crate::iam::Sent;

/// SQS bills each 64 KB of a request's payload as one request.
const SQS_CHUNK: usize = 64 * 1024;
/// DynamoDB on demand: one write unit per KB of the item written, one read unit per
/// 4 KB read strongly (half for an eventually consistent read).
const WRITE_UNIT: usize = 1024;
const READ_UNIT: usize = 4096;
/// CloudWatch Logs sizes each event as its text plus 26 bytes.
pub(crate) const LOG_EVENT_OVERHEAD: usize = 26;

/// Billable units, summed.
#[derive(Debug, Clone, Default)]
pub(crate) struct Units {
    pub(crate) api_requests: f64,
    pub(crate) invocations: f64,
    pub(crate) gb_seconds: f64,
    pub(crate) sqs_standard: f64,
    pub(crate) sqs_fifo: f64,
    pub(crate) write_units: f64,
    pub(crate) read_units: f64,
    pub(crate) secrets_calls: f64,
    pub(crate) s3_requests: f64,
    pub(crate) log_bytes: f64,
}

impl Units {
    pub(crate) fn add(&mut self, other: &Units) {
        self.api_requests += other.api_requests;
        self.invocations += other.invocations;
        self.gb_seconds += other.gb_seconds;
        self.sqs_standard += other.sqs_standard;
        self.sqs_fifo += other.sqs_fifo;
        self.write_units += other.write_units;
        self.read_units += other.read_units;
        self.secrets_calls += other.secrets_calls;
        self.s3_requests += other.s3_requests;
        self.log_bytes += other.log_bytes;
    }

    /// These units for each of `n` events.
    pub(crate) fn per(&self, n: f64) -> Units {
        Units {
            api_requests: self.api_requests / n,
            invocations: self.invocations / n,
            gb_seconds: self.gb_seconds / n,
            sqs_standard: self.sqs_standard / n,
            sqs_fifo: self.sqs_fifo / n,
            write_units: self.write_units / n,
            read_units: self.read_units / n,
            secrets_calls: self.secrets_calls / n,
            s3_requests: self.s3_requests / n,
            log_bytes: self.log_bytes / n,
        }
    }

    /// One SQS request (or Lambda's poller's) on the queue at `url`, carrying
    /// `payload` bytes.
    pub(crate) fn sqs(&mut self, url: &str, payload: usize) {
        let requests = payload.div_ceil(SQS_CHUNK).max(1) as f64;
        if url.ends_with(".fifo") {
            self.sqs_fifo += requests;
        } else {
            self.sqs_standard += requests;
        }
    }
}

/// What the table holds, as far as billing goes: each key's largest item (what an
/// update or a delete of it is billed for), and the keys whose items carry `grp`,
/// which the `ByGroup` index (all attributes projected) writes a copy of.
#[derive(Debug, Default)]
pub(crate) struct Items {
    size: HashMap<String, usize>,
    grouped: HashSet<String>,
}

/// The units of the requests `sent`, sizing updated and deleted items by `items`
/// (the largest each key was), and each item `sent` puts recorded there.
pub(crate) fn of(sent: &[Sent], items: &mut Items) -> Units {
    let mut units = Units::default();
    for request in sent {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let (service, operation) = request
            .operation
            .split_once('.')
            .or_else(|| request.operation.split_once(':'))
            .unwrap_or(("", &request.operation));
        match service {
            "AmazonSQS" => {
                let url = body["QueueUrl"].as_str().unwrap_or_default();
                units.sqs(url, request.body.len());
            }
            "secretsmanager" => units.secrets_calls += 1.0,
            "s3" => units.s3_requests += 1.0,
            s if s.starts_with("DynamoDB") => dynamo(operation, &body, items, &mut units),
            other => panic!("a call the cost model does not price: {other} {operation}"),
        }
    }
    units
}

fn dynamo(operation: &str, body: &Value, items: &mut Items, units: &mut Units) {
    let strong = body["ConsistentRead"].as_bool() == Some(true);
    let read = |size: usize| {
        let whole = size.div_ceil(READ_UNIT).max(1) as f64;
        if strong { whole } else { whole / 2.0 }
    };
    let mut write = |item: &Value, written: bool| {
        let key = key_of(item);
        if written && !item["grp"].is_null() {
            items.grouped.insert(key.clone());
        }
        let copies = if items.grouped.contains(&key) {
            2.0
        } else {
            1.0
        };
        let size = if written { item_size(item) } else { 0 };
        let known = items.size.entry(key).or_default();
        *known = (*known).max(size);
        units.write_units += copies * known.div_ceil(WRITE_UNIT).max(1) as f64;
    };
    match operation {
        "PutItem" => write(&body["Item"], true),
        "UpdateItem" | "DeleteItem" => write(&body["Key"], false),
        "BatchWriteItem" => {
            for request in requests(body) {
                match request.get("PutRequest") {
                    Some(put) => write(&put["Item"], true),
                    None => write(&request["DeleteRequest"]["Key"], false),
                }
            }
        }
        "GetItem" => units.read_units += read(size_of_key(items, &body["Key"])),
        "BatchGetItem" => {
            for table in body["RequestItems"].as_object().into_iter().flatten() {
                let strong = table.1["ConsistentRead"].as_bool() == Some(true);
                for key in table.1["Keys"].as_array().into_iter().flatten() {
                    let whole = size_of_key(items, key).div_ceil(READ_UNIT).max(1) as f64;
                    units.read_units += if strong { whole } else { whole / 2.0 };
                }
            }
        }
        // A query reads a group's items together, billed by their total size:
        // counted as one unit, as a location's few small records are here.
        "Query" => units.read_units += read(0),
        other => panic!("a DynamoDB call the cost model does not price: {other}"),
    }
}

fn requests(body: &Value) -> impl Iterator<Item = &Value> {
    body["RequestItems"]
        .as_object()
        .into_iter()
        .flat_map(|t| t.values())
        .flat_map(|r| r.as_array().into_iter().flatten())
}

/// An item's key (`pk` and `sk`), as text.
fn key_of(item: &Value) -> String {
    format!("{}|{}", item["pk"], item["sk"])
}

fn size_of_key(items: &Items, key: &Value) -> usize {
    items.size.get(&key_of(key)).copied().unwrap_or(0)
}

/// An item's size as DynamoDB counts it: each attribute's name and value.
pub(crate) fn item_size(item: &Value) -> usize {
    item.as_object()
        .into_iter()
        .flatten()
        .map(|(name, value)| name.len() + value_size(value))
        .sum()
}

fn value_size(value: &Value) -> usize {
    let Some((kind, inner)) = value.as_object().and_then(|o| o.iter().next()) else {
        return 0;
    };
    match kind.as_str() {
        "S" => inner.as_str().map_or(0, str::len),
        // Base64 in the request: the bytes it stands for.
        "B" => inner.as_str().map_or(0, |b| b.len() * 3 / 4),
        // About one byte per two digits, and one.
        "N" => inner.as_str().map_or(0, |n| n.len().div_ceil(2) + 1),
        "BOOL" | "NULL" => 1,
        "M" => 3 + item_size(inner),
        "L" => {
            3 + inner
                .as_array()
                .into_iter()
                .flatten()
                .map(|v| 1 + value_size(v))
                .sum::<usize>()
        }
        "SS" | "NS" | "BS" => inner
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| v.as_str().map_or(0, str::len))
            .sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn items_are_sized_as_dynamodb_sizes_them() {
        let item = json!({"pk": {"S": "done#wh-1"}, "ttl": {"N": "1765000000"},
            "m": {"M": {"a": {"BOOL": true}}}});
        // "pk" 2 + 9, "ttl" 3 + 6, "m" 1 + 3 + ("a" 1 + 1)
        assert_eq!(super::item_size(&item), 11 + 9 + 6);
    }

    #[test]
    fn writes_are_billed_by_the_kilobyte_twice_with_the_group_index_and_sqs_by_64_kb() {
        let put = |pk: &str, text: usize, grp: bool| {
            let mut item = json!({"pk": {"S": pk}, "text": {"S": "x".repeat(text)}});
            if grp {
                item["grp"] = json!({"S": "m#loc1"});
            }
            let body = json!({"TableName": "t", "Item": item});
            crate::iam::Sent {
                operation: "DynamoDB_20120810.PutItem".into(),
                body: body.to_string().into_bytes(),
            }
        };
        let update = crate::iam::Sent {
            operation: "DynamoDB_20120810.UpdateItem".into(),
            body: json!({"TableName": "t", "Key": {"pk": {"S": "big"}}})
                .to_string()
                .into_bytes(),
        };
        let mut items = super::Items::default();
        let sent = [
            put("small", 10, false),
            put("big", 2000, false),
            update,
            put("member", 10, true),
        ];
        // 1 + 2 (2 KB) + 2 (the update of that item) + 2 (the item and its index copy)
        assert_eq!(super::of(&sent, &mut items).write_units, 7.0);

        let mut units = super::Units::default();
        units.sqs("https://q/jobs.fifo", 64 * 1024 + 1);
        units.sqs("https://q/events", 10);
        assert_eq!((units.sqs_fifo, units.sqs_standard), (2.0, 1.0));
    }
}
