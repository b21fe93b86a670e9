#!/usr/bin/env bash
# Make sure what the tests talk to is installed and running: headless Chromium (dashboard tests),
# Mosquitto (MQTT, edge -> central), PostgreSQL (the central historian). Installs from Debian's
# packages when something is missing (needs root, as on CI); starts services that are installed but
# stopped. Prints what it did; exits non-zero with the reason when it cannot.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else
    echo "ensure-services: need root to run: $*; run it yourself or rerun as root" >&2; exit 1
  fi
}

need_apt=()
if ! have chromium && ! have chromium-browser && [ -z "${AXLINE_CHROMIUM:-}" ]; then need_apt+=(chromium); fi
# A Korean font, so the dashboard's Korean text renders in headless screenshots.
if ! fc-list 2>/dev/null | grep -qi nanum; then need_apt+=(fonts-nanum); fi
if ! have mosquitto && [ ! -x /usr/sbin/mosquitto ]; then need_apt+=(mosquitto); fi
if ! have pg_ctlcluster; then need_apt+=(postgresql); fi

if [ ${#need_apt[@]} -gt 0 ]; then
  echo "ensure-services: installing ${need_apt[*]} from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# Mosquitto on 127.0.0.1:1883
if ! listening 1883; then
  echo "ensure-services: starting mosquitto"
  as_root mosquitto -d -c /etc/mosquitto/mosquitto.conf
  for _ in $(seq 50); do listening 1883 && break; sleep 0.1; done
  listening 1883 || { echo "ensure-services: mosquitto did not start" >&2; exit 1; }
fi

# PostgreSQL on 127.0.0.1:5432, with a role for the user running the tests
if ! listening 5432; then
  ver=$(ls /etc/postgresql | sort -n | tail -1)
  echo "ensure-services: starting PostgreSQL $ver"
  as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main start
  for _ in $(seq 100); do listening 5432 && break; sleep 0.1; done
  listening 5432 || { echo "ensure-services: PostgreSQL did not start" >&2; exit 1; }
fi
me=$(id -un)
if ! psql -h 127.0.0.1 -d postgres -Atc "select 1" >/dev/null 2>&1; then
  # a fresh install: make a superuser role and database for this user, trusted on loopback
  echo "ensure-services: creating PostgreSQL role $me"
  as_root su postgres -c "createuser --superuser '$me'" 2>/dev/null || true
  as_root su postgres -c "createdb --owner '$me' '$me'" 2>/dev/null || true
  hba=$(su postgres -c "psql -Atc 'show hba_file'")
  if ! grep -q "axline-tests" "$hba"; then
    as_root sed -i "1i host all $me 127.0.0.1/32 trust # axline-tests\nhost all $me ::1/128 trust # axline-tests" "$hba"
    as_root su postgres -c "psql -qc 'select pg_reload_conf()'"
  fi
  psql -h 127.0.0.1 -d postgres -Atc "select 1" >/dev/null || { echo "ensure-services: cannot log in to PostgreSQL as $me" >&2; exit 1; }
fi
echo "ensure-services: ready (chromium, mosquitto on 1883, PostgreSQL on 5432)"
