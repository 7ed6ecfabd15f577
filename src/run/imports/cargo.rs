//! Cargo: `path` in the dependencies, `[patch]` and `[replace]` of the work tree's
//! `Cargo.toml` and of its workspace members' (those listed by name or as `dir/*`; other
//! globs are not expanded), and `paths` and `[patch]` in `.cargo/config.toml` (or the older
//! `.cargo/config`), that name a directory of the work tree.
//!
//! An absolute one makes cargo in a candidate's worktree build the user's crate. Cargo
//! reads `.cargo/config.toml` in every parent directory too, so from a worktree under the
//! work tree it reads the user's, whose relative paths are relative to the work tree: a
//! `[patch]` there gives way to the worktree's own copy of the same entry, `paths` do not
//! (cargo joins the arrays).

use std::path::{Path, PathBuf};

use toml::{Table, Value};

use super::{Named, Tree, normalize};

/// The warnings for the work tree's manifests and cargo configuration.
pub(super) fn check(tree: &Tree) -> Vec<String> {
    let mut out = Vec::new();
    let root = Path::new("Cargo.toml");
    if let Some(manifest) = read_toml(tree, root) {
        out.extend(super::warnings(
            tree,
            root,
            Path::new(""),
            false,
            "cargo",
            manifest_paths(&manifest),
        ));
        for member in members(&tree.root, &manifest) {
            let file = member.join("Cargo.toml");
            if let Some(m) = read_toml(tree, &file) {
                out.extend(super::warnings(
                    tree,
                    &file,
                    &member,
                    false,
                    "cargo",
                    manifest_paths(&m),
                ));
            }
        }
    }
    for file in [".cargo/config.toml", ".cargo/config"] {
        let file = Path::new(file);
        if let Some(config) = read_toml(tree, file) {
            // Relative paths in it are relative to the directory that holds `.cargo`.
            out.extend(super::warnings(
                tree,
                file,
                Path::new(""),
                true,
                "cargo",
                config_paths(&config),
            ));
        }
    }
    out
}

fn read_toml(tree: &Tree, rel: &Path) -> Option<Table> {
    tree.read(rel)?.parse().ok()
}

/// The tables of a manifest that list dependencies.
const DEPENDENCIES: [&str; 5] = [
    "dependencies",
    "dev-dependencies",
    "dev_dependencies",
    "build-dependencies",
    "build_dependencies",
];

/// The `path`s of a manifest's dependencies (also per target and the workspace's),
/// `[patch.*]` and `[replace]`.
fn manifest_paths(manifest: &Table) -> Vec<Named> {
    let mut out = Vec::new();
    for section in DEPENDENCIES {
        path_deps(manifest.get(section), section, &mut out);
    }
    if let Some(targets) = manifest.get("target").and_then(Value::as_table) {
        for (cfg, target) in targets {
            for section in DEPENDENCIES {
                let at = format!("target.{}.{section}", key(cfg));
                path_deps(target.get(section), &at, &mut out);
            }
        }
    }
    if let Some(workspace) = manifest.get("workspace") {
        path_deps(
            workspace.get("dependencies"),
            "workspace.dependencies",
            &mut out,
        );
    }
    patches(manifest, &mut out);
    path_deps(manifest.get("replace"), "replace", &mut out);
    out
}

/// The `paths` and the `[patch.*]` paths of a cargo configuration.
fn config_paths(config: &Table) -> Vec<Named> {
    let mut out = Vec::new();
    for path in config
        .get("paths")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        out.push(Named {
            written: format!("paths = [{path:?}]"),
            path: path.to_owned(),
            prefix: "",
            shadowed: false,
        });
    }
    patches(config, &mut out);
    out
}

/// The paths of `[patch.<source>]` tables.
fn patches(table: &Table, out: &mut Vec<Named>) {
    if let Some(patch) = table.get("patch").and_then(Value::as_table) {
        for (source, deps) in patch {
            path_deps(Some(deps), &format!("patch.{}", key(source)), out);
        }
    }
}

/// The `path` of each dependency in the table `deps`, found at `at`.
fn path_deps(deps: Option<&Value>, at: &str, out: &mut Vec<Named>) {
    let Some(deps) = deps.and_then(Value::as_table) else {
        return;
    };
    for (name, spec) in deps {
        if let Some(path) = spec.get("path").and_then(Value::as_str) {
            out.push(Named {
                written: format!("{at}.{}.path = {path:?}", key(name)),
                path: path.to_owned(),
                prefix: "",
                shadowed: true,
            });
        }
    }
}

/// A TOML key as it would be written: bare when it can be.
fn key(k: &str) -> String {
    let bare = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if bare { k.to_owned() } else { format!("{k:?}") }
}

/// The member directories of the workspace `manifest` declares, relative to the work tree
/// `root`: those named, and the directories with a `Cargo.toml` under a `dir/*`. Not the
/// root itself, nor one outside the work tree.
fn members(root: &Path, manifest: &Table) -> Vec<PathBuf> {
    let is_glob = |s: &str| s.contains(['*', '?', '[']);
    let patterns = manifest
        .get("workspace")
        .and_then(|w| w.get("members"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str);
    let mut out = Vec::new();
    for pattern in patterns {
        if !is_glob(pattern) {
            out.push(PathBuf::from(pattern));
        } else if let Some(dir) = pattern.strip_suffix("/*").filter(|d| !is_glob(d)) {
            let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
                continue;
            };
            for entry in entries.flatten() {
                if entry.path().join("Cargo.toml").is_file() {
                    out.push(Path::new(dir).join(entry.file_name()));
                }
            }
        }
    }
    let mut out: Vec<PathBuf> = out
        .iter()
        .filter(|p| p.is_relative())
        .filter_map(|p| normalize(p))
        .filter(|p| !p.as_os_str().is_empty())
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Table {
        text.parse().expect("valid TOML")
    }

    fn written(named: Vec<Named>) -> Vec<String> {
        named.into_iter().map(|n| n.written).collect()
    }

    #[test]
    fn path_dependencies_patches_and_replacements_are_read() {
        let manifest = parse(
            r#"
[package]
name = "app"
[dependencies]
serde = "1"
core = { path = "/home/u/proj/core" }
[dev-dependencies.helper]
path = "../helper"
[target.'cfg(unix)'.dependencies]
sys = { path = "/home/u/proj/sys" }
[workspace.dependencies]
shared = { path = "shared", version = "0.1" }
[patch.crates-io]
serde = { path = "/home/u/proj/vendor/serde" }
[patch."https://github.com/x/y"]
y = { git = "https://github.com/x/y" }
z = { path = "z" }
[replace]
"foo:0.1.0" = { path = "/home/u/proj/foo" }
"#,
        );
        assert_eq!(
            written(manifest_paths(&manifest)),
            vec![
                r#"dependencies.core.path = "/home/u/proj/core""#,
                r#"dev-dependencies.helper.path = "../helper""#,
                r#"target."cfg(unix)".dependencies.sys.path = "/home/u/proj/sys""#,
                r#"workspace.dependencies.shared.path = "shared""#,
                r#"patch.crates-io.serde.path = "/home/u/proj/vendor/serde""#,
                r#"patch."https://github.com/x/y".z.path = "z""#,
                r#"replace."foo:0.1.0".path = "/home/u/proj/foo""#,
            ]
        );
        assert!(manifest_paths(&parse("[package]\nname = \"a\"\n")).is_empty());
    }

    #[test]
    fn config_paths_and_patches_are_read() {
        let config = parse(
            "paths = [\"/home/u/proj/a\", \"b\"]\n[patch.crates-io]\nc = { path = \"/home/u/proj/c\" }\n[build]\njobs = 2\n",
        );
        let found = config_paths(&config);
        assert_eq!(
            written(found.clone()),
            vec![
                r#"paths = ["/home/u/proj/a"]"#,
                r#"paths = ["b"]"#,
                r#"patch.crates-io.c.path = "/home/u/proj/c""#,
            ]
        );
        // Cargo joins `paths` of every directory up; a patch is one entry, the nearest wins.
        assert_eq!(
            found.iter().map(|n| n.shadowed).collect::<Vec<_>>(),
            vec![false, false, true]
        );
    }

    #[test]
    fn members_are_named_or_one_level_globs() {
        let tmp = tempfile::tempdir().unwrap();
        for dir in ["crates/a", "crates/b", "crates/notes", "tools/x"] {
            std::fs::create_dir_all(tmp.path().join(dir)).unwrap();
        }
        for m in ["crates/a", "crates/b"] {
            std::fs::write(tmp.path().join(m).join("Cargo.toml"), "").unwrap();
        }
        let manifest = parse(
            "[workspace]\nmembers = [\"crates/*\", \"tools/x\", \".\", \"/abs\", \"../out\", \"t*/**\", \"crates/a\"]\n",
        );
        assert_eq!(
            members(tmp.path(), &manifest),
            vec![
                PathBuf::from("crates/a"),
                PathBuf::from("crates/b"),
                PathBuf::from("tools/x"),
            ]
        );
    }
}
