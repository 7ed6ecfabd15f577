//! A Python project installed in editable mode into the environment tests use: candidates'
//! tests must run the candidate's code, not the user's work tree.

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
