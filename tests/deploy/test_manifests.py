"""The deployment files against the code (no container engine runs here; docs/DEPLOY.md
says what was and was not run). Every command line they run parses as an `ovencast`
command; every environment variable of an ovencast container is a Settings field (its
value valid) or one of the few named below that other software reads; every port is the
one the command serves on; every HTTP path a probe, healthcheck or scrape asks for is
served; every file they name exists. Each reference is its own test, named after the
file, the place and the thing: `pytest -v tests/deploy` lists what was checked."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import typer

from ovencast.api.app import create_app
from ovencast.cli.main import app as cli_app
from ovencast.observability.worker_server import WorkerEndpoints
from ovencast.settings import Settings

from .manifests import (
    REPO,
    Dockerfile,
    Ref,
    all_refs,
    compose,
    config_values,
    kubernetes_documents,
    of_kind,
    ovencast_services,
    pod_spec,
)

REFS = all_refs()
# Variables of ovencast containers that are not ovencast's settings: who reads them.
EXTERNAL_ENV = {
    "PATH": "the shell (the virtualenv's bin first)",
    "PYTHONUNBUFFERED": "Python (log lines leave at once)",
    "MPLCONFIGDIR": "matplotlib (its cache, writable for the non-root user)",
    "AWS_ACCESS_KEY_ID": "botocore, under s3fs (the model store on S3)",
    "AWS_SECRET_ACCESS_KEY": "botocore, under s3fs",
    "AWS_DEFAULT_REGION": "botocore, under s3fs",
    "PIP_NO_CACHE_DIR": "pip, in the build stage (no wheel cache in the layer)",
    "PIP_DISABLE_PIP_VERSION_CHECK": "pip, in the build stage",
}
SETTINGS_ENV = {name.upper() for name in Settings.model_fields}
API_PORT = 8000


def of(kind: str) -> list[Ref]:
    return [ref for ref in REFS if ref.kind == kind]


def test_the_files_name_what_the_tests_below_check() -> None:
    """The parsing found what the files hold (a parser that finds nothing would make
    every check below pass vacuously)."""
    kinds = {kind: len(of(kind)) for kind in ("command", "env", "port", "http", "path")}
    assert all(count > 0 for count in kinds.values()), kinds
    where = {ref.where.split()[0] for ref in REFS}
    assert {"Dockerfile", "compose.yaml", "deploy/prometheus/prometheus.yml"} <= where
    assert any(w.startswith("deploy/kubernetes/") for w in where)


# -- commands -----------------------------------------------------------------------------
def is_group(command: Any) -> bool:
    # Typer vendors its own click (typer._click), so not isinstance(click.Group).
    return hasattr(command, "commands")


def resolve(args: list[str]) -> tuple[Any, list[str]]:
    """The `ovencast` command that `args` runs, and the arguments left for it."""
    command: Any = typer.main.get_command(cli_app)
    rest = list(args)
    while is_group(command) and rest and rest[0] in command.commands:
        command = command.commands[rest.pop(0)]
    return command, rest


@pytest.mark.parametrize("ref", of("command"), ids=str)
def test_a_command_line_is_an_ovencast_command(ref: Ref) -> None:
    command, rest = resolve(ref.value)
    assert not is_group(command), f"{ref.value}: no such command"
    # Parses the options and arguments as the CLI would; an unknown option raises.
    with command.make_context("ovencast", rest) as context:
        assert context.command is command


@pytest.mark.parametrize("ref", of("script"), ids=str)
def test_the_entry_point_is_the_installed_script(ref: Ref) -> None:
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["scripts"][ref.value] == "ovencast.cli.main:app"


# -- environment --------------------------------------------------------------------------
@pytest.mark.parametrize("ref", of("env"), ids=str)
def test_an_environment_variable_is_a_setting_with_a_valid_value(
        ref: Ref, monkeypatch: pytest.MonkeyPatch) -> None:
    name, value = ref.value
    if name in EXTERNAL_ENV:
        return
    assert name in SETTINGS_ENV, f"{name} is not a setting (src/ovencast/settings.py)"
    monkeypatch.setenv(name, value)
    settings = Settings()  # raises on a value the setting refuses
    assert str(getattr(settings, name.lower())) != "" or value == ""


@pytest.mark.parametrize("ref", of("defined-env"), ids=str)
def test_a_variable_in_args_is_defined_in_the_container(ref: Ref) -> None:
    variable, defined = ref.value
    assert variable in defined


@pytest.mark.parametrize("ref", of("config-object"), ids=str)
def test_env_from_names_a_config_map_or_secret_of_the_base(ref: Ref) -> None:
    names = {d["metadata"]["name"] for _, d in kubernetes_documents()
             if d["kind"] in ("ConfigMap", "Secret")}
    assert ref.value in names


# -- ports --------------------------------------------------------------------------------
def served_port(process: str, environment: dict[str, str]) -> int | None:
    """The port a container running `process` listens on."""
    if process == "serve":
        return API_PORT
    if process == "worker":
        return int(environment["WORKER_METRICS_PORT"])
    return None


def environment_of(ref: Ref) -> dict[str, str]:
    if ref.where.startswith("compose.yaml"):
        name = ref.where.split()[1].split(".")[1]
        return {k: str(v) for k, v in (ovencast_services(compose())[name].get(
            "environment") or {}).items()}
    return config_values()


@pytest.mark.parametrize("ref", [r for r in of("port") if r.process], ids=str)
def test_a_port_is_the_one_its_process_serves_on(ref: Ref) -> None:
    assert ref.value == served_port(ref.process, environment_of(ref))


@pytest.mark.parametrize("ref", [r for r in of("command") if r.value[0] == "serve"], ids=str)
def test_the_api_serves_on_the_port_the_files_expose(ref: Ref) -> None:
    command, rest = resolve(ref.value)
    with command.make_context("ovencast", rest) as context:
        assert context.params["port"] == API_PORT
        assert context.params["host"] == "0.0.0.0"  # reachable from outside the container


def test_the_image_exposes_the_api_and_the_worker_ports() -> None:
    exposed = {r.value for r in of("port") if r.where == "Dockerfile EXPOSE"}
    worker_ports = {int(config_values()["WORKER_METRICS_PORT"])} | {
        int(s["environment"]["WORKER_METRICS_PORT"])
        for s in ovencast_services(compose()).values() if s["command"][0] == "worker"}
    assert exposed == {API_PORT, *worker_ports}


# -- HTTP paths ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def api_paths() -> set[str]:
    return set(create_app(Settings()).openapi()["paths"])


@pytest.fixture(scope="module")
def worker_paths() -> Iterator[set[str]]:
    """What a worker's endpoints answer 200 to, asked over HTTP (its /health needs a
    running event loop: one in a thread)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    endpoints = WorkerEndpoints("127.0.0.1", 0, loop=loop).start()
    try:
        wanted = {r.value for r in of("http") if r.server == "worker"}
        yield {path for path in wanted if httpx.get(
            f"http://127.0.0.1:{endpoints.port}{path}", timeout=10).status_code == 200}
    finally:
        endpoints.stop()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


@pytest.mark.parametrize("ref", of("http"), ids=str)
def test_a_probed_path_is_served(ref: Ref, request: pytest.FixtureRequest) -> None:
    paths: set[str] = request.getfixturevalue(f"{ref.server}_paths")
    assert ref.value in paths


# -- files --------------------------------------------------------------------------------
@pytest.mark.parametrize("ref", of("path"), ids=str)
def test_a_file_the_manifests_name_exists(ref: Ref) -> None:
    assert (REPO / ref.value).exists()


# -- the Dockerfile's shape -----------------------------------------------------------------
def test_the_image_is_multi_stage_slim_and_runs_as_a_non_root_user() -> None:
    dockerfile = Dockerfile.read()
    bases = [base for base, _ in dockerfile.stages]
    assert len(bases) >= 2
    assert all(base.endswith("-slim") for base in bases), bases
    [user] = dockerfile.args("USER")[-1:]
    assert user.split(":")[0] not in ("0", "root")
    installs = " ".join(dockerfile.args("RUN"))
    assert "pip install \".[s3]\"" in installs  # the package, from the repo, with S3


# -- the Kubernetes base's shape ------------------------------------------------------------
def deployments() -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for _, d in of_kind("Deployment")}


def test_the_api_is_ready_on_ready_and_alive_on_health() -> None:
    [api] = pod_spec(deployments()["ovencast-api"])["containers"]
    assert api["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert api["livenessProbe"]["httpGet"]["path"] == "/health"


def test_workers_have_probes_of_their_own() -> None:
    [worker] = pod_spec(deployments()["ovencast-worker"])["containers"]
    assert worker["args"][0] == "worker"
    assert worker["livenessProbe"]["httpGet"]["path"] == "/health"
    assert worker["startupProbe"]["httpGet"]["path"] == "/health"


def test_every_container_requests_cpu_and_memory_and_limits_memory() -> None:
    for _, document in [*of_kind("Deployment"), *of_kind("Job")]:
        for container in pod_spec(document)["containers"]:
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), container["name"]
            assert "memory" in resources["limits"], container["name"]


def test_the_migration_job_upgrades_the_schema() -> None:
    [(_, job)] = of_kind("Job")
    [container] = pod_spec(job)["containers"]
    assert container["args"] == ["db", "upgrade"]


def test_each_disruption_budget_selects_a_deployment() -> None:
    labels = [pod_spec_labels(d) for d in deployments().values()]
    budgets = of_kind("PodDisruptionBudget")
    assert len(budgets) == 2
    for _, budget in budgets:
        selector = budget["spec"]["selector"]["matchLabels"]
        assert any(selector.items() <= found.items() for found in labels), selector


def pod_spec_labels(document: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = document["spec"]["template"]["metadata"]["labels"]
    return labels


def test_the_api_service_targets_the_api_pods_named_port() -> None:
    [(_, service)] = of_kind("Service")
    api = deployments()["ovencast-api"]
    assert service["spec"]["selector"].items() <= pod_spec_labels(api).items()
    port_names = {p["name"] for c in pod_spec(api)["containers"] for p in c["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names


def test_compose_runs_postgres_the_migrations_the_api_and_two_workers() -> None:
    services = compose()["services"]
    commands = sorted(" ".join(map(str, s["command"]))
                      for s in ovencast_services(compose()).values())
    assert commands == ["db upgrade", "serve --host 0.0.0.0 --port 8000",
                        "worker --name worker-1", "worker --name worker-2"]
    assert services["migrate"]["restart"] == "no"
    assert services["api"]["depends_on"]["migrate"]["condition"] == \
        "service_completed_successfully"
    assert {n for n, s in services.items() if "monitoring" in s.get("profiles", [])} == {
        "prometheus", "grafana"}
    # One model store for all of them.
    stores = {s["environment"]["MODEL_STORAGE_PATH"] for s in
              ovencast_services(compose()).values()}
    assert len(stores) == 1
