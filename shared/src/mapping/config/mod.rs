//! Reading a mapping file: TOML with spans, so every error names its line.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use serde::Deserialize;
use serde_json::Value;
use toml::Spanned;

mod audience;
mod rule;
mod write_back;

use crate::capi::{ActionSource, is_currency_code};
use crate::mapping::{Audience, Defaults, Mapping, Pixel, Rule, TokenRef};

/// A mapping that cannot be used: which file, where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub file: String,
    /// 1-based; 0 when the error is about the file as a whole.
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.column, self.message
            )
        }
    }
}

impl ConfigError {
    pub(super) fn unreadable(path: &std::path::Path, err: &std::io::Error) -> Self {
        ConfigError {
            file: path.display().to_string(),
            line: 0,
            column: 0,
            message: format!("cannot read the mapping: {err}"),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMapping {
    version: Option<Spanned<i64>>,
    #[serde(default)]
    defaults: RawDefaults,
    #[serde(default)]
    custom_fields: BTreeMap<String, String>,
    #[serde(default)]
    pixels: Vec<Spanned<RawPixel>>,
    #[serde(default)]
    rules: Vec<Spanned<RawRule>>,
    #[serde(default)]
    audiences: Vec<Spanned<RawAudience>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudience {
    name: Spanned<String>,
    audience_id: Spanned<toml::Value>,
    access_token: Spanned<toml::Value>,
    #[serde(default)]
    locations: Vec<String>,
    tags: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    when: Vec<Spanned<RawCondition>>,
    mirror_every: Option<Spanned<String>>,
    limited_data_use: Option<Spanned<toml::Value>>,
    consent: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    action_source: Option<ActionSource>,
    currency: Option<Spanned<String>>,
    lead_event_source: Option<String>,
    limited_data_use: Option<Spanned<toml::Value>>,
    consent: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPixel {
    name: Spanned<String>,
    dataset_id: Spanned<toml::Value>,
    access_token: Spanned<toml::Value>,
    test_event_code: Option<String>,
    #[serde(default)]
    locations: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: Spanned<String>,
    trigger: Spanned<String>,
    event_name: Spanned<toml::Value>,
    action_source: Option<ActionSource>,
    value: Option<Spanned<toml::Value>>,
    currency: Option<Spanned<toml::Value>>,
    lead_id: Option<Spanned<toml::Value>>,
    external_id: Option<Spanned<toml::Value>>,
    #[serde(default)]
    custom_data: BTreeMap<String, Spanned<toml::Value>>,
    needs: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pixels: Vec<Spanned<String>>,
    tags: Option<Spanned<toml::Value>>,
    status: Option<Spanned<toml::Value>>,
    stage: Option<Spanned<toml::Value>>,
    pipeline: Option<Spanned<toml::Value>>,
    calendar: Option<Spanned<toml::Value>>,
    appointment_status: Option<Spanned<toml::Value>>,
    event_type: Option<Spanned<toml::Value>>,
    workflow: Option<Spanned<toml::Value>>,
    limited_data_use: Option<Spanned<toml::Value>>,
    consent: Option<Spanned<toml::Value>>,
    #[serde(default)]
    when: Vec<Spanned<RawCondition>>,
    write_back: Option<Spanned<write_back::RawWriteBack>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCondition {
    field: Option<Spanned<String>>,
    equals: Option<toml::Value>,
    not_equals: Option<toml::Value>,
    one_of: Option<Vec<toml::Value>>,
    contains: Option<String>,
    exists: Option<bool>,
    greater_than: Option<f64>,
    less_than: Option<f64>,
    has_tag: Option<String>,
    lacks_tag: Option<String>,
}

/// Turns spans into line and column for errors.
struct Locator<'a> {
    text: &'a str,
    file: &'a str,
}

impl Locator<'_> {
    fn error(&self, span: Option<Range<usize>>, message: impl Into<String>) -> ConfigError {
        let (line, column) = span.map_or((0, 0), |s| {
            let before = &self.text[..s.start.min(self.text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            (line, column)
        });
        ConfigError {
            file: self.file.to_owned(),
            line,
            column,
            message: message.into(),
        }
    }

    fn at<T>(&self, spanned: &Spanned<T>, message: impl Into<String>) -> ConfigError {
        self.error(Some(spanned.span()), message)
    }
}

fn json(value: &toml::Value) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

pub(super) fn parse(text: &str, file: &str) -> Result<Mapping, ConfigError> {
    let loc = Locator { text, file };
    let raw: RawMapping =
        toml::from_str(text).map_err(|e| loc.error(e.span(), e.message().trim()))?;
    if let Some(v) = &raw.version
        && *v.get_ref() != 1
    {
        return Err(loc.at(
            v,
            "unsupported mapping version; this release reads version = 1",
        ));
    }
    let privacy = (
        raw.defaults.limited_data_use.clone(),
        raw.defaults.consent.clone(),
    );
    let defaults = defaults(&loc, raw.defaults)?;
    let mut pixels = Vec::new();
    for p in &raw.pixels {
        let pixel = pixel(&loc, p.get_ref())?;
        if pixels.iter().any(|other: &Pixel| other.name == pixel.name) {
            return Err(loc.at(
                &p.get_ref().name,
                format!("a pixel named `{}` is already defined", pixel.name),
            ));
        }
        pixels.push(pixel);
    }
    let mut rules: Vec<Rule> = Vec::new();
    for r in &raw.rules {
        let rule = rule::rule(&loc, r.get_ref(), &raw.custom_fields, &pixels, &privacy)?;
        if rules.iter().any(|other| other.name == rule.name) {
            return Err(loc.at(
                &r.get_ref().name,
                format!("a rule named `{}` is already defined", rule.name),
            ));
        }
        rules.push(rule);
    }
    let mut audiences: Vec<Audience> = Vec::new();
    for a in &raw.audiences {
        let audience = audience::audience(&loc, a, &raw.custom_fields, &privacy)?;
        if audiences.iter().any(|other| other.name == audience.name) {
            return Err(loc.at(
                &a.get_ref().name,
                format!("an audience named `{}` is already defined", audience.name),
            ));
        }
        audiences.push(audience);
    }
    write_back::owned_tags_unread(&loc, (&raw.rules, &rules), (&raw.audiences, &audiences))?;
    Ok(Mapping {
        version: crate::ports::mappings::version_of(text),
        defaults,
        pixels,
        rules,
        audiences,
    })
}

fn currency_code(loc: &Locator<'_>, raw: &Spanned<String>) -> Result<String, ConfigError> {
    let code = raw.get_ref().trim();
    if is_currency_code(code) {
        Ok(code.to_ascii_uppercase())
    } else {
        Err(loc.at(
            raw,
            format!("`{code}` is not a three-letter ISO 4217 currency code"),
        ))
    }
}

fn defaults(loc: &Locator<'_>, raw: RawDefaults) -> Result<Defaults, ConfigError> {
    Ok(Defaults {
        action_source: raw.action_source.unwrap_or_default(),
        currency: raw
            .currency
            .as_ref()
            .map(|c| currency_code(loc, c))
            .transpose()?,
        lead_event_source: match raw.lead_event_source {
            None => Some("HighLevel".to_owned()),
            Some(s) if s.trim().is_empty() => None,
            Some(s) => Some(s.trim().to_owned()),
        },
    })
}

fn pixel(loc: &Locator<'_>, raw: &RawPixel) -> Result<Pixel, ConfigError> {
    let dataset_id = numeric_id(
        loc,
        &raw.dataset_id,
        "dataset_id must be the pixel's (dataset's) numeric id",
    )?;
    let access_token = token_ref(loc, &raw.access_token)?;
    Ok(Pixel {
        name: raw.name.get_ref().trim().to_owned(),
        dataset_id,
        access_token,
        test_event_code: raw.test_event_code.clone().filter(|c| !c.trim().is_empty()),
        locations: raw
            .locations
            .iter()
            .filter(|l| l.as_str() != "*")
            .cloned()
            .collect(),
    })
}

/// An id Meta gives as digits, written as a string or an integer.
fn numeric_id(
    loc: &Locator<'_>,
    raw: &Spanned<toml::Value>,
    help: &str,
) -> Result<String, ConfigError> {
    let id = match raw.get_ref() {
        toml::Value::String(s) => s.trim().to_owned(),
        toml::Value::Integer(n) => n.to_string(),
        _ => String::new(),
    };
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(loc.at(raw, help));
    }
    Ok(id)
}

/// Where a token is kept: `{ secret = "…" }` or `{ env = "…" }`.
fn token_ref(loc: &Locator<'_>, raw: &Spanned<toml::Value>) -> Result<TokenRef, ConfigError> {
    match raw.get_ref() {
        toml::Value::Table(t) if t.len() == 1 => match t.iter().next() {
            Some((kind, toml::Value::String(name)))
                if kind == "secret" && !name.trim().is_empty() =>
            {
                Ok(TokenRef::Secret(name.trim().to_owned()))
            }
            Some((kind, toml::Value::String(name))) if kind == "env" && !name.trim().is_empty() => {
                Ok(TokenRef::Env(name.trim().to_owned()))
            }
            _ => Err(loc.at(raw, TOKEN_HELP)),
        },
        _ => Err(loc.at(raw, TOKEN_HELP)),
    }
}

const TOKEN_HELP: &str = "access_token must say where the token is kept, as \
    { secret = \"<Secrets Manager name>\" } or { env = \"<VARIABLE>\" }; never put the token itself in the mapping";
