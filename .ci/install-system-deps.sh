#!/usr/bin/env bash
# System packages the test suite needs beyond Python (Debian): headless Chromium for the seller-page test and a
# PostgreSQL server for the tests of the stores on PostgreSQL (they start a throwaway cluster of their own); for
# `make deploy-test`, Debian's Docker engine, docker-compose and debootstrap (the images' base, made locally).
# Idempotent: each group is installed only when it is missing; needs root (CI and the dev machines run as root).
set -euo pipefail

packages=()
if ! { [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; }; then
  packages+=(chromium chromium-driver)
fi

has_postgres_server() {
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    return 0
  fi
  local bin
  for bin in /usr/lib/postgresql/*/bin; do
    if [ -x "$bin/initdb" ] && [ -x "$bin/pg_ctl" ]; then
      return 0
    fi
  done
  return 1
}
if ! has_postgres_server; then
  packages+=(postgresql-15)
fi

command -v dockerd >/dev/null 2>&1 || packages+=(docker.io)
command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1 || packages+=(docker-compose)
command -v debootstrap >/dev/null 2>&1 || packages+=(debootstrap)

if [ "${#packages[@]}" -eq 0 ]; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${packages[@]}"
