//! Leases in the state table.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use ghl_capi::ports::lease::{Lease, LeaseError};

use super::expires_in;

/// Leases in the state table: one item per lease, `lease#{name}`, written only if
/// absent or run out (a conditional put), deleted by its owner.
#[derive(Debug, Clone)]
pub struct DynamoLease {
    client: Client,
    table: String,
}

impl DynamoLease {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoLease {
            client,
            table: table.into(),
        }
    }
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
}

impl Lease for DynamoLease {
    async fn acquire(&self, name: &str, owner: &str, hold: Duration) -> Result<bool, LeaseError> {
        let now = now_ms();
        let answer = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(format!("lease#{name}")))
            .item("owner", AttributeValue::S(owner.to_owned()))
            .item(
                "held_until",
                AttributeValue::N((now + hold.as_millis()).to_string()),
            )
            // Swept by the table's TTL a day after it ran out, if never released.
            .item("expires_at", expires_in(hold + Duration::from_secs(86_400)))
            // Free, run out, or ours already (a renewal).
            .condition_expression("attribute_not_exists(pk) OR held_until < :now OR #owner = :me")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .expression_attribute_values(":me", AttributeValue::S(owner.to_owned()))
            .send()
            .await;
        match answer {
            Ok(_) => Ok(true),
            Err(e) => match e.into_service_error() {
                e if e.is_conditional_check_failed_exception() => Ok(false),
                e => Err(LeaseError::new(e)),
            },
        }
    }

    async fn release(&self, name: &str, owner: &str) -> Result<(), LeaseError> {
        let answer = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(format!("lease#{name}")))
            .condition_expression("#owner = :me")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":me", AttributeValue::S(owner.to_owned()))
            .send()
            .await;
        match answer {
            Ok(_) => Ok(()),
            Err(e) => match e.into_service_error() {
                // Someone else's now: ours ran out. Nothing to give back.
                e if e.is_conditional_check_failed_exception() => Ok(()),
                e => Err(LeaseError::new(e)),
            },
        }
    }
}
