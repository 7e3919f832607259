"""Dockerfile, .dockerignore and docker-compose.yml agree with the code they deploy.

No Docker engine runs the suite, so these read the files: services, health checks, the
shared artifact volume, settings variables that exist, and commands that are real verbs.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from gsnn_edges.cli import build_parser
from gsnn_edges.service.settings import Settings

REPO = Path(__file__).resolve().parents[1]
SERVICES = ("api", "worker", "redis", "postgres")
GSNN = ("api", "worker", "worker-cpu")  # services running the gsnn-edges image


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return (REPO / "Dockerfile").read_text()


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _volume_at(service: dict, target: str) -> str | None:
    for vol in service.get("volumes", []):
        source, _, rest = vol.partition(":")
        if rest.split(":")[0] == target:
            return source
    return None


def test_deploy_compose_has_the_four_services_with_health_checks(compose):
    services = compose["services"]
    assert set(SERVICES) <= set(services)
    for name in ("api", "redis", "postgres"):
        check = services[name]["healthcheck"]["test"]
        assert check[0] in ("CMD", "CMD-SHELL") and len(check) > 1, name
    assert any("/readyz" in part for part in services["api"]["healthcheck"]["test"])
    assert {"POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD"} <= set(_env(services["postgres"]))


def test_deploy_compose_depends_on_healthy_backends(compose):
    services = compose["services"]
    for name in GSNN:
        deps = services[name]["depends_on"]
        assert {"postgres", "redis"} <= set(deps), name
        assert all(d["condition"] == "service_healthy" for d in deps.values()), name
    assert "api" in services["worker"]["depends_on"]  # the API migrates the database


def test_deploy_compose_api_and_worker_share_the_data_dir_volume(compose):
    services, named = compose["services"], set(compose["volumes"])
    sources = set()
    for name in GSNN:
        data_dir = _env(services[name])["GSNN_EDGES_DATA_DIR"]
        source = _volume_at(services[name], data_dir)
        assert source in named, f"{name}: no named volume at {data_dir}"
        sources.add(source)
    assert len(sources) == 1
    assert _volume_at(services["postgres"], "/var/lib/postgresql/data") in named
    assert _volume_at(services["redis"], "/data") in named


def test_deploy_compose_env_vars_are_settings_fields(compose):
    fields = set(Settings.model_fields)
    for name in GSNN:
        env = _env(compose["services"][name])
        names = [k for k in env if k.startswith("GSNN_EDGES_")]
        assert names, name
        unknown = [k for k in names if k.removeprefix("GSNN_EDGES_").lower() not in fields]
        assert not unknown, f"{name}: {unknown} are not Settings fields"
        assert env["GSNN_EDGES_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert "@postgres:5432/" in env["GSNN_EDGES_DATABASE_URL"]
        assert env["GSNN_EDGES_BROKER_URL"] == "redis://redis:6379/0"
        assert env["GSNN_EDGES_API_KEYS"].startswith("${GSNN_EDGES_API_KEYS")


@pytest.mark.parametrize("name, verb", [("api", "api"), ("worker", "worker")])
def test_deploy_compose_commands_are_real_verbs(compose, dockerfile, name, verb):
    assert 'ENTRYPOINT ["gsnn-edges"]' in dockerfile
    command = compose["services"][name]["command"]
    args = build_parser().parse_args(command)
    assert args.command == verb and callable(args.func)
    if verb == "api":
        assert args.host == "0.0.0.0"
        assert compose["services"]["api"]["ports"][0].endswith(f":{args.port}")
    default_cmd = re.search(r"^CMD (\[.*\])$", dockerfile, re.M).group(1)
    assert build_parser().parse_args(yaml.safe_load(default_cmd)).command == "api"


def test_deploy_compose_worker_reserves_gpus_with_cpu_alternative(compose):
    services = compose["services"]
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
    assert services["worker-cpu"]["profiles"] == ["cpu"] and "deploy" not in services["worker-cpu"]
    assert services["worker-cpu"]["command"] == services["worker"]["command"]


def test_deploy_dockerfile_installs_the_makefiles_torch_first_and_runs_as_non_root(dockerfile):
    torch_spec = re.search(r"^ARG TORCH_SPEC=(\S+)$", dockerfile, re.M).group(1)
    makefile = (REPO / "Makefile").read_text()
    assert torch_spec == re.search(r"^TORCH_CPU \?= (\S+)$", makefile, re.M).group(1)
    torch_at = dockerfile.index('--index-url "${TORCH_INDEX_URL}" "${TORCH_SPEC}"')
    assert torch_at < re.search(r"^RUN pip install \.", dockerfile, re.M).start()  # torch first
    user = re.findall(r"^USER (\S+)$", dockerfile, re.M)
    assert user and user[-1] not in ("root", "0")
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    entrypoint = yaml.safe_load(re.search(r"^ENTRYPOINT (\[.*\])$", dockerfile, re.M).group(1))
    assert entrypoint[0] in pyproject["project"]["scripts"]  # installed by `pip install .`
    packages = [
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    ]
    copied = re.findall(r"^COPY (\S+) \./\S*$", dockerfile, re.M)
    assert set(packages) <= set(copied)
    assert all((REPO / c).exists() for c in copied)


def test_deploy_dockerignore_keeps_the_context_small_but_buildable():
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert {".git", ".venv", "data", "tests"} <= ignored
    needed = {"pyproject.toml", "README.md", "gsnn_edges", "api", "worker"}
    assert not needed & ignored
