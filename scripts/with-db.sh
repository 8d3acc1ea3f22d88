#!/usr/bin/env bash
# Runs a command with DATABASE_URL set (starting the private cluster if needed).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/db.sh
db_up
exec "$@"
