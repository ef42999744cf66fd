#!/usr/bin/env bash
# Installs what Lanyard needs to build, test and run the demo on Debian 12:
# the C libraries (OpenSSL, libmosquitto, SQLite, libmicrohttpd), the Mosquitto broker and
# clients, and the Python peers the tests check our output with. Only what is
# missing is installed; nothing is done when everything is there.
set -euo pipefail

# libfaketime: the agent's clock-skew tests run it with a shifted clock (LD_PRELOAD).
debs=(libssl-dev libmosquitto-dev libsqlite3-dev libmicrohttpd-dev sqlite3 mosquitto mosquitto-clients openssl python3 python3-pip pkg-config libfaketime)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# python3/pip may come from elsewhere (pyenv); accept a working one.
if command -v python3 >/dev/null && python3 -m pip --version >/dev/null 2>&1; then
  missing=("${missing[@]/python3-pip}"); missing=("${missing[@]/python3}")
fi
missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing Debian packages: ${missing[*]}"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  # The Debian package enables a system broker; Lanyard starts its own.
  $sudo systemctl disable --now mosquitto >/dev/null 2>&1 || true
fi

if [ "${1:-}" = "--test" ]; then
  if ! python3 -c 'import paho.mqtt, jwt, cryptography' 2>/dev/null; then
    echo "==> installing Python test peers: paho-mqtt PyJWT cryptography"
    python3 -m pip install -q --disable-pip-version-check paho-mqtt PyJWT cryptography 2>/dev/null \
      || python3 -m pip install -q --disable-pip-version-check --break-system-packages paho-mqtt PyJWT cryptography
  fi
fi
if ! command -v swift >/dev/null; then
  echo "swift is not on PATH: install the Swift 6 toolchain (https://www.swift.org/install/linux/) first" >&2
  exit 1
fi
