#!/usr/bin/env bash
# System packages the test suite needs beyond Python: headless Chromium for the seller-page test (Debian).
# Idempotent: installs only what is missing; needs root (CI and the dev machines run as root).
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium chromium-driver
