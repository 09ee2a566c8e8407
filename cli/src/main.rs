//! `ghl-capi`: the command-line face of the library.
//!
//! Exit codes: 0 done; 1 failed (bad mapping, unreadable file, I/O error);
//! 2 usage error; 3 done, but some input lines were malformed and reported.

/// `println!` that hands a failed write back (a closed pipe, say) instead of
/// panicking: commands end quietly when whatever reads their output goes away.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

/// `print!`, the same way.
macro_rules! out_text {
    ($text:expr) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), "{}", $text)
    }};
}

mod audience;
mod backfill;
mod diff;
mod dlq;
#[cfg(test)]
mod docs;
mod init;
mod keys;
mod live;
mod map;
mod mapping;
mod normalize;
mod oauth;
mod reconcile;
mod report;
mod sample;
mod serve;
mod target;
mod trace;
mod verify;
mod workflow;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

// Mapping allocates many short strings per contact; mimalloc serves them about a
// fifth faster than the system allocator, across threads.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// GoHighLevel → Meta Conversions API.
#[derive(Debug, Parser)]
#[command(name = "ghl-capi", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Normalise and hash values: JSON lines {"field","input","country"?} in,
    /// {"field","input","normalized","sha256"} out (null where a value is dropped).
    Normalize,
    /// Map GHL contacts (one GET /contacts/{id} object per line) to Conversions API
    /// request bodies {"data":[…]} of at most 1,000 events, one per line; a summary
    /// of rejected contacts goes to stderr.
    Map(map::Args),
    /// Check a mapping file, or preview the events a webhook would produce.
    #[command(subcommand)]
    Mapping(MappingCommand),
    /// Run the whole pipeline in this process on a local durable store: the intake
    /// routes on --listen, enrichment and dispatch behind them. Pixels without an
    /// access token run dry: their requests go to the outbox file.
    Serve(serve::ServeArgs),
    /// Try local mode out.
    #[command(subcommand)]
    Demo(DemoCommand),
    /// Show and replay dead letters, of the local store or of an SQS queue.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// API keys of the conversions and workflow routes.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The GHL marketplace app.
    #[command(subcommand)]
    Oauth(OauthCommand),
    /// Check the credentials: each location's GHL token reads a contact with the
    /// scopes the mapping needs, each pixel's token posts a test event. Prints a
    /// table with the fix for each problem; exits 1 if there is any.
    Verify(verify::Args),
    /// GHL workflows as a trigger source (no marketplace app needed).
    #[command(subcommand)]
    Workflow(WorkflowCommand),
    /// Meta Custom Audiences the mapping keeps in step.
    #[command(subcommand)]
    Audience(AudienceCommand),
    /// Catch up with GHL: one reconciliation run now (the changes since each
    /// location's watermark that no webhook delivered, queued for the pipeline),
    /// as the schedule runs it. `--seed`: record each location's baseline (every
    /// contact's tags, sending nothing), so the first tag webhook after an
    /// install fires its rules instead of only recording the contact's tags.
    Reconcile(reconcile::Args),
    /// Send a location's history: the contacts created in a period, each as a new
    /// contact with its tags added, through the pipeline (or, with --dry-run, as
    /// request bodies on stdout); events older than Meta's 7 days are counted, not
    /// sent. --resume goes on after the last page queued.
    Backfill(backfill::Args),
    /// What happened to a contact, a webhook or an event: each webhook received,
    /// each rule that fired or did not and why, each event built, Meta's answers,
    /// retries, dead letters, audience rows. From the local store's journal, or
    /// with --aws from the functions' logs (Logs Insights). Ids and hashes only.
    Trace(trace::Args),
    /// A report to read: per location, week and stage (event name), the contacts
    /// that reached it, the events Meta took, the share with a lead id, an e-mail
    /// and a phone, and the average identifier coverage score; as text or --csv.
    Report(report::Args),
}

#[derive(Debug, Subcommand)]
enum AudienceCommand {
    /// Bring an audience in step with GHL: list the location's contacts that
    /// belong (GHL's contact search, by tag), compare with the members the pipeline
    /// knows, and queue the difference for it to send (in order with webhooks'
    /// changes, held through outages). A progress bar on a terminal; a summary.
    Sync(audience::SyncArgs),
}

#[derive(Debug, Subcommand)]
enum WorkflowCommand {
    /// Print what to paste into a GHL workflow's Custom Webhook (or Webhook)
    /// action so that it fires a rule: the URL, the key's header, the body.
    Snippet(workflow::SnippetArgs),
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Print a new random API key and the entry to add to the keys' secret (or
    /// CONVERSION_API_KEYS), scoped to the locations given.
    New(keys::NewArgs),
}

#[derive(Debug, Subcommand)]
enum OauthCommand {
    /// Print the link that installs the app, with the scopes the mapping needs.
    Url(oauth::UrlArgs),
}

#[derive(Debug, Subcommand)]
enum DemoCommand {
    /// Send the bundled sample webhook (a contact created), signed with the local
    /// development key, to `ghl-capi serve --dev`.
    Send(serve::SendArgs),
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
    /// List dead letters: reason code, stage, source, reason.
    List(dlq::Args),
    /// Put every dead letter's job back on its queue.
    Redrive(dlq::Args),
}

#[derive(Debug, Subcommand)]
enum MappingCommand {
    /// Validate a mapping file and list its pixels and rules.
    Check {
        /// The mapping (TOML).
        file: PathBuf,
    },
    /// Show the events a webhook (or a GHL workflow's call) would produce under a
    /// mapping, hashed fields beside their normalised values. The webhook's
    /// signature is not checked here.
    Preview(mapping::PreviewArgs),
    /// Write a mapping from a location's real data: asks which pixel, which
    /// pipeline and stages, which calendars, which tags feed which audiences (each
    /// question has a flag), writes it in names, checks it, and previews it
    /// against the location's most recent contacts.
    Init(Box<init::InitArgs>),
    /// Check a mapping and make it the live version: `serve --mapping`'s file, or
    /// with --aws the stack's mapping bucket, which the functions read within a
    /// minute, without a deploy. Shows what changes and asks first.
    Publish(live::PublishArgs),
    /// Replay the recent contacts of locations through two mappings and show,
    /// per rule, which events would start or stop being sent.
    Diff(diff::DiffArgs),
    /// Print the live version (or an older one).
    Pull(live::PullArgs),
    /// List the versions published, newest first.
    History(live::HistoryArgs),
    /// Publish an older version again (by default the one before the live one).
    Rollback(live::RollbackArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Normalize => normalize::run(),
        Command::Map(args) => map::run(&args),
        Command::Audience(AudienceCommand::Sync(args)) => audience::sync(&args),
        Command::Reconcile(args) => reconcile::run(&args),
        Command::Backfill(args) => backfill::run(&args),
        Command::Trace(args) => trace::run(&args),
        Command::Report(args) => report::run(&args),
        Command::Mapping(MappingCommand::Check { file }) => mapping::check(&file),
        Command::Mapping(MappingCommand::Preview(args)) => mapping::preview(&args),
        Command::Mapping(MappingCommand::Init(args)) => init::run(&args),
        Command::Mapping(MappingCommand::Publish(args)) => live::publish(&args),
        Command::Mapping(MappingCommand::Diff(args)) => diff::run(&args),
        Command::Mapping(MappingCommand::Pull(args)) => live::pull(&args),
        Command::Mapping(MappingCommand::History(args)) => live::history(&args),
        Command::Mapping(MappingCommand::Rollback(args)) => live::rollback(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Demo(DemoCommand::Send(args)) => serve::send(&args),
        Command::Dlq(DlqCommand::List(args)) => dlq::list(&args),
        Command::Dlq(DlqCommand::Redrive(args)) => dlq::redrive(&args),
        Command::Keys(KeysCommand::New(args)) => keys::new(&args),
        Command::Oauth(OauthCommand::Url(args)) => oauth::url(&args),
        Command::Verify(args) => verify::run(&args),
        Command::Workflow(WorkflowCommand::Snippet(args)) => workflow::snippet(&args),
    };
    match outcome {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::MalformedInput) => ExitCode::from(3),
        Ok(Outcome::Failed) => ExitCode::FAILURE,
        // Whatever read the output went away (`ghl-capi … | head`): nothing to say.
        Err(err) if closed_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("ghl-capi: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Whether `err` comes from writing to a pipe whose reader has gone.
fn closed_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// How a command that ran to the end went.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Done,
    /// Some input lines could not be read; each was reported.
    MalformedInput,
    /// It ran, and what it checked is not right (each problem was reported).
    Failed,
}
