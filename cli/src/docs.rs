//! The docs held to the command: the CLI reference (`docs/cli.md`) is generated
//! from the command's own definitions and must match them; every relative link and
//! `#anchor` of the READMEs and `docs/` resolves; every `ghl-capi …` line their
//! shell blocks show parses with the command as it is.
//!
//! `UPDATE_DOCS=1 cargo test -p ghl-capi-cli --bin ghl-capi docs` writes the
//! reference anew after a change to a flag or its help.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clap::Parser;

use super::Cli;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `README.md`, `functions/README.md` and every page of `docs/`.
fn pages() -> Vec<PathBuf> {
    let mut pages: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/")
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    pages.sort();
    pages.insert(0, root().join("README.md"));
    pages.insert(1, root().join("functions/README.md"));
    pages
}

/// The lines of `text` outside fenced code blocks, and each block with its
/// language.
fn split(text: &str) -> (Vec<&str>, Vec<(&str, Vec<&str>)>) {
    let (mut prose, mut blocks) = (Vec::new(), Vec::new());
    let mut open: Option<(&str, Vec<&str>)> = None;
    for line in text.lines() {
        match (line.trim_start().strip_prefix("```"), open.take()) {
            (Some(language), None) => open = Some((language.trim(), Vec::new())),
            (Some(_), Some(block)) => blocks.push(block),
            (None, Some((language, mut lines))) => {
                lines.push(line);
                open = Some((language, lines));
            }
            (None, None) => prose.push(line),
        }
    }
    (prose, blocks)
}

/// A heading's anchor, as GitHub makes it: lowercase, letters, digits, `-` and
/// `_` kept, spaces made `-`, the rest dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of `text`'s headings (a repeated one numbered as GitHub does).
fn anchors(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in split(text).0 {
        let Some(heading) = line.strip_prefix('#') else {
            continue;
        };
        let base = anchor(heading.trim_start_matches('#'));
        let mut name = base.clone();
        let mut n = 0;
        while !found.insert(name.clone()) {
            n += 1;
            name = format!("{base}-{n}");
        }
    }
    found
}

/// The targets of `line`'s Markdown links (`[text](target)`), outside inline code.
fn links(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_code = false;
    let bytes: Vec<char> = line.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            '`' => in_code = !in_code,
            ']' if !in_code && bytes.get(i + 1) == Some(&'(') => {
                let rest: String = bytes[i + 2..].iter().collect();
                if let Some(end) = rest.find(')') {
                    out.push(rest[..end].to_owned());
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

#[test]
fn every_relative_link_and_anchor_of_the_docs_resolves() {
    let mut broken = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).expect("readable");
        let dir = page.parent().expect("a folder");
        for line in split(&text).0 {
            for target in links(line) {
                if target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                let (path, fragment) = target.split_once('#').unwrap_or((&target, ""));
                let file = if path.is_empty() {
                    page.clone()
                } else {
                    dir.join(path)
                };
                let resolves = file.exists()
                    && (fragment.is_empty()
                        || std::fs::read_to_string(&file)
                            .is_ok_and(|t| anchors(&t).contains(fragment)));
                if !resolves {
                    broken.push(format!("{}: {target}", page.display()));
                }
            }
        }
    }
    assert!(
        broken.is_empty(),
        "links that do not resolve:\n{}",
        broken.join("\n")
    );
}

/// `line` cut into words as a shell would, roughly: quotes kept together, and a
/// `<placeholder>` one word however many spaces it holds.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q && q != '<' => quote = None,
            (Some('<'), '>') => {
                word.push(c);
                quote = None;
            }
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => quote = Some(c),
            (None, '<') => {
                word.push(c);
                quote = Some('<');
            }
            (None, c) if c.is_whitespace() => {
                if !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
            }
            (None, c) => word.push(c),
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// A variable's name: what a shell takes before `=` in `NAME=value`.
fn assignment(word: &str) -> Option<(&str, &str)> {
    let (name, value) = word.split_once('=')?;
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_<>".contains(c));
    plain.then_some((name, value))
}

/// Variables a shell line sets, by name.
type Variables = Vec<(String, String)>;

/// What `ghl-capi` gets from one shell command line, if it runs it: the variables
/// set before it, and its arguments (after `--` of `cargo run -p ghl-capi-cli`).
fn arguments(command: &str) -> Option<(Variables, Vec<String>)> {
    let mut words = words(command).into_iter().peekable();
    let mut set = Vec::new();
    while let Some((name, value)) = words.peek().and_then(|w| assignment(w)) {
        set.push((name.to_owned(), value.to_owned()));
        words.next();
    }
    let mut words: Vec<String> = words.collect();
    match words.first().map(String::as_str) {
        Some("ghl-capi") => Some((set, words.split_off(1))),
        Some("cargo") if words.iter().any(|w| w == "ghl-capi-cli") => {
            let at = words.iter().position(|w| w == "--")?;
            Some((set, words.split_off(at + 1)))
        }
        _ => None,
    }
}

/// Each option's variable, as the command reads it (`GHL_CLIENT_ID` for
/// `--client-id`), over every subcommand.
fn variables() -> Vec<(String, String)> {
    fn walk(command: &clap::Command, found: &mut Vec<(String, String)>) {
        for arg in command.get_arguments() {
            if let (Some(env), Some(long)) = (arg.get_env(), arg.get_long()) {
                found.push((env.to_string_lossy().into_owned(), long.to_owned()));
            }
        }
        for sub in command.get_subcommands() {
            walk(sub, found);
        }
    }
    let mut found = Vec::new();
    walk(&<Cli as clap::CommandFactory>::command(), &mut found);
    found
}

/// One `ghl-capi` line the docs show: where, and the arguments it runs with, a
/// variable the line (or an `export` above it in its block) sets standing for
/// the option that reads it.
struct Shown {
    place: String,
    args: Vec<String>,
}

/// Every shell command line of the docs' shell blocks that runs `ghl-capi`:
/// continuations joined, prompts and comments dropped, each command of a pipe.
fn command_lines() -> Vec<Shown> {
    let options = variables();
    let mut found = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).expect("readable");
        for (language, lines) in split(&text).1 {
            if !matches!(language, "sh" | "bash" | "console" | "shell") {
                continue;
            }
            let joined = lines.join("\n").replace("\\\n", " ");
            let mut exported = Variables::new();
            for line in joined.lines() {
                let line = line.trim().trim_start_matches("$ ");
                let line = line.split(" #").next().unwrap_or_default();
                if let Some(rest) = line.strip_prefix("export ") {
                    exported.extend(
                        words(rest)
                            .iter()
                            .filter_map(|w| assignment(w))
                            .map(|(n, v)| (n.to_owned(), v.to_owned())),
                    );
                    continue;
                }
                for command in line.split('|') {
                    let Some((set, mut args)) = arguments(command.trim()) else {
                        continue;
                    };
                    for (name, value) in exported.iter().chain(&set) {
                        for (_, long) in options.iter().filter(|(env, _)| env == name) {
                            if !args.iter().any(|a| a == &format!("--{long}")) {
                                args.extend([format!("--{long}"), value.clone()]);
                            }
                        }
                    }
                    found.push(Shown {
                        place: format!("{}: {}", page.display(), command.trim()),
                        args,
                    });
                }
            }
        }
    }
    found
}

#[test]
fn every_command_line_the_docs_show_parses_with_the_command() {
    let commands = command_lines();
    assert!(
        commands.len() > 20,
        "the docs show commands: {}",
        commands.len()
    );
    let refused: Vec<String> = commands
        .iter()
        .filter_map(|shown| {
            let line = std::iter::once("ghl-capi".to_owned()).chain(shown.args.iter().cloned());
            Cli::try_parse_from(line).err().map(|e| {
                format!(
                    "{}\n  {}",
                    shown.place,
                    e.render().to_string().lines().next().unwrap_or_default()
                )
            })
        })
        .collect();
    assert!(
        refused.is_empty(),
        "command lines the command refuses:\n{}",
        refused.join("\n")
    );
}

/// The reference, as the command defines it.
fn reference() -> String {
    let options = clap_markdown::MarkdownOptions::new()
        .title("The `ghl-capi` command".to_owned())
        .show_footer(false);
    clap_markdown::help_markdown_custom::<Cli>(&options)
}

#[test]
fn the_cli_reference_is_what_the_command_says() {
    let path = root().join("docs/cli.md");
    let generated = reference();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, &generated).expect("written");
    }
    let kept = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        kept == generated,
        "docs/cli.md is not what the command says: regenerate it with \
         UPDATE_DOCS=1 cargo test -p ghl-capi-cli --bin ghl-capi docs"
    );
}

#[test]
fn anchors_and_words_are_read_as_github_and_a_shell_read_them() {
    assert_eq!(
        anchor(" When a partner has a bad hour: holding, not dropping"),
        "when-a-partner-has-a-bad-hour-holding-not-dropping"
    );
    assert_eq!(anchor(" `ghl-capi verify`"), "ghl-capi-verify");
    assert_eq!(
        arguments(
            r#"GHL_TOKEN_<loc>=pit-… ghl-capi oauth url --redirect-uri https://<your API>/cb"#
        ),
        Some((
            vec![("GHL_TOKEN_<loc>".into(), "pit-…".into())],
            vec![
                "oauth".into(),
                "url".into(),
                "--redirect-uri".into(),
                "https://<your API>/cb".into()
            ]
        ))
    );
    assert_eq!(
        arguments("cargo run --release -p ghl-capi-cli -- demo send"),
        Some((vec![], vec!["demo".into(), "send".into()]))
    );
    assert!(
        variables().contains(&("GHL_CLIENT_ID".into(), "client-id".into())),
        "an option's variable stands for it"
    );
    assert_eq!(
        arguments("aws secretsmanager put-secret-value --secret-id ghl-capi/x"),
        None
    );
}
