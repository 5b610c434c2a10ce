#!/usr/bin/env bash
# Deploy colibri-mm to a local target directory, blue-green in miniature.
#
#   scripts/deploy.sh staging|production        test, build, verify, install, smoke-test, switch
#   scripts/deploy.sh rollback staging|production   switch back to the previous release
#
# A deploy runs the test suite (`make test`), builds the wheel and the sdist into
# dist/, writes dist/SHA256SUMS and a CycloneDX SBOM (dist/sbom.cdx.json) of the
# environment the wheel installs into, installs the wheel into a fresh virtual
# environment under deploy/<target>/releases/<version>-<timestamp>/ (with copies of
# dist/, the sample config colibridb.conf.json and runbooks/), starts coldb-server
# from that environment on free loopback ports and talks to it with coldb (ping, put,
# get, health, shutdown), and only then switches deploy/<target>/current to the new
# release atomically. deploy/<target>/previous keeps the release it replaced, which
# is what `rollback` switches back to (a second rollback goes forward again).
# Any failure stops the deploy with a non-zero exit status and leaves `current` as it
# was; the failed release directory is left in place, with its logs, for inspection.
#
# Environment:
#   DEPLOY_SKIP_TESTS=1   developer shortcut: skip `make test` (a loud warning; refused
#                         for production)
#   DEPLOY_TOOLS_PYTHON   interpreter that has `build` and `cyclonedx-bom` (default:
#                         .venv/bin/python, installed by `make dev`)
#   PYTHON                interpreter the release's virtual environment is made from
#                         (default: python3)
# Building needs no network (no build isolation); installing the wheel's
# dependencies into the release environment needs the package index (or pip's cache).

set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"

# ---- Messages -------------------------------------------------------------------

STEP=0
STEPS=9
STEP_NAME=""
step() { STEP=$((STEP + 1)); STEP_NAME=$*; printf '\n==> [%d/%d] %s\n' "$STEP" "$STEPS" "$*"; }
info() { printf '    %s\n' "$*"; }
die() { printf 'deploy.sh: error: %s\n' "$*" >&2; exit 1; }
usage() {
    printf 'usage: scripts/deploy.sh staging|production\n' >&2
    printf '       scripts/deploy.sh rollback staging|production\n' >&2
    exit 2
}

# A command's output goes to a log file; on failure the end of the log is shown.
run_logged() {
    local log=$1; shift
    if ! "$@" >"$log" 2>&1; then
        printf 'deploy.sh: command failed: %s\n' "$*" >&2
        tail -n 30 "$log" | sed 's/^/    | /' >&2
        printf '    (whole log: %s)\n' "$log" >&2
        return 1
    fi
}

# Point the symlink $1 at $2 atomically: a new link under a temporary name, then a
# rename over the old one (rename(2) replaces a name in one step).
switch_link() {
    local link=$1 dest=$2
    ln -sfn "$dest" "$link.new.$$"
    mv -T "$link.new.$$" "$link"
}

check_target() {
    case "${1:-}" in
        staging|production) ;;
        *) usage ;;
    esac
}

# One deploy or rollback per target at a time.
lock_target() {
    mkdir -p "$1"
    exec 9>"$1/.lock"
    flock -n 9 || die "another deploy or rollback of $(basename "$1") is running (lock $1/.lock)"
}

# ---- Rollback -------------------------------------------------------------------

rollback() {
    local target=$1 dir="$REPO/deploy/$1"
    [ -d "$dir" ] || die "nothing to roll back to: $target was never deployed ($dir does not exist)"
    lock_target "$dir"
    [ -L "$dir/previous" ] ||
        die "nothing to roll back to: $target has no previous release (only one deploy so far?)"
    local previous current
    previous=$(readlink "$dir/previous")
    current=$(readlink "$dir/current")
    [ -x "$dir/$previous/venv/bin/coldb-server" ] ||
        die "cannot roll back: the previous release $dir/$previous is missing or incomplete"
    switch_link "$dir/current" "$previous"
    switch_link "$dir/previous" "$current"
    printf 'deploy.sh: rolled back %s: current -> %s (was %s; run rollback again to return)\n' \
        "$target" "$previous" "$current"
}

# ---- Deploy ---------------------------------------------------------------------

RELEASE=""          # the release directory being built
SERVER_PIDFILE=""   # the smoke test's server, stopped on exit if still running
SWITCHED=0

on_exit() {
    local status=$?
    if [ -n "$SERVER_PIDFILE" ] && [ -s "$SERVER_PIDFILE" ]; then
        kill -TERM "$(cat "$SERVER_PIDFILE")" 2>/dev/null || true
    fi
    if [ "$status" -ne 0 ] && [ "$SWITCHED" -eq 0 ]; then
        printf '\ndeploy.sh: DEPLOY FAILED at step %d/%d (%s); %s/current was not switched' \
            "$STEP" "$STEPS" "$STEP_NAME" "$TARGET_DIR" >&2
        if [ -L "$TARGET_DIR/current" ]; then
            printf ' and still points to %s' "$(readlink "$TARGET_DIR/current")" >&2
        fi
        printf '.\n' >&2
        [ -z "$RELEASE" ] || printf 'deploy.sh: the failed release is left in %s\n' "$RELEASE" >&2
    fi
}

# The smoke test's CLI calls: run `coldb --server ADDRESS ARGS...`, require exit 0
# and, when given, that standard output matches the regular expression.
smoke_cli() {
    local expected=$1; shift
    local output
    if ! output=$("$RELEASE/venv/bin/coldb" --server "$SMOKE_ADDRESS" "$@" 2>&1); then
        printf 'deploy.sh: smoke test: "coldb %s" failed:\n%s\n' "$*" "$output" >&2
        return 1
    fi
    if [ -n "$expected" ] && ! grep -Eq "$expected" <<<"$output"; then
        printf 'deploy.sh: smoke test: "coldb %s" printed %q, expected /%s/\n' \
            "$*" "$output" "$expected" >&2
        return 1
    fi
    output=$(head -n 1 <<<"$output")
    info "coldb $*: ${output:-(exit 0)}"
}

smoke_test() {
    local smoke="$RELEASE/smoke"
    mkdir -p "$smoke"
    SERVER_PIDFILE="$smoke/server.pid"
    # Three free loopback ports (RESP, HTTP, Flight), asked of the kernel.
    local resp http flight
    read -r resp http flight < <("$RELEASE/venv/bin/python" -c '
import socket
sockets = [socket.socket() for _ in range(3)]
for s in sockets:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in sockets))')
    SMOKE_ADDRESS="127.0.0.1:$resp"
    # The shipped sample config, with ports, data and logs of the smoke test; --daemon
    # returns once the server is ready (exit 0) or has failed to start (non-zero).
    # The server does not inherit the target's lock (fd 9).
    if ! "$RELEASE/venv/bin/coldb-server" --config "$RELEASE/colibridb.conf.json" \
            --data-dir "$smoke/data" --port "$resp" --http-port "$http" \
            --flight-port "$flight" --logfile "$smoke/server.log" \
            --daemon --pidfile "$SERVER_PIDFILE" >"$smoke/start.out" 2>&1 9>&-; then
        printf 'deploy.sh: smoke test: coldb-server did not start:\n' >&2
        sed 's/^/    | /' "$smoke/start.out" >&2
        [ ! -f "$smoke/server.log" ] || tail -n 20 "$smoke/server.log" | sed 's/^/    | /' >&2
        return 1
    fi
    info "$(cat "$smoke/start.out")"
    local value pid
    value="smoke-$(date -u +%s)-$$"
    pid=$(cat "$SERVER_PIDFILE")
    smoke_cli '^PONG ' ping
    smoke_cli '' put deploy:smoke "$value"
    smoke_cli "^$value\$" get deploy:smoke
    smoke_cli '^server ' health
    smoke_cli '^stopped$' shutdown
    # A graceful stop: the process exits (within a minute) and logs a clean stop.
    local waited=0
    while kill -0 "$pid" 2>/dev/null; do
        [ "$waited" -lt 600 ] || { printf 'deploy.sh: smoke test: the server did not exit\n' >&2; return 1; }
        sleep 0.1
        waited=$((waited + 1))
    done
    grep -q '"msg": "stopped"' "$smoke/server.log" ||
        { printf 'deploy.sh: smoke test: no clean stop in %s\n' "$smoke/server.log" >&2; return 1; }
    rm -rf "$smoke/data"
}

deploy() {
    local target=$1
    TARGET_DIR="$REPO/deploy/$target"
    trap on_exit EXIT
    lock_target "$TARGET_DIR"
    local work tools_python="${DEPLOY_TOOLS_PYTHON:-}" base_python="${PYTHON:-python3}"
    work=$(mktemp -d "${TMPDIR:-/tmp}/colibri-deploy.XXXXXX")
    printf 'deploy.sh: deploying %s from %s\n' "$target" "$REPO"

    # 1. Refuse what a production deploy must not be: untested, or not a commit.
    step "Preflight checks"
    local commit="unknown (not a git checkout)"
    if git -C "$REPO" rev-parse --git-dir >/dev/null 2>&1; then
        commit=$(git -C "$REPO" rev-parse HEAD)
        if [ -n "$(git -C "$REPO" status --porcelain --untracked-files=no)" ]; then
            [ "$target" != production ] ||
                die "production deploys only a clean commit: commit or revert the changes to tracked files first"
            commit="$commit (with uncommitted changes)"
        fi
    fi
    info "commit: $commit"
    if [ "${DEPLOY_SKIP_TESTS:-}" = 1 ] && [ "$target" = production ]; then
        die "DEPLOY_SKIP_TESTS=1 is refused for production: a production release is always tested"
    fi

    # 2. The whole test suite; a failure stops the deploy.
    step "Running the tests (make test)"
    if [ "${DEPLOY_SKIP_TESTS:-}" = 1 ]; then
        printf '    %s\n' '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!' \
            '!!! WARNING: DEPLOY_SKIP_TESTS=1: the tests were NOT run for this release !!!' \
            '!!! (a developer shortcut for staging only; never for production)       !!!' \
            '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!' >&2
    else
        make --no-print-directory test || die "the tests failed: nothing was built or switched"
    fi

    # 3. Wheel and sdist, without build isolation (no network needed).
    step "Building the wheel and the sdist into dist/"
    if [ -z "$tools_python" ]; then
        make --no-print-directory --silent dev
        tools_python="$REPO/.venv/bin/python"
    fi
    rm -rf dist
    run_logged "$work/build.log" "$tools_python" -m build --no-isolation --outdir dist . ||
        die "the build failed"
    local wheel sdist version
    wheel=$(cd dist && ls colibri_mm-*.whl)
    sdist=$(cd dist && ls colibri_mm-*.tar.gz)
    version=${wheel#colibri_mm-}
    version=${version%%-*}
    info "dist/$wheel"
    info "dist/$sdist"

    # 4. The release directory and its fresh virtual environment, holding the wheel
    # and its dependencies at the versions the tests ran with (a constraints file
    # from the tools' environment).
    step "Installing the wheel into a fresh virtual environment"
    RELEASE="$TARGET_DIR/releases/$version-$(date -u +%Y%m%dT%H%M%SZ)"
    mkdir -p "$TARGET_DIR/releases"
    mkdir "$RELEASE" || die "release directory $RELEASE already exists"
    mkdir "$RELEASE/logs"
    mv "$work/build.log" "$RELEASE/logs/"
    rmdir "$work"
    "$tools_python" -m pip freeze --exclude-editable 2>/dev/null |
        grep -E '^[A-Za-z0-9._-]+==' >"$RELEASE/constraints.txt" || true
    run_logged "$RELEASE/logs/venv.log" "$base_python" -m venv "$RELEASE/venv" ||
        die "could not create the virtual environment"
    run_logged "$RELEASE/logs/install.log" "$RELEASE/venv/bin/python" -m pip install \
        --disable-pip-version-check -c "$RELEASE/constraints.txt" "dist/$wheel" ||
        die "could not install dist/$wheel into $RELEASE/venv"
    info "$RELEASE/venv: $("$RELEASE/venv/bin/coldb" --version)"

    # 5. The SBOM of that environment, then the checksums of everything in dist/.
    step "Writing the SBOM (dist/sbom.cdx.json) and dist/SHA256SUMS"
    # colibri-mm is the SBOM's top-level component (metadata.component, from
    # pyproject.toml), every installed package a component it depends on. Its version
    # is dynamic in pyproject.toml, so cyclonedx-py leaves it out: the wheel's goes in.
    run_logged "$RELEASE/logs/sbom.log" "$tools_python" -m cyclonedx_py environment \
        --pyproject pyproject.toml --mc-type application --output-format JSON \
        --output-file dist/sbom.cdx.json "$RELEASE/venv" || die "the SBOM could not be generated"
    "$tools_python" - dist/sbom.cdx.json "$version" <<'PY' || die "the SBOM could not be completed"
import json
import sys

path, version = sys.argv[1:]
with open(path) as file:
    bom = json.load(file)
bom["metadata"]["component"].update(version=version, purl=f"pkg:pypi/colibri-mm@{version}")
with open(path, "w") as file:
    json.dump(bom, file, indent=2)
    file.write("\n")
PY
    (cd dist && sha256sum "$wheel" "$sdist" sbom.cdx.json >SHA256SUMS &&
        sha256sum --check --quiet SHA256SUMS) || die "dist/SHA256SUMS does not verify"
    sed 's/^/    /' dist/SHA256SUMS

    # 6. What an operator needs beside the code: the artifacts, the sample config,
    # the runbooks, and a note of what this release is.
    step "Copying dist/, the sample config and the runbooks into the release"
    cp -r dist "$RELEASE/dist"
    cp colibridb.conf.json "$RELEASE/"
    cp -r runbooks "$RELEASE/runbooks"
    {
        printf 'version=%s\n' "$version"
        printf 'target=%s\n' "$target"
        printf 'commit=%s\n' "$commit"
        printf 'built_at=%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
        printf 'tests=%s\n' "$([ "${DEPLOY_SKIP_TESTS:-}" = 1 ] && echo SKIPPED || echo passed)"
        printf 'python=%s\n' "$("$RELEASE/venv/bin/python" --version)"
    } >"$RELEASE/RELEASE"
    info "$RELEASE"

    # 7. The release must serve before it goes live.
    step "Smoke test: coldb-server from the release, coldb ping/put/get/health/shutdown"
    # (Called plainly, not in `|| die`, so that `set -e` stays in force inside it.)
    smoke_test

    # 8. Blue-green switch: remember what was live, then point current at the release.
    step "Switching $target/current"
    local name previous=""
    name="releases/$(basename "$RELEASE")"
    if [ -L "$TARGET_DIR/current" ]; then
        previous=$(readlink "$TARGET_DIR/current")
        switch_link "$TARGET_DIR/previous" "$previous"
    fi
    switch_link "$TARGET_DIR/current" "$name"
    SWITCHED=1
    info "current -> $name${previous:+ (previous -> $previous)}"

    # 9. Done.
    step "Deployed"
    printf 'deploy.sh: %s is live on %s: %s\n' "$version" "$target" "$TARGET_DIR/current"
}

case "${1:-}" in
    rollback)
        [ $# -eq 2 ] || usage
        check_target "$2"
        rollback "$2"
        ;;
    *)
        [ $# -eq 1 ] || usage
        check_target "$1"
        deploy "$1"
        ;;
esac
