#!/usr/bin/env bash
# Runs a command with DATABASE_URL and the local settings set (starting the
# private cluster if needed).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/db.sh
source scripts/local-env.sh
db_up
exec "$@"
