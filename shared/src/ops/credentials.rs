//! The credentials check behind `ghl-capi verify`: "does it work with my accounts".
//! For each location, a real read of one contact with its GHL token (and its scopes
//! against what the mapping needs); for each pixel, a test event posted with the
//! pixel's `test_event_code`; for each audience, a read of its status with its
//! token. Each finding says what is wrong and how to fix it.

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde_json::json;

use crate::capi::answer::{Disposition, classify};
use crate::capi::audience::{AudienceState, classify_status};
use crate::capi::{AudiencesApi, EventRequest, EventsApi, ServerEvent};
use crate::error::chain;
use crate::ghl::client::GhlClient;
use crate::ghl::install::{UserType, scopes};
use crate::ghl::tokens::TokenSource;
use crate::ghl::{GhlError, GhlReader};
use crate::mapping::Mapping;
use crate::normalize::sha256_hex;
use crate::ports::state::StateStore;
use crate::pull::reconcile::last_run;
use crate::pull::seed::seeded;

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// `ghl`, `meta`, or `recon` (a location's baseline and reconciliation).
    pub check: &'static str,
    /// The location or pixel.
    pub subject: String,
    pub ok: bool,
    pub detail: String,
    /// What to do about it; empty when all is well.
    pub fix: String,
}

fn finding(
    check: &'static str,
    subject: &str,
    result: Result<String, (String, String)>,
) -> Finding {
    match result {
        Ok(detail) => Finding {
            check,
            subject: subject.to_owned(),
            ok: true,
            detail,
            fix: String::new(),
        },
        Err((detail, fix)) => Finding {
            check,
            subject: subject.to_owned(),
            ok: false,
            detail,
            fix,
        },
    }
}

/// Checks one location's GHL access: its token reads a contact, and, when the token
/// lists its scopes, they cover what the mapping needs.
pub async fn ghl_location<T: TokenSource>(
    ghl: &GhlClient<T>,
    mapping: &Mapping,
    location_id: &str,
    granted_scopes: Option<&str>,
) -> Finding {
    let result = async {
        let mut listed = std::pin::pin!(ghl.list_contacts(location_id, None, 1));
        let first = listed.next().await;
        let read = match first {
            None => "token works; the location has no contact to read yet".to_owned(),
            Some(Err(e)) => return Err(ghl_problem(&e)),
            Some(Ok(listed)) => match ghl.contact(location_id, &listed.id).await {
                Ok(_) => "token works: read one contact".to_owned(),
                Err(e) => return Err(ghl_problem(&e)),
            },
        };
        let Some(granted) = granted_scopes else {
            return Ok(format!("{read} (the token does not list its scopes)"));
        };
        let granted: Vec<&str> = granted.split_whitespace().collect();
        let wanted = scopes(mapping.trigger_names(), mapping.wants(), UserType::Location);
        let missing: Vec<&str> = wanted
            .into_iter()
            .filter(|s| !granted.contains(s))
            .collect();
        if missing.is_empty() {
            Ok(format!("{read}; scopes cover the mapping"))
        } else {
            Err((
                format!("{read}, but scopes {} are missing", missing.join(", ")),
                "add the scopes to the app (or the Private Integration) and install it again"
                    .to_owned(),
            ))
        }
    }
    .await;
    finding("ghl", location_id, result)
}

/// Checks the names the mapping's rules use against the location's own (its
/// pipelines and stages, custom fields, calendars): each one it lacks is a rule
/// that never fires there. `None` when no rule is written in names.
pub async fn location_names<T: TokenSource>(
    ghl: &GhlClient<T>,
    mapping: &Mapping,
    location_id: &str,
) -> Option<Finding> {
    if !mapping.reads_names() {
        return None;
    }
    let result = match ghl.location_names(location_id).await {
        Err(e @ (GhlError::Forbidden { .. } | GhlError::Unauthorized)) => Err((
            format!("GHL will not list the location's names: {}", chain(&e)),
            format!(
                "grant {} to the app (or the Private Integration) and install it again",
                crate::ghl::install::NAMES_SCOPES.join(", ")
            ),
        )),
        Err(e) => Err(ghl_problem(&e)),
        Ok(names) => match mapping.lacking(location_id, &names)[..] {
            [] => Ok(
                "every pipeline, stage, calendar and custom field the rules name is there".into(),
            ),
            ref lacking => Err((
                lacking.join("; "),
                "rename it in GHL or in the mapping, or give the rule this location's id".into(),
            )),
        },
    };
    Some(finding("names", location_id, result))
}

fn ghl_problem(e: &GhlError) -> (String, String) {
    let fix = match e {
        GhlError::Unauthorized => {
            "install the app again (ghl-capi oauth url), or store a current Private Integration token"
        }
        GhlError::NoToken { .. } => {
            "store the location's token (GHL_TOKEN_<locationId>, or the secret under GHL_TOKEN_SECRET_PREFIX)"
        }
        GhlError::RateLimited { .. } | GhlError::Reserved { .. } => {
            "wait a minute and run verify again"
        }
        GhlError::NotFound | GhlError::Rejected { .. } => {
            "check that the location id is right and the token belongs to it"
        }
        GhlError::Forbidden { .. } => {
            "give the app (or the Private Integration token) the scope the mapping needs: ghl-capi oauth url lists them"
        }
        GhlError::AppRefused { .. } => {
            "store the app's current client id and secret in GHL_APP_SECRET's secret"
        }
        GhlError::Unavailable { .. } => "check GHL_API_BASE_URL and the network, then retry",
    };
    (chain(e), fix.to_owned())
}

/// Posts a test event to a pixel with its `test_event_code`.
pub async fn meta_pixel(
    api: &impl EventsApi,
    pixel_name: &str,
    dataset_id: &str,
    test_event_code: Option<&str>,
    now: DateTime<Utc>,
) -> Finding {
    let subject = format!("{pixel_name} ({dataset_id})");
    let Some(code) = test_event_code else {
        return finding(
            "meta",
            &subject,
            Err((
                "no test_event_code, so no test event was sent".into(),
                "add test_event_code (Events Manager → Test events) to the pixel in the mapping"
                    .into(),
            )),
        );
    };
    let event: ServerEvent = match serde_json::from_value(json!({
        "event_name": "Lead",
        "event_time": now.timestamp(),
        "event_id": format!("ghl-capi-verify-{}", now.timestamp()),
        "action_source": "system_generated",
        "user_data": {"external_id": [sha256_hex("ghl-capi-verify")],
                      "em": [sha256_hex("verify@example.com")]},
    })) {
        Ok(event) => event,
        Err(e) => return finding("meta", &subject, Err((e.to_string(), String::new()))),
    };
    let request = EventRequest {
        data: vec![event],
        test_event_code: Some(code.to_owned()),
        ..EventRequest::default()
    };
    let result = match api.post(dataset_id, &request).await {
        Err(transport) => Err((
            chain(&transport),
            "check the pixel's access token is stored, GRAPH_API_BASE_URL and the network".into(),
        )),
        Ok(answer) => match classify(answer.status, &answer.body) {
            Disposition::Delivered {
                events_received, ..
            } => Ok(format!(
                "test event accepted ({events_received} received; see Test events, code {code})"
            )),
            Disposition::Condemned { reason } => Err((
                reason,
                "create a new Conversions API token for this pixel (Events Manager → Settings) and store it"
                    .into(),
            )),
            Disposition::Retry { reason } => {
                Err((reason, "Meta is busy or down: run verify again later".into()))
            }
            Disposition::Invalid { reason } => Err((
                reason,
                "check the pixel's dataset_id and that the token belongs to it".into(),
            )),
        },
    };
    finding("meta", &subject, result)
}

/// Reads an audience's status with its token: readable, and not flagged.
pub async fn meta_audience(api: &impl AudiencesApi, name: &str, audience_id: &str) -> Finding {
    let subject = format!("{name} (audience {audience_id})");
    let result = match api.audience(audience_id).await {
        Err(transport) => Err((
            chain(&transport),
            "store the audience's token (ads_management on its ad account) where the mapping says"
                .into(),
        )),
        Ok(answer) => match classify_status(answer.status, &answer.body) {
            AudienceState::Usable { name, status } => Ok(format!("readable: {name} ({status})")),
            AudienceState::Flagged { name, status } => Err((
                format!("{name} is flagged ({status}): Meta refuses every change"),
                "Meta flags audiences that suggest health or financial data: use another audience, or appeal in Ads Manager".into(),
            )),
            AudienceState::Unreadable { reason } => Err((
                reason,
                "check audience_id, and that the token has ads_management on the audience's ad account".into(),
            )),
            AudienceState::Unavailable { reason } => {
                Err((reason, "Meta is busy or down: run verify again later".into()))
            }
        },
    };
    finding("meta", &subject, result)
}

/// The report as a table.
pub fn table(findings: &[Finding]) -> String {
    let width = |f: fn(&Finding) -> usize| findings.iter().map(f).max().unwrap_or(0);
    let subject = width(|f| f.subject.len()).max("SUBJECT".len());
    let detail = width(|f| f.detail.len()).max("RESULT".len()).min(70);
    let mut out = format!(
        "{:<5} {:<subject$} {:<4} {:<detail$} FIX\n",
        "CHECK", "SUBJECT", "OK", "RESULT"
    );
    for f in findings {
        out.push_str(&format!(
            "{:<5} {:<subject$} {:<4} {:<detail$} {}\n",
            f.check,
            f.subject,
            if f.ok { "yes" } else { "NO" },
            f.detail,
            f.fix
        ));
    }
    out
}

/// What `ghl-capi verify` says of `location`'s catching up: whether its baseline
/// was taken (until then, a contact's first tag webhook only records its tags),
/// and its last reconciliation.
pub async fn catching_up(state: &impl StateStore, location: &str) -> Finding {
    let finding = |ok, detail: String, fix: &str| Finding {
        check: "recon",
        subject: location.to_owned(),
        ok,
        detail,
        fix: fix.to_owned(),
    };
    let read = match (
        seeded(state, location).await,
        last_run(state, location).await,
    ) {
        (Ok(baseline), Ok(run)) => (baseline, run),
        (Err(e), _) | (_, Err(e)) => {
            let detail = format!("cannot read the state store: {}", crate::error::chain(&e));
            return finding(false, detail, "check the state store's settings and rights");
        }
    };
    match read {
        (None, _) => finding(
            false,
            "no baseline yet: a contact's first tag webhook only records its tags".into(),
            "ghl-capi reconcile --seed --location (or wait for the first scheduled run)",
        ),
        (Some(baseline), run) => {
            let mut detail = format!(
                "baseline taken at {} ({} contacts)",
                baseline.at.format("%Y-%m-%d %H:%M UTC"),
                baseline.listed
            );
            match run.filter(|r| r.seeded.is_none()) {
                Some(run) => detail.push_str(&format!(
                    "; reconciled at {}: {} listed, {} changes no webhook delivered",
                    run.at.format("%Y-%m-%d %H:%M UTC"),
                    run.scanned,
                    run.changed
                )),
                None => detail.push_str("; not reconciled since"),
            }
            finding(true, detail, "")
        }
    }
}
