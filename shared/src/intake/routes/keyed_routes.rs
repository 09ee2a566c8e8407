//! The keyed routes (posted conversions, workflow calls): the API keys, read from
//! the secret store, and each route's answer.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{Api, Request, Response, answer};
use crate::error::chain;
use crate::ghl::install::Install;
use crate::intake::conversion::{self, accept_conversion};
use crate::intake::keyed::{self, Checks, KeyedError};
use crate::intake::keys::ApiKeys;
use crate::intake::workflow::{self, accept_workflow};
use crate::ports::queue::Queue;
use crate::ports::secrets::SecretStore;

impl<Q: Queue, S: SecretStore, I: Install> Api<Q, S, I> {
    /// The keyed routes' API keys, or the answer when they cannot be had: `404`
    /// while no secret is configured, the route's retry status while it cannot
    /// be read.
    async fn api_keys(&self, route: Checks) -> Result<ApiKeys, Response> {
        let Some(secret) = &self.conversion_keys_secret else {
            return Err(answer(
                404,
                json!({"error": "this route needs API keys, and none are configured (CONVERSION_API_KEYS_SECRET; CONVERSION_API_KEYS locally)"}),
                "keys_not_configured",
            ));
        };
        let keys = match self
            .secrets
            .get(secret)
            .await
            .map_err(|e| e.to_string())
            .and_then(|secret| ApiKeys::parse(secret.expose()).map_err(|e| e.to_string()))
        {
            Ok(keys) => keys.refuse_unscoped(self.allow_unscoped_keys),
            Err(e) => {
                tracing::error!(error = e, "cannot read the API keys");
                return Err(answer(
                    route.retry,
                    json!({"error": "API keys unavailable; retry"}),
                    "keys_unavailable",
                ));
            }
        };
        if !self
            .warned_unscoped
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            for id in keys.unscoped() {
                if self.allow_unscoped_keys {
                    tracing::warn!(
                        key_id = id,
                        "an API key without locations may post for every location \
                         (ALLOW_UNSCOPED_KEYS); store it as {{\"id\", \"key\", \"locations\"}} \
                         (ghl-capi keys new)"
                    );
                } else {
                    tracing::error!(
                        key_id = id,
                        "an API key without locations is refused: store it as {{\"id\", \"key\", \
                         \"locations\"}} (ghl-capi keys new --location …), or set \
                         ALLOW_UNSCOPED_KEYS=true"
                    );
                }
            }
        }
        Ok(keys)
    }

    pub(super) async fn conversion(
        &self,
        contact_id: &str,
        request: Request<'_>,
        now: DateTime<Utc>,
    ) -> Response {
        let keys = match self.api_keys(conversion::CHECKS).await {
            Ok(keys) => keys,
            Err(closed) => return closed,
        };
        let outcome = accept_conversion(
            &keys,
            &self.queue,
            contact_id,
            request.credentials,
            request.body,
            now,
        )
        .await;
        keyed_answer(&outcome, conversion::CHECKS, "conversion posted")
    }

    pub(super) async fn workflow(&self, request: Request<'_>, now: DateTime<Utc>) -> Response {
        let keys = match self.api_keys(workflow::CHECKS).await {
            Ok(keys) => keys,
            Err(closed) => return closed,
        };
        let outcome =
            accept_workflow(&keys, &self.queue, request.credentials, request.body, now).await;
        keyed_answer(&outcome, workflow::CHECKS, "workflow call queued")
    }
}

/// A keyed route's answer, with a log line (ids only) for what was accepted, for
/// a key used outside its scope, and for a queue that failed (with its cause).
fn keyed_answer(
    outcome: &Result<keyed::Accepted, KeyedError>,
    route: Checks,
    what: &'static str,
) -> Response {
    let (status, body) = route.reply(outcome);
    let code = match outcome {
        Ok(posted) => {
            tracing::info!(key_id = posted.key_id, event_id = posted.event_id, "{what}");
            "accepted"
        }
        Err(KeyedError::Forbidden(why)) => {
            tracing::warn!(refused = %why, "a key posted outside its scope");
            "forbidden"
        }
        Err(e @ KeyedError::Queue(_)) => {
            tracing::error!(error = %chain(e), route = route.what, "could not queue; the caller is asked to send again");
            e.code()
        }
        Err(e) => e.code(),
    };
    answer(status, body, code)
}
