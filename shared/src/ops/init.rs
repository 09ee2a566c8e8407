//! `ghl-capi mapping init`'s mapping: from the few answers a marketer can give
//! (which pixel; which pipeline and which of its stages are a new lead, a
//! qualified lead, a won deal; which calendars' bookings count; which tags feed
//! which audiences), a commented mapping written in the names GHL shows, so it
//! serves every sub-account cloned from the same snapshot.

use std::fmt::Write as _;

/// A starting point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Template {
    /// Conversion Leads from a pipeline: the raw lead and each later stage.
    ConversionLeads,
    /// A `Purchase` with the deal's value when an opportunity is won.
    Purchases,
    /// A `Schedule` for each booking of the chosen calendars.
    Appointments,
    /// Custom Audiences that follow tags.
    Audiences,
}

impl Template {
    pub const ALL: [Template; 4] = [
        Template::ConversionLeads,
        Template::Purchases,
        Template::Appointments,
        Template::Audiences,
    ];

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Template::ConversionLeads => "conversion-leads",
            Template::Purchases => "purchases",
            Template::Appointments => "appointments",
            Template::Audiences => "audiences",
        }
    }

    /// By its name.
    pub fn named(name: &str) -> Option<Template> {
        Template::ALL.into_iter().find(|t| t.name() == name)
    }

    pub fn describe(self) -> &'static str {
        match self {
            Template::ConversionLeads => "Conversion Leads from a pipeline's stages",
            Template::Purchases => "purchases when a deal is won, with its value",
            Template::Appointments => "appointments booked",
            Template::Audiences => "Custom Audiences from tags",
        }
    }
}

/// A pipeline and its stages, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PipelineAnswers {
    pub pipeline: String,
    /// The stage a new lead enters.
    pub lead_stage: Option<String>,
    /// Later stages, each its own event (named as the stage).
    pub stages: Vec<String>,
}

/// An audience that follows a tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudienceAnswer {
    pub tag: String,
    pub audience_id: String,
}

/// Everything `mapping init` asked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answers {
    pub location: String,
    pub pixel: String,
    pub dataset_id: String,
    /// The Secrets Manager secret (or, locally, `env:VAR`) holding the token.
    pub token: String,
    pub currency: String,
    pub templates: Vec<Template>,
    pub pipeline: Option<PipelineAnswers>,
    pub calendars: Vec<String>,
    pub audiences: Vec<AudienceAnswer>,
    /// Where the audiences' token is kept (the pixel's by default).
    pub audience_token: Option<String>,
}

fn quoted(text: &str) -> String {
    // TOML basic strings escape as JSON strings do.
    serde_json::Value::String(text.to_owned()).to_string()
}

fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| quoted(i)).collect();
    format!("[{}]", quoted.join(", "))
}

fn token(place: &str) -> String {
    match place.strip_prefix("env:") {
        Some(var) => format!("{{ env = {} }}", quoted(var)),
        None => format!("{{ secret = {} }}", quoted(place)),
    }
}

/// A rule name from a stage's name: `Qualified Lead` → `stage-qualified-lead`.
fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_owned()
}

/// The mapping the answers make, with a comment for each part.
pub fn mapping(answers: &Answers, written: &str) -> String {
    let mut out = String::new();
    let wants = |t: Template| answers.templates.contains(&t);
    let _ = writeln!(
        out,
        "# Written by `ghl-capi mapping init` for location {} on {written}, in the names\n\
         # GHL shows, so it serves every sub-account cloned from the same snapshot.\n\
         # Check it with `ghl-capi mapping check`, try it with `ghl-capi mapping preview`,\n\
         # make it live with `ghl-capi mapping publish`. docs/mapping.md explains every key.\n\
         version = 1\n\n[defaults]\naction_source = \"system_generated\"\ncurrency = {}\n\
         # Sent as lead_event_source with event_source = \"crm\" (Conversion Leads).\n\
         lead_event_source = \"HighLevel\"\n",
        answers.location,
        quoted(&answers.currency)
    );
    let _ = writeln!(
        out,
        "[[pixels]]\nname = {}\ndataset_id = {}\naccess_token = {}\n",
        quoted(&answers.pixel),
        quoted(&answers.dataset_id),
        token(&answers.token)
    );
    if let Some(p) = answers
        .pipeline
        .as_ref()
        .filter(|_| wants(Template::ConversionLeads))
    {
        out.push_str(
            "# Conversion Leads: the raw lead and each later stage, each an event named as\n\
             # the stage (Meta learns from at least two, the raw lead among them).\n",
        );
        if let Some(lead) = &p.lead_stage {
            let _ = writeln!(
                out,
                "[[rules]]\nname = \"new-lead\"\ntrigger = \"opportunity.created\"\n\
                 pipeline = {}\nstage = {}\nevent_name = \"Lead\"\n",
                quoted(&p.pipeline),
                quoted(lead)
            );
        }
        for stage in &p.stages {
            let _ = writeln!(
                out,
                "[[rules]]\nname = {}\ntrigger = \"opportunity.stage_changed\"\n\
                 pipeline = {}\nstage = {}\nevent_name = {}\n",
                quoted(&format!("stage-{}", slug(stage))),
                quoted(&p.pipeline),
                quoted(stage),
                quoted(stage)
            );
        }
    }
    if wants(Template::Purchases) {
        let pipeline = answers
            .pipeline
            .as_ref()
            .map(|p| format!("pipeline = {}\n", quoted(&p.pipeline)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "# A deal won is a purchase of its value.\n[[rules]]\nname = \"won-purchase\"\n\
             trigger = \"opportunity.status_changed\"\n{pipeline}status = \"won\"\n\
             event_name = \"Purchase\"\nvalue = {{ field = \"opportunity.monetaryValue\" }}\n"
        );
    }
    if wants(Template::Appointments) {
        let calendars = if answers.calendars.is_empty() {
            String::new()
        } else {
            format!("calendar = {}\n", list(&answers.calendars))
        };
        let _ = writeln!(
            out,
            "# A booking is a Schedule event.\n[[rules]]\nname = \"booked\"\n\
             trigger = \"appointment.booked\"\n{calendars}event_name = \"Schedule\"\n"
        );
    }
    if wants(Template::Audiences) {
        let holder = answers.audience_token.as_deref().unwrap_or(&answers.token);
        for a in &answers.audiences {
            let _ = writeln!(
                out,
                "# Contacts tagged {tag} are its members (its token needs ads_management).\n\
                 [[audiences]]\nname = {name}\naudience_id = {id}\naccess_token = {token}\n\
                 tags = [{tag}]\n",
                tag = quoted(&a.tag),
                name = quoted(&format!("tag-{}", slug(&a.tag))),
                id = quoted(&a.audience_id),
                token = token(holder)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::Mapping;

    #[test]
    fn every_template_makes_a_mapping_that_passes_its_checks() {
        let answers = Answers {
            location: "loc1".into(),
            pixel: "main".into(),
            dataset_id: "1234".into(),
            token: "ghl-capi/meta/main".into(),
            currency: "USD".into(),
            templates: vec![
                Template::ConversionLeads,
                Template::Purchases,
                Template::Appointments,
                Template::Audiences,
            ],
            pipeline: Some(PipelineAnswers {
                pipeline: "Sales".into(),
                lead_stage: Some("New".into()),
                stages: vec!["Qualified \"Hot\" Lead".into(), "Booked".into()],
            }),
            calendars: vec!["Consultation".into()],
            audiences: vec![AudienceAnswer {
                tag: "vip".into(),
                audience_id: "2385".into(),
            }],
            audience_token: Some("env:ADS_TOKEN".into()),
        };
        let text = mapping(&answers, "2026-12-06");
        let parsed = Mapping::parse(&text, "init").unwrap_or_else(|e| panic!("{e}\n{text}"));
        let rules: Vec<&str> = parsed.rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            rules,
            [
                "new-lead",
                "stage-qualified-hot-lead",
                "stage-booked",
                "won-purchase",
                "booked"
            ]
        );
        assert_eq!(parsed.audiences[0].name, "tag-vip");
        assert!(parsed.reads_names());
    }
}
