#!/usr/bin/env bash
# The whole OBSY system on this machine: installs what is missing, then runs obsy-local
# (Mosquitto on loopback, indiserver with the simulators, SQLite, every service).
# Uses config/obsy.yaml when it exists, else a copy of the example (config/local.yaml).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
config=${OBSY_CONFIG:-config/obsy.yaml}
if [ ! -f "$config" ]; then
    config=config/local.yaml
    if [ ! -f "$config" ]; then
        cp config/obsy.example.yaml "$config"
        echo "Created $config from the example: edit site: (latitude, longitude, timezone) for your observatory."
    fi
fi
exec .venv/bin/obsy-local --config "$config" "$@"
