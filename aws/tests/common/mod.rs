//! What every adapter test shares: a client of the real AWS SDK pointed at the
//! `moto_server` that `scripts/test.sh` starts (it sets `MOTO_ENDPOINT`).

/// `moto_client!(aws_sdk_sqs)`: that service's client, talking to moto with static
/// test credentials (one macro, since each SDK crate has its own `Config` type).
#[allow(unused_macros)] // Not every test file builds single clients.
macro_rules! moto_client {
    ($sdk:ident) => {{
        let endpoint = std::env::var("MOTO_ENDPOINT")
            .expect("MOTO_ENDPOINT is not set: run the tests with scripts/test.sh, which starts moto_server");
        let config = $sdk::Config::builder()
            .behavior_version($sdk::config::BehaviorVersion::latest())
            .region($sdk::config::Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .credentials_provider($sdk::config::Credentials::new("test", "test", None, None, "static"))
            .build();
        $sdk::Client::from_conf(config)
    }};
}
#[allow(unused_imports)]
pub(crate) use moto_client;

/// The shared SDK configuration for moto, as the functions build theirs.
#[allow(dead_code)] // Not every test file builds whole functions.
pub async fn moto_sdk_config() -> aws_config::SdkConfig {
    let endpoint = std::env::var("MOTO_ENDPOINT").expect(
        "MOTO_ENDPOINT is not set: run the tests with scripts/test.sh, which starts moto_server",
    );
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test", "test", None, None, "static",
        ))
        .load()
        .await
}

/// A fresh state table as the template defines it (key `pk`, on demand); its name.
#[allow(dead_code)] // Not every test file needs a table.
pub async fn state_table(client: &aws_sdk_dynamodb::Client) -> String {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let name = format!(
        "state-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_nanos()
    );
    client
        .create_table()
        .table_name(&name)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("attr"),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .expect("key"),
        )
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("table created");
    name
}
