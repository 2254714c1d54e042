//! The docs name everything a reader must be able to look up, read from the code itself, so that
//! a new command, flag, metric, config key or module cannot land undocumented:
//!
//! - every subcommand (`policy suggest` too) in docs/operations.md, every long flag in docs/;
//! - every metric family the guard registers in docs/operations.md's metrics table;
//! - every key the config file accepts, as `section.key`, in docs/configuration.md — the keys
//!   asked of the config parser itself: a table given one unknown key is refused with the list of
//!   the keys it takes (the raw sections deny unknown fields), and each key that is itself a table
//!   or a list of tables is asked the same way;
//! - every module file under `src/` and `crates/*/src/` in docs/architecture.md;
//! - every relative link of README.md and docs/ leads to a file, and to a heading of it.
//!
//! Each check names everything missing at once. No root, no network.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clap::CommandFactory;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let path = repo().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The Markdown files under docs/, by path relative to the repository.
fn doc_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(repo().join("docs"))
        .expect("docs/ exists")
        .map(|e| e.expect("docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .map(|p| format!("docs/{}", p.file_name().unwrap().to_string_lossy()))
        .collect();
    files.sort();
    files
}

/// Every docs/ file, one after the other.
fn all_docs() -> String {
    doc_files()
        .iter()
        .map(|f| read(f))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `needle` occurs in `text` as a whole word: not inside a longer name (letters, digits, `-`,
/// `_` on either side).
fn mentions(text: &str, needle: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    text.match_indices(needle).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + needle.len()..].chars().next();
        !before.is_some_and(word) && !after.is_some_and(word)
    })
}

/// The section of `doc` under the heading `heading` (`## Metrics`), up to the next heading of the
/// same or a higher level.
fn section<'a>(doc: &'a str, heading: &str) -> &'a str {
    let level = heading.chars().take_while(|&c| c == '#').count();
    let start = doc
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("no heading `{heading}`"))
        + heading.len()
        + 2;
    let rest = &doc[start..];
    let end = rest
        .match_indices("\n#")
        .find(|(i, _)| {
            let hashes = rest[i + 1..].chars().take_while(|&c| c == '#').count();
            hashes <= level && rest[i + 1 + hashes..].starts_with(' ')
        })
        .map_or(rest.len(), |(i, _)| i);
    &rest[..end]
}

fn fail_if_missing(missing: &[String], what: &str, total: usize) {
    assert!(
        missing.is_empty(),
        "{} of {total} {what}:\n  {}",
        missing.len(),
        missing.join("\n  ")
    );
}

/// Subcommand paths (`iptables install`) and long flags (`--dry-run`) of `cmd` and below.
fn walk(
    cmd: &clap::Command,
    path: &str,
    commands: &mut BTreeSet<String>,
    flags: &mut BTreeSet<String>,
) {
    for arg in cmd.get_arguments() {
        if let Some(long) = arg.get_long() {
            if long != "help" && long != "version" {
                flags.insert(format!("--{long}"));
            }
        }
    }
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        let full = if path.is_empty() {
            sub.get_name().to_owned()
        } else {
            format!("{path} {}", sub.get_name())
        };
        commands.insert(full.clone());
        walk(sub, &full, commands, flags);
    }
}

#[test]
fn every_command_and_flag_is_documented() {
    let (mut commands, mut flags) = (BTreeSet::new(), BTreeSet::new());
    walk(
        &imds_guard::cli::Cli::command(),
        "",
        &mut commands,
        &mut flags,
    );
    assert!(
        commands.len() >= 10 && flags.len() >= 20,
        "the command line looks too small to be the real one: {commands:?} {flags:?}"
    );
    assert!(
        commands.contains("policy suggest"),
        "nested subcommands are walked: {commands:?}"
    );

    let operations = read("docs/operations.md");
    let missing: Vec<String> = commands
        .iter()
        .filter(|c| !mentions(&operations, &format!("imds-guard {c}")))
        .map(|c| format!("imds-guard {c}"))
        .collect();
    fail_if_missing(
        &missing,
        "commands are not in docs/operations.md (as `imds-guard COMMAND`, e.g. in \"Command line\")",
        commands.len(),
    );

    let docs = all_docs();
    let missing: Vec<String> = flags
        .iter()
        .filter(|f| !mentions(&docs, f))
        .cloned()
        .collect();
    fail_if_missing(&missing, "flags are not in docs/", flags.len());
}

/// The name a scrape shows for a family: a counter's series end in `_total`, an info's in
/// `_info`; the others are the family's name.
fn shown_name(family: &str, kind: &str) -> String {
    match kind {
        "counter" if !family.ends_with("_total") => format!("{family}_total"),
        "info" => format!("{family}_info"),
        _ => family.to_owned(),
    }
}

/// `(family, kind)` of each `# TYPE` line of an OpenMetrics exposition.
fn typed_families(text: &str) -> BTreeSet<(String, String)> {
    text.lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .map(|rest| {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            (name.to_owned(), kind.to_owned())
        })
        .collect()
}

/// The string literal at the start of `text` (after blanks), and what follows it.
fn string_literal(text: &str) -> Option<(String, &str)> {
    let text = text.trim_start().strip_prefix('"')?;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => return Some((text[..i].to_owned(), &text[i + 1..])),
            _ => escaped = false,
        }
    }
    None
}

/// `(family, kind)` of every metric `src/metrics.rs` registers, read from its source: the
/// registry's prefix, each `registry.register("name", "help", metric)`, and the kind from the
/// `let metric = …;` that made it. A family appears in an exposition only once it has a series,
/// so the exposition alone cannot list them all; what it does list must agree with this reading.
fn registered_families() -> BTreeSet<(String, String)> {
    let source = read("src/metrics.rs");
    for unread in ["register_with_unit", "sub_registry", "register_collector"] {
        assert!(
            !source.contains(unread),
            "src/metrics.rs uses `{unread}`, which this reading of it does not follow: teach it"
        );
    }
    let prefixes: Vec<&str> = source.split("Registry::with_prefix(").skip(1).collect();
    assert_eq!(prefixes.len(), 1, "one prefixed registry in src/metrics.rs");
    let (prefix, _) = string_literal(prefixes[0]).expect("the registry's prefix");
    let mut families = BTreeSet::new();
    for call in source.split("registry.register(").skip(1) {
        let (name, rest) = string_literal(call).expect("a metric's name");
        let (_help, rest) = string_literal(rest.trim_start().strip_prefix(',').unwrap_or(rest))
            .expect("a metric's help");
        let metric = rest
            .trim_start()
            .trim_start_matches(',')
            .split(')')
            .next()
            .unwrap()
            .trim()
            .trim_end_matches(".clone(")
            .trim();
        let made = source
            .split(&format!("let {metric} = "))
            .nth(1)
            .and_then(|rest| rest.split(';').next())
            .unwrap_or_else(|| panic!("no `let {metric} = …;` in src/metrics.rs"));
        let last = |kind: &str| made.rfind(kind).map_or(-1, |i| i as isize);
        let kind = if made.contains("Histogram") {
            "histogram"
        } else if last("Counter") > last("Gauge") {
            "counter"
        } else if last("Gauge") >= 0 {
            "gauge"
        } else {
            panic!("the kind of `{metric}` (`{made}`) is not read here: teach it")
        };
        families.insert((format!("{prefix}_{name}"), kind.to_owned()));
    }
    families
}

#[test]
fn every_metric_family_is_in_the_metrics_table() {
    let registered = registered_families();
    let exposed = typed_families(&imds_guard::metrics::Metrics::new().encode());
    let unread: Vec<&(String, String)> = exposed.difference(&registered).collect();
    assert!(
        !exposed.is_empty() && unread.is_empty(),
        "the reading of src/metrics.rs disagrees with the guard's own exposition: it missed \
         {unread:?} (read: {registered:?})"
    );
    assert!(
        registered.len() >= 20,
        "suspiciously few metric families read from src/metrics.rs: {registered:?}"
    );
    let operations = read("docs/operations.md");
    let table = section(&operations, "## Metrics");
    let missing: Vec<String> = registered
        .iter()
        .map(|(family, kind)| shown_name(family, kind))
        .filter(|name| !table.contains(&format!("| `{name}` |")))
        .collect();
    fail_if_missing(
        &missing,
        "metric families are not rows of docs/operations.md's \"Metrics\" table",
        registered.len(),
    );
}

/// A key of the config file: its path from the top, and whether it is a list of tables there.
#[derive(Clone)]
struct Step {
    name: String,
    list: bool,
}

const PROBE: &str = "__docs_probe__";

/// The config text that puts one unknown key at `path` (a table, or the first table of a list).
fn probe_at(path: &[Step]) -> String {
    let Some((first, rest)) = path.split_first() else {
        return format!("{PROBE} = 1\n");
    };
    let mut value = format!("{{ {PROBE} = 1 }}");
    for step in rest.iter().rev() {
        let wrapped = if step.list {
            format!("[{value}]")
        } else {
            value
        };
        value = format!("{{ {} = {wrapped} }}", step.name);
    }
    if first.list {
        value = format!("[{value}]");
    }
    format!("{} = {value}\n", first.name)
}

/// The keys the parser says the table at `path` takes, when it refuses the unknown key there;
/// `None` when it refuses the text for another reason, or takes it (the value there is not a
/// table of keys).
fn keys_at(path: &[Step]) -> Option<Vec<String>> {
    let text = probe_at(path);
    // Taken: the value there is free-form (a map of anything), not a table of keys.
    let error = imds_guard::config::parse(&text).err()?.to_string();
    let marker = format!("unknown field `{PROBE}`");
    let rest = &error[error.find(&marker)? + marker.len()..];
    let rest = rest.split(" (line ").next().unwrap_or(rest);
    if rest.contains("there are no fields") {
        return Some(Vec::new());
    }
    let keys: Vec<String> = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    assert!(
        !keys.is_empty(),
        "cannot read the keys out of the parser's refusal: {error}"
    );
    Some(keys)
}

/// Every key below `path`, as dotted paths (`inventory.pods.owner.kind`), tables and lists of
/// tables included.
fn config_keys(path: &[Step], out: &mut Vec<String>) {
    let keys = keys_at(path).unwrap_or_else(|| {
        panic!(
            "the parser did not refuse an unknown key with the keys it takes:\n{}",
            probe_at(path)
        )
    });
    for key in keys {
        let mut below = path.to_vec();
        below.push(Step {
            name: key.clone(),
            list: false,
        });
        let dotted = below
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(".");
        out.push(dotted);
        if below.len() >= 4 {
            continue;
        }
        let as_table = keys_at(&below).is_some();
        below.last_mut().unwrap().list = true;
        let as_list = !as_table && keys_at(&below).is_some();
        if as_table || as_list {
            below.last_mut().unwrap().list = as_list;
            config_keys(&below, out);
        }
    }
}

#[test]
fn every_config_key_is_in_the_configuration_docs() {
    let mut keys = Vec::new();
    config_keys(&[], &mut keys);
    let sections: Vec<&String> = keys.iter().filter(|k| !k.contains('.')).collect();
    for expected in ["server", "upstream", "inventory", "rules", "netfilter"] {
        assert!(
            sections.iter().any(|s| *s == expected),
            "the probe of the config parser missed the section `{expected}`: {sections:?}"
        );
    }
    let nested = keys.iter().filter(|k| k.contains('.')).count();
    assert!(
        sections.len() >= 8 && nested >= 50,
        "suspiciously few config keys found ({} sections, {nested} keys): the probe of the \
         config parser is broken: {keys:?}",
        sections.len()
    );
    for expected in [
        "upstream.emulator",
        "netfilter.manage",
        "inventory.pods.owner.kind",
    ] {
        assert!(
            keys.iter().any(|k| k == expected),
            "the probe of the config parser missed `{expected}`: {keys:?}"
        );
    }

    // A section is documented by its keys; one without keys by its name.
    let configuration = read("docs/configuration.md");
    let missing: Vec<String> = keys
        .iter()
        .filter(|key| {
            if key.contains('.') {
                !configuration.contains(&format!("`{key}`"))
            } else if keys.iter().any(|k| k.starts_with(&format!("{key}."))) {
                false
            } else {
                ![format!("[{key}]"), format!("[[{key}]]"), format!("`{key}`")]
                    .iter()
                    .any(|form| configuration.contains(form.as_str()))
            }
        })
        .cloned()
        .collect();
    fail_if_missing(
        &missing,
        "config keys are not in docs/configuration.md (as `section.key`)",
        keys.len(),
    );
}

/// Whether a file under a crate's `src/` is test code: `tests.rs`, `*_tests.rs`, or anything in
/// a `tests/` directory.
fn is_test_file(relative: &Path) -> bool {
    let stem = relative.file_stem().unwrap_or_default().to_string_lossy();
    stem == "tests"
        || stem.ends_with("_tests")
        || relative
            .parent()
            .is_some_and(|dir| dir.components().any(|c| c.as_os_str() == "tests"))
}

/// Every Rust module file below `dir`, with its path relative to `dir`.
fn rust_files(dir: &Path, below: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir.join(below)) else {
        return;
    };
    for entry in entries {
        let entry = entry.expect("directory entry");
        let relative = below.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            rust_files(dir, &relative, out);
        } else if relative.extension().is_some_and(|x| x == "rs") {
            out.push(relative);
        }
    }
}

/// The source roots: `src/` and each `crates/*/src/`, relative to the repository.
fn source_roots() -> Vec<PathBuf> {
    let mut roots = vec![PathBuf::from("src")];
    if let Ok(crates) = std::fs::read_dir(repo().join("crates")) {
        let mut found: Vec<PathBuf> = crates
            .map(|e| {
                Path::new("crates")
                    .join(e.expect("crates/ entry").file_name())
                    .join("src")
            })
            .filter(|src| repo().join(src).is_dir())
            .collect();
        found.sort();
        roots.extend(found);
    }
    roots
}

#[test]
fn every_module_is_in_the_architecture_docs() {
    let architecture = read("docs/architecture.md");
    let mut modules = Vec::new();
    for root in source_roots() {
        let mut files = Vec::new();
        rust_files(&repo().join(&root), Path::new(""), &mut files);
        for relative in files {
            let file = relative.file_name().unwrap().to_string_lossy();
            if file == "lib.rs" || file == "main.rs" || is_test_file(&relative) {
                continue;
            }
            let name = if file == "mod.rs" {
                match relative.parent().and_then(Path::file_name) {
                    Some(dir) => dir.to_string_lossy().into_owned(),
                    None => continue,
                }
            } else {
                relative.file_stem().unwrap().to_string_lossy().into_owned()
            };
            let full = root.join(&relative);
            modules.push((
                name,
                full.display().to_string(),
                relative.display().to_string(),
            ));
        }
    }
    modules.sort();
    assert!(
        modules.len() >= 60,
        "suspiciously few modules found under src/ and crates/*/src/: {modules:?}"
    );
    let missing: Vec<String> = modules
        .iter()
        .filter(|(name, full, relative)| {
            !architecture.contains(&format!("`{name}`"))
                && !architecture.contains(full.as_str())
                && !architecture.contains(relative.as_str())
        })
        .map(|(name, full, _)| format!("{full} (`{name}`)"))
        .collect();
    fail_if_missing(
        &missing,
        "modules are not named in docs/architecture.md (as `name`, or by path)",
        modules.len(),
    );
}

/// GitHub's anchor for a heading: lower case, spaces to `-`, punctuation but `-` and `_` dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// `text` without its fenced code blocks.
fn prose(text: &str) -> String {
    let mut out = String::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn anchors(text: &str) -> BTreeSet<String> {
    prose(text)
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| anchor(l.trim_start_matches('#')))
        .collect()
}

#[test]
fn every_link_leads_somewhere() {
    let mut files = vec!["README.md".to_owned()];
    files.extend(doc_files());
    let mut links = 0;
    let mut broken = Vec::new();
    for file in &files {
        let text = prose(&read(file));
        for (i, _) in text.match_indices("](") {
            let target = &text[i + 2..];
            let Some(end) = target.find(')') else {
                continue;
            };
            let target = &target[..end];
            if target.contains("://") || target.starts_with("mailto:") || target.contains(' ') {
                continue;
            }
            links += 1;
            let (path, fragment) = target.split_once('#').unwrap_or((target, ""));
            let linked = if path.is_empty() {
                PathBuf::from(file)
            } else {
                Path::new(file).parent().unwrap().join(path)
            };
            let on_disk = repo().join(&linked);
            if !on_disk.exists() {
                broken.push(format!("{file}: {target} (no such file)"));
                continue;
            }
            if !fragment.is_empty() {
                let text = std::fs::read_to_string(&on_disk).unwrap_or_default();
                if !anchors(&text).contains(fragment) {
                    broken.push(format!("{file}: {target} (no such heading)"));
                }
            }
        }
    }
    assert!(links >= 20, "suspiciously few links found: {links}");
    fail_if_missing(&broken, "links lead nowhere", links);
}
