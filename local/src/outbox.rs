//! Dry-run delivery: for a pixel with no access token configured, every request body
//! that would go to Meta is appended to the outbox file (one JSON object per line)
//! and printed, and counted as received; pixels with a token are sent for real.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use ghl_capi::capi::EventRequest;
use ghl_capi::capi::client::GraphClient;
use ghl_capi::dispatch::EventsApi;
use serde_json::json;

/// The Graph API, or the outbox for pixels without a token.
#[derive(Debug)]
pub struct LocalGraph {
    graph: GraphClient,
    outbox: Mutex<File>,
}

impl LocalGraph {
    pub fn new(graph: GraphClient, outbox: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(outbox)?;
        Ok(LocalGraph {
            graph,
            outbox: Mutex::new(file),
        })
    }

    fn write(&self, line: &str) -> Result<(), String> {
        let mut file = self
            .outbox
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        writeln!(file, "{line}")
            .and_then(|()| file.sync_data())
            .map_err(|e| format!("could not write the outbox: {e}"))
    }
}

impl EventsApi for LocalGraph {
    async fn post(
        &self,
        dataset_id: &str,
        request: &EventRequest,
    ) -> Result<(u16, String), String> {
        if self.graph.has_token(dataset_id) {
            return self.graph.post(dataset_id, request).await;
        }
        let line = json!({"dataset_id": dataset_id, "request": request}).to_string();
        self.write(&line)?;
        println!("dry run: POST /{dataset_id}/events {line}");
        let answer = json!({"events_received": request.data.len(), "fbtrace_id": "dry-run"});
        Ok((200, answer.to_string()))
    }
}
