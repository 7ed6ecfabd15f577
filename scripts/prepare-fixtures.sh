#!/usr/bin/env bash
# Fetch, ahead of the tests, what the real-project tests (tests/it/real_projects.rs) need
# from package registries: the tests themselves never use the network.
#
#   scripts/prepare-fixtures.sh          prepare what is missing, print the fixtures directory
#   MASSGEN_FIXTURES=DIR scripts/...     choose the directory (default: target/fixtures)
#
# What it leaves there:
#   wheels/        a setuptools wheel that builds PEP 660 editable wheels by itself (the
#                  setuptools that Python 3.11's venv bundles needs the `wheel` package for
#                  that, and 3.12's venv bundles none), and pytest with the wheels it
#                  depends on (the src-layout test of `init`), installed with `pip --no-index`
#   npm-cache/     an npm cache that holds tests/fixtures/node-project's packages, for
#                  `npm ci --offline`
#   node-project/  that project installed (node_modules), for the tests that copy it
#
# Idempotent and quick once done: a part already prepared is left alone (the Node project
# is redone when its package.json or package-lock.json changes). A part whose tool is
# missing (python3, node, npm) is skipped with a line on stderr; the tests that need it
# then skip loudly. Exit 1 when a part could not be prepared.
set -uo pipefail
cd "$(dirname "$0")/.."

dir="${MASSGEN_FIXTURES:-target/fixtures}"
mkdir -p "$dir" && dir="$(cd "$dir" && pwd)" || exit 1
status=0

# Setuptools 70.1 and later carry bdist_wheel themselves; 75.8 runs on Python 3.9 to 3.13.
SETUPTOOLS=75.8.0
wheel="$dir/wheels/setuptools-$SETUPTOOLS-py3-none-any.whl"
if [ -e "$wheel" ]; then
    :
elif ! command -v python3 >/dev/null; then
    echo "prepare-fixtures: python3 not found, skipping the setuptools wheel" >&2
elif ! python3 -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
    --no-deps --dest "$dir/wheels" "setuptools==$SETUPTOOLS" >&2; then
    echo "prepare-fixtures: could not download setuptools==$SETUPTOOLS" >&2
    status=1
fi

# pytest and what it depends on, for the interpreter that will run the tests.
PYTEST=8.3.5
if compgen -G "$dir/wheels/pytest-$PYTEST-*.whl" >/dev/null; then
    :
elif ! command -v python3 >/dev/null; then
    echo "prepare-fixtures: python3 not found, skipping pytest" >&2
elif ! python3 -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
    --dest "$dir/wheels" "pytest==$PYTEST" >&2; then
    echo "prepare-fixtures: could not download pytest==$PYTEST" >&2
    status=1
fi

# The Node project: installed once from the registry (filling npm-cache), then installed
# again offline, the way the tests do it (their own HOME, so no user .npmrc), to prove the
# cache is enough. `.prepared` holds a checksum of the manifests it was made from.
src=tests/fixtures/node-project
project="$dir/node-project"
npm_quiet=(--no-audit --no-fund --loglevel=error)
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "prepare-fixtures: node or npm not found, skipping the Node project" >&2
else
    want="$(cat "$src/package.json" "$src/package-lock.json" | cksum)"
    if [ "$(cat "$project/.prepared" 2>/dev/null)" != "$want" ]; then
        rm -rf "$project"
        mkdir -p "$project"
        cp "$src/package.json" "$src/package-lock.json" "$project/"
        check="$(mktemp -d)"
        cp "$src/package.json" "$src/package-lock.json" "$check/"
        if (cd "$project" && npm ci --cache "$dir/npm-cache" "${npm_quiet[@]}" >&2) \
            && (cd "$check" && HOME="$check" npm_config_update_notifier=false \
                npm ci --offline --cache "$dir/npm-cache" "${npm_quiet[@]}" >&2); then
            printf '%s\n' "$want" >"$project/.prepared"
        else
            echo "prepare-fixtures: could not install $src with npm" >&2
            rm -rf "$project"
            status=1
        fi
        rm -rf "$check"
    fi
fi

echo "$dir"
exit "$status"
