//! A project whose tests would import the user's work tree instead of a candidate's
//! worktree (a Python editable install, a `node_modules` link, a `file:` dependency, a
//! `go.work`, a cargo `path`): candidates' tests must run the candidate's code, so the run
//! says so before the agents start, and fixes it where that needs no guess.

use crate::support::TestRepo;

#[test]
#[allow(clippy::print_stderr)] // says loudly why it is skipped
fn an_editable_src_layout_install_tests_each_candidates_own_code() {
    let repo = TestRepo::new();
    repo.write(
        "pyproject.toml",
        "[project]\nname = \"calcpkg\"\nversion = \"0.1\"\n",
    );
    repo.write(
        "src/calcpkg/__init__.py",
        "def add(a, b):\n    return a - b\n",
    );
    repo.commit_all("a python package with a bug");
    // A virtual environment whose site-packages points at the user's src/, as
    // `pip install -e .` does.
    let venv = repo.root.join("venv");
    let made = std::process::Command::new("python3")
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv)
        .status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("SKIPPED an_editable_src_layout_install…: python3 -m venv is not available");
        return;
    }
    let site = std::fs::read_dir(venv.join("lib"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path()
        .join("site-packages");
    std::fs::write(
        site.join("__editable__.calcpkg-0.1.pth"),
        format!("{}\n", repo.path.join("src").display()),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        venv.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let fix = "sed -i 's/a - b/a + b/' src/calcpkg/__init__.py";
    let test = "python3 -c 'import calcpkg; assert calcpkg.add(1, 2) == 3'";
    let mut cmd = repo
        .massgen()
        .env("PATH", &path)
        .args(["run", "--json", "--test", test]);
    for (name, body) in [("fixer", fix), ("idle", "true")] {
        cmd = cmd.args(["--agent-cmd", &repo.agent(name, body)]);
    }
    let out = cmd.args(["fix add"]).run().expect_code(0);
    out.assert_stderr("makes Python import");
    let json = out.json();
    assert_eq!(json["winner"], "fixer", "{json}");
    assert_eq!(json["pythonpath"], "src");
    // The user's own code is untouched and still imported by their environment.
    assert!(repo.read("src/calcpkg/__init__.py").contains("a - b"));
}

/// `git massgen run FLAGS` with one agent that writes a note; its stderr.
fn run_with(repo: &TestRepo, flags: &[&str]) -> String {
    let agent = repo.agent("noter", "echo note > note.txt");
    repo.massgen()
        .args(["run", "--agent-cmd", &agent])
        .args(flags)
        .args(["--", "write a note"])
        .run()
        .expect_code(0)
        .stderr
}

/// `git massgen run` with one agent that writes a note; its stderr.
fn run_stderr(repo: &TestRepo) -> String {
    run_with(repo, &[])
}

/// A package of the user's, committed, that the project depends on.
fn with_package(repo: &TestRepo) {
    repo.write("packages/mylib/package.json", "{\"name\": \"mylib\"}\n");
    repo.write("packages/mylib/index.js", "exports.ok = false;\n");
    repo.write(".gitignore", "node_modules/\n.wt/\n");
}

fn symlink(target: impl AsRef<std::path::Path>, link: std::path::PathBuf) {
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(target, link).unwrap();
}

#[test]
fn a_node_modules_link_that_clone_copies_warns_when_it_is_absolute() {
    let repo = TestRepo::new();
    with_package(&repo);
    repo.write("package.json", "{\"name\": \"app\"}\n");
    repo.commit_all("a node project");
    repo.configure("[worktree]\nclone = [\"node_modules\"]\n");
    let nm = repo.path.join("node_modules");
    // `npm link` leaves an absolute link; workspaces leave relative ones.
    symlink(repo.path.join("packages/mylib"), nm.join("mylib"));
    symlink("../../packages/mylib", nm.join("@org/rel"));
    let stderr = run_with(&repo, &["--keep"]);
    assert!(
        stderr.contains(&format!(
            "node_modules/mylib links to {} and [worktree] clone (or include) copies the link as it is",
            repo.path.join("packages/mylib").display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("(ln -sfn ../packages/mylib node_modules/mylib)"),
        "{stderr}"
    );
    // A relative link resolves in the worktree's own copy.
    assert!(!stderr.contains("@org/rel"), "{stderr}");
    // What the warning says: the candidate's copy of the link names the user's package.
    let list = repo.git(&["worktree", "list", "--porcelain"]);
    let wt = list
        .lines()
        .filter_map(|l| l.strip_prefix("worktree "))
        .find(|p| p.ends_with("/noter"))
        .unwrap_or_else(|| panic!("no worktree of noter in {list}"));
    assert_eq!(
        std::fs::read_link(std::path::Path::new(wt).join("node_modules/mylib")).unwrap(),
        repo.path.join("packages/mylib")
    );
}

#[test]
fn worktrees_under_the_work_tree_find_its_node_modules() {
    let repo = TestRepo::new();
    with_package(&repo);
    repo.write("package.json", "{\"name\": \"app\"}\n");
    repo.commit_all("a node project");
    repo.configure("[run]\nworktree_root = \".wt\"\n");
    symlink(
        "../../packages/mylib",
        repo.path.join("node_modules/@org/mylib"),
    );
    let stderr = run_stderr(&repo);
    assert!(
        stderr.contains("node_modules/@org/mylib links to ../../packages/mylib, and Node in a candidate's worktree finds your node_modules"),
        "{stderr}"
    );
    assert!(
        stderr.contains("your work tree's packages/mylib"),
        "{stderr}"
    );
}

#[test]
fn an_absolute_file_dependency_warns_and_a_relative_one_does_not() {
    let repo = TestRepo::new();
    with_package(&repo);
    let abs = repo.path.join("packages/mylib");
    repo.write(
        "package.json",
        &format!(
            "{{\"name\": \"app\", \"dependencies\": {{\"mylib\": \"file:{}\"}}, \"devDependencies\": {{\"rel\": \"file:./packages/mylib\"}}}}\n",
            abs.display()
        ),
    );
    repo.commit_all("a node project");
    let stderr = run_stderr(&repo);
    assert!(
        stderr.contains(&format!(
            "package.json: dependencies.mylib = \"file:{}\" makes npm in a candidate's worktree use your work tree's packages/mylib, not the worktree's own; write it relative, \"file:./packages/mylib\"",
            abs.display()
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("devDependencies"), "{stderr}");
}

#[test]
fn go_work_and_go_mod_with_absolute_paths_into_the_work_tree_warn() {
    let repo = TestRepo::new();
    let abs = repo.path.join("lib");
    repo.write("lib/go.mod", "module example.com/lib\n\ngo 1.22\n");
    repo.write(
        "go.mod",
        &format!(
            "module example.com/app\n\ngo 1.22\n\nreplace example.com/lib => {}\n",
            abs.display()
        ),
    );
    repo.write(
        "go.work",
        &format!("go 1.22\n\nuse (\n\t.\n\t{}\n)\n", abs.display()),
    );
    repo.commit_all("a go workspace");
    let stderr = run_stderr(&repo);
    assert!(
        stderr.contains(&format!(
            "go.work: use {} makes go in a candidate's worktree use your work tree's lib",
            abs.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "go.mod: replace example.com/lib => {} makes go",
            abs.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("write it relative, \"./lib\""), "{stderr}");
    // `use .` is the worktree itself in the worktree's own go.work.
    assert!(!stderr.contains("use ."), "{stderr}");
}

#[test]
fn an_uncommitted_go_work_warns_only_when_worktrees_are_under_the_work_tree() {
    let repo = TestRepo::new();
    repo.write("go.mod", "module example.com/app\n\ngo 1.22\n");
    repo.write(".gitignore", "go.work\n.wt/\n");
    repo.commit_all("a go module");
    repo.write("go.work", "go 1.22\n\nuse ./\n");
    // Worktrees outside the work tree never see it.
    assert!(!run_stderr(&repo).contains("go.work"));
    repo.configure("[run]\nworktree_root = \".wt\"\n");
    let stderr = run_stderr(&repo);
    assert!(
        stderr.contains("go.work: use ./ makes go in a candidate's worktree use your work tree itself, not the worktree's own (go finds your go.work from a worktree, which is under your work tree); set [run] worktree_root to a directory outside your work tree"),
        "{stderr}"
    );
}

#[test]
fn cargo_paths_into_the_work_tree_warn_in_manifests_members_and_config() {
    let repo = TestRepo::new();
    let abs = |rel: &str| repo.path.join(rel).display().to_string();
    repo.write(
        "Cargo.toml",
        &format!(
            "[workspace]\nmembers = [\"crates/*\"]\n\n[workspace.dependencies]\ncore = {{ path = \"crates/core\" }}\n\n[patch.crates-io]\nserde = {{ path = \"{}\" }}\n",
            abs("vendor/serde")
        ),
    );
    repo.write("crates/core/Cargo.toml", "[package]\nname = \"core\"\n");
    repo.write(
        "crates/app/Cargo.toml",
        &format!(
            "[package]\nname = \"app\"\n\n[dependencies]\ncore = {{ path = \"{}\" }}\nrel = {{ path = \"../core\" }}\n",
            abs("crates/core")
        ),
    );
    repo.write(
        ".cargo/config.toml",
        &format!("paths = [\"{}\"]\n", abs("vendor/serde")),
    );
    repo.commit_all("a cargo workspace");
    let stderr = run_stderr(&repo);
    for needle in [
        format!(
            "Cargo.toml: patch.crates-io.serde.path = \"{}\" makes cargo in a candidate's worktree use your work tree's vendor/serde, not the worktree's own; write it relative, \"./vendor/serde\"",
            abs("vendor/serde")
        ),
        format!(
            "crates/app/Cargo.toml: dependencies.core.path = \"{}\" makes cargo",
            abs("crates/core")
        ),
        "write it relative, \"../core\"".to_owned(),
        format!(
            ".cargo/config.toml: paths = [\"{}\"] makes cargo",
            abs("vendor/serde")
        ),
    ] {
        assert!(stderr.contains(&needle), "lacks {needle:?}:\n{stderr}");
    }
    assert!(!stderr.contains("rel.path"), "{stderr}");
    assert!(!stderr.contains("workspace.dependencies"), "{stderr}");
}

#[test]
fn a_project_whose_paths_stay_in_the_worktree_gets_no_warning() {
    let repo = TestRepo::new();
    with_package(&repo);
    repo.write(
        "package.json",
        "{\"name\": \"app\", \"dependencies\": {\"mylib\": \"file:packages/mylib\"}}\n",
    );
    repo.write(
        "go.mod",
        "module example.com/app\n\ngo 1.22\n\nreplace example.com/lib => ./lib\n",
    );
    repo.write("go.work", "go 1.22\n\nuse (\n\t.\n\t./lib\n)\n");
    repo.write(
        "Cargo.toml",
        "[package]\nname = \"app\"\n\n[dependencies]\nlib = { path = \"lib\" }\n",
    );
    repo.commit_all("a project with relative paths");
    // Workspaces' relative links, in a node_modules no worktree sees (they are outside the
    // work tree and the run copies nothing).
    symlink("../packages/mylib", repo.path.join("node_modules/mylib"));
    let stderr = run_stderr(&repo);
    assert!(!stderr.contains("work tree"), "{stderr}");
}
