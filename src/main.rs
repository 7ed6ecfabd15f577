//! The `git-massgen` binary: parse arguments, run the command, map the outcome to an exit code.

fn main() -> std::process::ExitCode {
    git_massgen::cli::main()
}
