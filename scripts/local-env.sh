#!/usr/bin/env bash
# Settings for running the service on this machine. Each is used only when the
# variable is not already set. These keys and secrets are public: never deploy
# them (a deployed stage, DEPLOYMENT_STAGE set, refuses to start with any of
# them; shared/src/foundation/hygiene.rs reads them from this file).
# The token key pair: the Ed25519 private key (PKCS#8) and its public key.
: "${JWT_SIGNING_KEY:=MC4CAQAwBQYDK2VwBCIEIJQccKRqw6cxJO+c/P05m8inG2AGWA0C9NXjeWNeqlKO}"
: "${JWT_PUBLIC_KEYS:=MCowBQYDK2VwAyEABgL5JNcbCmjX2UFxMnhXgt8/2+TsxOkoOimpZN5XFsE=}"
: "${LEARNWORLDS_WEBHOOK_SECRET:=local-development-webhook-secret}"
: "${LEARNWORLDS_LAUNCH_SECRET:=local-development-launch-secret}"
# The key of an erased person's keyed hashes (tombstone, audit pseudonym).
: "${ERASURE_HASH_KEY:=local-development-erasure-hash-key-0123456789}"
: "${PORT:=3000}"
export JWT_SIGNING_KEY JWT_PUBLIC_KEYS LEARNWORLDS_WEBHOOK_SECRET LEARNWORLDS_LAUNCH_SECRET ERASURE_HASH_KEY PORT
