//! The audit lines of enrichment: which rules fired for a job's contact, which did
//! not and why, and each event built with its identifier coverage score and the
//! strongest keys it lacks. Ids, rule names and identifier keys only: a
//! trace of a contact reads these, on CloudWatch and in local mode's journal (a
//! rule watching another tag or entity is detail, in the journal only unless
//! asked for: [`DETAIL`]).

use tracing::Level;

use crate::capi::ServerEvent;
use crate::capi::score::{Coverage, Key};
use crate::mapping::{Occurrence, Unmet};
use crate::telemetry::DETAIL;

/// The rules of `occ`'s trigger that did not fire, each with its failed condition:
/// at INFO those the change concerned; at DEBUG ([`DETAIL`]) those watching another
/// tag or entity (every tag a contact gets would otherwise log a line for each tag
/// rule).
pub(super) fn not_fired(source: &str, occ: &Occurrence, unmet: &[Unmet<'_>]) {
    for unmet in unmet {
        // One line at either level: a line's level is fixed where it is written.
        macro_rules! line {
            ($($level:tt)+) => {
                tracing::event!(
                    $($level)+,
                    webhook_id = source,
                    location_id = occ.location_id,
                    contact_id = occ.contact_id,
                    trigger = occ.trigger.name(),
                    rule = unmet.rule,
                    unmet = unmet.condition.as_str(),
                    "rule did not fire"
                )
            };
        }
        match unmet.other_change {
            true => line!(target: DETAIL, Level::DEBUG),
            false => line!(Level::INFO),
        }
    }
}

/// The rules whose conditions held but whose consent the contact lacks: nothing
/// is sent for it. Each is counted (`Skipped{Reason=no_consent}`).
pub(super) fn no_consent(source: &str, occ: &Occurrence, refused: &[(&str, String)]) {
    for (rule, why) in refused {
        crate::telemetry::skipped("no_consent");
        tracing::info!(
            webhook_id = source,
            location_id = occ.location_id,
            contact_id = occ.contact_id,
            trigger = occ.trigger.name(),
            rule,
            reason = why,
            "no consent: the rule sends nothing for this contact"
        );
    }
}

/// An event a rule built, and the pixels it goes to.
pub(super) fn built(
    source: &str,
    occ: &Occurrence,
    (rule, pixels): (&str, &[String]),
    event: &ServerEvent,
    mapping: &str,
) {
    let coverage = Coverage::of(&event.user_data);
    // The strongest keys it lacks: what would raise its score most.
    let lacking: Vec<&str> = coverage.lacking().take(3).map(Key::wire).collect();
    tracing::info!(
        webhook_id = source,
        location_id = occ.location_id,
        contact_id = occ.contact_id,
        trigger = occ.trigger.name(),
        rule,
        event_id = event.event_id,
        event_name = event.event_name,
        pixel = pixels.join(" "),
        identifiers = event.user_data.carried().join(" "),
        score = %coverage.score(),
        lacking = lacking.join(" "),
        mapping,
        "event built"
    );
}
