//! `ghl-capi workflow snippet`: what to paste into a GHL workflow's Webhook or
//! Custom Webhook action so that it calls `/workflows/ghl` for one rule.

use std::path::PathBuf;

use ghl_capi::ops::snippet::{KEY_ROW, Snippet};
use serde_json::json;

use crate::Outcome;
use crate::map::load_mapping;

#[derive(Debug, clap::Args)]
pub struct SnippetArgs {
    /// The rule the action is for: a workflow.fired rule, or one on an opportunity
    /// or appointment trigger (the call declares it).
    #[arg(long, value_name = "NAME")]
    rule: String,
    /// The location (sub-account) the workflow runs in: written into the body
    /// (default: GHL's {{location.id}} merge field).
    #[arg(long, value_name = "ID")]
    location: Option<String>,
    /// The mapping (TOML); the built-in one when left out.
    #[arg(long, value_name = "FILE")]
    mapping: Option<PathBuf>,
    /// Where the route is: the stack's WorkflowUrl output, or `serve`'s address.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:3000")]
    url: String,
    /// Print {"rule", "url", "urlWithKey", "workflow", "tells", "headers", "body",
    /// "customData", "keyRow", "toAdd"} as one JSON line.
    #[arg(long)]
    json: bool,
}

const KEY: &str = "<API key>";

pub fn snippet(args: &SnippetArgs) -> anyhow::Result<Outcome> {
    let mapping = load_mapping(args.mapping.as_ref())?;
    let snippet = Snippet::for_rule(&mapping, &args.rule, args.location.as_deref(), &args.url)?;
    if args.json {
        let custom: serde_json::Map<String, serde_json::Value> = snippet
            .custom_data()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        let to_add: Vec<_> = snippet
            .to_add
            .iter()
            .map(|(key, what)| json!({"key": key, "what": what}))
            .collect();
        out!(
            "{}",
            json!({
                "rule": snippet.rule,
                "url": snippet.url,
                "urlWithKey": snippet.url_with_key(KEY),
                "workflow": snippet.workflow,
                "tells": snippet.tells.map(|t| t.name()),
                "headers": {"Authorization": format!("Bearer {KEY}"), "X-Api-Key": KEY},
                "body": snippet.body(),
                "customData": custom,
                "keyRow": {"key": KEY_ROW, "value": KEY},
                "toAdd": to_add,
            })
        )?;
        return Ok(Outcome::Done);
    }
    let key_for = match &args.location {
        Some(location) => {
            format!("an API key for {location} (ghl-capi keys new --location {location})")
        }
        None => "an API key for the location (ghl-capi keys new --location <id>)".to_owned(),
    };
    match snippet.tells {
        Some(trigger) => out!(
            "Rule {} fires on {trigger}: a workflow on that GHL trigger calls {} and says so.\n",
            snippet.rule,
            snippet.url
        )?,
        None => out!(
            "Rule {} fires when the workflow \"{}\" calls {}.\n",
            snippet.rule,
            snippet.workflow,
            snippet.url
        )?,
    }
    if snippet.tells.is_some() {
        out!("Only GHL's plain Webhook action sends the opportunity or appointment (its")?;
        out!("standard payload); a Custom Webhook body would have to carry it itself.\n")?;
    } else {
        custom_webhook(&snippet, &key_for)?;
    }
    let or = if snippet.tells.is_some() { "" } else { "Or " };
    out!("{or}GHL's plain Webhook action (free; GHL's standard payload, Custom Data added):")?;
    out!("  URL:      {}", snippet.url_with_key(KEY))?;
    out!("            (the key ends the URL: {key_for})")?;
    out!("  Custom Data:")?;
    for (key, value) in snippet.custom_data() {
        out!("    {key} = {value}")?;
    }
    out!(
        "  Where the action offers headers, the URL {} and the header X-Api-Key: {KEY} keep",
        snippet.url
    )?;
    out!("  the key out of the URL; without headers, so does one more Custom Data row:")?;
    out!("    {KEY_ROW} = {KEY}    (with the URL {})", snippet.url)?;
    out!("  A key in the URL or in Custom Data is seen by anyone who can open the workflow;")?;
    out!("  the pipeline never logs, queues or letters it.")?;
    if !snippet.to_add.is_empty() {
        out!("\nThe rule also reads these; add them to the body (or as Custom Data):")?;
        for (key, what) in &snippet.to_add {
            out!("  {key}: {what}")?;
        }
    }
    Ok(Outcome::Done)
}

/// The Custom Webhook action's settings, for a workflow.fired rule.
fn custom_webhook(snippet: &Snippet, key_for: &str) -> anyhow::Result<()> {
    out!("Custom Webhook action (its authorization setting sends the key):")?;
    out!("  Method:         POST")?;
    out!("  URL:            {}", snippet.url)?;
    out!("  Authorization:  Bearer token: {key_for}")?;
    out!("  Content-Type:   application/json")?;
    out!("  Raw body:")?;
    out!("{}\n", snippet.body_text())?;
    Ok(())
}
