#!/usr/bin/env bash
# Make sure the tools and services the tests need are here, installing or starting what is missing.
# Under CI=true a failure here is fatal; on a developer machine it only warns, and the tests that
# need the missing piece fail with a message that names it.
set -uo pipefail

fail() {
  echo "ensure-services: $*" >&2
  if [ "${CI:-}" = "true" ]; then exit 1; fi
}

apt_install() {
  # Debian package names: wrk (load generator for `make bench`), prometheus (promtool).
  if [ "$(id -u)" != "0" ]; then
    fail "missing $*; install them with: sudo apt-get install $*"
    return
  fi
  if [ ! -e /tmp/.telemetry-web-apt-updated ]; then
    apt-get update -qq >/dev/null 2>&1 && touch /tmp/.telemetry-web-apt-updated
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
    || fail "apt-get install $* failed"
}

missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
if [ ${#missing[@]} -gt 0 ]; then
  echo "ensure-services: installing ${missing[*]}"
  apt_install "${missing[@]}"
fi
exit 0
