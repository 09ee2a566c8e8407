//! `ghl-capi keys new`: a fresh API key for the keyed routes (posted conversions,
//! workflow calls), and the entry that scopes it, to add to the keys' secret.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ghl_capi::intake::keys::ApiKey;

use crate::Outcome;

#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// A location the key may post for (at least one; repeat for more).
    #[arg(long = "location", value_name = "ID", required = true)]
    locations: Vec<String>,
    /// An event type the key may post (repeat for more); all when left out.
    #[arg(long = "event-type", value_name = "TYPE")]
    event_types: Vec<String>,
    /// The key's name in logs and metrics (default: key- and random hex).
    #[arg(long, value_name = "NAME")]
    id: Option<String>,
    /// Print {"key", "entry"} as one JSON line.
    #[arg(long)]
    json: bool,
}

/// `n` random bytes from the operating system.
fn random(n: usize) -> anyhow::Result<Vec<u8>> {
    let mut bytes = vec![0; n];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(bytes)
}

pub fn new(args: &NewArgs) -> anyhow::Result<Outcome> {
    // 256 bits, URL-safe: nothing to escape in a header or a shell.
    let key = format!("ck_{}", URL_SAFE_NO_PAD.encode(random(32)?));
    let id = match &args.id {
        Some(id) => id.clone(),
        None => format!("key-{}", hex::encode(random(4)?)),
    };
    let entry = ApiKey::entry(&id, &key, &args.locations, &args.event_types);
    if args.json {
        out!("{}", serde_json::json!({"key": key, "entry": entry}))?;
    } else {
        out!("key:   {key}")?;
        out!("entry: {entry}")?;
        out!(
            "Add the entry to the JSON list in the conversion keys' secret (or CONVERSION_API_KEYS), \
             and give the key to whoever posts conversions (or paste it into a GHL workflow's \
             action: ghl-capi workflow snippet); logs name it {id}."
        )?;
    }
    Ok(Outcome::Done)
}
