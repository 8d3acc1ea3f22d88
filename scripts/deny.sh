#!/usr/bin/env bash
# The dependency checks (deny.toml): bans (no OpenSSL/native-tls, duplicate versions
# warned), licenses (an explicit allow list), sources (crates.io only) and the
# RustSec advisories (known vulnerabilities; unsound or unmaintained direct
# dependencies; yanked versions).
#
#   scripts/deny.sh
#
# cargo-deny is installed at the pinned version below into ~/.cargo/bin when it is
# missing or another version (a first install compiles it: a few minutes).
#
# bans, licenses and sources need no network and must pass. The advisories need
# the RustSec database, a git repository that cargo-deny clones into
# $CARGO_HOME/advisory-dbs. Where it cannot be fetched (a machine that reaches only
# the package registries) and no copy is cached, that check is reported as not
# run and does not fail this script; a cached copy is used when the fetch fails;
# whenever a database is there, any advisory fails the script. Known advisories
# without a fix are also banned crates in deny.toml (rsa), so the offline checks
# catch those. The last line says what the advisory check covered; with
# DENY_SUMMARY set, it is also written to that file (`make test` repeats it at
# its end, where a skipped check cannot scroll out of sight).
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DENY_VERSION=0.20.2
# The one error cargo-deny 0.20 gives when `git clone`/`git fetch` of a database
# fails (src/advisories/helpers/db.rs); a fixed version, so a fixed text.
FETCH_FAILED='failed to fetch advisory database'
ADVISORY_DBS="${CARGO_HOME:-$HOME/.cargo}/advisory-dbs"

log() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }
summary() {
    log "$*"
    if [ -n "${DENY_SUMMARY:-}" ]; then printf '%s\n' "$*" >"$DENY_SUMMARY"; fi
}

installed=$(cargo deny --version 2>/dev/null || true)
if [ "$installed" != "cargo-deny $CARGO_DENY_VERSION" ]; then
    log "installing cargo-deny $CARGO_DENY_VERSION from crates.io (found: ${installed:-none}); a first install compiles for several minutes"
    nice -n 10 cargo install cargo-deny --locked --version "$CARGO_DENY_VERSION" --quiet
fi

log "cargo deny check bans licenses sources"
# Duplicate versions are only warnings; their inclusion graphs would fill the log.
# On a failure the check runs again with the graphs, to show what pulls a crate in.
if ! cargo deny --locked check --hide-inclusion-graph --show-stats bans licenses sources; then
    cargo deny --locked check bans licenses sources || true
    exit 1
fi

log "cargo deny check advisories (RustSec)"
# First with a fetch (a clone, or an update of the cached copy). When that fails,
# a cached copy is used as it is (--offline); with none, the check is not run.
have_db() { compgen -G "$ADVISORY_DBS/*/.git" >/dev/null; }
out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0
# Git's own timeouts are long; a fetch that hangs must not stall CI.
GIT_HTTP_LOW_SPEED_LIMIT=1000 GIT_HTTP_LOW_SPEED_TIME=30 \
    timeout 300 cargo deny --locked check advisories >"$out" 2>&1 || status=$?
if [ "$status" -eq 0 ]; then
    cat "$out"
    summary "advisories checked against the RustSec database, fetched now"
    exit 0
fi
if [ "$status" -ne 124 ] && ! grep -qF "$FETCH_FAILED" "$out"; then
    # The database was loaded: the failures are advisories (or a broken config).
    cat "$out"
    exit "$status"
fi
if have_db; then
    # cargo-deny dates a database by .git/FETCH_HEAD, which even a failed `git fetch`
    # rewrites, so its own 90-day staleness limit never trips here: date the copy by
    # its newest commit instead, and say so when that is old.
    newest=$(for git_dir in "$ADVISORY_DBS"/*/.git; do git -C "${git_dir%/.git}" log -1 --format=%cs 2>/dev/null; done | sort | tail -n1)
    log "the RustSec advisory database could not be refreshed; checking against the copy cached in $ADVISORY_DBS (newest advisory commit: ${newest:-unknown})"
    status=0
    cargo deny --locked --offline check advisories >"$out" 2>&1 || status=$?
    cat "$out"
    if [ "$status" -ne 0 ] && grep -qF 'repository is stale' "$out"; then
        summary "advisories NOT CHECKED: the cached RustSec database is older than 90 days and cannot be refreshed here; with network access run: cargo deny check advisories"
        exit 0
    fi
    if [ "$status" -eq 0 ] && [ -n "$newest" ] && [ "$newest" \< "$(date -u -d '90 days ago' +%F)" ]; then
        summary "advisories checked against a cached RustSec database from $newest (over 90 days old): newer advisories are not covered; with network access run: cargo deny check advisories"
    elif [ "$status" -eq 0 ]; then
        summary "advisories checked against a cached RustSec database (newest advisory commit: ${newest:-unknown}), not refreshed"
    fi
    exit "$status"
fi
# git's reason, e.g. "fatal: unable to access '...': Could not resolve host: github.com".
reason=$(grep -m1 '^fatal:' "$out" || echo "the fetch timed out")
summary "advisories NOT CHECKED: the RustSec advisory database cannot be fetched here and none is cached ($reason); only the advisories deny.toml bans (rsa) were enforced; with network access run: cargo deny check advisories"
