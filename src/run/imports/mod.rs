//! Whether a test run in a candidate's worktree would use the user's work tree instead of
//! the worktree's own code. Found before the agents start, said once (one warning each:
//! which file, what it points to, what to do), and fixed where that needs no guess.
//!
//! - Python ([`python`]): an editable install, in the environment of the `python` on
//!   `PATH`, that points into the work tree. A `src/` layout is fixed with `PYTHONPATH`.
//! - Node ([`node`]): a link in the work tree's `node_modules/` (or `node_modules/@scope/`)
//!   that resolves into the work tree (`npm link`, workspaces), and a `file:`, `link:` or
//!   `portal:` dependency in `package.json` with an absolute path into the work tree.
//! - Go ([`go`]): `use` and `replace` in `go.work`, and `replace` in `go.mod`, naming a
//!   directory of the work tree.
//! - Cargo ([`cargo`]): `path` in `Cargo.toml` (the root's and its workspace members')
//!   dependencies, `[patch]` and `[replace]`, and `paths` and `[patch]` in
//!   `.cargo/config.toml`.
//!
//! How a file reaches a worktree decides which of its paths are wrong ([`Reach`]). A
//! worktree has a copy of its own of a committed file, or of one that `[worktree] include`
//! or `clone` copies: an absolute path in that copy still names the user's work tree, a
//! relative one resolves in the worktree and is right. So a relative `file:../x` in
//! `package.json` is never warned about: inside the repository it names the worktree's own
//! `x`, which is what a candidate must test; one that leaves the repository names another
//! place from a worktree than from the work tree, so an install there fails loudly rather
//! than quietly using the user's code. When worktrees are under the work tree (`[run]
//! worktree_root`; the default is outside it), a tool that looks in parent directories
//! (Node for `node_modules`, go for `go.work`, cargo for `.cargo/config.toml`) finds the
//! user's own file from a worktree, and then relative paths in it name the user's work
//! tree as well, unless the worktree's own copy takes precedence.
//!
//! Only Python is fixed. The others' fixes would edit a committed file in every worktree
//! (which the candidates' diffs would then carry into the merge), rewrite the user's
//! links, or guess at an install command, so they are only said. A file that cannot be
//! parsed is skipped: its tool will say so itself. A project without these files pays a
//! few failed `open`s; git is asked whether a file is committed only when it names the work
//! tree. This module never writes anything and never prints: the run reports the warnings.

mod cargo;
mod go;
mod node;
mod python;

pub use python::{pytest_sets_pythonpath, python_src_layout};

use std::path::{Component, Path, PathBuf};

use super::context::Plan;

/// What a run must know before its agents start: one warning for each way a candidate's
/// tests would use the user's work tree `workdir` (saying what is done about it), and the
/// directory each worktree puts first on `PYTHONPATH`, when that fixes Python's without a
/// guess.
pub fn check(workdir: &Path, plan: &Plan) -> (Vec<String>, Option<PathBuf>) {
    let (mut warnings, fix) = python::check(workdir);
    if let Some(tree) = Tree::new(workdir, plan) {
        warnings.extend(node::check(&tree));
        warnings.extend(go::check(&tree));
        warnings.extend(cargo::check(&tree));
    }
    (warnings, fix)
}

/// The user's work tree, and how its files reach the worktrees of this run.
#[derive(Debug)]
struct Tree {
    /// The work tree as the repository names it.
    root: PathBuf,
    /// The same with links resolved, to compare resolved paths with.
    real: PathBuf,
    /// The commit worktrees check out, to tell which files they have.
    base: String,
    /// Worktrees are under the work tree: a tool that looks in parent directories finds the
    /// work tree's files from one.
    nested: bool,
    /// `[worktree] include` and `clone`: what is copied into each worktree.
    include: Option<ignore::gitignore::Gitignore>,
    /// `[worktree] setup` runs commands in each worktree (which may install dependencies).
    setup: bool,
}

impl Tree {
    /// `None` when the work tree cannot be resolved.
    fn new(workdir: &Path, plan: &Plan) -> Option<Tree> {
        let real = std::fs::canonicalize(workdir).ok()?;
        let include = (!plan.include.is_empty()).then(|| {
            let mut builder = ignore::gitignore::GitignoreBuilder::new(workdir);
            for p in &plan.include {
                // A bad pattern is refused where files are copied; here it copies nothing.
                let _ = builder.add_line(None, p);
            }
            builder.build().ok()
        });
        Some(Tree {
            root: workdir.to_owned(),
            nested: real_lenient(&plan.worktree_root).starts_with(&real),
            real,
            base: plan.base.to_string(),
            include: include.flatten(),
            setup: !plan.setup.is_empty(),
        })
    }

    /// Whether `[worktree] include` or `clone` copies `rel` (relative to the work tree).
    fn included(&self, rel: &Path, is_dir: bool) -> bool {
        self.include.as_ref().is_some_and(|g| {
            g.matched_path_or_any_parents(self.root.join(rel), is_dir)
                .is_ignore()
        })
    }

    /// Whether the commit worktrees check out has `rel`.
    fn committed(&self, rel: &Path) -> bool {
        crate::git::cmd::Git::new(&self.root)
            .args(["ls-tree", "--name-only", "-z", &self.base, "--"])
            .arg(rel)
            .run()
            .is_ok_and(|out| !out.stdout.is_empty())
    }

    /// How the file `rel` reaches a worktree; `walks`: whether its tool looks for it in
    /// parent directories.
    fn reach(&self, rel: &Path, walks: bool) -> Reach {
        Reach {
            own: self.included(rel, false) || self.committed(rel),
            parent: walks && self.nested,
        }
    }

    /// Where `path` (absolute) is in the work tree, relative to it (the work tree itself
    /// is the empty path); `None` when it is outside. A path that does not exist is
    /// compared as written.
    fn inside(&self, path: &Path) -> Option<PathBuf> {
        if let Ok(real) = std::fs::canonicalize(path) {
            return real.strip_prefix(&self.real).ok().map(Path::to_path_buf);
        }
        let path = normalize(path)?;
        path.strip_prefix(&self.root)
            .or_else(|_| path.strip_prefix(&self.real))
            .ok()
            .map(Path::to_path_buf)
    }

    /// The text of the file `rel`; `None` when there is none.
    fn read(&self, rel: &Path) -> Option<String> {
        std::fs::read_to_string(self.root.join(rel)).ok()
    }
}

/// How a file of the work tree reaches a candidate's worktree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Reach {
    /// The worktree has a copy of its own: committed, or copied by `[worktree] include`.
    own: bool,
    /// The tool finds the user's own file from the worktree, in a parent directory.
    parent: bool,
}

/// A path that a manifest or a configuration file names.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Named {
    /// The entry as the user would find it in the file, for messages.
    written: String,
    /// The path, without a prefix such as `file:`.
    path: String,
    /// What a path in this entry starts with (`file:`), for the suggested one.
    prefix: &'static str,
    /// Whether the worktree's own copy of the file, when it has one, takes precedence over
    /// the user's for this entry (cargo joins `paths` arrays of every directory up).
    shadowed: bool,
}

/// The warnings for the paths `named` in `file` (relative to the work tree; relative paths
/// in it are relative to `base`) that make `tool` in a candidate's worktree use the work
/// tree; `walks`: whether `tool` looks for `file` in parent directories.
fn warnings(
    tree: &Tree,
    file: &Path,
    base: &Path,
    walks: bool,
    tool: &str,
    named: Vec<Named>,
) -> Vec<String> {
    let hits: Vec<(Named, PathBuf)> = named
        .into_iter()
        .filter_map(|n| {
            let rel = tree.inside(&tree.root.join(base).join(&n.path))?;
            Some((n, rel))
        })
        .collect();
    if hits.is_empty() {
        return Vec::new();
    }
    let reach = tree.reach(file, walks);
    hits.into_iter()
        .filter_map(|(n, rel)| say(file, base, tool, reach, &n, &rel))
        .collect()
}

/// The warning for `n`, a path in `file` that names `rel` of the work tree, when it makes
/// `tool` in a candidate's worktree use it.
fn say(
    file: &Path,
    base: &Path,
    tool: &str,
    reach: Reach,
    n: &Named,
    rel: &Path,
) -> Option<String> {
    let absolute = Path::new(&n.path).is_absolute();
    let via_own = reach.own && absolute;
    let via_parent = reach.parent && !(reach.own && n.shadowed);
    if !via_own && !via_parent {
        return None;
    }
    let file = file.display();
    let mut text = format!(
        "{file}: {} makes {tool} in a candidate's worktree use {}, not the worktree's own",
        n.written,
        in_tree(rel)
    );
    if via_parent {
        text.push_str(&format!(
            " ({tool} finds your {file} from a worktree, which is under your work tree)"
        ));
    }
    let mut fixes = Vec::new();
    if via_own {
        fixes.push(format!(
            "write it relative, \"{}{}\"",
            n.prefix,
            relative(base, rel)
        ));
    }
    if via_parent {
        fixes.push(OUTSIDE.to_owned());
    }
    Some(format!("{text}; {}", fixes.join(", and ")))
}

/// What to do when a tool finds the work tree's files from worktrees under it.
const OUTSIDE: &str = "set [run] worktree_root to a directory outside your work tree";

/// `rel` of the work tree, for messages.
fn in_tree(rel: &Path) -> String {
    if rel.as_os_str().is_empty() {
        "your work tree itself".to_owned()
    } else {
        format!("your work tree's {}", rel.display())
    }
}

/// The path from the directory `base` to `rel`, both relative to the work tree, as a
/// relative path that manifests accept: `./x`, `../x` or `.`.
fn relative(base: &Path, rel: &Path) -> String {
    let base: Vec<Component> = base.components().collect();
    let rel: Vec<Component> = rel.components().collect();
    let common = base.iter().zip(&rel).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..base.len() {
        out.push("..");
    }
    out.extend(&rel[common..]);
    match out.components().next() {
        None => ".".to_owned(),
        Some(Component::ParentDir) => out.display().to_string(),
        Some(_) => format!("./{}", out.display()),
    }
}

/// `path` with `.` and `..` folded away, as written (links are not followed); `None` when
/// it climbs above its start.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !matches!(out.components().next_back(), Some(Component::Normal(_))) {
                    return None;
                }
                out.pop();
            }
            other => out.push(other),
        }
    }
    Some(out)
}

/// `path` with its nearest existing ancestor's links resolved, the rest as written: where
/// a directory that may not exist yet will be.
fn real_lenient(path: &Path) -> PathBuf {
    let Some(path) = normalize(path) else {
        return path.to_owned();
    };
    let mut rest = Vec::new();
    let mut at = path.as_path();
    loop {
        if let Ok(mut real) = std::fs::canonicalize(at) {
            real.extend(rest.iter().rev());
            return real;
        }
        match (at.file_name(), at.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                at = parent;
            }
            _ => return path.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A work tree in a temp dir, nothing committed or copied, worktrees outside it.
    pub(super) fn tree(dir: &Path) -> Tree {
        Tree {
            root: dir.to_owned(),
            real: std::fs::canonicalize(dir).unwrap(),
            base: "HEAD".to_owned(),
            nested: false,
            include: None,
            setup: false,
        }
    }

    fn named(path: &str, shadowed: bool) -> Named {
        Named {
            written: format!("use {path}"),
            path: path.to_owned(),
            prefix: "",
            shadowed,
        }
    }

    #[test]
    fn relative_paths_are_spelled_the_way_manifests_accept() {
        let p = Path::new;
        assert_eq!(relative(p(""), p("packages/foo")), "./packages/foo");
        assert_eq!(relative(p("crates/a"), p("crates/b")), "../b");
        assert_eq!(relative(p("crates/a"), p("")), "../..");
        assert_eq!(relative(p("lib"), p("lib")), ".");
    }

    #[test]
    fn normalizing_folds_dots_and_refuses_to_climb_out() {
        assert_eq!(
            normalize(Path::new("/a/./b/../c")),
            Some(PathBuf::from("/a/c"))
        );
        assert_eq!(normalize(Path::new("a/../..")), None);
        assert_eq!(normalize(Path::new("/..")), None);
    }

    #[test]
    fn a_directory_not_made_yet_is_placed_under_its_real_parent() {
        let tmp = tempfile::tempdir().unwrap();
        let real = std::fs::canonicalize(tmp.path()).unwrap();
        assert_eq!(
            real_lenient(&tmp.path().join("x/../runs/new")),
            real.join("runs/new")
        );
    }

    #[test]
    fn paths_are_placed_in_the_work_tree_whether_they_exist_or_not() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("lib")).unwrap();
        let t = tree(tmp.path());
        assert_eq!(
            t.inside(&tmp.path().join("lib")),
            Some(PathBuf::from("lib"))
        );
        assert_eq!(
            t.inside(&tmp.path().join("gone/x")),
            Some(PathBuf::from("gone/x"))
        );
        assert_eq!(t.inside(tmp.path()), Some(PathBuf::new()));
        assert_eq!(t.inside(Path::new("/usr/lib/elsewhere")), None);
    }

    #[test]
    fn which_paths_are_wrong_depends_on_how_the_file_reaches_a_worktree() {
        let (file, base, rel) = (Path::new("go.work"), Path::new(""), Path::new("lib"));
        let abs = named("/home/u/proj/lib", true);
        let rel_named = named("./lib", true);
        let copied = Reach {
            own: true,
            parent: false,
        };
        let found_up = Reach {
            own: false,
            parent: true,
        };
        // A copy of its own: only an absolute path is wrong, and writing it relative fixes it.
        let text = say(file, base, "go", copied, &abs, rel).expect("a warning");
        assert_eq!(
            text,
            "go.work: use /home/u/proj/lib makes go in a candidate's worktree use your work \
             tree's lib, not the worktree's own; write it relative, \"./lib\""
        );
        assert_eq!(say(file, base, "go", copied, &rel_named, rel), None);
        // The user's own file, found in a parent directory: relative paths are wrong too.
        let text = say(file, base, "go", found_up, &rel_named, rel).expect("a warning");
        assert!(text.ends_with(OUTSIDE), "{text}");
        assert!(!text.contains("write it relative"), "{text}");
        // Both: the worktree's copy takes precedence, unless the tool joins the two.
        let both = Reach {
            own: true,
            parent: true,
        };
        assert_eq!(say(file, base, "go", both, &rel_named, rel), None);
        assert!(say(file, base, "cargo", both, &named("lib", false), rel).is_some());
        // Nowhere: a file no worktree sees.
        assert_eq!(say(file, base, "go", Reach::default(), &abs, rel), None);
    }
}
