#!/usr/bin/env bash
# Settings for running the service on this machine. Each is used only when the
# variable is not already set. These secrets are public: never deploy them.
: "${JWT_SECRET:=local-development-jwt-secret-do-not-deploy}"
: "${LEARNWORLDS_WEBHOOK_SECRET:=local-development-webhook-secret}"
: "${LEARNWORLDS_LAUNCH_SECRET:=local-development-launch-secret}"
: "${PORT:=3000}"
export JWT_SECRET LEARNWORLDS_WEBHOOK_SECRET LEARNWORLDS_LAUNCH_SECRET PORT
