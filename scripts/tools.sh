#!/usr/bin/env bash
# The Python tool environment: cargo-lambda and zig (arm64 builds), cfn-lint and
# the SAM CLI (template checks), moto (a local Secrets Manager for tests).
# Installed once per requirements version, outside the repo, and reused.
#
#   source scripts/tools.sh && tools_up    # puts the tools on PATH

TOOLS_REQUIREMENTS="${FASTTRACK_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}/scripts/tools-requirements.txt"

tools_up() {
    local hash
    hash=$(sha256sum "$TOOLS_REQUIREMENTS" | cut -c1-12)
    TOOLS_VENV="${FASTTRACK_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/fasttrack/tools-$hash}"
    if [ ! -f "$TOOLS_VENV/.complete" ]; then
        log "installing cargo-lambda, zig, cfn-lint, the SAM CLI and moto into $TOOLS_VENV"
        # Debian ships the venv module with Python but its ensurepip, which
        # creating a venv needs, only in python3-venv.
        if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
            apt_install python3-venv python3-pip
        fi
        rm -rf "$TOOLS_VENV"
        python3 -m venv "$TOOLS_VENV"
        "$TOOLS_VENV/bin/pip" install -q --disable-pip-version-check -r "$TOOLS_REQUIREMENTS"
        touch "$TOOLS_VENV/.complete"
    fi
    export PATH="$TOOLS_VENV/bin:$PATH"
    export FASTTRACK_MOTO_SERVER="$TOOLS_VENV/bin/moto_server"
    export SAM_CLI_TELEMETRY=0
}
