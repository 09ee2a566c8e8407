//! One `[[audiences]]` entry: its Meta audience, token, locations, and what makes
//! a contact a member (tags, or conditions in the rules' language).

use std::collections::BTreeMap;

use toml::Spanned;

use super::rule::{PathContext, Privacy};
use super::{ConfigError, Locator, RawAudience, numeric_id, token_ref};
use crate::mapping::{Audience, Membership, Trigger};

pub(super) fn audience(
    loc: &Locator<'_>,
    raw: &Spanned<RawAudience>,
    aliases: &BTreeMap<String, String>,
    defaults: &Privacy,
) -> Result<Audience, ConfigError> {
    let a = raw.get_ref();
    let name = a.name.get_ref().trim().to_owned();
    if name.is_empty() || name.contains(['#', ' ']) {
        return Err(loc.at(
            &a.name,
            "an audience needs a name without spaces or `#` (it is part of its state keys)",
        ));
    }
    let audience_id = numeric_id(
        loc,
        &a.audience_id,
        "audience_id must be the Custom Audience's numeric id",
    )?;
    let access_token = token_ref(loc, &a.access_token)?;
    let membership = match (&a.tags, a.when.is_empty()) {
        (Some(tags), true) => {
            let list: Vec<String> = tags
                .get_ref()
                .iter()
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .collect();
            if list.is_empty() {
                return Err(loc.at(tags, "tags must name at least one tag"));
            }
            Membership::Tags(list)
        }
        (None, false) => conditions(loc, a, aliases)?,
        (Some(tags), false) => {
            return Err(loc.at(
                tags,
                "an audience takes tags or [[audiences.when]] conditions, not both",
            ));
        }
        (None, true) => {
            return Err(loc.at(
                raw,
                "an audience needs tags = [\"…\"] or [[audiences.when]] conditions",
            ));
        }
    };
    let mirror_every = match &a.mirror_every {
        None => None,
        Some(every) => Some(mirror_every(loc, every, &membership)?),
    };
    // A row is judged by its contact alone: the limit's and the consent's
    // conditions read contact fields (a consent or opt-out field).
    let contact = PathContext {
        loc,
        trigger: Trigger::ContactUpdated,
        needs: &[],
        aliases,
    };
    let (limited_data_use, consent) =
        contact.privacy(&(a.limited_data_use.clone(), a.consent.clone()), defaults)?;
    Ok(Audience {
        name,
        audience_id,
        access_token,
        mirror_every,
        limited_data_use,
        consent,
        locations: a
            .locations
            .iter()
            .filter(|l| l.as_str() != "*")
            .cloned()
            .collect(),
        membership,
    })
}

/// The shortest `mirror_every`: a replace lists every member and takes Meta a
/// while to match; more often would mostly keep the audience busy.
const SHORTEST_MIRROR: std::time::Duration = std::time::Duration::from_secs(3600);

/// `mirror_every`, a duration (`7d`, `24h`) of an audience GHL's contact search can
/// list.
fn mirror_every(
    loc: &Locator<'_>,
    every: &Spanned<String>,
    membership: &Membership,
) -> Result<std::time::Duration, ConfigError> {
    let every_text = every.get_ref().trim();
    let duration = humantime::parse_duration(every_text).map_err(|e| {
        loc.at(
            every,
            format!("mirror_every must be a duration such as \"7d\" or \"24h\": {e}"),
        )
    })?;
    if duration < SHORTEST_MIRROR {
        return Err(loc.at(every, "mirror_every must be an hour or more"));
    }
    if let Membership::Conditions {
        entity: Some(entity),
        ..
    } = membership
    {
        return Err(loc.at(
            every,
            format!("an audience whose conditions read {entity} changes cannot be mirrored: GHL's contact search cannot list its members"),
        ));
    }
    Ok(duration)
}

/// The conditions, read as a rule on the entity they name would read them.
fn conditions(
    loc: &Locator<'_>,
    raw: &RawAudience,
    aliases: &BTreeMap<String, String>,
) -> Result<Membership, ConfigError> {
    let mut entity: Option<(&'static str, Trigger)> = None;
    for c in &raw.when {
        let Some(field) = &c.get_ref().field else {
            continue;
        };
        let head = field.get_ref().trim().split('.').next().unwrap_or_default();
        let named = match head {
            "opportunity" => ("opportunity", Trigger::OpportunityStatusChanged),
            "appointment" => ("appointment", Trigger::AppointmentUpdated),
            _ => continue,
        };
        match entity {
            Some((e, _)) if e != named.0 => {
                return Err(loc.at(
                    field,
                    format!("an audience's conditions read one kind of change; these read {e} and {head}"),
                ));
            }
            _ => entity = Some(named),
        }
    }
    let ctx = PathContext {
        loc,
        trigger: entity.map_or(Trigger::ContactUpdated, |(_, t)| t),
        needs: &[],
        aliases,
    };
    let conditions = raw
        .when
        .iter()
        .map(|c| ctx.condition(c))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Membership::Conditions {
        conditions,
        entity: entity.map(|(e, _)| e),
    })
}

#[cfg(test)]
mod tests {
    use crate::mapping::{Mapping, Membership, TokenRef};

    const PIXEL: &str =
        "[[pixels]]\nname = \"main\"\ndataset_id = \"1\"\naccess_token = { env = \"T\" }\n";

    fn parse(audiences: &str) -> Result<Mapping, String> {
        Mapping::parse(&format!("{PIXEL}{audiences}"), "m.toml").map_err(|e| e.to_string())
    }

    #[test]
    fn an_audience_may_be_mirrored_on_a_schedule_if_its_members_can_be_listed() {
        let mirrored = parse(
            "[[audiences]]\nname = \"vips\"\naudience_id = \"1\"\naccess_token = { env = \"A\" }\ntags = [\"vip\"]\nmirror_every = \"7d\"\n",
        )
        .expect("parses");
        assert_eq!(
            mirrored.audiences[0].mirror_every,
            Some(std::time::Duration::from_secs(7 * 86_400))
        );
        let base =
            "[[audiences]]\nname = \"a\"\naudience_id = \"1\"\naccess_token = { env = \"A\" }\n";
        for (extra, problem) in [
            (
                "tags = [\"vip\"]\nmirror_every = \"10m\"\n",
                "an hour or more",
            ),
            (
                "tags = [\"vip\"]\nmirror_every = \"weekly\"\n",
                "a duration",
            ),
            (
                "mirror_every = \"7d\"\n[[audiences.when]]\nfield = \"opportunity.status\"\nequals = \"won\"\n",
                "cannot be mirrored",
            ),
        ] {
            let err = parse(&format!("{base}{extra}")).expect_err("refused");
            assert!(err.contains(problem), "{err}");
        }
    }

    #[test]
    fn tag_and_condition_audiences_load() {
        let mapping = parse(
            r#"
[[audiences]]
name = "webinar-vips"
audience_id = "23851234567890123"
access_token = { secret = "ghl-capi/meta/ads" }
locations = ["loc1"]
tags = ["webinar-vip", "vip"]

[[audiences]]
name = "won"
audience_id = 42
access_token = { env = "ADS_TOKEN" }
[[audiences.when]]
field = "opportunity.status"
equals = "won"
"#,
        )
        .expect("parses");
        let [vips, won] = &mapping.audiences[..] else {
            panic!("two audiences")
        };
        assert_eq!(vips.audience_id, "23851234567890123");
        assert_eq!(
            vips.access_token,
            TokenRef::Secret("ghl-capi/meta/ads".into())
        );
        assert_eq!(vips.tags(), ["webinar-vip", "vip"]);
        assert!(vips.serves("loc1") && !vips.serves("loc2"));
        assert!(won.serves("anywhere"));
        assert!(matches!(
            &won.membership,
            Membership::Conditions {
                entity: Some("opportunity"),
                ..
            }
        ));
    }

    #[test]
    fn errors_name_the_line_and_column() {
        let err = |text: &str| parse(text).expect_err("refused");
        let base =
            "[[audiences]]\nname = \"a\"\naudience_id = \"1\"\naccess_token = { env = \"T\" }\n";
        assert_eq!(
            err(&format!(
                "{base}tags = [\"x\"]\n[[audiences.when]]\nfield = \"contact.email\"\nexists = true\n"
            )),
            "m.toml:9:8: an audience takes tags or [[audiences.when]] conditions, not both"
        );
        assert!(err(base).starts_with("m.toml:5:1: an audience needs tags"));
        assert!(
            err(&base.replace("\"1\"", "\"act_1\"")).starts_with("m.toml:7:15: audience_id must")
        );
        assert!(
            err(&base.replace("{ env = \"T\" }", "\"EAAB…\""))
                .starts_with("m.toml:8:16: access_token must")
        );
        assert!(
            err(&format!("{base}tags = [\"x\"]\n{base}tags = [\"y\"]\n"))
                .starts_with("m.toml:11:8: an audience named `a` is already defined")
        );
        assert!(
            err(&format!("{base}[[audiences.when]]\nfield = \"opportunity.status\"\nequals = \"won\"\n[[audiences.when]]\nfield = \"appointment.appointmentStatus\"\nequals = \"booked\"\n"))
                .contains("read one kind of change")
        );
        assert!(
            err(&format!(
                "{base}[[audiences.when]]\nfield = \"nope.x\"\nequals = 1\n"
            ))
            .contains("unknown field path `nope.x`")
        );
    }
}
