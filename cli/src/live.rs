//! `ghl-capi mapping publish`, `pull`, `history` and `rollback`: the live
//! mapping's versions, in the file `serve --mapping` runs or, with `--aws`, in
//! the stack's mapping bucket, which the functions read within a minute. A
//! version that does not pass `mapping check` is never published.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use ghl_capi::ghl::wire::DEFAULT_BASE_URL;
use ghl_capi::mapping::Mapping;
use ghl_capi::mapping::live::check;
use ghl_capi::ports::mappings::{Listed, MappingStore};
use ghl_capi::settings::GHL_TOKEN_DEFAULT_PREFIX;
use ghl_capi_aws::mappings::{S3Mappings, s3_client};
use ghl_capi_local::mappings::FileMappings;

use crate::Outcome;
use crate::target::ghl_with;

/// Where the live mapping is.
#[derive(Debug, clap::Args)]
pub struct Place {
    /// The mapping file `serve --mapping` runs (its versions are kept beside it,
    /// in FILE.history/).
    #[arg(
        long,
        env = "MAPPING_FILE",
        value_name = "FILE",
        required_unless_present = "aws"
    )]
    mapping: Option<PathBuf>,
    /// Work on the deployed stack's mapping bucket instead (with the usual
    /// `AWS_*` settings).
    #[arg(long)]
    aws: bool,
    /// With --aws: the stack's mapping bucket (its MappingBucketName output).
    #[arg(long, env = "MAPPING_BUCKET", required_if_eq("aws", "true"))]
    bucket: Option<String>,
    /// With --aws: the mapping's object in the bucket.
    #[arg(long, env = "MAPPING_KEY", default_value = "mapping.toml")]
    key: String,
}

#[derive(Debug, clap::Args)]
pub struct PublishArgs {
    /// The new version (TOML).
    file: PathBuf,
    #[command(flatten)]
    place: Place,
    /// Publish without asking (a script's way; without a terminal it is required).
    #[arg(long)]
    yes: bool,
    /// A location whose recent contacts are replayed through the live and the
    /// new version before asking, as `mapping diff` does (repeat).
    #[arg(long = "location")]
    locations: Vec<String>,
    /// With --location and --aws: where the GHL token sets are kept.
    #[arg(long, env = "GHL_TOKEN_SECRET_PREFIX", default_value = GHL_TOKEN_DEFAULT_PREFIX)]
    token_prefix: String,
    #[arg(long, env = "GHL_API_BASE_URL", default_value = DEFAULT_BASE_URL)]
    ghl_api_base_url: String,
}

#[derive(Debug, clap::Args)]
pub struct PullArgs {
    #[command(flatten)]
    place: Place,
    /// A version from `mapping history` (its name or the start of it) instead of
    /// the live one.
    #[arg(long)]
    version: Option<String>,
    /// Write it here instead of to standard output.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    place: Place,
    /// How many versions, newest first.
    #[arg(long, default_value_t = 20)]
    limit: usize,
}

#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    /// The version to bring back (from `mapping history`); by default the one
    /// published before the live one.
    version: Option<String>,
    #[command(flatten)]
    place: Place,
    /// Roll back without asking.
    #[arg(long)]
    yes: bool,
}

/// The store `place` names, and what to do with it.
enum Store {
    File(FileMappings),
    S3(S3Mappings),
}

macro_rules! with_store {
    ($place:expr, |$store:ident| $body:expr) => {{
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            match open($place).await {
                Store::File($store) => $body.await,
                Store::S3($store) => $body.await,
            }
        })
    }};
}

async fn open(place: &Place) -> Store {
    match (&place.bucket, &place.mapping) {
        (Some(bucket), _) if place.aws => {
            let sdk = ghl_capi_aws::config::sdk_config().await;
            Store::S3(S3Mappings::new(s3_client(&sdk), bucket, &place.key))
        }
        (_, Some(file)) => Store::File(FileMappings::new(file)),
        // clap requires one of them.
        _ => Store::File(FileMappings::new(std::path::Path::new("mapping.toml"))),
    }
}

pub fn publish(args: &PublishArgs) -> anyhow::Result<Outcome> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let new = check(&text, &args.file.display().to_string())?;
    with_store!(&args.place, |store| async {
        let live = store.live().await?;
        let old = live.and_then(|live| Mapping::parse(&live.text, "live").ok());
        if let Some(old) = old.filter(|_| !args.locations.is_empty()) {
            let sdk = match args.place.aws {
                true => Some(ghl_capi_aws::config::sdk_config().await),
                false => None,
            };
            let (prefix, url) = (&args.token_prefix, &args.ghl_api_base_url);
            let ghl = ghl_with(sdk.as_ref(), prefix, url, &args.locations).await?;
            let mut lacking = false;
            for location in &args.locations {
                let replay = crate::diff::between(&ghl, &old, &new, location, 20).await?;
                out_text!(replay.text)?;
                lacking |= !replay.lacking.is_empty();
            }
            if lacking {
                out!(
                    "not published: it names what a location lacks (the lines marked !); rename it in GHL or in the mapping"
                )?;
                return Ok(Outcome::Failed);
            }
        }
        go_live(&store, &text, &new, args.yes).await
    })
}

pub fn rollback(args: &RollbackArgs) -> anyhow::Result<Outcome> {
    with_store!(&args.place, |store| async {
        let history = store.history(100).await?;
        let live = store.live().await?.map(|p| p.listed.version);
        let wanted = match &args.version {
            Some(v) => v.clone(),
            None => match history.iter().find(|l| Some(&l.version) != live.as_ref()) {
                Some(before) => before.version.clone(),
                None => bail!("{} has no version before the live one", store.place()),
            },
        };
        let Some(old) = store.read(&wanted).await? else {
            bail!(
                "{} has no version {wanted} (see mapping history)",
                store.place()
            );
        };
        let name = format!("version {}", old.listed.version);
        let mapping = check(&old.text, &name)?;
        go_live(&store, &old.text, &mapping, args.yes).await
    })
}

pub fn pull(args: &PullArgs) -> anyhow::Result<Outcome> {
    with_store!(&args.place, |store| async {
        let found = match &args.version {
            Some(v) => store.read(v).await?,
            None => store.live().await?,
        };
        let Some(found) = found else {
            bail!("{}: no such version published", store.place());
        };
        match &args.output {
            Some(file) => std::fs::write(file, &found.text)
                .with_context(|| format!("cannot write {}", file.display()))?,
            None => out_text!(found.text)?,
        }
        Ok(Outcome::Done)
    })
}

pub fn history(args: &HistoryArgs) -> anyhow::Result<Outcome> {
    with_store!(&args.place, |store| async {
        let live = store.live().await?.map(|p| p.listed.version);
        let history = store.history(args.limit).await?;
        if history.is_empty() {
            out!(
                "{}: nothing published yet (ghl-capi mapping publish)",
                store.place()
            )?;
        }
        for listed in &history {
            let mark = if Some(&listed.version) == live.as_ref() {
                "  (live)"
            } else {
                ""
            };
            out!("{}{mark}", row(listed))?;
        }
        Ok(Outcome::Done)
    })
}

fn row(listed: &Listed) -> String {
    let at = listed
        .at
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "?".into());
    format!("{}  {at}  {} bytes", listed.version, listed.size)
}

/// Shows what `new` changes against the live version, asks unless `yes`, and
/// publishes it.
async fn go_live<S: MappingStore>(
    store: &S,
    text: &str,
    new: &Mapping,
    yes: bool,
) -> anyhow::Result<Outcome> {
    let live = store.live().await?;
    let old = live
        .as_ref()
        .and_then(|p| Mapping::parse(&p.text, "live").ok());
    if old.as_ref().is_some_and(|old| old.version == new.version) {
        out!("{}: version {} is live already", store.place(), new.version)?;
        return Ok(Outcome::Done);
    }
    out!("{}", changes(old.as_ref(), new))?;
    if !yes
        && !confirm(&format!(
            "publish version {} to {}?",
            new.version,
            store.place()
        ))?
    {
        out!("not published")?;
        return Ok(Outcome::Failed);
    }
    let listed = store.publish(text).await?;
    out!(
        "published version {} ({} bytes) to {}: it runs within a minute, from the next batch",
        listed.version,
        listed.size,
        store.place()
    )?;
    Ok(Outcome::Done)
}

/// What `new` adds, removes and changes against `old`, by name.
fn changes(old: Option<&Mapping>, new: &Mapping) -> String {
    let Some(old) = old else {
        return format!(
            "nothing valid is live: version {} adds {} pixel(s), {} rule(s), {} audience(s)",
            new.version,
            new.pixels.len(),
            new.rules.len(),
            new.audiences.len()
        );
    };
    let mut lines = vec![format!("version {} → {}:", old.version, new.version)];
    let mut compare = |kind: &str, old: BTreeMap<&str, String>, new: BTreeMap<&str, String>| {
        for (name, was) in &old {
            match new.get(name) {
                None => lines.push(format!("  - {kind} {name}: removed")),
                Some(now) if now != was => lines.push(format!("  ~ {kind} {name}: changed")),
                Some(_) => {}
            }
        }
        for name in new.keys().filter(|n| !old.contains_key(*n)) {
            lines.push(format!("  + {kind} {name}: added"));
        }
    };
    compare(
        "pixel",
        by_name(&old.pixels, |p| &p.name),
        by_name(&new.pixels, |p| &p.name),
    );
    compare(
        "rule",
        by_name(&old.rules, |r| &r.name),
        by_name(&new.rules, |r| &r.name),
    );
    compare(
        "audience",
        by_name(&old.audiences, |a| &a.name),
        by_name(&new.audiences, |a| &a.name),
    );
    if old.defaults != new.defaults {
        lines.push("  ~ defaults: changed".into());
    }
    if lines.len() == 1 {
        lines.push("  no pixel, rule or audience changes (comments or layout only)".into());
    }
    lines.join("\n")
}

/// Each item by its name, with all it says (to tell a change).
fn by_name<'a, T: std::fmt::Debug>(
    items: &'a [T],
    name: fn(&'a T) -> &'a str,
) -> BTreeMap<&'a str, String> {
    items.iter().map(|i| (name(i), format!("{i:?}"))).collect()
}

/// Asks `question` on the terminal; without one, there is no one to say yes.
fn confirm(question: &str) -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        bail!("{question} There is no terminal to ask on: give --yes to publish without asking");
    }
    let mut err = std::io::stderr().lock();
    write!(err, "{question} [y/N] ")?;
    err.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}
