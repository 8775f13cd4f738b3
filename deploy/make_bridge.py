#!/usr/bin/env python3
"""Write one site's Mosquitto bridge to the central broker, and the centre's ACL lines for it.

Several observatories, one dashboard (docs/operations.md#several-observatories): each site
runs OBSY on its own broker; that broker bridges to a central broker, where one web service
stores every site. This writes, under ``--out`` (default deploy/bridges/<site>/):

  bridge.conf         for the SITE's broker (include it, e.g. ``include_dir``): the bridge
                      connection over TLS with the site's own user on the central broker,
                      a persistent session (``cleansession false``) and a queue sized for a
                      night offline (``max_queued_messages``), link notifications on
  central.acl         for the CENTRAL broker's ACL file: the site's bridge user may publish
                      only under the site's prefix there (and its own link state), and read
                      only the commands the centre may send it: the roof's (CLOSE, STOP) and
                      the night's (ABORT); the central web user's lines for this site
  mqtt_bridge-<site>  the bridge user's password (kept when it exists; put it with the
                      central broker's secrets: deploy/make-secrets.sh --user bridge-<site>
                      hashes it into the central password file)

Standard library only. Usage:

  deploy/make_bridge.py --site north --central-host central.example.org \
      [--central-port 8883] [--local-prefix obsy] [--central-prefix sites/north] \
      [--cafile /mosquitto/auth/certs/central-ca.crt] [--max-queued 200000] [--out DIR] \
      [--password-file FILE] [--plain]   (--plain: no TLS; tests on loopback only)
"""

from __future__ import annotations

import argparse
import re
import secrets
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: A night offline at a site's usual rates (about 1 message/s with bursts: ~50,000 in 14 h), four times over.
DEFAULT_MAX_QUEUED = 200_000
#: The commands the centre may send a site (topic under the site's prefix): closing, never opening.
CENTRE_COMMANDS = ("mcp/roof/set", "mcp/night/set")
SITE_ID = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")
PREFIX = re.compile(r"^[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-]+)*$")


def bridge_id(site: str) -> str:
    """The bridge's client id on the central broker; its link state is $SYS/broker/connection/<id>/state."""
    return f"obsy-bridge-{site}"


def bridge_conf(
    *,
    site: str,
    central_host: str,
    central_port: int,
    local_prefix: str,
    central_prefix: str,
    password: str,
    cafile: str | None,
    max_queued: int,
) -> str:
    client = bridge_id(site)
    tls = (
        [
            f"bridge_cafile {cafile}",
            "bridge_tls_version tlsv1.2",
            "bridge_insecure false",
        ]
        if cafile
        else ["# no TLS: only for a test on loopback (make_bridge.py --plain)"]
    )
    # Central sites/<id>/mcp/roof/set arrives as the site's <p>/mcp/remote/roof/set, where the
    # MCP takes only CLOSE and STOP (night: ABORT): opening stays a decision of the site.
    command_lines = [
        f"topic {thing}/set in 1 {local_prefix}/mcp/remote/ {central_prefix}/mcp/" for thing in ("roof", "night")
    ]
    return "\n".join(
        [
            f"# Site {site}: bridge to the central broker (written by deploy/make_bridge.py).",
            "#",
            "# Messages the site publishes while the link is down are queued for the bridge's",
            "# persistent session and sent, once, when it returns (QoS 1). Mosquitto's default",
            "# of 1,000 queued messages would keep about 15 minutes of a site's traffic and drop",
            "# the rest: this queue holds a night. QoS 0 messages are not queued.",
            f"max_queued_messages {max_queued}",
            "",
            f"connection {client}",
            f"address {central_host}:{central_port}",
            f"remote_clientid {client}",
            f"remote_username bridge-{site}",
            f"remote_password {password}",
            "bridge_protocol_version mqttv311",
            "try_private true",
            "# A persistent session on both sides: nothing is lost while the link is down.",
            "cleansession false",
            "local_cleansession false",
            "# The central broker publishes 0 (the bridge's Last Will) when the link breaks, 1 when",
            f"# it is back, retained, on $SYS/broker/connection/{client}/state: the centre's",
            "# web service shows the site as unreachable from it.",
            "notifications true",
            "keepalive_interval 30",
            "restart_timeout 2 60",
            "start_type automatic",
            *tls,
            "# Everything the site publishes goes up under its central prefix...",
            f"topic # out 1 {local_prefix}/ {central_prefix}/",
            "# ...and only the roof and night commands come down, to the MCP's remote topics,",
            "# where it takes only CLOSE, STOP and ABORT (the central ACL lets nothing else through).",
            *command_lines,
            "",
        ]
    )


def central_acl(*, site: str, central_prefix: str, web_user: str) -> str:
    client = bridge_id(site)
    commands = [f"topic read {central_prefix}/{command}" for command in CENTRE_COMMANDS]
    web_commands = [f"topic write {central_prefix}/{command}" for command in CENTRE_COMMANDS]
    return "\n".join(
        [
            f"# --- site {site}: its bridge (deploy/make_bridge.py) ----------------------------",
            f"user bridge-{site}",
            f"topic write {central_prefix}/#",
            f"topic write $SYS/broker/connection/{client}/state",
            *commands,
            "",
            f"# --- the central web service ({web_user}): stores site {site}, watches its link,",
            "# and may send it the closing commands only (opening stays a site decision).",
            f"user {web_user}",
            f"topic read {central_prefix}/#",
            f"topic read $SYS/broker/connection/{client}/state",
            *web_commands,
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--site", required=True, help="the site's id (lower case letters, digits, - and _)")
    parser.add_argument("--central-host", required=True)
    parser.add_argument("--central-port", type=int, default=None, help="default 8883 (TLS), 1883 with --plain")
    parser.add_argument("--local-prefix", default="obsy", help="the site's broker.prefix (default obsy)")
    parser.add_argument("--central-prefix", default=None, help="its prefix on the central broker (sites/<site>)")
    parser.add_argument("--cafile", default="/mosquitto/auth/certs/central-ca.crt", help="the central broker's CA")
    parser.add_argument("--plain", action="store_true", help="no TLS (a test on loopback only)")
    parser.add_argument("--max-queued", type=int, default=DEFAULT_MAX_QUEUED)
    parser.add_argument("--web-user", default="web", help="the central web service's MQTT user")
    parser.add_argument("--out", type=Path, default=None, help="default deploy/bridges/<site>")
    parser.add_argument("--password-file", type=Path, default=None, help="default <out>/mqtt_bridge-<site>")
    args = parser.parse_args(argv)
    if not SITE_ID.match(args.site):
        parser.error(f"--site {args.site!r}: lower case letters, digits, - and _ only")
    central_prefix = args.central_prefix or f"sites/{args.site}"
    for name, value in (("--local-prefix", args.local_prefix), ("--central-prefix", central_prefix)):
        if not PREFIX.match(value):
            parser.error(f"{name} {value!r} is not a topic prefix (letters, digits, _ - separated by /)")
    if args.max_queued < 1000:
        parser.error("--max-queued below Mosquitto's default of 1000 would lose messages sooner, not later")
    out = args.out or HERE / "bridges" / args.site
    out.mkdir(parents=True, exist_ok=True)
    password_file = args.password_file or out / f"mqtt_bridge-{args.site}"
    if password_file.exists():
        password = password_file.read_text().strip()
    else:
        password = secrets.token_urlsafe(24)
        password_file.write_text(password + "\n")
        password_file.chmod(0o600)
    conf = bridge_conf(
        site=args.site,
        central_host=args.central_host,
        central_port=args.central_port or (1883 if args.plain else 8883),
        local_prefix=args.local_prefix,
        central_prefix=central_prefix,
        password=password,
        cafile=None if args.plain else args.cafile,
        max_queued=args.max_queued,
    )
    (out / "bridge.conf").write_text(conf)
    (out / "bridge.conf").chmod(0o600)  # it holds the password
    (out / "central.acl").write_text(central_acl(site=args.site, central_prefix=central_prefix, web_user=args.web_user))
    print(f"wrote {out / 'bridge.conf'} (site broker), {out / 'central.acl'} (central ACL), {password_file}")
    print(f"web.sites entry for the central web service: {{prefix: {central_prefix}, id: {args.site}}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
