"""The deployment files: hadolint passes, compose validates, no secrets, the nightly loop works.

The image itself is not built here (no registry access for the base image on test machines);
these checks are the part of "does it deploy" this machine can answer.
"""

# ruff: noqa: S603, S607 - runs fixed local tools (hadolint, docker-compose, sh) on our files
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import paths
import pytest
import yaml

from bot.settings import Settings

DOCKER = paths.REPO / "docker"
SECRET_WORDS = re.compile(r"TOKEN|SECRET|PASSWORD|DATABASE_URL", re.IGNORECASE)
SECRET_ENV = Settings.from_env({}).environment_names(secret_only=True)


def tool(name: str) -> str:
    """The tool from the venv or PATH; a clear failure (never a skip) when it is missing."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: run scripts/setup and scripts/test-services")
    return found


def test_hadolint_passes():
    result = subprocess.run(
        [tool("hadolint"), str(DOCKER / "Dockerfile")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_cpu_torch_first_model_inside_offline_non_root():
    text = (DOCKER / "Dockerfile").read_text()
    assert text.count("FROM ") == 1 and "FROM python:3.11-slim" in text
    torch = text.index("download.pytorch.org/whl/cpu torch==2.13.0")
    assert torch < text.index("pip install --no-cache-dir .")
    assert "HF_HUB_OFFLINE=1" in text and "BUNDLED_MODEL" in text  # model loads offline at build
    user = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert user and user[-1] not in ("root", "0", "0:0")
    assert "HEALTHCHECK" in text
    assert not re.search(r"^(ARG|ENV)\s.*(SLACK_|PASSWORD|_SECRET)", text, re.MULTILINE)


ENV_FILES = ("clerk", "slack", "email", "database", "web")


def compose_config(tmp_path: Path, examples: bool = True) -> dict:
    """`docker-compose config` on a copy of the compose file, with the example env files (or
    empty ones, leaving only what the compose file itself sets)."""
    work = tmp_path / "docker"
    work.mkdir()
    shutil.copy(DOCKER / "compose.yaml", work / "compose.yaml")
    for name in ENV_FILES:
        text = (DOCKER / f"{name}.env.example").read_text() if examples else ""
        (work / f"{name}.env").write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLERK_", "SLACK_"))}
    result = subprocess.run(
        [tool("docker-compose"), "-f", str(work / "compose.yaml"), "config"],
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_compose_validates_with_three_services_and_persistent_volumes(tmp_path):
    config = compose_config(tmp_path)
    services = config["services"]
    assert {"slack", "email", "web", "nightly"} <= set(services)
    assert services["slack"]["command"] == ["slack"]
    assert services["email"]["command"] == ["email"]
    assert services["web"]["command"][:3] == ["web", "--host", "0.0.0.0"]  # noqa: S104 - in its container
    assert services["nightly"]["entrypoint"] == ["clerk-nightly-loop"]
    assert services["postgres"]["profiles"] == ["postgres"]  # optional
    for name in ("slack", "email", "web", "nightly"):
        mounts = {v.split(":")[1] for v in services[name]["volumes"]}
        assert mounts == {"/data", "/corpus"}, name
    assert {"clerk-data", "clerk-corpus"} <= set(config["volumes"])


def test_compose_file_itself_holds_no_secrets(tmp_path):
    config = compose_config(tmp_path, examples=False)  # only what the compose file sets
    for name, service in config["services"].items():
        inline = service.get("environment") or {}
        assert not [k for k in inline if SECRET_WORDS.search(k)], name
    assert "env_file" in (DOCKER / "compose.yaml").read_text()


def test_env_examples_name_real_settings_and_leave_secrets_blank():
    known = Settings().environment_names() | {"CLERK_NIGHTLY_HOUR", "TZ"}
    for name in ENV_FILES:
        for line in (DOCKER / f"{name}.env.example").read_text().splitlines():
            if not line.strip() or line.startswith("#"):
                continue
            variable, _, value = line.partition("=")
            assert variable in known, f"{variable} is not a Clerk setting"
            if variable in SECRET_ENV:
                assert value == "", f"{variable} must be blank in the example"
    assert "docker/*.env" in (DOCKER.parent / ".gitignore").read_text()


def test_each_service_gets_only_its_own_secrets(tmp_path):
    services = compose_config(tmp_path)["services"]
    slack_secrets = {"SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET"}
    mail_secrets = {"CLERK_IMAP_PASSWORD", "CLERK_SMTP_PASSWORD"}

    def secrets(service: str) -> set[str]:
        return set(services[service].get("environment") or {}) & SECRET_ENV

    assert secrets("slack") & mail_secrets == set()
    assert secrets("email") & slack_secrets == set()
    assert secrets("nightly") == set()  # the nightly job needs no credentials at all
    assert secrets("web") & (slack_secrets | mail_secrets) == set()  # the desk: neither
    assert services["web"]["ports"] == ["127.0.0.1:8080:8080/tcp"]  # loopback only
    assert slack_secrets <= secrets("slack") and mail_secrets <= secrets("email")


def test_every_long_running_service_has_a_health_check_that_means_it_works(tmp_path):
    services = compose_config(tmp_path)["services"]
    assert services["slack"]["healthcheck"]["test"][1:4] == ["clerk", "health", "slack"]
    assert services["email"]["healthcheck"]["test"][1:4] == ["clerk", "health", "email"]
    assert "check" in services["nightly"]["healthcheck"]["test"]


@pytest.mark.parametrize("last, healthy", [(None, True), ("0", True), ("1", True), ("2", False)])
def test_nightly_loop_health_check(tmp_path, last, healthy):
    if last is not None:
        (tmp_path / "nightly-status").write_text(last + "\n")
    result = subprocess.run(
        ["sh", str(DOCKER / "nightly-loop.sh"), "check"],
        env={"CLERK_HOME": str(tmp_path), "PATH": os.environ["PATH"]},
    )
    assert (result.returncode == 0) is healthy


def test_nightly_loop_is_valid_sh():
    assert subprocess.run(["sh", "-n", str(DOCKER / "nightly-loop.sh")]).returncode == 0
