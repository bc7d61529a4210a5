#!/usr/bin/env bash
# Debian packages the tests and benchmarks use: a real Prometheus (and promtool), wrk, Chromium (headless,
# for the docs pages) and redis-server (the shared stream store).
# Installs what is missing when run as root; otherwise says what to install.
set -euo pipefail
missing=()
command -v prometheus >/dev/null || missing+=(prometheus)
command -v promtool >/dev/null || missing+=(prometheus)
command -v wrk >/dev/null || missing+=(wrk)
command -v chromium >/dev/null || missing+=(chromium)
command -v redis-server >/dev/null || missing+=(redis-server)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "system-deps: please install ${missing[*]} (Debian: apt-get install ${missing[*]}); tests that need them will skip" >&2
fi
