//! Secrets Manager as the secret store, against a real `moto_server` (see `scripts/test.sh`).

use std::time::Duration;

use aws_sdk_secretsmanager::Client;
use ghl_capi::ports::secrets::{SecretError, SecretStore};
use ghl_capi_aws::secrets::SecretsManager;
use ghl_capi_tests::unique;

fn client() -> Client {
    ghl_capi_tests::moto_client!(aws_sdk_secretsmanager)
}

#[tokio::test]
async fn the_current_value_is_read_cached_and_refreshed_after_rotation() {
    let client = client();
    let name = unique("ghl-capi/meta/main");
    ghl_capi_tests::moto::secret(&client, &name, "EAAB-first").await;
    let store = SecretsManager::new(client.clone(), Duration::from_millis(300));
    assert_eq!(store.get(&name).await.expect("read").expose(), "EAAB-first");

    client
        .put_secret_value()
        .secret_id(&name)
        .secret_string("EAAB-second")
        .send()
        .await
        .expect("rotated");
    assert_eq!(
        store.get(&name).await.expect("read").expose(),
        "EAAB-first",
        "still cached"
    );
    assert_eq!(
        store.fresh(&name).await.expect("read").expose(),
        "EAAB-second",
        "a fresh read passes the cache"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        store.get(&name).await.expect("read").expose(),
        "EAAB-second"
    );
}

#[tokio::test]
async fn a_missing_secret_is_named_and_values_never_show_in_debug() {
    let store = SecretsManager::new(client(), Duration::from_secs(60));
    let missing = unique("nope");
    assert!(matches!(store.get(&missing).await, Err(SecretError::Missing(n)) if n == missing));

    let client = client();
    let name = unique("api-keys");
    ghl_capi_tests::moto::secret(&client, &name, "k-live-123").await;
    let secret = SecretsManager::new(client, Duration::from_secs(60))
        .get(&name)
        .await
        .expect("read");
    assert!(!format!("{secret:?}").contains("k-live-123"));
}
