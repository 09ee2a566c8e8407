//! What a mapping names that a location lacks: each pipeline, stage and calendar
//! its rules name (by name or id) and each custom field they read or write back, looked up in the
//! location's names, so `verify` can say, per location, which rule would never
//! fire there and what the location has instead.

use super::occurrence::{CALENDAR_REFS, PIPELINE_REFS, STAGE_REFS};
use super::{FieldPath, Mapping, Rule};
use crate::ghl::names::{LocationNames, Named};

fn names_of<'a>(items: impl IntoIterator<Item = &'a Named>) -> String {
    let names: Vec<&str> = items.into_iter().map(|n| n.name.as_str()).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

impl Mapping {
    /// Each name (or id) the rules serving `location` use that its `names` lack,
    /// in words: `no stage "Qualified" in pipeline "Sales" (it has: New,
    /// Contacted, Won)`.
    pub fn lacking(&self, location: &str, names: &LocationNames) -> Vec<String> {
        let mut lacking = Vec::new();
        let mut say = |line: String| {
            if !lacking.contains(&line) {
                lacking.push(line);
            }
        };
        let is = |n: &Named, wanted: &str| n.id == wanted || n.name == wanted;
        let serving = self
            .rules
            .iter()
            .filter(|rule| self.pixels_for(rule, location).next().is_some());
        for rule in serving {
            let pipelines: Vec<_> = names
                .pipelines
                .iter()
                .filter(|p| {
                    let mut wanted = rule.named(PIPELINE_REFS).peekable();
                    wanted.peek().is_none() || wanted.any(|w| p.id == w || p.name == w)
                })
                .collect();
            for wanted in rule.named(PIPELINE_REFS) {
                if !names
                    .pipelines
                    .iter()
                    .any(|p| p.id == wanted || p.name == wanted)
                {
                    let has: Vec<&str> = names.pipelines.iter().map(|p| p.name.as_str()).collect();
                    say(format!(
                        "rule {}: no pipeline \"{wanted}\" (it has: {})",
                        rule.name,
                        has.join(", ")
                    ));
                }
            }
            for wanted in rule.named(STAGE_REFS) {
                if !pipelines
                    .iter()
                    .flat_map(|p| &p.stages)
                    .any(|s| is(s, wanted))
                {
                    let place = match &pipelines[..] {
                        [one] => format!(" in pipeline \"{}\"", one.name),
                        _ => String::new(),
                    };
                    let has = names_of(pipelines.iter().flat_map(|p| &p.stages));
                    say(format!(
                        "rule {}: no stage \"{wanted}\"{place} (it has: {has})",
                        rule.name
                    ));
                }
            }
            for wanted in rule.named(CALENDAR_REFS) {
                if !names.calendars.iter().any(|c| is(c, wanted)) {
                    let has = names_of(&names.calendars);
                    say(format!(
                        "rule {}: no calendar \"{wanted}\" (it has: {has})",
                        rule.name
                    ));
                }
            }
            let read = rule.paths().filter_map(|path| match path {
                FieldPath::Custom(wanted) => Some(wanted.as_str()),
                _ => None,
            });
            // And those its write-back sets.
            let written = (rule.write_back.iter().flat_map(|w| &w.fields)).map(|(_, f)| f.as_str());
            for wanted in read.chain(written) {
                let known = names.custom_field(wanted).is_some()
                    || names.custom_fields.iter().any(|f| f.id == wanted);
                if !known {
                    let has: Vec<&str> = names
                        .custom_fields
                        .iter()
                        .map(|f| f.name.as_str())
                        .collect();
                    say(format!(
                        "rule {}: no custom field \"{wanted}\" (it has: {})",
                        rule.name,
                        if has.is_empty() {
                            "none".into()
                        } else {
                            has.join(", ")
                        }
                    ));
                }
            }
        }
        lacking
    }

    /// Whether any rule may read what only a location's names resolve.
    pub fn reads_names(&self) -> bool {
        self.rules.iter().any(Rule::reads_names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_name_a_location_lacks_is_said_with_what_it_has_instead() {
        let mapping = Mapping::parse(
            r#"
[[pixels]]
name = "main"
dataset_id = "1"
access_token = { env = "T" }

[[rules]]
name = "qualified"
trigger = "opportunity.stage_changed"
pipeline = "Sales"
stage = "Qualified"
event_name = "QualifiedLead"

[[rules]]
name = "booked"
trigger = "appointment.booked"
calendar = "Consultation"
event_name = "Schedule"

[[rules.when]]
field = "custom.How can we help?"
exists = true
"#,
            "test",
        )
        .expect("valid");
        let names: LocationNames = serde_json::from_value(serde_json::json!({
            "pipelines": [{"id": "p1", "name": "Sales", "stages": [
                {"id": "s1", "name": "New"}, {"id": "s2", "name": "Contacted"}, {"id": "s3", "name": "Won"}]}],
            "calendars": [{"id": "k1", "name": "Intro call"}]
        }))
        .expect("names");
        assert_eq!(
            mapping.lacking("loc1", &names),
            [
                "rule qualified: no stage \"Qualified\" in pipeline \"Sales\" (it has: New, Contacted, Won)",
                "rule booked: no calendar \"Consultation\" (it has: Intro call)",
                "rule booked: no custom field \"How can we help?\" (it has: none)",
            ]
        );
        assert!(mapping.reads_names());
    }
}
