//! `ghl-capi mapping init`: a working mapping from a location's real data. It
//! reads the location's pipelines, stages and calendars from GHL, asks the few
//! questions a marketer can answer (on a terminal; each has a flag, so a script
//! gets the same file without one), writes a commented mapping in names, checks
//! it, and previews it against the location's most recent contacts.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, bail};
use chrono::Utc;
use ghl_capi::ghl::names::LocationNames;
use ghl_capi::mapping::Mapping;
use ghl_capi::ops::init::{Answers, AudienceAnswer, PipelineAnswers, Template, mapping};

use crate::Outcome;
use crate::target::Target;

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// The GHL location (sub-account) whose pipelines, calendars and contacts the
    /// questions and the preview use.
    #[arg(long)]
    location: String,
    #[command(flatten)]
    target: Target,
    /// Where to write the mapping.
    #[arg(long, short, value_name = "FILE", default_value = "mapping.toml")]
    output: PathBuf,
    /// Overwrite FILE when it exists.
    #[arg(long)]
    force: bool,
    /// What to start from (repeat): conversion-leads, purchases, appointments,
    /// audiences.
    #[arg(long = "template", value_name = "NAME", value_parser = template)]
    templates: Vec<Template>,
    /// The pixel's name in the mapping.
    #[arg(long)]
    pixel: Option<String>,
    /// The pixel's dataset id (Events Manager).
    #[arg(long)]
    dataset_id: Option<String>,
    /// Where the pixel's token is kept: a Secrets Manager secret name, or
    /// `env:VAR` in local mode.
    #[arg(long, value_name = "SECRET|env:VAR")]
    token: Option<String>,
    /// The currency of values that come without one.
    #[arg(long)]
    currency: Option<String>,
    /// The pipeline leads and deals go through (its name in GHL).
    #[arg(long)]
    pipeline: Option<String>,
    /// The stage a new lead enters.
    #[arg(long)]
    lead_stage: Option<String>,
    /// A later stage that counts, each its own event named as the stage
    /// (repeat; a qualified lead, a won deal's stage, …).
    #[arg(long = "stage", value_name = "STAGE")]
    stages: Vec<String>,
    /// A calendar whose bookings count (repeat; none: every calendar).
    #[arg(long = "calendar", value_name = "CALENDAR")]
    calendars: Vec<String>,
    /// An audience that follows a tag (repeat).
    #[arg(long = "audience", value_name = "TAG=AUDIENCE_ID", value_parser = audience)]
    audiences: Vec<AudienceAnswer>,
    /// Where the audiences' token is kept (it needs `ads_management` on their ad
    /// account); by default the pixel's.
    #[arg(long, value_name = "SECRET|env:VAR")]
    audience_token: Option<String>,
    /// How many of the location's most recent contacts the preview runs (0: none).
    #[arg(long, default_value_t = 20)]
    preview: usize,
}

fn template(name: &str) -> Result<Template, String> {
    Template::named(name).ok_or_else(|| {
        let names: Vec<&str> = Template::ALL.iter().map(|t| t.name()).collect();
        format!("one of: {}", names.join(", "))
    })
}

fn audience(text: &str) -> Result<AudienceAnswer, String> {
    match text.split_once('=') {
        Some((tag, id)) if !tag.trim().is_empty() && !id.trim().is_empty() => Ok(AudienceAnswer {
            tag: tag.trim().to_owned(),
            audience_id: id.trim().to_owned(),
        }),
        _ => Err("TAG=AUDIENCE_ID, as vip=23851234567890123".into()),
    }
}

/// The questions, answered by a flag when given, else asked on a terminal, else
/// by their default; without one, a question that has none is an error naming
/// its flag.
struct Ask {
    terminal: bool,
}

impl Ask {
    fn text(
        &self,
        question: &str,
        given: Option<&str>,
        default: Option<&str>,
        flag: &str,
    ) -> anyhow::Result<String> {
        if let Some(given) = given {
            return Ok(given.to_owned());
        }
        if self.terminal {
            let mut prompt = inquire::Text::new(question);
            if let Some(default) = default {
                prompt = prompt.with_default(default);
            }
            let answer = prompt.prompt()?;
            if !answer.trim().is_empty() {
                return Ok(answer.trim().to_owned());
            }
        }
        default
            .map(str::to_owned)
            .with_context(|| format!("{question} Give {flag}"))
    }

    fn one(
        &self,
        question: &str,
        options: &[String],
        given: Option<&str>,
        flag: &str,
    ) -> anyhow::Result<String> {
        if let Some(given) = given {
            return known(given, options, flag).map(str::to_owned);
        }
        if self.terminal && !options.is_empty() {
            return Ok(inquire::Select::new(question, options.to_vec()).prompt()?);
        }
        bail!("{question} Give {flag} (one of: {})", options.join(", "))
    }

    fn many(
        &self,
        question: &str,
        options: &[String],
        given: &[String],
        flag: &str,
    ) -> anyhow::Result<Vec<String>> {
        if !given.is_empty() || !self.terminal || options.is_empty() {
            return given
                .iter()
                .map(|g| known(g, options, flag).map(str::to_owned))
                .collect();
        }
        Ok(inquire::MultiSelect::new(question, options.to_vec()).prompt()?)
    }
}

/// `given` if it is one of `options`.
fn known<'a>(given: &'a str, options: &[String], flag: &str) -> anyhow::Result<&'a str> {
    if options.iter().any(|o| o == given) {
        Ok(given)
    } else {
        bail!(
            "{flag} {given:?}: the location has no such one (it has: {})",
            options.join(", ")
        )
    }
}

pub fn run(args: &InitArgs) -> anyhow::Result<Outcome> {
    if args.output.exists() && !args.force {
        bail!(
            "{} exists: give --force to overwrite it, or --output another file",
            args.output.display()
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let backend = args.target.backend().await?;
        let ghl = args.target.ghl(&backend, std::slice::from_ref(&args.location)).await?;
        let names = ghl.location_names(&args.location).await.with_context(|| {
            format!(
                "cannot read location {}'s pipelines, custom fields and calendars (the token needs {})",
                args.location,
                ghl_capi::ghl::install::NAMES_SCOPES.join(", ")
            )
        })?;
        // The tags to offer, when an audience follows them and GHL lists them.
        let tags = match args.templates.contains(&Template::Audiences) || args.templates.is_empty() {
            true => match ghl.tags(&args.location).await {
                Ok(tags) => Some(tags.into_iter().map(|t| t.name).collect::<Vec<String>>()),
                Err(e) => {
                    eprintln!("ghl-capi: the location's tags cannot be listed ({e}): type them (the token needs locations/tags.readonly)");
                    None
                }
            },
            false => None,
        };
        let known = Known { names: &names, tags: tags.as_deref() };
        let answers = ask(args, &known, &Ask { terminal: std::io::stdin().is_terminal() })?;
        let text = mapping(&answers, &Utc::now().format("%Y-%m-%d").to_string());
        let checked = Mapping::parse(&text, &args.output.display().to_string())?;
        let lacking = checked.lacking(&args.location, &names);
        if !lacking.is_empty() {
            bail!("the mapping names what the location lacks: {}", lacking.join("; "));
        }
        if args.preview > 0 {
            let sample = crate::sample::recent(&ghl, &checked, &names, &args.location, args.preview).await?;
            out!(
                "preview: the {} most recent contacts of {}, as their opportunities and appointments stand",
                sample.len(),
                args.location
            )?;
            for changed in &sample {
                let sent = changed.sent(&checked);
                let said = if sent.is_empty() { "nothing".to_owned() } else { sent.join(", ") };
                out!("  {} (added {}): {said}", changed.contact.id, changed.added())?;
            }
        }
        std::fs::write(&args.output, &text)
            .with_context(|| format!("cannot write {}", args.output.display()))?;
        out!(
            "wrote {}: {} rule(s), {} audience(s), in names; check it passes (`ghl-capi mapping check {0}`), then make it live (`ghl-capi mapping publish {0}`)",
            args.output.display(),
            checked.rules.len(),
            checked.audiences.len()
        )?;
        Ok(Outcome::Done)
    })
}

/// What the location has: its names, and its tags when GHL lists them.
struct Known<'a> {
    names: &'a LocationNames,
    tags: Option<&'a [String]>,
}

/// The audiences that follow tags: chosen from the location's tags with an
/// audience id each (or typed as TAG=AUDIENCE_ID when GHL does not list them),
/// or as `--audience` gives them, each tag one the location has.
fn audiences(
    args: &InitArgs,
    tags: Option<&[String]>,
    ask: &Ask,
) -> anyhow::Result<Vec<AudienceAnswer>> {
    if !args.audiences.is_empty() || !ask.terminal {
        if let Some(tags) = tags {
            for a in &args.audiences {
                known(&a.tag, tags, "--audience")?;
            }
        }
        return Ok(args.audiences.clone());
    }
    let Some(tags) = tags else {
        let text = inquire::Text::new("Audiences from tags, as TAG=AUDIENCE_ID, comma-separated?")
            .prompt()?;
        return text
            .split(',')
            .filter(|t| !t.trim().is_empty())
            .map(|t| audience(t).map_err(anyhow::Error::msg))
            .collect();
    };
    let chosen = ask.many("Which tags feed an audience?", tags, &[], "--audience")?;
    chosen
        .into_iter()
        .map(|tag| {
            let question = format!("The Custom Audience id for tag {tag}?");
            let audience_id = inquire::Text::new(&question).prompt()?;
            Ok(AudienceAnswer {
                tag,
                audience_id: audience_id.trim().to_owned(),
            })
        })
        .collect()
}

fn ask(args: &InitArgs, have: &Known<'_>, ask: &Ask) -> anyhow::Result<Answers> {
    let names = have.names;
    let described: Vec<String> = Template::ALL
        .iter()
        .map(|t| format!("{}: {}", t.name(), t.describe()))
        .collect();
    let templates = if args.templates.is_empty() && ask.terminal {
        let chosen = ask.many("What should it send?", &described, &[], "--template")?;
        Template::ALL
            .into_iter()
            .filter(|t| chosen.iter().any(|c| c.starts_with(t.name())))
            .collect()
    } else {
        args.templates.clone()
    };
    if templates.is_empty() {
        bail!(
            "What should it send? Give --template (conversion-leads, purchases, appointments, audiences)"
        );
    }
    let pixel = ask.text(
        "The pixel's name in the mapping?",
        args.pixel.as_deref(),
        Some("main"),
        "--pixel",
    )?;
    let dataset_id = ask.text(
        "The pixel's dataset id (Events Manager)?",
        args.dataset_id.as_deref(),
        None,
        "--dataset-id",
    )?;
    let default_token = format!("ghl-capi/meta/{pixel}");
    let token = ask.text(
        "Where is its token kept (a secret, or env:VAR)?",
        args.token.as_deref(),
        Some(&default_token),
        "--token",
    )?;
    let currency = ask.text(
        "The currency of values?",
        args.currency.as_deref(),
        Some("USD"),
        "--currency",
    )?;
    let wants = |t: Template| templates.contains(&t);
    let pipeline = if wants(Template::ConversionLeads) || wants(Template::Purchases) {
        let pipelines: Vec<String> = names.pipelines.iter().map(|p| p.name.clone()).collect();
        let chosen = ask.one(
            "Which pipeline do leads and deals go through?",
            &pipelines,
            args.pipeline.as_deref(),
            "--pipeline",
        )?;
        let stages: Vec<String> = names
            .pipelines
            .iter()
            .find(|p| p.name == chosen)
            .map(|p| p.stages.iter().map(|s| s.name.clone()).collect())
            .unwrap_or_default();
        let (lead_stage, later) = if wants(Template::ConversionLeads) {
            let lead = ask.one(
                "Which stage is a new lead?",
                &stages,
                args.lead_stage.as_deref(),
                "--lead-stage",
            )?;
            let rest: Vec<String> = stages.iter().filter(|s| **s != lead).cloned().collect();
            let later = ask.many(
                "Which later stages count (a qualified lead, a booked call, …)?",
                &rest,
                &args.stages,
                "--stage",
            )?;
            (Some(lead), later)
        } else {
            (None, Vec::new())
        };
        Some(PipelineAnswers {
            pipeline: chosen,
            lead_stage,
            stages: later,
        })
    } else {
        None
    };
    let calendars = if wants(Template::Appointments) {
        let all: Vec<String> = names.calendars.iter().map(|c| c.name.clone()).collect();
        ask.many(
            "Which calendars' bookings count (none chosen: all)?",
            &all,
            &args.calendars,
            "--calendar",
        )?
    } else {
        Vec::new()
    };
    let audiences = if wants(Template::Audiences) {
        audiences(args, have.tags, ask)?
    } else {
        Vec::new()
    };
    let audience_token = match audiences.is_empty() {
        true => None,
        false => Some(ask.text(
            "Where is the audiences' token kept (it needs ads_management)?",
            args.audience_token.as_deref(),
            Some(&token),
            "--audience-token",
        )?),
    };
    Ok(Answers {
        location: args.location.clone(),
        pixel,
        dataset_id,
        token,
        currency,
        templates,
        pipeline,
        calendars,
        audiences,
        audience_token,
    })
}
