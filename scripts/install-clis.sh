#!/usr/bin/env bash
# Install the real agent CLIs at pinned versions into a cache directory, for the
# integration tests in tests/it/clis.rs, and the pre-commit framework for tests/it/hooks.rs.
# Nothing is installed globally and no user configuration is touched.
#
#   scripts/install-clis.sh            install what is missing, print the bin directory
#   MASSGEN_CLI_CACHE=DIR scripts/...  choose the cache (default: $XDG_CACHE_HOME/git-massgen/clis)
#
# Each CLI lands in "$cache/<name>-<version>/" and is linked from "$cache/bin/<name>".
# A CLI that cannot be installed is reported and skipped; the tests then skip it loudly.
set -uo pipefail

cache="${MASSGEN_CLI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/git-massgen/clis}"
mkdir -p "$cache/bin"

# Pinned versions: each one was checked against tests/it/clis.rs. Claude Code and Qwen
# Code are pinned to releases that still run on Node 20.
CLAUDE=2.1.197
CODEX=0.169.0
GEMINI=0.61.0
OPENCODE=1.18.33
QWEN=0.15.10
AIDER=0.86.2
# The pre-commit framework, for the test of our .pre-commit-hooks.yaml (tests/it/hooks.rs).
PRE_COMMIT=4.7.0

# A finished install leaves "$dir/.installed"; anything else is removed and retried.
npm_cli() { # name version package binary
    local name=$1 version=$2 package=$3 binary=$4
    local dir="$cache/$name-$version"
    if [ ! -e "$dir/.installed" ]; then
        command -v npm >/dev/null || { echo "install-clis: npm not found, skipping $name" >&2; return; }
        rm -rf "$dir"
        if npm install --silent --no-audit --no-fund --prefix "$dir" "$package@$version" >&2; then
            touch "$dir/.installed"
        else
            echo "install-clis: could not install $package@$version" >&2
            rm -rf "$dir"
            return
        fi
    fi
    ln -sfn "$dir/node_modules/.bin/$binary" "$cache/bin/$binary"
}

pip_cli() { # name version package binary
    local name=$1 version=$2 package=$3 binary=$4
    local dir="$cache/$name-$version"
    if [ ! -e "$dir/.installed" ]; then
        command -v python3 >/dev/null || { echo "install-clis: python3 not found, skipping $name" >&2; return; }
        rm -rf "$dir"
        if python3 -m venv "$dir" >&2 \
            && "$dir/bin/pip" install --quiet --disable-pip-version-check "$package==$version" >&2; then
            touch "$dir/.installed"
        else
            echo "install-clis: could not install $package==$version" >&2
            rm -rf "$dir"
            return
        fi
    fi
    ln -sfn "$dir/bin/$binary" "$cache/bin/$binary"
}

npm_cli claude "$CLAUDE" @anthropic-ai/claude-code claude &
npm_cli codex "$CODEX" @openai/codex codex &
npm_cli gemini "$GEMINI" @google/gemini-cli gemini &
npm_cli opencode "$OPENCODE" opencode-ai opencode &
npm_cli qwen "$QWEN" @qwen-code/qwen-code qwen &
wait
pip_cli pre-commit "$PRE_COMMIT" pre-commit pre-commit
if [ "${MASSGEN_SKIP_AIDER:-}" != 1 ]; then
    pip_cli aider "$AIDER" aider-chat aider
fi

echo "$cache/bin"
