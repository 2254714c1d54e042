//! The layering holds: core ← config ← adapters ← app ← main, with no cycle between modules; the
//! emulator is a crate the guard takes only as an option; no module name means two things.
//!
//! The core is its own crate (`crates/core`): it cannot import the main crate, and this test
//! checks that it depends on nothing that does IO. Inside the main crate, every `crate::…` path a
//! module names is checked against the layer table below: a module may name its own layer or one
//! beneath it, never one above, and the modules of one layer may not name each other in a circle.
//! A new top-level module must be given a layer here, or this test fails.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Layers from the bottom up. `core` holds the main crate's re-exports of the core crate.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "core",
        &[
            "bucket",
            "cacheable",
            "cgroup",
            "disposition",
            "cloud",
            "imds",
            "index",
            "policy",
            "query",
            "target",
        ],
    ),
    ("config", &["config"]),
    (
        "adapters",
        &[
            "audit",
            "file_watch",
            "front",
            "interception",
            "inventory",
            "conn_caps",
            "listen",
            "metrics",
            "netfilter",
            "respond",
            "taint",
            "upstream",
        ],
    ),
    (
        "app",
        &["admin", "canary", "cli", "proxy", "reload", "server"],
    ),
];

/// What the core crate may depend on: nothing that does IO.
const CORE_DEPENDENCIES: &[&str] = &["parking_lot", "thiserror"];

/// Names whose appearance in the core's code means IO or an adapter's types.
const NOT_IN_CORE: &[&str] = &[
    "tokio",
    "hyper",
    "kube",
    "k8s_openapi",
    "http::",
    "std::fs",
    "std::process",
    "std::net::Tcp",
    "std::net::Udp",
    "imds_guard::",
];

/// `line` with the contents of its string literals blanked out.
fn without_strings(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in line.chars() {
        match (in_string, escaped, c) {
            (true, false, '\\') => escaped = true,
            (true, false, '"') => {
                in_string = false;
                out.push(c);
            }
            (true, _, _) => escaped = false,
            (false, _, '"') => {
                in_string = true;
                out.push(c);
            }
            (false, _, _) => out.push(c),
        }
    }
    out
}

#[test]
fn string_literals_are_not_code() {
    assert_eq!(
        without_strings(r#"let x = "kube-env"; kube::Api"#),
        r#"let x = ""; kube::Api"#
    );
    assert_eq!(without_strings(r#""a\"b" tokio"#), r#""" tokio"#);
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`src/proxy/relay.rs` → `proxy`;
/// `src/cli_tests.rs`, included by `cli.rs`, → `cli`).
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next().unwrap().as_os_str();
    let name = first.to_str().unwrap().trim_end_matches(".rs");
    name.strip_suffix("_tests").unwrap_or(name).to_owned()
}

/// Every top-level module a text names with `crate::`, grouped imports included.
fn named_modules(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    // Comments name modules without importing them.
    let code: String = text
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().last();
        rest = &rest[at + "crate::".len()..];
        // `imds_guard_core::` and the like are other crates, not `crate::`.
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            out.insert(name);
        }
    }
    out
}

/// The import graph of the main crate's top-level modules, from its sources.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = root().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let module = module_of(&src, &file);
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let named = named_modules(&text);
        graph
            .entry(module.clone())
            .or_default()
            .extend(named.into_iter().filter(|n| *n != module));
    }
    graph
}

/// Every way `graph` breaks the layers: unknown modules, imports upwards, cycles.
fn violations(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let layer_of: BTreeMap<&str, usize> = LAYERS
        .iter()
        .enumerate()
        .flat_map(|(i, (_, modules))| modules.iter().map(move |m| (*m, i)))
        .collect();
    let mut out = Vec::new();
    for (module, named) in graph {
        let Some(&mine) = layer_of.get(module.as_str()) else {
            out.push(format!(
                "src/{module}: not in the layer table of tests/layers.rs"
            ));
            continue;
        };
        for other in named {
            match layer_of.get(other.as_str()) {
                None => out.push(format!("{module} names crate::{other}, which has no layer")),
                Some(&theirs) if theirs > mine => out.push(format!(
                    "{module} ({}) names crate::{other} ({}), a layer above it",
                    LAYERS[mine].0, LAYERS[theirs].0
                )),
                Some(_) => {}
            }
        }
    }
    // Cycles: a depth-first walk that meets a module still on its path.
    fn walk<'a>(
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        at: &'a str,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
        out: &mut Vec<String>,
    ) {
        if let Some(i) = path.iter().position(|m| *m == at) {
            let mut cycle = path[i..].to_vec();
            cycle.push(at);
            out.push(format!("import cycle: {}", cycle.join(" → ")));
            return;
        }
        if !done.insert(at) {
            return;
        }
        path.push(at);
        for next in graph.get(at).into_iter().flatten() {
            walk(graph, next, path, done, out);
        }
        path.pop();
    }
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        walk(graph, module, &mut Vec::new(), &mut done, &mut out);
    }
    out
}

#[test]
fn the_main_crate_imports_only_downwards_and_without_cycles() {
    let graph = graph();
    assert!(
        graph.contains_key("proxy") && graph.contains_key("config"),
        "{graph:?}"
    );
    let found = violations(&graph);
    assert!(found.is_empty(), "layering broken:\n{}", found.join("\n"));
}

#[test]
fn the_checker_sees_upward_imports_cycles_and_unknown_modules() {
    let graph = |edges: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (from, to) in edges {
            g.entry(from.to_string())
                .or_default()
                .insert(to.to_string());
            g.entry(to.to_string()).or_default();
        }
        g
    };
    assert!(violations(&graph(&[("proxy", "config"), ("config", "policy")])).is_empty());
    let up = violations(&graph(&[("config", "inventory")]));
    assert!(up.iter().any(|v| v.contains("a layer above")), "{up:?}");
    let cycle = violations(&graph(&[
        ("inventory", "metrics"),
        ("metrics", "inventory"),
    ]));
    assert!(
        cycle.iter().any(|v| v.starts_with("import cycle")),
        "{cycle:?}"
    );
    let unknown = violations(&graph(&[("gadget", "config")]));
    assert!(
        unknown.iter().any(|v| v.contains("not in the layer table")),
        "{unknown:?}"
    );
    assert_eq!(
        named_modules("use crate::{audit, config::Config};\nlet x = crate::proxy::y; // crate::server\nimds_guard_core::policy"),
        BTreeSet::from(["audit".to_owned(), "config".to_owned(), "proxy".to_owned()])
    );
}

#[test]
fn the_core_crate_does_no_io() {
    let core = root().join("crates/core");
    let manifest = std::fs::read_to_string(core.join("Cargo.toml")).unwrap();
    let manifest: toml::Table = manifest.parse().unwrap();
    for section in ["dependencies", "build-dependencies"] {
        let Some(deps) = manifest.get(section).and_then(|d| d.as_table()) else {
            continue;
        };
        for name in deps.keys() {
            assert!(
                CORE_DEPENDENCIES.contains(&name.as_str()),
                "crates/core [{section}] {name}: the core depends on nothing that does IO ({CORE_DEPENDENCIES:?})"
            );
        }
    }
    let mut files = Vec::new();
    rust_files(&core.join("src"), &mut files);
    assert!(files.len() > 5, "{files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            // Names in string literals (`kube-env`, a GCP path) are data, not code.
            let code = without_strings(line.split("//").next().unwrap_or(""));
            for name in NOT_IN_CORE {
                assert!(
                    !code.contains(name),
                    "{}:{}: the core names `{name}`: {line}",
                    file.display(),
                    n + 1
                );
            }
        }
    }
}

/// Module names that may appear in more than one crate, each with the one meaning it has in all
/// of them. Empty today: every module name belongs to one crate.
const SHARED_MODULE_NAMES: &[(&str, &str)] = &[];

/// Every module of `dir` (a crate's `src`): file stems, and the directory's name for `mod.rs`;
/// test-only files left out.
fn module_names(dir: &Path) -> BTreeSet<String> {
    let mut files = Vec::new();
    rust_files(dir, &mut files);
    files
        .iter()
        .filter(|f| {
            !f.strip_prefix(dir)
                .unwrap()
                .components()
                .any(|c| c.as_os_str() == "tests")
        })
        .filter_map(|f| {
            let stem = f.file_stem()?.to_str()?;
            let name = match stem {
                "lib" | "main" | "tests" => return None,
                "mod" => f.parent()?.file_name()?.to_str()?,
                s if s.ends_with("_tests") => return None,
                s => s,
            };
            Some(name.to_owned())
        })
        .collect()
}

/// One name, one meaning: a module name used by two crates of the workspace must be listed in
/// [`SHARED_MODULE_NAMES`] with the one meaning it has in both (as `front` is the front in the
/// main crate's `front/` and `config/front.rs`, a crate boundary is where two meanings hide).
#[test]
fn no_module_name_means_two_things_across_crates() {
    let mut crates = vec![("imds-guard".to_owned(), root().join("src"))];
    for entry in std::fs::read_dir(root().join("crates")).unwrap() {
        let dir = entry.unwrap().path();
        crates.push((
            dir.file_name().unwrap().to_str().unwrap().to_owned(),
            dir.join("src"),
        ));
    }
    assert!(crates.len() >= 4, "{crates:?}");
    let mut owners: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, src) in &crates {
        let modules = module_names(src);
        assert!(
            !modules.is_empty(),
            "{name}: no modules in {}",
            src.display()
        );
        for module in modules {
            owners.entry(module).or_default().push(name.clone());
        }
    }
    let shared: Vec<String> = owners
        .iter()
        .filter(|(module, crates)| {
            crates.len() > 1 && !SHARED_MODULE_NAMES.iter().any(|(m, _)| m == module)
        })
        .map(|(module, crates)| format!("`{module}` in {}", crates.join(", ")))
        .collect();
    assert!(
        shared.is_empty(),
        "module names used by more than one crate (rename one, or list the name in \
         SHARED_MODULE_NAMES with its one meaning):\n{}",
        shared.join("\n")
    );
    assert!(
        owners.contains_key("proxy") && owners.contains_key("handler"),
        "the scan found too little: {owners:?}"
    );
}

/// The emulator is not part of the guard: the product reaches it only through its `emulator`
/// feature (so the image, built without it, has none), and neither it nor the shared connection
/// crate can reach back into the guard.
#[test]
fn the_emulator_is_an_optional_crate_of_its_own() {
    let manifest = |path: &str| -> toml::Table {
        std::fs::read_to_string(root().join(path))
            .unwrap()
            .parse()
            .unwrap()
    };
    let main = manifest("Cargo.toml");
    let emulator = &main["dependencies"]["imds-guard-emulator"];
    assert_eq!(
        emulator.get("optional").and_then(|o| o.as_bool()),
        Some(true),
        "{emulator}"
    );
    assert_eq!(
        main["features"]["emulator"].as_array().unwrap(),
        &vec![toml::Value::from("dep:imds-guard-emulator")]
    );
    for path in [
        "crates/emulator/Cargo.toml",
        "crates/net/Cargo.toml",
        "crates/core/Cargo.toml",
    ] {
        let deps = manifest(path)["dependencies"].as_table().unwrap().clone();
        assert!(
            !deps.contains_key("imds-guard"),
            "{path} depends on the guard"
        );
    }
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    let outside: Vec<String> = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            text.lines().any(|l| {
                let code = without_strings(l.split("//").next().unwrap_or(""));
                code.contains("imds_guard_emulator")
            }) && !text.contains("cfg(feature = \"emulator\")")
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        outside.is_empty(),
        "files naming the emulator crate without the feature gate: {outside:?}"
    );
}

/// One toolchain: rust-toolchain.toml's, which the Dockerfile builds with too; CI links it to the
/// machine's stable toolchain when that is the same version (.ci/run).
#[test]
fn the_toolchain_is_pinned_once() {
    let pin: toml::Table = std::fs::read_to_string(root().join("rust-toolchain.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let channel = pin["toolchain"]["channel"].as_str().unwrap();
    assert_eq!(
        channel.split('.').count(),
        3,
        "a full version, not {channel:?}"
    );
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    assert!(
        dockerfile
            .lines()
            .any(|l| l == format!("ARG RUST_VERSION={channel}")),
        "the Dockerfile's RUST_VERSION must be rust-toolchain.toml's {channel}"
    );
    let manifest: toml::Table = std::fs::read_to_string(root().join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let oldest = manifest["package"]["rust-version"].as_str().unwrap();
    let version = |v: &str| -> Vec<u32> { v.split('.').map(|n| n.parse().unwrap()).collect() };
    assert!(version(oldest) <= version(channel), "{oldest} > {channel}");
}

/// The `mod NAME;` lines of a test program's root file, without those loaded from another path
/// (`#[path = …]`, shared helpers), whose files are returned apart.
fn declared_modules(text: &str) -> (BTreeSet<String>, Vec<String>) {
    let (mut modules, mut paths) = (BTreeSet::new(), Vec::new());
    let mut path = None;
    for line in text.lines() {
        if let Some(p) = line
            .strip_prefix("#[path = \"")
            .and_then(|l| l.strip_suffix("\"]"))
        {
            path = Some(p.to_owned());
        } else if let Some(name) = line.strip_prefix("mod ").and_then(|l| l.strip_suffix(';')) {
            match path.take() {
                Some(p) => paths.push(p),
                None => {
                    modules.insert(name.to_owned());
                }
            }
        }
    }
    (modules, paths)
}

/// Cargo finds no test by itself (`autotests = false`): a file in `tests/` that neither program
/// names would never be built or run. Each is named by exactly one, and each name is a file.
#[test]
fn every_test_file_is_a_module_of_exactly_one_tier() {
    let tests = root().join("tests");
    let read = |name: &str| std::fs::read_to_string(tests.join(name)).unwrap();
    let (quick, quick_paths) = declared_modules(&read("quick.rs"));
    let (e2e, e2e_paths) = declared_modules(&read("e2e.rs"));
    let mut files = BTreeSet::new();
    for entry in std::fs::read_dir(&tests).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_str().unwrap().to_owned();
        if path.extension().is_some_and(|e| e == "rs") && stem != "quick" && stem != "e2e" {
            files.insert(stem);
        }
    }
    let mut problems = Vec::new();
    for file in &files {
        match (quick.contains(file), e2e.contains(file)) {
            (false, false) => problems.push(format!("tests/{file}.rs is in neither tier")),
            (true, true) => problems.push(format!("tests/{file}.rs is in both tiers")),
            _ => {}
        }
    }
    let helpers = ["support", "netfilter_netns", "bypass_model", "cgroup_hooks"];
    for module in quick.iter().chain(&e2e) {
        let is_dir = tests.join(module).join("mod.rs").is_file();
        if !(files.contains(module) || is_dir && helpers.contains(&module.as_str())) {
            problems.push(format!("mod {module}; names no file of tests/"));
        }
    }
    for path in quick_paths.iter().chain(&e2e_paths) {
        if !tests.join(path).is_file() {
            problems.push(format!("#[path = \"{path}\"] names no file of tests/"));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(quick.contains("support") && quick.len() > 10, "{quick:?}");
    assert!(e2e.contains("support") && e2e.len() > 10, "{e2e:?}");
}
