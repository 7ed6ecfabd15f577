//! The one way this program runs the `git` binary: a sealed environment (no inherited
//! `GIT_DIR`, `GIT_INDEX_FILE` and the like, no prompts, C locale) and the full command line
//! in every error.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use super::GitError;

/// Environment variables that would redirect git to another repository, index or work tree.
pub const GIT_REPO_ENV: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
    "GIT_CEILING_DIRECTORIES",
    "GIT_DISCOVERY_ACROSS_FILESYSTEM",
];

/// A `git` invocation in a directory.
pub struct Git {
    cmd: Command,
    line: Vec<String>,
}

impl Git {
    /// `git -C <dir> …`
    pub fn new(dir: &Path) -> Git {
        Git::through(&[], dir)
    }

    /// `git -C <dir> …` started by `prefix` (a program and its arguments, which go on to
    /// run the rest of the command line: the trampoline that mounts a copy-on-write
    /// worktree); plain `git` when `prefix` is empty.
    pub fn through(prefix: &[std::ffi::OsString], dir: &Path) -> Git {
        let mut cmd = match prefix.split_first() {
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg("git");
                cmd
            }
            None => Command::new("git"),
        };
        for var in GIT_REPO_ENV {
            cmd.env_remove(var);
        }
        cmd.env("GIT_TERMINAL_PROMPT", "0")
            .env("LC_ALL", "C")
            .env("GIT_OPTIONAL_LOCKS", "0")
            .stdin(Stdio::null());
        let mut git = Git {
            cmd,
            line: vec!["git".into()],
        };
        git.arg("-C").arg(dir);
        git
    }

    /// Adds an argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Git {
        self.line.push(arg.as_ref().to_string_lossy().into_owned());
        self.cmd.arg(arg);
        self
    }

    /// Adds arguments.
    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(&mut self, args: I) -> &mut Git {
        for a in args {
            self.arg(a);
        }
        self
    }

    /// Sets an environment variable (after the sealing, so `GIT_INDEX_FILE` can be given
    /// back on purpose).
    pub fn env(&mut self, key: &str, value: impl AsRef<OsStr>) -> &mut Git {
        self.cmd.env(key, value);
        self
    }

    /// Sets environment variables.
    pub fn envs<'a>(&mut self, vars: impl IntoIterator<Item = (&'a str, &'a str)>) -> &mut Git {
        for (k, v) in vars {
            self.cmd.env(k, v);
        }
        self
    }

    /// The command line as the user would type it, for messages.
    pub fn cmdline(&self) -> String {
        shell_words::join(&self.line)
    }

    /// Runs to completion; a non-zero exit is an error carrying stderr.
    pub fn run(&mut self) -> Result<Output, GitError> {
        let output = self.output()?;
        if !output.status.success() {
            return Err(GitError::Command {
                cmdline: self.cmdline(),
                status: output.status.to_string(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        Ok(output)
    }

    /// Runs to completion with `input` on its standard input; the output whatever the exit
    /// status.
    pub fn output_with_input(&mut self, input: &[u8]) -> Result<Output, GitError> {
        use std::io::Write as _;
        let cmdline = self.cmdline();
        let spawn = |source| GitError::Spawn {
            cmdline: cmdline.clone(),
            source,
        };
        let mut child = self
            .cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn)?;
        let written = child.stdin.take().map(|mut stdin| stdin.write_all(input));
        let output = child.wait_with_output().map_err(spawn)?;
        // A command that stops reading early has said why on stderr.
        if let Some(Err(e)) = written
            && e.kind() != std::io::ErrorKind::BrokenPipe
        {
            return Err(spawn(e));
        }
        Ok(output)
    }

    /// Runs to completion and returns the output whatever the exit status.
    pub fn output(&mut self) -> Result<Output, GitError> {
        self.cmd.output().map_err(|source| GitError::Spawn {
            cmdline: self.cmdline(),
            source,
        })
    }
}

/// The object id a git command printed (`write-tree`, `commit-tree`, `rev-parse`).
pub fn printed_id(stdout: &[u8]) -> Result<super::ObjectId, GitError> {
    let text = String::from_utf8_lossy(stdout);
    super::ObjectId::from_hex(text.trim().as_bytes())
        .map_err(|e| GitError::Other(format!("git printed `{}`, not an id: {e}", text.trim())))
}
