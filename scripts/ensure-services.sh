#!/usr/bin/env bash
# Make sure what the tests talk to is installed and running. Installs from Debian's packages when
# something is missing (needs root, as on CI); starts services that are installed but stopped.
set -euo pipefail

need_apt=()
have() { command -v "$1" >/dev/null 2>&1; }

# Headless Chromium for the dashboard tests.
if ! have chromium && ! have chromium-browser && [ -z "${AXLINE_CHROMIUM:-}" ]; then
  need_apt+=(chromium)
fi
# A Korean font, so the dashboard's Korean text renders in headless screenshots.
if ! fc-list 2>/dev/null | grep -qi nanum; then
  need_apt+=(fonts-nanum)
fi

if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "ensure-services: missing ${need_apt[*]}; install them (sudo apt-get install ${need_apt[*]}) and rerun" >&2
    exit 1
  fi
  echo "ensure-services: installing ${need_apt[*]} from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
echo "ensure-services: ready"
