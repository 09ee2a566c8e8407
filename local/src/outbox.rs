//! Dry-run delivery: for a pixel (or audience) with no access token configured,
//! every request body that would go to Meta is appended to the outbox file (one
//! JSON object per line) and printed, and counted as received; those with a token
//! are sent for real.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use ghl_capi::capi::audience::UsersRequest;
use ghl_capi::capi::replace::ReplaceRequest;
use ghl_capi::capi::{
    Answer, AudiencesApi, CapiClient, EventRequest, EventsApi, PixelTokens, TransportError,
};
use ghl_capi::dispatch::tokens::MappingTokens;
use ghl_capi::mapping::Mapping;
use ghl_capi::ports::secrets::EnvSecrets;
use serde_json::json;

/// The Graph API, or the outbox for pixels without a token.
#[derive(Debug)]
pub struct LocalCapi {
    capi: CapiClient<MappingTokens<EnvSecrets>>,
    outbox: Mutex<File>,
}

impl LocalCapi {
    /// Follows a new version of the mapping: its pixels' and audiences' tokens.
    pub fn follow(&self, mapping: &Mapping) {
        self.capi.tokens().follow(mapping);
    }

    pub fn new(
        capi: CapiClient<MappingTokens<EnvSecrets>>,
        outbox: &Path,
    ) -> std::io::Result<Self> {
        // The requests Meta would get: hashes, but also click ids and IP addresses.
        crate::files::private_file(outbox)?;
        let file = OpenOptions::new().append(true).open(outbox)?;
        Ok(LocalCapi {
            capi,
            outbox: Mutex::new(file),
        })
    }

    /// Appends `line` to the outbox and shows it as `what`.
    fn dry_run(&self, what: &str, line: &str) -> Result<(), TransportError> {
        self.write(line)?;
        // Shown as it happens; a closed stdout must not stop delivery.
        let mut out = std::io::stdout().lock();
        if let Err(e) = writeln!(out, "dry run: {what} {line}") {
            tracing::debug!(error = %e, "cannot show a dry run on stdout");
        }
        Ok(())
    }

    fn write(&self, line: &str) -> Result<(), TransportError> {
        let mut file = self
            .outbox
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        writeln!(file, "{line}")
            .and_then(|()| file.sync_data())
            .map_err(TransportError::Io)
    }
}

impl EventsApi for LocalCapi {
    fn token_refused(&self, dataset_id: &str) {
        self.capi.token_refused(dataset_id);
    }

    async fn post(
        &self,
        dataset_id: &str,
        request: &EventRequest,
    ) -> Result<Answer, TransportError> {
        if self.capi.tokens().token(dataset_id).await.is_some() {
            return self.capi.post(dataset_id, request).await;
        }
        let line = json!({"dataset_id": dataset_id, "request": request}).to_string();
        self.dry_run(&format!("POST /{dataset_id}/events"), &line)?;
        let answer = json!({"events_received": request.data.len(), "fbtrace_id": "dry-run"});
        Ok(Answer {
            status: 200,
            body: answer.to_string(),
        })
    }
}

impl AudiencesApi for LocalCapi {
    async fn audience(&self, audience_id: &str) -> Result<Answer, TransportError> {
        self.capi.audience(audience_id).await
    }

    async fn sessions(&self, audience_id: &str) -> Result<Answer, TransportError> {
        if self.capi.tokens().token(audience_id).await.is_some() {
            return self.capi.sessions(audience_id).await;
        }
        // A dry run's sessions are over as soon as their batches are written.
        let answer = json!({"data": []});
        Ok(Answer {
            status: 200,
            body: answer.to_string(),
        })
    }

    async fn users_replace(
        &self,
        audience_id: &str,
        request: &ReplaceRequest,
    ) -> Result<Answer, TransportError> {
        if self.capi.tokens().token(audience_id).await.is_some() {
            return self.capi.users_replace(audience_id, request).await;
        }
        let line = json!({"audience_id": audience_id, "method": "POST",
            "payload": request.payload(), "session": request.session})
        .to_string();
        self.dry_run(&format!("POST /{audience_id}/usersreplace"), &line)?;
        let answer = json!({"audience_id": audience_id, "session_id": request.session.session_id,
            "num_received": request.rows.len(), "num_invalid_entries": 0});
        Ok(Answer {
            status: 200,
            body: answer.to_string(),
        })
    }

    fn audience_token_refused(&self, audience_id: &str) {
        self.capi.audience_token_refused(audience_id);
    }

    async fn users(
        &self,
        audience_id: &str,
        request: &UsersRequest,
    ) -> Result<Answer, TransportError> {
        if self.capi.tokens().token(audience_id).await.is_some() {
            return self.capi.users(audience_id, request).await;
        }
        let line = json!({"audience_id": audience_id, "method": request.operation.method(),
            "payload": request.payload(), "session": request.session})
        .to_string();
        self.dry_run(
            &format!("{} /{audience_id}/users", request.operation.method()),
            &line,
        )?;
        let answer = json!({"audience_id": audience_id, "num_received": request.rows.len(),
            "num_invalid_entries": 0});
        Ok(Answer {
            status: 200,
            body: answer.to_string(),
        })
    }
}

/// The pixels and audiences of `mapping` without a token: their requests go to
/// the outbox.
pub async fn dry(tokens: &MappingTokens<EnvSecrets>, mapping: &Mapping) -> Vec<String> {
    let mut dry = Vec::new();
    for pixel in &mapping.pixels {
        if !tokens.configured(&pixel.dataset_id).await {
            dry.push(format!("pixel {}", pixel.name));
        }
    }
    for audience in &mapping.audiences {
        if !tokens.configured(&audience.audience_id).await {
            dry.push(format!("audience {}", audience.name));
        }
    }
    dry
}
