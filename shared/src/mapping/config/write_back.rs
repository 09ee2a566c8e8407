//! A rule's `[rules.write_back]`: what it writes into GHL once Meta takes its
//! event (a tag, custom fields, a note) or the event becomes a letter (a task);
//! and the check that no rule or audience reads a tag the write-back owns.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Locator, RawAudience, RawRule};
use crate::jobs::{WriteBack, Written};
use crate::mapping::path::{Condition, FieldPath, Test};
use crate::mapping::{Audience, Membership, Rule};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWriteBack {
    tag: Option<Spanned<String>>,
    #[serde(default)]
    fields: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    note: bool,
    #[serde(default)]
    task_on_dead_letter: bool,
}

pub(super) fn write_back(
    loc: &Locator<'_>,
    raw: &Spanned<RawWriteBack>,
) -> Result<WriteBack, ConfigError> {
    let spec = raw.get_ref();
    let tag = match &spec.tag {
        Some(tag) if tag.get_ref().trim().is_empty() => {
            return Err(loc.at(tag, "write_back.tag must name a tag, such as \"capi:Lead\""));
        }
        Some(tag) => Some(tag.get_ref().trim().to_owned()),
        None => None,
    };
    let mut fields = Vec::new();
    for (what, field) in &spec.fields {
        let written = Written::ALL
            .iter()
            .find(|(_, name)| name == what)
            .map(|(w, _)| *w)
            .ok_or_else(|| {
                let names: Vec<&str> = Written::ALL.iter().map(|(_, n)| *n).collect();
                loc.at(
                    field,
                    format!(
                        "write_back.fields cannot write `{what}`; it writes {}",
                        names.join(", ")
                    ),
                )
            })?;
        let target = field.get_ref().trim();
        if target.is_empty() {
            return Err(loc.at(
                field,
                format!("write_back.fields.{what} must name a custom field, by key (\"contact.capi_{what}\") or id"),
            ));
        }
        fields.push((written, target.to_owned()));
    }
    let write = WriteBack {
        tag,
        fields,
        note: spec.note,
        task_on_dead_letter: spec.task_on_dead_letter,
        shape: String::new(),
    };
    if !write.on_sent() && !write.task_on_dead_letter {
        return Err(loc.at(
            raw,
            "write_back writes nothing: give it a tag, fields, note = true or task_on_dead_letter = true",
        ));
    }
    Ok(write)
}

/// Refuses a rule or audience that fires on or tests a tag some rule writes
/// back: enrichment ignores the tags the pipeline writes (so a write-back never
/// fires a rule), and such a rule would never hold.
pub(super) fn owned_tags_unread(
    loc: &Locator<'_>,
    (raw_rules, rules): (&[Spanned<RawRule>], &[Rule]),
    (raw_audiences, audiences): (&[Spanned<RawAudience>], &[Audience]),
) -> Result<(), ConfigError> {
    let owned: Vec<(&str, &str)> = rules
        .iter()
        .filter_map(|r| Some((r.write_back.as_ref()?.tag.as_deref()?, r.name.as_str())))
        .collect();
    let reads = |conditions: &[Condition]| {
        owned
            .iter()
            .find(|(tag, _)| conditions.iter().any(|c| c.names_tag(tag)))
            .copied()
    };
    let why = |what: String, (tag, owner): (&str, &str)| {
        format!(
            "{what} reads tag `{tag}`, which rule `{owner}` writes back; the pipeline ignores the \
             tags it writes, so a write-back never fires a rule: use another tag"
        )
    };
    for (rule, raw) in rules.iter().zip(raw_rules) {
        if let Some(found) = reads(&rule.conditions) {
            return Err(loc.at(
                &raw.get_ref().name,
                why(format!("rule `{}`", rule.name), found),
            ));
        }
    }
    for (audience, raw) in audiences.iter().zip(raw_audiences) {
        let found = match &audience.membership {
            Membership::Tags(tags) => owned
                .iter()
                .find(|(tag, _)| tags.iter().any(|t| t.eq_ignore_ascii_case(tag)))
                .copied(),
            Membership::Conditions { conditions, .. } => reads(conditions),
        };
        if let Some(found) = found {
            let what = format!("audience `{}`", audience.name);
            return Err(loc.at(&raw.get_ref().name, why(what, found)));
        }
    }
    Ok(())
}

impl Condition {
    /// Whether it fires on or tests `tag` (GHL compares tags ignoring case).
    fn names_tag(&self, tag: &str) -> bool {
        let same = |v: &serde_json::Value| {
            v.as_str()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case(tag))
        };
        match (&self.path, &self.test) {
            (_, Test::HasTag(t) | Test::LacksTag(t)) => t.trim().eq_ignore_ascii_case(tag),
            (Some(FieldPath::Tag), Test::OneOf(values)) => values.iter().any(same),
            (Some(FieldPath::Tag), Test::Equals(v) | Test::NotEquals(v)) => same(v),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::jobs::{WriteBack, Written};
    use crate::mapping::Mapping;

    const PIXEL: &str =
        "[[pixels]]\nname = \"main\"\ndataset_id = \"1\"\naccess_token = { env = \"T\" }\n";
    const LEAD: &str =
        "[[rules]]\nname = \"lead\"\ntrigger = \"contact.created\"\nevent_name = \"Lead\"\n";

    fn mapping(text: &str) -> Result<Mapping, String> {
        Mapping::parse(&format!("{PIXEL}{text}"), "m.toml").map_err(|e| e.to_string())
    }

    #[test]
    fn a_rule_writes_back_a_tag_fields_a_note_and_a_task() {
        let m = mapping(&format!(
            "{LEAD}[rules.write_back]\ntag = \" capi:Lead \"\nnote = true\ntask_on_dead_letter = true\n\
             fields = {{ sent_at = \"contact.capi_sent_at\", score = \"xYz123\" }}\n"
        ))
        .expect("mapping");
        assert_eq!(
            m.rules[0].write_back,
            Some(WriteBack {
                tag: Some("capi:Lead".into()),
                fields: vec![
                    (Written::Score, "xYz123".into()),
                    (Written::SentAt, "contact.capi_sent_at".into()),
                ],
                note: true,
                task_on_dead_letter: true,
                shape: String::new(),
            })
        );
        assert!(m.writes_back() && m.wants().writes);
        assert_eq!(m.owned_tags().collect::<Vec<_>>(), ["capi:Lead"]);
        let mut tags = vec!["vip".to_owned(), "CAPI:lead".to_owned()];
        m.disown(&mut tags);
        assert_eq!(tags, ["vip"], "owned tags are ignored, whatever their case");
        assert!(!mapping(LEAD).expect("mapping").wants().writes);
    }

    #[test]
    fn a_write_back_that_writes_nothing_or_an_unknown_value_is_refused_with_its_line() {
        let nothing = mapping(&format!("{LEAD}[rules.write_back]\nnote = false\n"));
        assert!(
            nothing
                .as_ref()
                .is_err_and(|e| e.contains("m.toml:9:1") && e.contains("writes nothing")),
            "{nothing:?}"
        );
        let unknown = mapping(&format!(
            "{LEAD}[rules.write_back]\nfields = {{ phone = \"contact.x\" }}\n"
        ));
        assert!(
            unknown
                .as_ref()
                .is_err_and(|e| e.contains("cannot write `phone`")
                    && e.contains("sent_at, event_id, event_name, score")),
            "{unknown:?}"
        );
        let blank = mapping(&format!("{LEAD}[rules.write_back]\ntag = \"  \"\n"));
        assert!(blank.is_err_and(|e| e.contains("must name a tag")));
        let typo = mapping(&format!("{LEAD}[rules.write_back]\ntags = \"a\"\n"));
        assert!(typo.is_err_and(|e| e.contains("unknown field `tags`")));
    }

    #[test]
    fn no_rule_or_audience_may_read_a_tag_the_write_back_owns() {
        let owner = format!("{LEAD}[rules.write_back]\ntag = \"capi:Lead\"\n");
        let on_tag = "[[rules]]\nname = \"again\"\ntrigger = \"contact.tag_added\"\n\
                      event_name = \"Contact\"\ntags = \"CAPI:Lead\"\n";
        let tests = "[[rules]]\nname = \"again\"\ntrigger = \"contact.updated\"\n\
                     event_name = \"Contact\"\n[[rules.when]]\nlacks_tag = \"capi:lead\"\n";
        let audience = "[[audiences]]\nname = \"sent\"\naudience_id = \"2\"\n\
                        access_token = { env = \"A\" }\ntags = [\"capi:Lead\"]\n";
        for (what, text) in [
            ("rule `again`", on_tag),
            ("rule `again`", tests),
            ("audience `sent`", audience),
        ] {
            let refused = mapping(&format!("{owner}{text}"));
            assert!(
                refused.as_ref().is_err_and(|e| e.contains(what)
                    && e.contains("reads tag `capi:Lead`, which rule `lead` writes back")),
                "{refused:?}"
            );
        }
        let other = "[[rules]]\nname = \"vip\"\ntrigger = \"contact.tag_added\"\n\
                     event_name = \"Contact\"\ntags = \"vip\"\n";
        assert!(mapping(&format!("{owner}{other}")).is_ok());
    }
}

#[cfg(test)]
mod lacking {
    use crate::ghl::names::LocationNames;
    use crate::mapping::Mapping;

    #[test]
    fn verify_names_each_field_written_back_that_a_location_lacks() {
        let text = "[[pixels]]\nname = \"main\"\ndataset_id = \"1\"\naccess_token = { env = \"T\" }\n\
                    [[rules]]\nname = \"lead\"\ntrigger = \"contact.created\"\nevent_name = \"Lead\"\n\
                    [rules.write_back]\nfields = { score = \"contact.capi_score\", event_id = \"f-id\" }\n";
        let mapping = Mapping::parse(text, "m.toml").expect("mapping");
        assert!(
            mapping.reads_names(),
            "a key is written by the id the names give it"
        );
        let names: LocationNames = serde_json::from_value(serde_json::json!({
            "customFields": [{"id": "f-id", "name": "Last event id", "fieldKey": "contact.capi_event_id"}]
        }))
        .expect("names");
        assert_eq!(
            mapping.lacking("loc1", &names),
            ["rule lead: no custom field \"contact.capi_score\" (it has: Last event id)"]
        );
    }
}
