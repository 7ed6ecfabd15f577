//! Python: a Python editable install (`pip install -e .`) in the environment of the `python`
//! on `PATH` points into the user's work tree, so every candidate's tests would run the
//! user's unchanged code. Fixed where that needs no guess: a `src/` layout gets the
//! worktree's own `src/` first on `PYTHONPATH`. Also what `init` needs to write a test
//! command that imports a worktree's own code: whether the project has a `src/` layout, and
//! whether its pytest configuration puts a directory on the path itself.

use std::path::{Path, PathBuf};

/// An install that points into the user's work tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Editable {
    /// The file that makes it (`*.pth`, `__editable__*` finder, `*.egg-link`).
    pub file: PathBuf,
    /// Where it points, inside the user's work tree.
    pub target: PathBuf,
}

/// The editable installs of the `python` on `PATH` (`python3`, else `python`) that point
/// into `workdir`, when `workdir` is a Python project. Nothing when there is no Python.
pub fn editable_installs(workdir: &Path) -> Vec<Editable> {
    // Only a Python project can be installed in editable mode; others pay nothing.
    let python_project = ["pyproject.toml", "setup.py", "setup.cfg"]
        .iter()
        .any(|f| workdir.join(f).is_file());
    if !python_project {
        return Vec::new();
    }
    let Some(python) =
        crate::agent::cli::which("python3").or_else(|| crate::agent::cli::which("python"))
    else {
        return Vec::new();
    };
    let out = std::process::Command::new(python)
        .args([
            "-c",
            "import site\nfor p in site.getsitepackages() + [site.getusersitepackages()]: print(p)",
        ])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output();
    let Ok(out) = out else {
        return Vec::new();
    };
    let Ok(workdir) = std::fs::canonicalize(workdir) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for dir in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(entries) = std::fs::read_dir(dir.trim()) else {
            continue;
        };
        for entry in entries.flatten() {
            let file = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let wanted = name.ends_with(".pth")
                || name.ends_with(".egg-link")
                || (name.starts_with("__editable__") && name.ends_with(".py"));
            if !wanted {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&file) else {
                continue;
            };
            for target in paths_in(&text) {
                if let Ok(target) = std::fs::canonicalize(&target)
                    && target.starts_with(&workdir)
                {
                    found.push(Editable {
                        file: file.clone(),
                        target,
                    });
                }
            }
        }
    }
    found.sort_by(|a, b| a.file.cmp(&b.file));
    found.dedup();
    found
}

/// The absolute paths a `.pth` line, an `.egg-link` or an editable finder names: whole
/// lines that are paths, and quoted strings that are.
fn paths_in(text: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('/') {
            out.push(PathBuf::from(line));
        }
        for quoted in line.split(['\'', '"']).skip(1).step_by(2) {
            if quoted.starts_with('/') {
                out.push(PathBuf::from(quoted));
            }
        }
    }
    out
}

/// The directory, relative to the work tree, that a candidate's worktree should put first
/// on `PYTHONPATH`: `src` when every install points into the work tree's `src/` (the src
/// layout) and that directory exists; otherwise none (the fix would be a guess).
pub fn src_fix(workdir: &Path, found: &[Editable]) -> Option<PathBuf> {
    let src = std::fs::canonicalize(workdir.join("src")).ok()?;
    (!found.is_empty() && found.iter().all(|e| e.target.starts_with(&src)))
        .then(|| PathBuf::from("src"))
}

/// One warning per editable install that points into `workdir` (saying what is done about
/// it), and the directory each worktree puts first on `PYTHONPATH`, when that fixes them
/// without a guess.
pub(super) fn check(workdir: &Path) -> (Vec<String>, Option<PathBuf>) {
    let found = editable_installs(workdir);
    let fix = src_fix(workdir, &found);
    let what = match &fix {
        Some(dir) => format!(
            "each worktree's own {}/ is put first on PYTHONPATH for its agent, setup and tests",
            dir.display()
        ),
        None => "install into a virtual environment in each worktree with [worktree] setup, e.g. setup = [\"python3 -m venv .venv && .venv/bin/pip install -e .\"], and run the tests with it (--test \".venv/bin/python -m pytest\"): the python on PATH imports your work tree".to_owned(),
    };
    let warnings = found
        .iter()
        .map(|e| {
            format!(
                "{} makes Python import {} from your work tree, not from a candidate's worktree; {what}",
                e.file.display(),
                e.target.display()
            )
        })
        .collect();
    (warnings, fix)
}

/// A package under `src/` (`src/<name>/__init__.py`): the src layout, whose package is not
/// importable from the project's root.
pub fn python_src_layout(root: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(root.join("src")) else {
        return false;
    };
    entries
        .flatten()
        .any(|e| e.path().join("__init__.py").is_file())
}

/// Whether the project's pytest configuration sets `pythonpath` itself.
pub fn pytest_sets_pythonpath(root: &Path) -> bool {
    ["pyproject.toml", "pytest.ini", "setup.cfg", "tox.ini"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(root.join(f)).ok())
        .any(|text| {
            text.lines().any(|l| {
                l.trim()
                    .strip_prefix("pythonpath")
                    .is_some_and(|rest| rest.trim_start().starts_with('='))
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_src_layout_is_a_package_under_src_unless_pytest_sets_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        assert!(!python_src_layout(root));
        // A src/ directory alone is no package.
        std::fs::create_dir_all(root.join("src/calcpkg")).unwrap();
        assert!(!python_src_layout(root));
        std::fs::write(root.join("src/calcpkg/__init__.py"), "").unwrap();
        assert!(python_src_layout(root));
        std::fs::write(root.join("pyproject.toml"), "[project]\nname = \"x\"\n").unwrap();
        assert!(!pytest_sets_pythonpath(root));
        std::fs::write(
            root.join("pyproject.toml"),
            "[tool.pytest.ini_options]\npythonpath = [\"src\"]\n",
        )
        .unwrap();
        assert!(pytest_sets_pythonpath(root));
        std::fs::write(root.join("pyproject.toml"), "").unwrap();
        std::fs::write(root.join("setup.cfg"), "[tool:pytest]\npythonpath=src\n").unwrap();
        assert!(pytest_sets_pythonpath(root));
    }

    #[test]
    fn paths_are_read_from_pth_lines_and_finder_mappings() {
        let pth = "/home/u/proj/src\nimport __editable___calc_finder; __editable___calc_finder.install()\n";
        assert_eq!(paths_in(pth), vec![PathBuf::from("/home/u/proj/src")]);
        let finder = "MAPPING = {'calcpkg': '/home/u/proj/src/calcpkg'}\nNAMESPACES = {}\n";
        assert_eq!(
            paths_in(finder),
            vec![PathBuf::from("/home/u/proj/src/calcpkg")]
        );
        assert!(paths_in("import sys\n# a comment\n").is_empty());
    }
}
