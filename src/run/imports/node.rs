//! Node: a link in the work tree's `node_modules/` that resolves into the work tree (made by
//! `npm link` or by workspaces), and a `file:`, `link:` or `portal:` dependency in
//! `package.json` whose path is absolute and inside the work tree.
//!
//! A link matters only where a worktree sees it. `[worktree] clone` (or `include`) copies
//! links as links: a relative one then resolves in the worktree, an absolute one still in
//! the work tree. A worktree under the work tree that has no `node_modules` of its own
//! finds the user's, since Node looks in every parent directory, and then every link in it
//! counts. A worktree that `[worktree] setup` gives one is taken to have installed its own
//! (whether it did is not known without a guess at what the commands do), and one outside
//! the work tree without one finds nothing of the user's. Links into `node_modules` itself
//! (pnpm's store, `.bin`) are dependencies, not the user's code. Only the root
//! `package.json` is read, not workspace members'; a committed `node_modules` is not looked
//! at.

use std::path::{Path, PathBuf};

use super::{Named, OUTSIDE, Tree, in_tree, relative};

/// The warnings for the work tree's `node_modules/` links and `package.json`.
pub(super) fn check(tree: &Tree) -> Vec<String> {
    let mut out = link_warnings(tree);
    if let Some(text) = tree.read(Path::new("package.json")) {
        out.extend(super::warnings(
            tree,
            Path::new("package.json"),
            Path::new(""),
            false,
            "npm",
            local_deps(&text),
        ));
    }
    out
}

/// One warning for each link in `node_modules/` that a worktree sees and that makes Node
/// there import the work tree.
fn link_warnings(tree: &Tree) -> Vec<String> {
    let modules = Path::new("node_modules");
    let mut out = Vec::new();
    for entry in links(&tree.root.join(modules)) {
        let at = modules.join(&entry);
        let Some(rel) = std::fs::canonicalize(tree.root.join(&at))
            .ok()
            .and_then(|real| real.strip_prefix(&tree.real).ok().map(Path::to_path_buf))
        else {
            continue;
        };
        if rel.starts_with(modules) {
            continue;
        }
        let Ok(written) = std::fs::read_link(tree.root.join(&at)) else {
            continue;
        };
        let copied = tree.included(modules, true) || tree.included(&at, false);
        let at_dir = at.parent().expect("a link in node_modules has a parent");
        if copied && written.is_absolute() {
            out.push(format!(
                "{} links to {} and [worktree] clone (or include) copies the link as it is, which \
                 makes Node in a candidate's worktree import {}, not the worktree's own; make the \
                 link relative (ln -sfn {} {}) or install in each worktree with [worktree] \
                 setup, e.g. setup = [\"npm install\"], instead of copying node_modules",
                at.display(),
                written.display(),
                in_tree(&rel),
                relative(at_dir, &rel),
                at.display()
            ));
        } else if !copied && tree.nested && !tree.setup {
            out.push(format!(
                "{} links to {}, and Node in a candidate's worktree finds your node_modules \
                 (worktrees are under your work tree and have none of their own), which makes \
                 it import {}, not the worktree's own; install in each worktree with \
                 [worktree] setup, e.g. setup = [\"npm install\"], or {OUTSIDE}",
                at.display(),
                written.display(),
                in_tree(&rel)
            ));
        }
    }
    out
}

/// The links directly in `node_modules` and in its `@scope/` directories, relative to it,
/// in order.
fn links(node_modules: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(node_modules) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let name = PathBuf::from(entry.file_name());
        if kind.is_symlink() {
            out.push(name);
        } else if kind.is_dir() && entry.file_name().to_string_lossy().starts_with('@') {
            let Ok(scoped) = std::fs::read_dir(entry.path()) else {
                continue;
            };
            for inner in scoped.flatten() {
                if inner.file_type().is_ok_and(|k| k.is_symlink()) {
                    out.push(name.join(inner.file_name()));
                }
            }
        }
    }
    out.sort();
    out
}

/// The dependencies of a `package.json` installed from a local path (`file:`, `link:`,
/// `portal:`), in `dependencies`, `devDependencies` and `optionalDependencies`.
fn local_deps(text: &str) -> Vec<Named> {
    let Ok(serde_json::Value::Object(json)) = serde_json::from_str(text) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for section in ["dependencies", "devDependencies", "optionalDependencies"] {
        let Some(serde_json::Value::Object(deps)) = json.get(section) else {
            continue;
        };
        for (name, spec) in deps {
            let Some(spec) = spec.as_str() else {
                continue;
            };
            for prefix in ["file:", "link:", "portal:"] {
                if let Some(path) = spec.strip_prefix(prefix) {
                    // `file:///abs` is a URL for `/abs`.
                    let path = path.strip_prefix("//").unwrap_or(path);
                    out.push(Named {
                        written: format!("{section}.{name} = {spec:?}"),
                        path: path.to_owned(),
                        prefix,
                        shadowed: true,
                    });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::tests::tree;
    use super::*;

    #[test]
    fn local_dependencies_are_read_from_the_three_sections() {
        let json = r#"{
            "name": "app",
            "dependencies": {"a": "file:/abs/a", "left": "^1.0.0", "b": "link:../b"},
            "devDependencies": {"c": "file:///abs/c"},
            "optionalDependencies": {"d": "portal:./d"},
            "peerDependencies": {"e": "file:/abs/e"}
        }"#;
        let found: Vec<(String, &str)> = local_deps(json)
            .iter()
            .map(|n| (n.path.clone(), n.prefix))
            .collect();
        assert_eq!(
            found,
            vec![
                ("/abs/a".to_owned(), "file:"),
                ("../b".to_owned(), "link:"),
                ("/abs/c".to_owned(), "file:"),
                ("./d".to_owned(), "portal:"),
            ]
        );
        assert_eq!(
            local_deps(json)[0].written,
            "dependencies.a = \"file:/abs/a\""
        );
        assert!(local_deps("not json").is_empty());
        assert!(local_deps("[]").is_empty());
    }

    #[test]
    fn links_are_found_at_the_top_and_in_scopes_but_not_deeper() {
        let tmp = tempfile::tempdir().unwrap();
        let nm = tmp.path().join("node_modules");
        for dir in ["plain", "@scope/inner", "deep/node_modules", ".bin"] {
            std::fs::create_dir_all(nm.join(dir)).unwrap();
        }
        let link = |from: &str, to: &str| std::os::unix::fs::symlink(to, nm.join(from)).unwrap();
        link("top", "../packages/top");
        link("@scope/ours", "/somewhere/ours");
        link("deep/node_modules/no", "../../x");
        link(".bin/tool", "../plain/tool.js");
        assert_eq!(
            links(&nm),
            vec![PathBuf::from("@scope/ours"), PathBuf::from("top")]
        );
        assert!(links(&tmp.path().join("none")).is_empty());
    }

    #[test]
    fn a_link_warns_where_a_worktree_sees_it() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        for dir in ["packages/mine", "node_modules/.pnpm/dep@1/node_modules/dep"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        let nm = root.join("node_modules");
        std::os::unix::fs::symlink("../packages/mine", nm.join("mine")).unwrap();
        std::os::unix::fs::symlink(".pnpm/dep@1/node_modules/dep", nm.join("dep")).unwrap();
        std::os::unix::fs::symlink(root.join("packages/mine"), nm.join("abs")).unwrap();
        let mut t = tree(root);
        // Outside the work tree with no node_modules of their own, worktrees see none.
        assert!(link_warnings(&t).is_empty());
        // Under it, Node finds the user's: both links into packages/ count, pnpm's do not.
        t.nested = true;
        let found = link_warnings(&t);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0].starts_with("node_modules/abs links to /"),
            "{found:?}"
        );
        assert!(found[1].starts_with("node_modules/mine links to ../packages/mine"));
        assert!(found[1].contains("your work tree's packages/mine"));
        // With a setup, the worktree is taken to install its own.
        t.setup = true;
        assert!(link_warnings(&t).is_empty());
        // Copied by [worktree] clone: only the absolute link still points at the work tree.
        let mut b = ignore::gitignore::GitignoreBuilder::new(root);
        b.add_line(None, "node_modules").unwrap();
        t.include = Some(b.build().unwrap());
        let found = link_warnings(&t);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("(ln -sfn ../packages/mine node_modules/abs)"));
    }
}
