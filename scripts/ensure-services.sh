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
  # Debian package names: wrk (load generator for `make bench`), prometheus (promtool, and the
  # server tests/metrics/test_remote_write.py starts).
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
# prometheus: promtool, and the server the remote-write tests start
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
  missing+=(prometheus)
fi
# haproxy and nginx: the proxies tests/mesh starts in front of the app (Caddy comes from PyPI)
command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
command -v nginx >/dev/null 2>&1 || missing+=(nginx)
# chromium: the headless browser tests/ui drives with playwright
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
# prometheus-alertmanager: the Alertmanager server and amtool (tests/alerting/test_end_to_end.py,
# test_prometheus_rules.py)
if ! command -v amtool >/dev/null 2>&1 || ! command -v prometheus-alertmanager >/dev/null 2>&1; then
  missing+=(prometheus-alertmanager)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "ensure-services: installing ${missing[*]}"
  apt_install "${missing[@]}"
fi

# The Etsy StatsD daemon (npm package `statsd`, pinned) that tests/metrics/test_statsd.py starts
# with node, in the git-ignored .npm-statsd/ of the repository.
STATSD_VERSION=0.9.0
statsd_dir="$(cd "$(dirname "$0")/.." && pwd)/.npm-statsd"
if ! grep -qs "\"version\": \"$STATSD_VERSION\"" "$statsd_dir/node_modules/statsd/package.json"; then
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "ensure-services: installing nodejs and npm (the StatsD daemon's runtime)"
    apt_install nodejs npm
  fi
  echo "ensure-services: installing statsd@$STATSD_VERSION into $statsd_dir"
  npm install --prefix "$statsd_dir" --no-audit --no-fund --ignore-scripts --silent \
    "statsd@$STATSD_VERSION" >/dev/null || fail "npm install statsd@$STATSD_VERSION failed"
fi

# PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379), for tests/instrumentors and
# `python -m benchmarks.db`: a service that does not answer is started with the machine's own
# command (the ones it was started with at boot), then waited for.
answers() {  # host port
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null || return 1
  if [ "$2" = 5432 ] && command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -h "$1" -p "$2"
  fi
}

start_postgresql() {
  command -v pg_ctlcluster >/dev/null 2>&1 || return 1
  local version
  version="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)"
  [ -n "$version" ] || return 1
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
}

start_redis() {
  command -v redis-server >/dev/null 2>&1 || return 1
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
}

ensure_service() {  # name port start-function
  local name="$1" port="$2" start="$3"
  answers 127.0.0.1 "$port" && return 0
  echo "ensure-services: $name is not answering on 127.0.0.1:$port; starting it"
  if [ "$(id -u)" != "0" ]; then
    fail "$name is down and starting it needs root (see scripts/ensure-services.sh)"
    return 0
  fi
  if ! "$start" >/dev/null 2>&1 && ! answers 127.0.0.1 "$port"; then
    fail "$name could not be started on 127.0.0.1:$port (the tests that need it fail under CI)"
    return 0
  fi
  for _ in $(seq 1 60); do
    answers 127.0.0.1 "$port" && return 0
    sleep 0.5
  done
  fail "$name could not be started on 127.0.0.1:$port (the tests that need it fail under CI)"
}

ensure_service PostgreSQL 5432 start_postgresql
ensure_service Redis 6379 start_redis
exit 0
