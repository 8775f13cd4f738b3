"""The container deployment: docker-compose.yml, the Dockerfiles, Mosquitto's config and ACL,
and deploy/make-secrets.sh, checked against each other and against the code.

Docker itself is not needed: the compose file is read as YAML (with Compose's variable
defaults applied), the secrets script is run into a temporary folder, and the last test
starts a real Mosquitto with the repository's configuration, ACL and generated passwords.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import stat
import subprocess
import threading
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement

from obsy.config import SERVICE_NAMES, ConfigError, McpConfig, load_config
from obsy.homeassistant import node_id
from obsy.topics import HOMEASSISTANT_STATUS, Topics
from obsy_allsky.capture.darks_cli import BUS_NAME as DARKS_CLI_BUS_NAME
from obsy_mcp.command_cli import BUS_NAME as MCP_CLI_BUS_NAME

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
MOSQUITTO_CONF = ROOT / "deploy" / "mosquitto" / "mosquitto.conf"
ACL_FILE = ROOT / "deploy" / "mosquitto" / "acl"
MAKE_SECRETS = ROOT / "deploy" / "make-secrets.sh"
SECRETS_DIR = ROOT / "deploy" / "secrets"
OPERATIONS_DOC = ROOT / "docs" / "operations.md"

PREFIX = "obsy"
TOPICS = Topics(PREFIX)
#: Services whose image needs the INDI client (obsy-core[indi]).
INDI_SERVICES = {"weather", "allsky", "mcp", "scheduler"}
#: MQTT users that are not services.
OTHER_MQTT_USERS = {"homeassistant", "healthcheck"}
#: Host paths a service may bind-mount from outside the repository.
ALLOWED_HOST_PATHS = {"/var/run/docker.sock"}

_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?-)(?P<default>[^}]*))?\}")


# --- reading the compose file ------------------------------------------------------------


def interpolate(value: str) -> str:
    """A compose string with every ``${VAR:-default}`` replaced by its default and ``$$`` by ``$``."""

    def default(match: re.Match[str]) -> str:
        if match.group("op") is None:
            raise AssertionError(f"${{{match.group('name')}}} has no default: compose would need it set")
        return match.group("default")

    return _VARIABLE.sub(default, value.replace("$$", "\0")).replace("\0", "$")


def resolve(node: Any) -> Any:
    if isinstance(node, str):
        return interpolate(node)
    if isinstance(node, list):
        return [resolve(item) for item in node]
    if isinstance(node, dict):
        return {key: resolve(value) for key, value in node.items()}
    return node


@pytest.fixture(scope="module")
def raw_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose(raw_compose: dict[str, Any]) -> dict[str, Any]:
    return resolve(raw_compose)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


SERVICE_DOCKERFILE = "services/Dockerfile"


def obsy_service_of(definition: dict[str, Any]) -> str | None:
    """The OBSY service a compose service runs: the SERVICE build argument of the shared Dockerfile."""
    build = definition.get("build")
    if not isinstance(build, dict) or build.get("dockerfile") != SERVICE_DOCKERFILE:
        return None
    return (build.get("args") or {}).get("SERVICE")


@pytest.fixture(scope="module")
def obsy_services(services: dict[str, dict[str, Any]]) -> dict[str, str]:
    """compose service name -> OBSY service name, for every container that runs an OBSY service."""
    return {name: svc for name, definition in services.items() if (svc := obsy_service_of(definition))}


def environment(definition: dict[str, Any]) -> dict[str, str]:
    env = definition.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool
    named: bool


def mounts(definition: dict[str, Any]) -> list[Mount]:
    result = []
    for item in definition.get("volumes") or []:
        if isinstance(item, dict):
            source, target = str(item.get("source", "")), str(item["target"])
            result.append(Mount(source, target, bool(item.get("read_only")), item.get("type") == "volume"))
            continue
        parts = item.split(":")
        source, target = parts[0], parts[1]
        options = parts[2].split(",") if len(parts) > 2 else []
        named = not source.startswith((".", "/", "~"))
        result.append(Mount(source, target, "ro" in options, named))
    return result


def secret_names(definition: dict[str, Any]) -> list[str]:
    return [item if isinstance(item, str) else item["source"] for item in definition.get("secrets") or []]


def secret_target(definition: dict[str, Any], name: str) -> str:
    for item in definition.get("secrets") or []:
        if item == name:
            return f"/run/secrets/{name}"
        if isinstance(item, dict) and item["source"] == name:
            target = item.get("target", name)
            return target if target.startswith("/") else f"/run/secrets/{target}"
    raise AssertionError(f"secret {name} not given to the service")


def repo_path(source: str) -> Path:
    return (ROOT / source).resolve()


# --- the compose file on its own ---------------------------------------------------------


def test_compose_file_has_the_expected_services(services: dict[str, dict[str, Any]], obsy_services: dict[str, str]):
    assert {"mosquitto", "postgres", "indiserver"} <= services.keys()
    assert set(obsy_services.values()) == set(SERVICE_NAMES), "every OBSY service runs in a container"
    for service in SERVICE_NAMES:
        assert service in services, f"compose service {service} missing"
        assert obsy_services[service] == service


def test_every_variable_has_a_default(raw_compose: dict[str, Any]):
    """`docker compose up` must work without a .env file."""
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        for match in _VARIABLE.finditer(line.replace("$$", "")):
            assert match.group("op") is not None, f"variable without a default: {line.strip()}"
    resolve(raw_compose)  # raises on a bare ${VAR}


def test_depends_on_names_existing_services(services: dict[str, dict[str, Any]]):
    for name, definition in services.items():
        depends = definition.get("depends_on") or {}
        targets = depends if isinstance(depends, list) else list(depends)
        for target in targets:
            assert target in services, f"{name} depends on undefined service {target}"
            assert target != name
            if isinstance(depends, dict):
                condition = depends[target].get("condition", "service_started")
                assert condition in {"service_started", "service_healthy", "service_completed_successfully"}
                if condition == "service_healthy":
                    assert "healthcheck" in services[target], f"{name} waits for {target}, which has no healthcheck"


def test_services_wait_for_a_healthy_broker_except_the_mcp(
    services: dict[str, dict[str, Any]], obsy_services: dict[str, str]
):
    for name, service in obsy_services.items():
        depends = services[name]["depends_on"]
        expected = "service_started" if service == "mcp" else "service_healthy"
        assert depends["mosquitto"]["condition"] == expected, name
    assert services["web"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    # A service that waits for indiserver could not start when indiserver runs on the host
    # (OBSY_INDISERVER_REPLICAS=0); the INDI client reconnects by itself instead.
    for name in obsy_services:
        assert "indiserver" not in (services[name].get("depends_on") or {}), name


def test_named_volumes_are_declared(compose: dict[str, Any], services: dict[str, dict[str, Any]]):
    declared = set(compose.get("volumes") or {})
    used = set()
    for name, definition in services.items():
        for mount in mounts(definition):
            if mount.named:
                assert mount.source in declared, f"{name} uses undeclared volume {mount.source}"
                used.add(mount.source)
    assert declared == used, f"declared but unused volumes: {declared - used}"
    for needs_data in ("allsky", "web"):
        assert any(m.named and m.target == "/var/lib/obsy" for m in mounts(services[needs_data])), needs_data
    assert any(m.named for m in mounts(services["postgres"]))
    assert any(m.named and m.target == "/mosquitto/data" for m in mounts(services["mosquitto"]))


def test_bind_mounts_exist_in_the_repository(services: dict[str, dict[str, Any]]):
    for name, definition in services.items():
        for mount in mounts(definition):
            if mount.named:
                continue
            if mount.source.startswith("/"):
                assert mount.source in ALLOWED_HOST_PATHS, f"{name} mounts host path {mount.source}"
                continue
            path = repo_path(mount.source)
            assert ROOT in path.parents or path == ROOT, f"{name} mounts {mount.source} from outside the repository"
            if SECRETS_DIR in path.parents:  # secrets are compose secrets, but for the broker's TLS folder
                assert (name, path) == ("mosquitto", SECRETS_DIR / "certs"), f"{name} bind-mounts {mount.source}"
            assert path.exists(), f"{name} mounts {mount.source}, which is not in the repository"


def test_config_is_mounted_read_only_where_obsy_config_points(
    services: dict[str, dict[str, Any]], obsy_services: dict[str, str]
):
    for name in obsy_services:
        definition = services[name]
        config_path = Path(environment(definition)["OBSY_CONFIG"])
        config_mounts = [m for m in mounts(definition) if m.target == str(config_path.parent)]
        assert len(config_mounts) == 1, f"{name}: {config_path.parent} is not mounted"
        mount = config_mounts[0]
        assert mount.read_only, f"{name}: the config must be mounted read-only"
        # The operator copies the example to obsy.yaml in the mounted folder.
        assert (repo_path(mount.source) / "obsy.example.yaml").is_file()


def test_obsy_services_have_restart_policy_and_healthcheck(
    services: dict[str, dict[str, Any]], obsy_services: dict[str, str]
):
    for name, service in obsy_services.items():
        definition = services[name]
        assert definition.get("restart") in {"unless-stopped", "always"}, f"{name} has no restart policy"
        check = definition.get("healthcheck")
        assert check, f"{name} has no healthcheck"
        assert check["test"] == ["CMD", f"obsy-{service}", "healthcheck"], name
        assert not check.get("disable")
        for key in ("interval", "timeout"):
            assert re.fullmatch(r"\d+(ms|s|m)", check[key]), f"{name}: healthcheck {key} {check[key]!r}"


def test_infrastructure_has_healthchecks(services: dict[str, dict[str, Any]]):
    mosquitto = " ".join(services["mosquitto"]["healthcheck"]["test"])
    assert "mosquitto_sub" in mosquitto
    assert "-u healthcheck" in mosquitto
    assert "/run/secrets/mqtt_healthcheck" in mosquitto
    assert "$SYS/broker/uptime" in mosquitto  # after Compose turns $$ into $
    postgres = services["postgres"]["healthcheck"]["test"]
    assert "pg_isready" in postgres
    indi = " ".join(services["indiserver"]["healthcheck"]["test"])
    assert "indi_getprop" in indi
    assert "7624" in indi
    for name in ("mosquitto", "postgres", "indiserver"):
        assert services[name].get("restart") == "unless-stopped", name


def test_build_contexts_and_dockerfiles_exist(services: dict[str, dict[str, Any]], obsy_services: dict[str, str]):
    built = 0
    for name, definition in services.items():
        build = definition.get("build")
        if build is None:
            assert "image" in definition, f"{name} has neither build nor image"
            continue
        build = {"context": build} if isinstance(build, str) else build
        context = repo_path(build["context"])
        assert context.is_dir(), f"{name}: build context {build['context']} does not exist"
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        assert dockerfile.is_file(), f"{name}: {dockerfile} does not exist"
        built += 1
    assert built == len(obsy_services) + 1  # + indiserver
    for name in obsy_services:
        assert repo_path(services[name]["build"]["context"]) == ROOT, f"{name} must build from the repository root"
    # From the root too: the indiserver image installs the sky simulator (shared/, services/skysim/).
    assert repo_path(services["indiserver"]["build"]["context"]) == ROOT
    assert services["indiserver"]["build"]["dockerfile"] == INDISERVER_DOCKERFILE


def test_only_the_alpaca_service_is_on_the_host_network(services: dict[str, dict[str, Any]]):
    """Alpaca discovery is a UDP broadcast on the LAN; a bridged container never receives it."""
    on_host = {name for name, definition in services.items() if definition.get("network_mode") == "host"}
    assert on_host == {"alpaca"}
    assert "extra_hosts" not in services["alpaca"] or services["alpaca"]["extra_hosts"] == []
    assert "ports" not in services["alpaca"], "published ports mean nothing on the host network"


def test_web_port_is_published_and_the_web_listens_on_all_interfaces(services: dict[str, dict[str, Any]]):
    web = services["web"]
    assert "8080:8080" in web["ports"]
    env = environment(web)
    assert env["OBSY_WEB__HOST"] == "0.0.0.0"
    assert env["OBSY_WEB__PORT"] == "8080"


def test_mcp_docker_socket_and_indi(services: dict[str, dict[str, Any]]):
    mcp = services["mcp"]
    assert any(m.source == "/var/run/docker.sock" for m in mounts(mcp))
    assert mcp.get("group_add"), "the mcp needs the docker socket's group"
    for name in ("weather", "allsky", "mcp"):
        assert environment(services[name])["OBSY_INDI__HOST"] == "indiserver", name
    for name in ("clouddetect", "scheduler", "web"):
        assert "OBSY_INDI__HOST" not in environment(services[name]), name


def test_the_mcp_keeps_the_operators_decision_on_a_volume(services: dict[str, dict[str, Any]]):
    """The state file (<data_dir>/mcp/state.json) survives a new container: a restart never forgets the operator."""
    data_dir = environment(services["mcp"])["OBSY_DATA_DIR"]
    assert any(m.target == data_dir and m.named and not m.read_only for m in mounts(services["mcp"]))


def compose_duration(value: str) -> float:
    """Seconds in a Compose duration ("200s", "3m20s", "1h", "1m30.5s")."""
    parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?", value.strip())
    assert parts and any(parts.groups()), f"not a Compose duration: {value!r}"
    hours, minutes, seconds = (float(group or 0) for group in parts.groups())
    return hours * 3600 + minutes * 60 + seconds


def test_compose_duration_parses_what_compose_accepts():
    assert compose_duration("200s") == 200
    assert compose_duration("3m20s") == 200
    assert compose_duration("1h") == 3600
    with pytest.raises(AssertionError):
        compose_duration("200")


def test_the_mcp_may_close_the_roof_before_docker_kills_it(services: dict[str, dict[str, Any]]):
    """Stopped, the mcp closes the roof first (mcp.shutdown_close_timeout); Docker's default grace is 10 s."""
    example = load_config(ROOT / "config" / "obsy.example.yaml", env={})
    limit = max(McpConfig().shutdown_close_timeout, example.mcp.shutdown_close_timeout)
    grace = services["mcp"].get("stop_grace_period")
    assert grace, "the mcp needs a stop_grace_period above mcp.shutdown_close_timeout"
    assert compose_duration(str(grace)) > limit


# --- secrets ---------------------------------------------------------------------------


def script_users() -> list[str]:
    match = re.search(r"^users=\(([^)]*)\)", MAKE_SECRETS.read_text(encoding="utf-8"), re.MULTILINE)
    assert match, "deploy/make-secrets.sh has no users=(...) list"
    return match.group(1).split()


def test_secrets_are_declared_and_come_from_make_secrets(compose: dict[str, Any], services: dict[str, dict[str, Any]]):
    declared = compose.get("secrets") or {}
    script = MAKE_SECRETS.read_text(encoding="utf-8")
    users = script_users()
    used = set()
    for name, definition in services.items():
        for secret in secret_names(definition):
            assert secret in declared, f"{name} uses undeclared secret {secret}"
            used.add(secret)
    assert set(declared) == used, f"declared but unused secrets: {set(declared) - used}"
    for secret, spec in declared.items():
        path = repo_path(spec["file"])
        assert path.parent == SECRETS_DIR, f"secret {secret} is not under deploy/secrets/"
        if secret.startswith("mqtt_"):
            assert secret.removeprefix("mqtt_") in users, f"make-secrets.sh does not create the MQTT user of {secret}"
        else:
            assert path.name in script, f"make-secrets.sh does not mention {path.name}"
    # deploy/secrets must never reach git.
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "--no-index", "deploy/secrets/mqtt_web"], cwd=ROOT, check=False
    )
    assert ignored.returncode == 0, "deploy/secrets/ is not git-ignored"


def test_each_service_logs_in_as_itself(services: dict[str, dict[str, Any]], obsy_services: dict[str, str]):
    for name, service in obsy_services.items():
        definition = services[name]
        env = environment(definition)
        assert env["OBSY_BROKER__USERNAME"] == service, name
        if definition.get("network_mode") == "host":
            # On the host network the name "mosquitto" does not resolve: the published port does.
            published = services["mosquitto"]["ports"][0].split(":")[-2]
            assert (env["OBSY_BROKER__HOST"], env["OBSY_BROKER__PORT"]) == ("127.0.0.1", published), name
        else:
            assert env["OBSY_BROKER__HOST"] == "mosquitto", name
        assert "OBSY_BROKER__PASSWORD" not in env, f"{name}: passwords come from files"
        secret = f"mqtt_{service}"
        assert secret_names(definition).count(secret) == 1, f"{name} lacks its secret {secret}"
        assert env["OBSY_BROKER__PASSWORD_FILE"] == secret_target(definition, secret), name
        others = {f"mqtt_{other}" for other in SERVICE_NAMES if other != service} | {"mqtt_healthcheck"}
        assert not others & set(secret_names(definition)), f"{name} gets another user's password"
    web = services["web"]
    assert environment(web)["OBSY_DATABASE__URL_FILE"] == secret_target(web, "database_url")
    postgres = services["postgres"]
    assert environment(postgres)["POSTGRES_PASSWORD_FILE"] == secret_target(postgres, "postgres_password")


def run_make_secrets(target: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OBSY_SECRETS_DIR": str(target)}
    return subprocess.run(
        ["bash", str(MAKE_SECRETS), *args], env=env, capture_output=True, text=True, check=True, timeout=60
    )


@pytest.fixture(scope="module")
def generated_secrets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("secrets") / "secrets"
    run_make_secrets(target)
    return target


def check_mosquitto_hash(line: str, password: str) -> str:
    user, hashed = line.split(":", 1)
    match = re.fullmatch(r"\$7\$(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)", hashed)
    assert match, f"not a Mosquitto 2 PBKDF2-SHA512 hash: {hashed}"
    iterations, salt, digest = int(match.group(1)), base64.b64decode(match.group(2)), base64.b64decode(match.group(3))
    assert iterations >= 101
    assert len(salt) == 12
    assert len(digest) == 64
    assert hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations) == digest, f"hash of {user} is wrong"
    return user


def test_make_secrets_writes_every_declared_secret(compose: dict[str, Any], generated_secrets: Path):
    for secret, spec in compose["secrets"].items():
        generated = generated_secrets / Path(spec["file"]).name
        assert generated.is_file(), f"make-secrets.sh did not write {secret}"
        assert generated.read_text().strip(), f"{secret} is empty"
    assert stat.S_IMODE(generated_secrets.stat().st_mode) == 0o700, "the secrets folder must be private"

    users = set()
    for line in (generated_secrets / "mosquitto_passwd").read_text().splitlines():
        user = line.split(":", 1)[0]
        users.add(check_mosquitto_hash(line, (generated_secrets / f"mqtt_{user}").read_text().strip()))
    assert users == set(SERVICE_NAMES) | OTHER_MQTT_USERS

    password = (generated_secrets / "postgres_password").read_text().strip()
    assert len(password) >= 24
    assert (generated_secrets / "database_url").read_text().strip() == (
        f"postgresql+psycopg://obsy:{password}@postgres:5432/obsy"
    )
    postgres_env = environment(compose["services"]["postgres"])
    assert postgres_env["POSTGRES_USER"] == "obsy"
    assert postgres_env["POSTGRES_DB"] == "obsy"


@pytest.mark.slow
def test_make_secrets_keeps_passwords_and_adds_users(tmp_path: Path):
    target = tmp_path / "secrets"
    run_make_secrets(target)
    before = {path.name: path.read_text() for path in target.iterdir()}
    passwords = {name: text for name, text in before.items() if name.startswith("mqtt_")}
    assert len(set(passwords.values())) == len(passwords), "passwords must differ"

    out = run_make_secrets(target, "--user", "north_weather").stdout
    assert "created  mqtt_north_weather" in out
    after = {path.name: path.read_text() for path in target.iterdir()}
    for name, text in passwords.items():
        assert after[name] == text, f"{name} changed on a second run"
    assert after["postgres_password"] == before["postgres_password"]
    lines = after["mosquitto_passwd"].splitlines()
    assert {line.split(":", 1)[0] for line in lines} == {
        name.removeprefix("mqtt_") for name in after if name.startswith("mqtt_")
    }

    run_make_secrets(target, "--force")
    forced = {path.name: path.read_text() for path in target.iterdir()}
    assert forced["mqtt_web"] != after["mqtt_web"]
    assert forced["postgres_password"] == after["postgres_password"], "--force must not break the existing database"
    env = {**os.environ, "OBSY_SECRETS_DIR": str(tmp_path / "other")}
    bad = subprocess.run(["bash", str(MAKE_SECRETS), "--user", "no spaces"], env=env, capture_output=True, check=False)
    assert bad.returncode != 0
    assert not (tmp_path / "other").exists()


def test_compose_environment_is_a_valid_configuration(
    services: dict[str, dict[str, Any]], obsy_services: dict[str, str], generated_secrets: Path
):
    """Every OBSY_* variable compose sets names a real config key (the schema forbids unknown keys)."""
    for name, service in obsy_services.items():
        env = environment(services[name])
        assert env["OBSY_CONFIG"] == "/etc/obsy/obsy.yaml"
        env["OBSY_CONFIG"] = str(ROOT / "config" / "obsy.example.yaml")
        env = {key: value.replace("/run/secrets/", f"{generated_secrets}/") for key, value in env.items()}
        try:
            config = load_config(env=env)
        except ConfigError as exc:  # pragma: no cover - the message is the diagnosis
            pytest.fail(f"{name}: compose environment is not a valid configuration:\n{exc}")
        host_network = services[name].get("network_mode") == "host"
        assert config.broker.host == ("127.0.0.1" if host_network else "mosquitto")
        assert config.broker.port == 1883
        assert config.broker.username == service
        assert config.broker.password is not None
        assert config.broker.password.get_secret_value() == (generated_secrets / f"mqtt_{service}").read_text().strip()
        assert config.broker.prefix == PREFIX, "the ACL is written for the prefix 'obsy'"
        assert str(config.data_dir) == "/var/lib/obsy"
        if service == "web":
            assert config.database_url().startswith("postgresql+psycopg://obsy:")
        if service == "imaging":  # its own tables in the same Postgres database
            assert config.imaging.database(config.data_dir).startswith("postgresql+psycopg://obsy:")


# --- Mosquitto's configuration and ACL -----------------------------------------------------


def mosquitto_options() -> dict[str, list[str]]:
    options: dict[str, list[str]] = {}
    for raw in MOSQUITTO_CONF.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        options.setdefault(key, []).append(value.strip())
    return options


def test_mosquitto_refuses_anonymous_and_uses_the_mounted_password_file_and_acl(services: dict[str, dict[str, Any]]):
    options = mosquitto_options()
    assert options["allow_anonymous"] == ["false"]
    assert options.get("per_listener_settings", ["false"]) == ["false"]
    assert "1883" in options["listener"]
    password_file = options["password_file"][0]
    acl_file = options["acl_file"][0]

    broker = services["mosquitto"]
    by_source = {repo_path(m.source): m for m in mounts(broker) if not m.named}
    conf_mount = by_source[MOSQUITTO_CONF.resolve()]
    acl_mount = by_source[ACL_FILE.resolve()]
    assert conf_mount.read_only
    assert acl_mount.read_only
    passwd_target = secret_target(broker, "mosquitto_passwd")
    assert secret_target(broker, "mqtt_healthcheck")

    # The entrypoint copies the mounted files to where mosquitto.conf reads them, and
    # starts the broker with the mounted configuration.
    script = "\n".join(broker["entrypoint"])
    assert re.search(rf"cp {re.escape(passwd_target)} {re.escape(password_file)}\b", script)
    assert re.search(rf"cp {re.escape(acl_mount.target)} {re.escape(acl_file)}\b", script)
    assert f"chmod 0600 {password_file} {acl_file}" in script
    assert re.search(rf"exec \S*mosquitto -c {re.escape(conf_mount.target)}\s*$", script)
    assert "1883:1883" in broker["ports"][0]
    assert options["persistence_location"][0].rstrip("/") == "/mosquitto/data"


@dataclass(frozen=True)
class Rule:
    access: str  # read, write or readwrite
    pattern: str


def parse_acl(text: str) -> dict[str, list[Rule]]:
    rules: dict[str, list[Rule]] = {}
    user = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        words = line.split()
        if words[0] == "user":
            user = words[1]
            assert user not in rules, f"user {user} appears twice in the ACL"
            rules[user] = []
        elif words[0] == "topic":
            assert user is not None, f"rule for anonymous clients: {line}"
            access, pattern = (words[1], words[2]) if len(words) == 3 else ("readwrite", words[1])
            assert access in {"read", "write", "readwrite"}, line
            rules[user].append(Rule(access, pattern))
        else:
            raise AssertionError(f"unexpected ACL line (pattern rules apply to every user): {line}")
    return rules


def topic_matches(pattern: str, topic: str) -> bool:
    """MQTT matching of a concrete topic against an ACL pattern."""
    if topic.startswith("$") and pattern[:1] in {"+", "#"}:
        return False
    pattern_levels, topic_levels = pattern.split("/"), topic.split("/")
    for index, level in enumerate(pattern_levels):
        if level == "#":
            return True
        if index >= len(topic_levels) or level not in {"+", topic_levels[index]}:
            return False
    return len(pattern_levels) == len(topic_levels)


def filter_covered(pattern: str, subscription: str) -> bool:
    """Whether every topic a subscription filter can match is matched by the ACL pattern."""
    pattern_levels, filter_levels = pattern.split("/"), subscription.split("/")
    for index, level in enumerate(pattern_levels):
        if level == "#":
            return True
        if index >= len(filter_levels) or filter_levels[index] == "#":
            return False
        if level != "+" and level != filter_levels[index]:
            return False
    return len(pattern_levels) == len(filter_levels)


def test_topic_matching_helpers():
    assert topic_matches("obsy/#", "obsy/weather/state")
    assert topic_matches("obsy/+/+/set", "obsy/mcp/roof/set")
    assert not topic_matches("obsy/+/+/set", "obsy/mcp/roof/state")
    assert not topic_matches("#", "$SYS/broker/uptime")
    assert filter_covered("homeassistant/+/n/#", "homeassistant/+/n/+/config")
    assert not filter_covered("obsy/weather/#", "obsy/#")
    assert not filter_covered("obsy/+/state", "obsy/#")


class Acl:
    def __init__(self, text: str) -> None:
        self.rules = parse_acl(text)

    def may(self, user: str, access: str, topic: str) -> bool:
        """access is "write" (publish a topic), "read" (receive a topic) or "subscribe" (a filter)."""
        wanted = "read" if access == "subscribe" else access
        for rule in self.rules.get(user, []):
            if wanted not in rule.access.replace("readwrite", "read write").split():
                continue
            if filter_covered(rule.pattern, topic) if access == "subscribe" else topic_matches(rule.pattern, topic):
                return True
        return False


@pytest.fixture(scope="module")
def acl() -> Acl:
    return Acl(ACL_FILE.read_text(encoding="utf-8"))


def discovery_topic(service: str, component: str = "sensor") -> str:
    return f"homeassistant/{component}/{node_id(PREFIX, service)}/health/config"


def test_acl_has_exactly_the_users_that_get_passwords(acl: Acl):
    assert set(acl.rules) == set(SERVICE_NAMES) | OTHER_MQTT_USERS
    assert set(script_users()) == set(acl.rules)


def test_acl_lets_each_service_write_only_its_own_tree(acl: Acl):
    for service in SERVICE_NAMES:
        own = [
            TOPICS.availability(service),
            TOPICS.health(service),
            TOPICS.state(service),
            TOPICS.state(service, "roof"),
            TOPICS.events(service),
            discovery_topic(service),
            discovery_topic(service, "cover"),
        ]
        for topic in own:
            assert acl.may(service, "write", topic), f"{service} cannot publish {topic}"
        # It reads back its own discovery configs to clear stale ones.
        assert acl.may(service, "subscribe", f"homeassistant/+/{node_id(PREFIX, service)}/+/config")
        for other in SERVICE_NAMES:
            if other == service:
                continue
            for topic in (TOPICS.state(other), TOPICS.availability(other), discovery_topic(other)):
                assert not acl.may(service, "write", topic), f"{service} may publish {topic}"
        assert not acl.may(service, "write", HOMEASSISTANT_STATUS)
        assert not acl.may(service, "write", "obsy")
        assert not acl.may(service, "write", "$SYS/broker/uptime")


def test_acl_lets_every_service_read_the_whole_tree(acl: Acl):
    for service in SERVICE_NAMES:
        assert acl.may(service, "subscribe", TOPICS.everything())
        assert acl.may(service, "subscribe", HOMEASSISTANT_STATUS)
        assert acl.may(service, "read", TOPICS.state("mcp"))
        assert not acl.may(service, "subscribe", "homeassistant/#")
        assert not acl.may(service, "subscribe", "#")


def test_acl_commands_come_only_from_web_and_home_assistant(acl: Acl):
    for command in (TOPICS.mcp_roof_command, TOPICS.mcp_mode_command, TOPICS.command("allsky", "capture")):
        writers = {user for user in acl.rules if acl.may(user, "write", command)}
        owner = TOPICS.service_of(command)
        assert writers == {"web", "homeassistant", owner}, f"{command} writable by {writers}"
    assert acl.may("web", "write", TOPICS.web_targets)
    assert not acl.may("homeassistant", "write", TOPICS.web_targets)
    assert not acl.may("web", "write", TOPICS.state("mcp"))


def test_the_command_lines_may_connect_as_their_services_user(acl: Acl):
    # Mosquitto refuses a connection whose Last Will the user may not publish.
    assert acl.may("mcp", "write", TOPICS.availability(MCP_CLI_BUS_NAME))
    assert acl.may("mcp", "write", TOPICS.mcp_roof_command)
    assert acl.may("allsky", "write", TOPICS.availability(DARKS_CLI_BUS_NAME))


def test_acl_home_assistant_and_healthcheck(acl: Acl):
    ha = "homeassistant"
    assert acl.may(ha, "subscribe", "obsy/#")
    assert acl.may(ha, "subscribe", "homeassistant/#")
    assert acl.may(ha, "write", HOMEASSISTANT_STATUS)
    assert not acl.may(ha, "write", TOPICS.state("mcp"))
    assert not acl.may(ha, "write", TOPICS.availability("weather"))
    hc = "healthcheck"
    assert acl.may(hc, "subscribe", "$SYS/broker/uptime")
    assert not acl.may(hc, "subscribe", "obsy/#")
    assert not any(acl.may(hc, "write", topic) for topic in ("obsy/mcp/roof/set", "$SYS/broker/uptime"))


# --- the GPU profile -----------------------------------------------------------------------


def test_gpu_profile_replaces_the_cpu_allsky(raw_compose: dict[str, Any], services: dict[str, dict[str, Any]]):
    gpu, cpu = services["allsky-gpu"], services["allsky"]
    assert gpu["profiles"] == ["gpu"]
    assert "profiles" not in cpu, "the CPU allsky runs by default"
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and d["count"] in (1, "all") and "gpu" in d["capabilities"] for d in devices)
    assert "resources" not in (cpu.get("deploy") or {})
    # Same image recipe, built with CuPy.
    assert gpu["build"]["dockerfile"] == cpu["build"]["dockerfile"] == SERVICE_DOCKERFILE
    assert {k: v for k, v in gpu["build"]["args"].items() if k != "CUPY_PACKAGE"} == cpu["build"]["args"]
    assert gpu["build"]["args"]["CUPY_PACKAGE"].startswith("cupy-cuda")
    assert not cpu["build"].get("args", {}).get("CUPY_PACKAGE")
    dockerfile = (ROOT / SERVICE_DOCKERFILE).read_text()
    assert re.search(r"^ARG CUPY_PACKAGE", dockerfile, re.MULTILINE)
    assert '"$CUPY_PACKAGE"' in dockerfile
    # It stands in for allsky: same user, password, data and healthcheck.
    assert environment(gpu)["OBSY_BROKER__USERNAME"] == "allsky"
    assert secret_names(gpu) == secret_names(cpu)
    assert mounts(gpu) == mounts(cpu)
    assert gpu["healthcheck"]["test"] == cpu["healthcheck"]["test"]
    # The switch: the CPU one's replicas come from a variable that defaults to 1.
    replicas = raw_compose["services"]["allsky"]["deploy"]["replicas"]
    match = _VARIABLE.fullmatch(replicas)
    assert match and match.group("default") == "1"
    assert cpu["deploy"]["replicas"] == "1"
    doc = OPERATIONS_DOC.read_text(encoding="utf-8")
    assert f"{match.group('name')}=0" in doc
    assert "COMPOSE_PROFILES=gpu" in doc or "--profile gpu" in doc
    assert "nvidia-container-toolkit" in doc.lower() or "nvidia container toolkit" in doc.lower()


# --- Dockerfiles ---------------------------------------------------------------------------


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, rest = line.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
    return instructions


def pyproject(service: str) -> dict[str, Any]:
    return tomllib.loads((ROOT / "services" / service / "pyproject.toml").read_text(encoding="utf-8"))


def test_service_dockerfile_installs_obsy_core_and_the_one_service_it_is_given():
    instructions = dockerfile_instructions(ROOT / SERVICE_DOCKERFILE)
    args = dict(rest.split("=", 1) for keyword, rest in instructions if keyword == "ARG" and "=" in rest)
    bases = [
        re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], rest.split()[0]) for k, rest in instructions if k == "FROM"
    ]
    assert bases, "no FROM"
    assert set(bases) == {"python:3.11-slim-bookworm"}, f"built on {bases}"
    assert ("ARG", "SERVICE") in instructions, "SERVICE must have no default: a build without it fails"

    copied = set()
    for keyword, rest in instructions:
        if keyword == "COPY" and not rest.startswith("--from"):
            *sources, _dest = rest.split()
            copied.update(source.rstrip("/") for source in sources)
    assert copied == {"shared", "services/${SERVICE}"}, f"the image copies {copied}"

    installs = [rest for keyword, rest in instructions if keyword == "RUN" and "pip install" in rest]
    main_install = [rest for rest in installs if "./services/${SERVICE}" in rest]
    assert len(main_install) == 1, "no pip install of ./services/${SERVICE}"
    words = main_install[0].replace('"', "").split()
    assert "--no-cache-dir" in words
    assert "./shared${CORE_EXTRAS}" in words

    assert ("USER", "obsy") in instructions, "services must not run as root"
    assert any(k == "RUN" and 'ln -s "obsy-${SERVICE}" /opt/obsy/bin/obsy-service' in rest for k, rest in instructions)
    assert ("ENTRYPOINT", '["obsy-service"]') in instructions
    assert ("CMD", '["run"]') in instructions
    for packages in ("BUILD_PACKAGES", "RUNTIME_PACKAGES"):
        assert any(
            k == "RUN" and f"apt-get install -y --no-install-recommends ${packages}" in rest for k, rest in instructions
        )


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_each_service_image_gets_only_what_it_needs(service: str, services: dict[str, dict[str, Any]]):
    [args] = [d["build"]["args"] for d in services.values() if obsy_service_of(d) == service and "profiles" not in d]
    assert f"obsy-{service}" in pyproject(service)["project"]["scripts"]
    # The core's INDI extra exactly where the service's own package declares it.
    needs_indi = any(
        requirement.name == "obsy-core" and "indi" in requirement.extras
        for requirement in map(Requirement, pyproject(service)["project"]["dependencies"])
    )
    assert needs_indi == (service in INDI_SERVICES)
    assert args.get("CORE_EXTRAS", "") == ("[indi]" if needs_indi else "")
    # System packages only where needed: the D-Bus/GLib build of dbus-python (INDI), ffmpeg
    # (allsky's timelapses), libpq (the web service's PostgreSQL driver).
    build_packages = args.get("BUILD_PACKAGES", "").split()
    runtime_packages = args.get("RUNTIME_PACKAGES", "").split()
    assert ("libdbus-1-dev" in build_packages) == needs_indi
    assert ("libdbus-1-3" in runtime_packages) == needs_indi
    assert ("ffmpeg" in runtime_packages) == (service == "allsky")
    assert ("libpq5" in runtime_packages) == (service == "web")


INDISERVER_DOCKERFILE = "deploy/indiserver/Dockerfile"
INDISERVER_START = ROOT / "deploy" / "indiserver" / "start-indiserver.sh"


def indiserver_image() -> list[tuple[str, str]]:
    return dockerfile_instructions(ROOT / INDISERVER_DOCKERFILE)


def test_indiserver_dockerfile():
    instructions = indiserver_image()
    args = dict(rest.split("=", 1) for keyword, rest in instructions if keyword == "ARG" and "=" in rest)
    base_of = lambda rest: re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], rest.split()[0])  # noqa: E731
    bases = {base_of(rest) for keyword, rest in instructions if keyword == "FROM"}
    assert bases == {"debian:bookworm-slim"}, f"built on {bases}"
    assert any(keyword == "RUN" and "indi-bin" in rest for keyword, rest in instructions)
    assert ("USER", "indi") in instructions
    assert ("CMD", '["start-indiserver"]') in instructions
    copied = {rest.split()[-1] for keyword, rest in instructions if keyword == "COPY" and not rest.startswith("--")}
    assert "/usr/local/bin/start-indiserver" in copied
    start = INDISERVER_START.read_text(encoding="utf-8")
    assert 'exec "${INDISERVER:-indiserver}" -p 7624 $INDI_SERVER_ARGS $INDI_DRIVERS' in start
    assert os.access(INDISERVER_START, os.X_OK), "the start script must be executable"


def _debian_drivers() -> set[str]:
    """The INDI drivers Debian's indi-bin installs here (the image installs the same package)."""
    return {path.name for path in Path("/usr/bin").glob("indi_*")}


def _drivers_of(words: str) -> list[str]:
    return [word for word in words.split() if word.startswith("indi_")]


def test_the_indiserver_image_has_every_driver_it_starts(services: dict[str, dict[str, Any]]):
    """Each default driver (compose's INDI_DRIVERS, the image's own) is Debian's or a console
    script of a package the image installs, linked onto indiserver's PATH."""
    instructions = indiserver_image()
    installed: set[str] = set()
    for keyword, rest in instructions:
        if keyword == "RUN" and "pip install" in rest:
            installed.update(word.removeprefix("./") for word in rest.split() if word.startswith("./services/"))
    assert installed == {"services/skysim"}, f"the image pip-installs {installed}"
    copied = {rest.split()[0].rstrip("/") for k, rest in instructions if k == "COPY" and not rest.startswith("--")}
    assert {"shared", "services/skysim"} <= copied
    scripts = {name for package in installed for name in pyproject(package.split("/")[1])["project"]["scripts"]}
    linked = {
        word.rsplit("/", 1)[1]
        for keyword, rest in instructions
        if keyword == "RUN" and rest.startswith("ln -s")
        for word in rest.split()
        if word.startswith("/opt/skysim/bin/")
    }
    assert {"indi_obsy_allsky", "indi_obsy_camera"} <= linked <= scripts, f"linked {linked}, scripts {scripts}"
    compose_drivers = _drivers_of(environment(services["indiserver"])["INDI_DRIVERS"])
    env = " ".join(rest for keyword, rest in instructions if keyword == "ENV")
    image_default = re.search(r'INDI_DRIVERS="([^"]*)"', env)
    assert image_default, "the image sets no default INDI_DRIVERS"
    image_drivers = _drivers_of(image_default.group(1))
    assert compose_drivers == image_drivers, "compose's default drivers and the image's differ"
    assert {"indi_obsy_allsky", "indi_obsy_camera"} <= set(compose_drivers), "no sky simulator by default"
    debian = _debian_drivers()
    if not debian:
        pytest.skip("indi-bin is not installed here: Debian's drivers cannot be checked")
    for driver in compose_drivers:
        assert driver in debian or driver in linked, f"{driver} is neither Debian's nor installed in the image"


def test_the_example_config_names_the_devices_the_default_drivers_make():
    """Under compose the example config's cameras are the sky simulator's the image starts."""
    from obsy_skysim.config import AllskyCameraSettings, MainCameraSettings

    example = load_config(ROOT / "config" / "obsy.example.yaml", env={})
    assert example.allsky.camera.device == AllskyCameraSettings().device
    assert example.scheduler.ekos.camera == MainCameraSettings().device
    assert example.scheduler.ekos.camera in example.mcp.supervision.indi.devices
    assert {"indi_obsy_allsky", "indi_obsy_camera"} <= {d.driver for d in example.indi.local_drivers}


def test_dockerignore_keeps_secrets_and_clutter_out_but_not_the_sources():
    patterns = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for required in (".venv", ".git", "var", "tests", "bench", "docs", "**/__pycache__", "deploy/secrets"):
        assert required in patterns, f".dockerignore lacks {required}"
    for needed in ("shared", "services", "shared/obsy", "shared/pyproject.toml", "shared/README.md"):
        assert needed not in patterns and f"{needed}/" not in patterns


# --- a real broker with the repository's configuration -----------------------------------

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)


@dataclass
class Broker:
    port: int
    secrets: Path

    def password(self, user: str) -> str:
        return (self.secrets / f"mqtt_{user}").read_text().strip()


@pytest.fixture
def repo_broker(tmp_path: Path) -> Iterator[Broker]:
    """Mosquitto with deploy/mosquitto/mosquitto.conf, the ACL and make-secrets.sh's password file.

    Only what the container provides differs: the port, and the folders the entrypoint fills.
    """
    from tests.support.ports import free_port, wait_for_port, wait_port_closed

    secrets = tmp_path / "secrets"
    run_make_secrets(secrets)
    auth, data = tmp_path / "auth", tmp_path / "data"
    auth.mkdir()
    data.mkdir()
    shutil.copy(secrets / "mosquitto_passwd", auth / "passwd")
    shutil.copy(ACL_FILE, auth / "acl")
    port = free_port()
    conf = MOSQUITTO_CONF.read_text()
    conf = re.sub(r"^listener 1883$", f"listener {port} 127.0.0.1", conf, flags=re.MULTILINE)
    conf = conf.replace("/mosquitto/auth/", f"{auth}/").replace("/mosquitto/data/", f"{data}/")
    conf = conf.replace("log_dest stdout", f"log_dest file {tmp_path / 'mosquitto.log'}")
    if os.geteuid() == 0:
        conf += "\nuser root\n"  # else it would drop to the mosquitto user, who cannot read tmp_path
    (tmp_path / "mosquitto.conf").write_text(conf)
    with (tmp_path / "mosquitto.stderr").open("wb") as stderr:
        process = subprocess.Popen([MOSQUITTO, "-c", str(tmp_path / "mosquitto.conf")], stderr=stderr)
    try:
        wait_for_port(port)
        yield Broker(port, secrets)
    finally:
        process.terminate()
        process.wait(10)
        wait_port_closed(port)


class Client:
    """A paho client that records what it receives and the result of its connection."""

    def __init__(self, broker: Broker, user: str | None, password: str | None = None, will: str | None = None):
        import paho.mqtt.client as mqtt

        self.received: dict[str, bytes] = {}
        self.connected = threading.Event()
        self.refused = threading.Event()
        self.subscribed = threading.Event()
        self.reason = None
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        if user is not None:
            self._client.username_pw_set(user, password if password is not None else broker.password(user))
        if will:
            self._client.will_set(will, "offline", qos=1, retain=True)
        self._client.on_connect = self._on_connect
        self._client.on_message = lambda _c, _u, msg: self.received.__setitem__(msg.topic, msg.payload)
        self._client.on_subscribe = lambda *_args: self.subscribed.set()
        self._client.connect("127.0.0.1", broker.port)
        self._client.loop_start()

    def _on_connect(self, _client, _userdata, _flags, reason, _properties) -> None:
        self.reason = reason
        (self.refused if reason.is_failure else self.connected).set()

    def wait_connected(self) -> bool:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self.connected.is_set():
                return True
            if self.refused.is_set():
                return False
            time.sleep(0.01)
        raise TimeoutError("no CONNACK")

    def subscribe(self, topic: str) -> None:
        self.subscribed.clear()
        self._client.subscribe(topic, qos=1)
        assert self.subscribed.wait(5)

    def publish(self, topic: str, payload: str, retain: bool = False) -> None:
        self._client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def wait_for(self, topic: str, timeout: float = 5) -> bytes:
        deadline = time.monotonic() + timeout
        while topic not in self.received:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing on {topic}; got {sorted(self.received)}")
            time.sleep(0.01)
        return self.received[topic]

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@pytest.mark.integration
@pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed")
def test_real_broker_enforces_logins_and_the_acl(repo_broker: Broker):
    clients: list[Client] = []

    def client(user: str | None, password: str | None = None, will: str | None = None) -> Client:
        new = Client(repo_broker, user, password, will)
        clients.append(new)
        return new

    try:
        assert not client(None).wait_connected(), "anonymous login accepted"
        assert not client("weather", "wrong password").wait_connected(), "wrong password accepted"
        assert not client("nobody", "x").wait_connected()

        # Home Assistant sees everything OBSY and the discovery tree.
        observer = client("homeassistant")
        assert observer.wait_connected()
        observer.subscribe("obsy/#")
        observer.subscribe("homeassistant/#")

        by_service: dict[str, Client] = {}
        for service in SERVICE_NAMES:
            me = by_service[service] = client(service, will=TOPICS.availability(service))
            assert me.wait_connected(), f"{service} cannot log in: {me.reason}"
            me.subscribe(TOPICS.everything())
            me.subscribe(HOMEASSISTANT_STATUS)
            me.subscribe(f"homeassistant/+/{node_id(PREFIX, service)}/+/config")
            other = next(s for s in SERVICE_NAMES if s != service)
            denied = [TOPICS.state(other), discovery_topic(other), HOMEASSISTANT_STATUS]
            if service != "web":
                denied.append(TOPICS.mcp_roof_command if service != "mcp" else TOPICS.command("weather", "mode"))
            for topic in denied:
                me.publish(topic, f"forged by {service}")
            allowed = [TOPICS.availability(service), TOPICS.state(service), discovery_topic(service)]
            for topic in allowed:
                me.publish(topic, service, retain=topic == discovery_topic(service))
            sentinel = TOPICS.events(service)
            me.publish(sentinel, "done")
            observer.wait_for(sentinel)
            for topic in allowed:
                assert observer.received[topic] == service.encode(), topic
                if topic.startswith("obsy/"):
                    me.wait_for(topic)  # reads the whole tree, its own included
            # Reads its own retained discovery config back.
            assert me.wait_for(discovery_topic(service)) == service.encode()
            for topic in denied:
                assert observer.received.get(topic) != f"forged by {service}".encode(), f"{service} published {topic}"

        # Commands: web may send them, Home Assistant too; a service cannot forge them.
        web = by_service["web"]
        web.publish(TOPICS.mcp_roof_command, "close")
        web.publish(TOPICS.web_targets, "[]")
        assert observer.wait_for(TOPICS.mcp_roof_command) == b"close"
        assert observer.wait_for(TOPICS.web_targets) == b"[]"

        # Every service receives Home Assistant's birth message.
        observer.publish(HOMEASSISTANT_STATUS, "online")
        for service, service_client in by_service.items():
            assert service_client.wait_for(HOMEASSISTANT_STATUS) == b"online", service

        # The broker healthcheck's user reads $SYS/broker/uptime and nothing else.
        health = client("healthcheck")
        assert health.wait_connected()
        health.subscribe("$SYS/broker/uptime")
        assert health.wait_for("$SYS/broker/uptime").endswith(b"seconds")
        health.subscribe("obsy/#")
        health.publish("obsy/weather/state", "forged by healthcheck")
        time.sleep(0.3)
        assert not [t for t in health.received if t.startswith("obsy/")]
        assert observer.received.get("obsy/weather/state") != b"forged by healthcheck"
    finally:
        for each in clients:
            each.close()
