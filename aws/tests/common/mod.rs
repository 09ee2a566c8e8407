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

use std::sync::{Arc, Mutex};

use serde_json::Value;

/// The EMF lines the functions write, captured for this test binary. The recorder is
/// process-wide, so the tests that read it (and those that would add to it) run one
/// at a time, under [`ONE_AT_A_TIME`].
#[allow(dead_code)] // Not every test file reads metrics.
#[derive(Clone, Default)]
pub struct Emf(Arc<Mutex<Vec<u8>>>);

#[allow(dead_code)]
static EMF: std::sync::OnceLock<Emf> = std::sync::OnceLock::new();
#[allow(dead_code)]
pub static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl std::io::Write for Emf {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[allow(dead_code)]
impl Emf {
    /// The capture, installed once and emptied for the calling test.
    pub fn start() -> Emf {
        let emf = EMF
            .get_or_init(|| {
                let emf = Emf::default();
                let sink = emf.clone();
                ghl_capi_aws::metrics::install(Box::new(move || Box::new(sink.clone())));
                emf
            })
            .clone();
        ghl_capi_aws::metrics::flush();
        emf.0.lock().expect("lock").clear();
        emf
    }

    /// Every line written so far (flushing what is pending), each checked to be an EMF document of our namespace
    /// whose declared dimensions are the ones it carries.
    pub fn lines(&self) -> Vec<Value> {
        ghl_capi_aws::metrics::flush();
        let text = String::from_utf8(self.0.lock().expect("lock").clone()).expect("utf-8");
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
            .collect();
        for line in &lines {
            let declared = &line["_aws"]["CloudWatchMetrics"][0];
            assert_eq!(declared["Namespace"], "ghl-capi", "{line}");
            for dimension in declared["Dimensions"][0].as_array().expect("dimensions") {
                assert!(
                    line[dimension.as_str().expect("name")].is_string(),
                    "{line}"
                );
            }
            for metric in declared["Metrics"].as_array().expect("metrics") {
                let name = metric["Name"].as_str().expect("name");
                assert!(ghl_capi::telemetry::NAMES.contains(&name), "{name}");
                assert!(metric["Unit"].is_string(), "{name} has a unit");
                assert!(!line[name].is_null(), "{name} has a value");
            }
        }
        lines
    }

    /// The values of `name` under exactly `dimensions`: one per count flushed, or
    /// each value a histogram recorded.
    pub fn values(&self, name: &str, dimensions: &[(&str, &str)]) -> Vec<f64> {
        self.lines()
            .iter()
            .filter(|line| {
                let declared = &line["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0];
                declared.as_array().map(Vec::len) == Some(dimensions.len())
                    && dimensions.iter().all(|(k, v)| line[*k] == *v)
            })
            .flat_map(|line| match &line[name] {
                Value::Array(values) => values.iter().filter_map(Value::as_f64).collect::<Vec<_>>(),
                value => value.as_f64().into_iter().collect(),
            })
            .collect()
    }

    pub fn count(&self, name: &str, dimensions: &[(&str, &str)]) -> f64 {
        self.values(name, dimensions).iter().sum()
    }
}
