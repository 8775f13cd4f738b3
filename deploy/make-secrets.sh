#!/usr/bin/env bash
# Generate the secrets docker-compose.yml needs, under deploy/secrets/ (git-ignored):
#
#   mqtt_<user>        a random password for each MQTT user: the seven services,
#                      homeassistant (type it into Home Assistant's MQTT integration)
#                      and healthcheck (the broker's container healthcheck)
#   mosquitto_passwd   Mosquitto's password file for those users (PBKDF2-SHA512, "$7$")
#   postgres_password  the password of the database user "obsy"
#   database_url       the SQLAlchemy URL the web service connects with
#   notify_urls        Apprise URLs for notifications, one a line (yours to fill in; created
#                      with only a comment, which sends nothing, and never replaced)
#
# Existing passwords are kept, so running it again only adds what is missing and
# rebuilds mosquitto_passwd from every mqtt_<user> file in the directory. --force
# replaces every MQTT password (then: docker compose up -d --force-recreate). It keeps
# postgres_password: the database has it from its first start (docs/operations.md).
#
# Usage: deploy/make-secrets.sh [--force] [--user NAME]...
#   --user NAME   also create an MQTT user NAME (e.g. a second observatory's services);
#                 give it rules in deploy/mosquitto/acl
# Environment:
#   OBSY_SECRETS_DIR   where to write (default: deploy/secrets next to this script)
#   OBSY_DB_HOST       database host in database_url (default: postgres, the compose service)
#   OBSY_DB_NAME, OBSY_DB_USER   database and user names (default: obsy, obsy)
#
# The hashes are computed with python3 (hashlib) in Mosquitto's own format; without
# python3 the script falls back to mosquitto_passwd, locally or from the
# eclipse-mosquitto:2 image (docker run --rm).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
secrets_dir="${OBSY_SECRETS_DIR:-$here/secrets}"
db_host="${OBSY_DB_HOST:-postgres}"
db_name="${OBSY_DB_NAME:-obsy}"
db_user="${OBSY_DB_USER:-obsy}"

# Every MQTT user of the compose stack; each must have rules in deploy/mosquitto/acl.
users=(weather clouddetect allsky scheduler mcp web imaging alpaca homeassistant healthcheck)

force=0
while [ $# -gt 0 ]; do
    case "$1" in
        --force) force=1 ;;
        --user)
            shift
            [ $# -gt 0 ] || { echo "--user needs a name" >&2; exit 2; }
            [[ "$1" =~ ^[A-Za-z0-9_-]+$ ]] || { echo "bad user name: $1" >&2; exit 2; }
            users+=("$1")
            ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done

# The directory is private (0700); the files in it are 0644 so that the non-root users
# inside the containers can read the single file bind-mounted into each of them (compose
# secrets are plain bind mounts and keep the host's owner and mode).
umask 022
mkdir -p "$secrets_dir"
chmod 700 "$secrets_dir"

random_password() {
    # 32 characters of [A-Za-z0-9]: safe in URLs, YAML and shell without quoting.
    local pw=""
    while [ "${#pw}" -lt 32 ]; do
        pw+="$(head -c 64 /dev/urandom | LC_ALL=C tr -dc 'A-Za-z0-9')"
    done
    printf '%s' "${pw:0:32}"
}

# write_secret FILE VALUE [REPLACE]: write VALUE atomically unless FILE exists and
# REPLACE (default: --force given) is 0.
write_secret() {
    local file="$secrets_dir/$1" replace="${3:-$force}"
    if [ -s "$file" ] && [ "$replace" -eq 0 ]; then
        return 1
    fi
    printf '%s\n' "$2" >"$file.tmp"
    chmod 644 "$file.tmp"
    mv -f "$file.tmp" "$file"
}

for user in "${users[@]}"; do
    if write_secret "mqtt_$user" "$(random_password)"; then
        echo "created  mqtt_$user"
    else
        echo "kept     mqtt_$user"
    fi
done

if write_secret postgres_password "$(random_password)" 0; then
    echo "created  postgres_password"
else
    echo "kept     postgres_password"
fi
# database_url always follows postgres_password (rewritten on every run).
pg_password="$(head -n 1 "$secrets_dir/postgres_password")"
printf '%s\n' "postgresql+psycopg://$db_user:$pg_password@$db_host:5432/$db_name" >"$secrets_dir/database_url.tmp"
chmod 644 "$secrets_dir/database_url.tmp"
mv -f "$secrets_dir/database_url.tmp" "$secrets_dir/database_url"
echo "wrote    database_url (host $db_host, database $db_name, user $db_user)"

# notify_urls is yours: created once (a comment only: no notifications), never replaced.
if write_secret notify_urls "# Apprise URLs for OBSY's notifications, one a line, e.g. ntfy://ntfy.sh/my-observatory (docs/operations.md)" 0; then
    echo "created  notify_urls (empty: fill in Apprise URLs to get notifications)"
else
    echo "kept     notify_urls"
fi

# --- mosquitto_passwd ------------------------------------------------------------------
# One line per mqtt_<user> file, including users added earlier with --user.
passwd_users=()
for file in "$secrets_dir"/mqtt_*; do
    passwd_users+=("${file##*/mqtt_}")
done
passwd_tmp="$secrets_dir/mosquitto_passwd.tmp"
rm -f "$passwd_tmp"

if command -v python3 >/dev/null 2>&1; then
    # Mosquitto 2's format: user:$7$<iterations>$<base64 salt>$<base64 hash>, where the
    # hash is PBKDF2-HMAC-SHA512 over the password with a 12-byte random salt, 101
    # iterations (mosquitto_passwd's default). Passwords are read from the files, never
    # passed on a command line.
    python3 - "$secrets_dir" "$passwd_tmp" "${passwd_users[@]}" <<'PYTHON'
import base64
import hashlib
import os
import sys
from pathlib import Path

secrets_dir, out, *users = sys.argv[1:]
lines = []
for user in users:
    password = (Path(secrets_dir) / f"mqtt_{user}").read_text(encoding="utf-8").splitlines()[0]
    salt = os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 101)
    lines.append(f"{user}:$7$101${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}\n")
Path(out).write_text("".join(lines), encoding="utf-8")
PYTHON
    method="python3 hashlib"
else
    if command -v mosquitto_passwd >/dev/null 2>&1; then
        run_passwd() { mosquitto_passwd "$@"; }
        dir_in_tool="$secrets_dir"
        method="mosquitto_passwd"
    elif command -v docker >/dev/null 2>&1; then
        run_passwd() {
            docker run --rm --user "$(id -u):$(id -g)" -v "$secrets_dir:/secrets" \
                --entrypoint mosquitto_passwd eclipse-mosquitto:2 "$@"
        }
        dir_in_tool="/secrets"
        method="mosquitto_passwd from eclipse-mosquitto:2"
    else
        echo "need python3, mosquitto_passwd or docker to hash the MQTT passwords" >&2
        exit 1
    fi
    : >"$passwd_tmp"
    for user in "${passwd_users[@]}"; do
        run_passwd -b "$dir_in_tool/mosquitto_passwd.tmp" "$user" "$(head -n 1 "$secrets_dir/mqtt_$user")"
    done
fi
chmod 644 "$passwd_tmp"
mv -f "$passwd_tmp" "$secrets_dir/mosquitto_passwd"
echo "wrote    mosquitto_passwd (${#passwd_users[@]} users: ${passwd_users[*]}; $method)"
echo "secrets are in $secrets_dir"
