//! The import direction of `api/src`: a request is read downward, `main` → `server` → `http`
//! middleware → `auth` → `routes` → `tenant::ScopedDb` → `entities` → sea-orm, and no module
//! imports one above it. This test reads the sources and fails on an import that runs back up.

use std::{fs, path::Path};

/// Every `.rs` file under `dir`, with its path relative to `api/src`.
fn sources(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let name = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            out.push((name, fs::read_to_string(&path).unwrap()));
        }
    }
}

/// The top-level modules of `api/src` that `text` refers to as `crate::<module>` (in `use`
/// lists too: `use crate::{a, b::c}`).
fn crate_modules(text: &str) -> Vec<String> {
    let mut found = vec![];
    let code: String = text
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(list) = rest.strip_prefix('{') {
            // `crate::{a, b::{..}, c}`: the first segment of each top-level item.
            let mut depth = 0;
            let mut item = String::new();
            for ch in list.chars() {
                match ch {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.push(first_segment(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 {
                    item.push(ch);
                }
            }
            found.push(first_segment(&item));
        } else {
            found.push(first_segment(rest));
        }
    }
    found.retain(|m| !m.is_empty());
    found
}

fn first_segment(path: &str) -> String {
    path.trim()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// The layer a file belongs to: its top-level module.
fn module_of(file: &str) -> &str {
    let first = file.split('/').next().unwrap();
    first.strip_suffix(".rs").unwrap_or(first)
}

#[test]
fn imports_point_down() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![];
    sources(&root, &root, &mut files);
    assert!(files.len() > 20, "read the sources of api/src");

    // Who may import each upper module.
    let allowed: &[(&str, &[&str])] = &[
        ("server", &["main"]),
        ("state", &["server", "routes"]),
        ("routes", &["server", "openapi"]),
        ("openapi", &["server", "main"]),
        ("invalidation", &["server"]),
    ];
    // Modules below `routes` never import these.
    let lower = [
        "billing",
        "tenant",
        "auth",
        "limits",
        "speech",
        "entities",
        "events",
        "http",
        "idempotency",
        "rest",
        "db",
        "config",
        "error",
        "telemetry",
        "timestamp",
    ];
    let mut wrong = vec![];
    for (file, text) in &files {
        let from = module_of(file);
        for to in crate_modules(text) {
            if to == from {
                continue;
            }
            if let Some((_, importers)) = allowed.iter().find(|(m, _)| *m == to)
                && !importers.contains(&from)
            {
                wrong.push(format!("{file} imports crate::{to}"));
            }
            if lower.contains(&from)
                && ["server", "state", "routes", "openapi"].contains(&to.as_str())
            {
                wrong.push(format!("{file} (below routes) imports crate::{to}"));
            }
        }
    }
    // Configuration sits at the bottom: it imports no other module of the crate.
    let config = &files.iter().find(|(f, _)| f == "config.rs").unwrap().1;
    for to in crate_modules(config) {
        if to != "config" {
            wrong.push(format!("config.rs imports crate::{to}"));
        }
    }
    // Entities know nothing of the layers that use them.
    for (file, text) in files.iter().filter(|(f, _)| f.starts_with("entities/")) {
        for to in crate_modules(text) {
            if to != "entities" {
                wrong.push(format!("{file} imports crate::{to}"));
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(
        wrong.is_empty(),
        "imports that run back up:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_checker_sees_imports_in_lists_and_paths() {
    let text = "use crate::{auth::Authenticator, config::{Config, X}, db};\nfn f() { crate::server::start(); }\n// crate::routes in a comment\n";
    assert_eq!(crate_modules(text), ["auth", "config", "db", "server"]);
}
