//! `ghl-capi normalize`.

use std::io::{self, BufRead, BufWriter, Write};

use anyhow::Context;
use ghl_capi::normalize::{Field, normalize};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Outcome;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    field: String,
    input: String,
    #[serde(default)]
    country: Option<String>,
}

/// One output line for one input line.
fn answer(line: &str) -> Result<Value, String> {
    let request: Request =
        serde_json::from_str(line).map_err(|e| format!("not a normalize request: {e}"))?;
    let field: Field = request
        .field
        .parse()
        .map_err(|e: ghl_capi::normalize::UnknownField| e.to_string())?;
    let normalized = normalize(field, &request.input, request.country.as_deref());
    Ok(json!({
        "field": request.field,
        "input": request.input,
        "normalized": normalized.as_ref().map(|n| n.as_str()),
        "sha256": normalized.as_ref().map(|n| n.sha256()),
    }))
}

pub fn run() -> anyhow::Result<Outcome> {
    let stdin = io::stdin().lock();
    let mut out = BufWriter::new(io::stdout().lock());
    let mut outcome = Outcome::Done;
    for (i, line) in stdin.lines().enumerate() {
        let line = line.context("reading stdin")?;
        if line.trim().is_empty() {
            continue;
        }
        let value = answer(&line).unwrap_or_else(|error| {
            outcome = Outcome::MalformedInput;
            json!({"error": error, "line": i + 1})
        });
        serde_json::to_writer(&mut out, &value).context("writing stdout")?;
        out.write_all(b"\n").context("writing stdout")?;
    }
    out.flush().context("writing stdout")?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_answered_with_the_normalised_value_and_its_hash() {
        let out =
            answer(r#"{"field":"ph","input":"(650)555-1212","country":"US"}"#).expect("valid");
        assert_eq!(out["normalized"], "16505551212");
        assert_eq!(
            out["sha256"],
            "e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176"
        );
    }

    #[test]
    fn a_dropped_value_gives_nulls() {
        let out = answer(r#"{"field":"em","input":"not an email"}"#).expect("valid");
        assert_eq!(out["normalized"], Value::Null);
        assert_eq!(out["sha256"], Value::Null);
    }

    #[test]
    fn malformed_requests_are_errors_that_say_why() {
        assert!(answer("{").unwrap_err().contains("not a normalize request"));
        assert!(
            answer(r#"{"field":"email","input":"x"}"#)
                .unwrap_err()
                .contains("unknown field `email`")
        );
    }
}
