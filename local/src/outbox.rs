//! Dry-run delivery: for a pixel with no access token configured, every request body
//! that would go to Meta is appended to the outbox file (one JSON object per line)
//! and printed, and counted as received; pixels with a token are sent for real.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use ghl_capi::capi::{Answer, CapiClient, EventRequest, EventsApi, TransportError};
use serde_json::json;

/// The Graph API, or the outbox for pixels without a token.
#[derive(Debug)]
pub struct LocalCapi {
    capi: CapiClient,
    outbox: Mutex<File>,
}

impl LocalCapi {
    pub fn new(capi: CapiClient, outbox: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(outbox)?;
        Ok(LocalCapi {
            capi,
            outbox: Mutex::new(file),
        })
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
    async fn post(
        &self,
        dataset_id: &str,
        request: &EventRequest,
    ) -> Result<Answer, TransportError> {
        if self.capi.has_token(dataset_id) {
            return self.capi.post(dataset_id, request).await;
        }
        let line = json!({"dataset_id": dataset_id, "request": request}).to_string();
        self.write(&line)?;
        println!("dry run: POST /{dataset_id}/events {line}");
        let answer = json!({"events_received": request.data.len(), "fbtrace_id": "dry-run"});
        Ok(Answer {
            status: 200,
            body: answer.to_string(),
        })
    }
}
