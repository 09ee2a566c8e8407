//! Clients of the real AWS SDK, pointed at the `moto_server` that `scripts/test.sh`
//! starts (it sets `MOTO_ENDPOINT`), with static test credentials.

use aws_sdk_sqs::types::{Message, MessageSystemAttributeName, QueueAttributeName};

/// The moto endpoint.
pub fn endpoint() -> String {
    std::env::var("MOTO_ENDPOINT").expect(
        "MOTO_ENDPOINT is not set: run the tests with scripts/test.sh, which starts moto_server",
    )
}

/// `command` (a `ghl-capi` run) pointed at moto, with the test credentials and
/// none of the machine's own AWS profile.
pub fn at_moto(command: &mut std::process::Command) -> &mut std::process::Command {
    command
        .env("AWS_ENDPOINT_URL", endpoint())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
}

/// `moto_client!(aws_sdk_sqs)`: that service's client, talking to moto (a macro,
/// since each SDK crate has its own `Config` type).
#[macro_export]
macro_rules! moto_client {
    ($sdk:ident) => {{
        let config = $sdk::Config::builder()
            .behavior_version($sdk::config::BehaviorVersion::latest())
            .region($sdk::config::Region::new("us-east-1"))
            .endpoint_url($crate::moto::endpoint())
            .credentials_provider($sdk::config::Credentials::new(
                "test", "test", None, None, "static",
            ))
            .build();
        $sdk::Client::from_conf(config)
    }};
}

/// The shared SDK configuration for moto, as the functions build theirs.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint())
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test", "test", None, None, "static",
        ))
        .load()
        .await
}

/// A fresh queue named `name` (a FIFO queue when it ends in `.fifo`), its messages
/// hidden for `visibility_seconds` once received (the queue's default when `None`),
/// taking messages as large as the template's queues do.
pub async fn queue(
    client: &aws_sdk_sqs::Client,
    name: &str,
    visibility_seconds: Option<u32>,
) -> String {
    let mut request = client.create_queue().queue_name(name).attributes(
        QueueAttributeName::MaximumMessageSize,
        ghl_capi::jobs::MAX_MESSAGE_BYTES.to_string(),
    );
    if name.ends_with(".fifo") {
        request = request.attributes(QueueAttributeName::FifoQueue, "true");
    }
    if let Some(seconds) = visibility_seconds {
        request = request.attributes(QueueAttributeName::VisibilityTimeout, seconds.to_string());
    }
    request
        .send()
        .await
        .expect("queue created")
        .queue_url
        .expect("url")
}

/// A fresh state table as the template defines it (key `pk`, on demand, with the
/// sparse group index); its name.
pub async fn state_table(client: &aws_sdk_dynamodb::Client) -> String {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
        Projection, ProjectionType, ScalarAttributeType,
    };
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("attr")
    };
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .expect("key")
    };
    let by_group = GlobalSecondaryIndex::builder()
        // `ghl_capi_aws::dynamo::GROUP_INDEX`, as the template names it.
        .index_name("ByGroup")
        .key_schema(key("grp", KeyType::Hash))
        .key_schema(key("pk", KeyType::Range))
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .expect("index");
    let name = crate::unique("state");
    client
        .create_table()
        .table_name(&name)
        .attribute_definitions(attribute("pk"))
        .attribute_definitions(attribute("grp"))
        .key_schema(key("pk", KeyType::Hash))
        .global_secondary_indexes(by_group)
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("table created");
    name
}

/// Up to 10 messages of the queue at `url`, with every system attribute (the FIFO
/// group among them).
pub async fn receive(client: &aws_sdk_sqs::Client, url: &str) -> Vec<Message> {
    receive_hidden(client, url, None).await
}

/// Up to 10 messages, each hidden for `visibility_seconds` (the queue's own
/// visibility timeout when `None`).
pub async fn receive_hidden(
    client: &aws_sdk_sqs::Client,
    url: &str,
    visibility_seconds: Option<i32>,
) -> Vec<Message> {
    client
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .set_visibility_timeout(visibility_seconds)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .expect("received")
        .messages
        .unwrap_or_default()
}

/// Creates the secret `name` holding `value`.
pub async fn secret(client: &aws_sdk_secretsmanager::Client, name: &str, value: &str) {
    client
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .expect("secret created");
}
