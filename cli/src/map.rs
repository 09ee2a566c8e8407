//! `ghl-capi map`.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use anyhow::Context;
use ghl_capi::mapping::{Mapping, Trigger};
use ghl_capi::ops::map::{MapOptions, Summary, map_contacts};

use crate::Outcome;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The mapping (TOML); the built-in mapping when left out. `--config` is its
    /// older name.
    #[arg(long = "mapping", alias = "config", value_name = "FILE")]
    mapping: Option<PathBuf>,
    /// What happened to each contact: contact.created, contact.updated,
    /// contact.tag_added (each tag counts as added), …
    #[arg(long, default_value = "contact.created")]
    trigger: Trigger,
    /// Only events for this pixel (and with its test_event_code).
    #[arg(long, value_name = "NAME")]
    pixel: Option<String>,
    /// Worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

/// The mapping to use: the file given, else the built-in one.
pub fn load_mapping(path: Option<&PathBuf>) -> anyhow::Result<Mapping> {
    Ok(match path {
        Some(path) => Mapping::load(path)?,
        None => Mapping::builtin(),
    })
}

pub fn run(args: &Args) -> anyhow::Result<Outcome> {
    let mapping = load_mapping(args.mapping.as_ref())?;
    if let Some(pixel) = &args.pixel
        && !mapping.pixels.iter().any(|p| &p.name == pixel)
    {
        anyhow::bail!("the mapping defines no pixel named `{pixel}`");
    }
    let options = MapOptions {
        trigger: args.trigger,
        pixel: args.pixel.clone(),
        now: chrono::Utc::now(),
        threads: args
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from)),
    };
    let output = BufWriter::with_capacity(1 << 20, unbuffered_stdout()?);
    let summary =
        map_contacts(&mapping, &options, io::stdin(), output).context("mapping stdin to stdout")?;
    eprint!("{}", report(&summary));
    Ok(if summary.rejected.contains_key("malformed_contact") {
        Outcome::MalformedInput
    } else {
        Outcome::Done
    })
}

/// Standard output without `Stdout`'s line buffering, which looks for the last
/// newline in every write: a scan of each megabyte `map` hands it.
#[cfg(unix)]
fn unbuffered_stdout() -> io::Result<impl Write> {
    use std::os::fd::AsFd;
    Ok(std::fs::File::from(
        io::stdout().as_fd().try_clone_to_owned()?,
    ))
}

#[cfg(not(unix))]
fn unbuffered_stdout() -> io::Result<impl Write> {
    Ok(io::stdout().lock())
}

/// The stderr summary.
fn report(s: &Summary) -> String {
    let mut text = format!(
        "mapped {} contacts: {} events in {} request bodies; {} rejected, {} matched no rule\n",
        s.contacts,
        s.events,
        s.requests,
        s.rejected_total(),
        s.unmatched
    );
    for (code, r) in &s.rejected {
        let lines: Vec<String> = r.first_lines.iter().map(u64::to_string).collect();
        text.push_str(&format!(
            "  {:>8}  {code}: {} (lines {}{})\n",
            r.count,
            r.example,
            lines.join(", "),
            if r.count > r.first_lines.len() as u64 {
                ", …"
            } else {
                ""
            }
        ));
    }
    text
}
