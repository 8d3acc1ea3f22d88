#!/usr/bin/env bash
# Every function binary is a position-independent executable (docs/security.md,
# item 12): its ELF type is DYN and its dynamic section's FLAGS_1 holds PIE, so
# the kernel loads its image at a random address (ASLR). A static, non-PIE
# binary (ELF type EXEC) fails.
#
#   scripts/check-pie.sh BINARY...
#
# readelf reads every architecture, so an x86_64 machine checks the arm64
# bootstraps; binutils is installed with apt-get when readelf is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/db.sh

if [ "$#" -eq 0 ]; then
    log "check-pie: no binary given (did the build produce none?)"
    exit 1
fi
if ! command -v readelf >/dev/null; then
    apt_install binutils
fi
failed=0
for binary in "$@"; do
    type=$(readelf -h "$binary" | awk '$1 == "Type:" { print $2 }')
    flags=$(readelf -d "$binary" | awk '/\(FLAGS_1\)/ { $1 = $2 = ""; print }')
    if [ "$type" = DYN ] && [[ " $flags " == *" PIE "* ]]; then
        printf '    %-60s PIE\n' "$binary"
    else
        printf '    %-60s NOT PIE (type %s, FLAGS_1:%s)\n' "$binary" "${type:-?}" "${flags:- none}"
        failed=1
    fi
done
if [ "$failed" -ne 0 ]; then
    log "check-pie: a binary is not position-independent; see docs/security.md, item 12"
    exit 1
fi
