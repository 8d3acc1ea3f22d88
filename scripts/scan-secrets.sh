#!/usr/bin/env bash
# Fails if any configured secret value appears in the given log files: the
# local secrets and token signing key (scripts/local-env.sh, or the
# environment's own), the database password in DATABASE_URL, and the secret and
# private-key constants the tests configure.
#
#   scripts/scan-secrets.sh LOG...
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$#" -gt 0 ] || { echo "usage: $0 LOG..." >&2; exit 2; }

secrets=()
# What `make run` and the Schemathesis server are configured with.
mapfile -t -O "${#secrets[@]}" secrets < <(
    # shellcheck source=/dev/null
    source scripts/local-env.sh
    printf '%s\n' "$JWT_SIGNING_KEY" "$LEARNWORLDS_WEBHOOK_SECRET" "$LEARNWORLDS_LAUNCH_SECRET" "$ERASURE_HASH_KEY"
)
# The password of DATABASE_URL, if it has one.
if [[ "${DATABASE_URL:-}" =~ ^[a-z]+://[^:/@]+:([^@]+)@ ]]; then
    secrets+=("${BASH_REMATCH[1]}")
fi
# The tests' constants: `const ...SECRET/PASSWORD...: &str = "..."`, private
# keys `const ...PRIVATE_KEY: &str = "..."` (on that line or the next, where
# rustfmt puts a long one), and the passwords the scripts give login roles.
mapfile -t -O "${#secrets[@]}" secrets < <(
    grep -rhoE '(SECRET|PASSWORD)[A-Z_]*: &str = "[^"]+"' shared functions cli bench --include='*.rs' \
        | sed -E 's/.*= "(.*)"/\1/'
    grep -rhoPz 'PRIVATE_KEY: &str =\s*"\K[^"\n]+(?=")' shared functions cli bench --include='*.rs' \
        | tr '\0' '\n'
    grep -rhoE '^[A-Z_]*PASSWORD=[^ ]+' scripts/*.sh | sed -E 's/^[A-Z_]*=//'
)
# Values shorter than 8 characters would match by accident; there are none. A
# key given as PEM is scanned for its base64 lines, not its armour.
mapfile -t secrets < <(printf '%s\n' "${secrets[@]}" | awk 'length($0) >= 8 && !/^-----/' | sort -u)

lines=$(cat "$@" | wc -l)
found=0
for secret in "${secrets[@]}"; do
    hits=$(cat "$@" | { grep -cF -- "$secret" || true; })
    if [ "$hits" -gt 0 ]; then
        # Where, not what: the value is not printed again.
        printf '    a configured secret appears on %s log line(s), first at:\n' "$hits" >&2
        { grep -nF -- "$secret" "$@" || true; } | head -n 3 | cut -d: -f1,2 | sed 's/^/        /' >&2 || true
        found=$((found + 1))
    fi
done
printf '\033[1m==>\033[0m secret scan: %s log lines, %s secret values, %s found\n' "$lines" "${#secrets[@]}" "$found" >&2
[ "$found" -eq 0 ]
