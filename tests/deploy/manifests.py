"""What the deployment files name, read from the files themselves: the Dockerfile,
compose.yaml (+ deploy/prometheus), and the kustomize base in deploy/kubernetes. Each
`Ref` is one thing a file relies on (a command line, an environment variable, a port, an
HTTP path, a file of the repository), with where it was found; `test_manifests.py`
checks each one against the code."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
KUBERNETES = REPO / "deploy" / "kubernetes"
IMAGE = "ovencast"  # the image the Dockerfile builds, as the manifests call it
# A healthcheck's URL in a command: http://host:port/path
URL = re.compile(r"http://[^/:'\"\s]+:(?P<port>\d+)(?P<path>/[\w/-]*)")


@dataclass(frozen=True)
class Ref:
    where: str  # file and place, e.g. "compose.yaml services.api.command"
    kind: str  # command, env, port, http, path, script
    value: Any
    # For an http path: which server answers it (api or worker); for a port: what the
    # port must be (serve, worker-metrics).
    server: str = ""
    process: str = ""  # the command this env/port/http belongs to: serve, worker, db

    def __str__(self) -> str:
        if isinstance(self.value, tuple):  # (name, value or definitions): the name
            shown = str(self.value[0])
        elif isinstance(self.value, list):
            shown = " ".join(map(str, self.value))
        else:
            shown = str(self.value)
        return f"{self.where}: {self.kind} {shown}"


# -- Dockerfile ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Dockerfile:
    stages: list[tuple[str, str]]  # (base image, stage name)
    instructions: list[tuple[str, str]]  # (INSTRUCTION, arguments), continuations joined

    @classmethod
    def read(cls, path: Path = REPO / "Dockerfile") -> Dockerfile:
        logical: list[str] = []
        current = ""
        for raw in path.read_text(encoding="utf-8").splitlines():
            line = raw.strip()
            if not current and (not line or line.startswith("#")):
                continue
            if line.endswith("\\"):
                current += line[:-1] + " "
                continue
            logical.append(current + line)
            current = ""
        instructions = [(line.split(None, 1)[0].upper(), line.split(None, 1)[1])
                        for line in logical]
        stages = []
        for name, arguments in instructions:
            if name == "FROM":
                parts = arguments.split()
                stages.append((parts[0], parts[2] if len(parts) > 2 else ""))
        return cls(stages, instructions)

    def args(self, instruction: str) -> list[str]:
        return [a for name, a in self.instructions if name == instruction]

    def exec_form(self, instruction: str) -> list[str]:
        [arguments] = self.args(instruction)[-1:]
        value = json.loads(arguments)
        assert isinstance(value, list)
        return [str(v) for v in value]

    def env(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for arguments in self.args("ENV"):
            for pair in shlex.split(arguments):
                name, _, value = pair.partition("=")
                found[name] = value
        return found

    def refs(self) -> Iterator[Ref]:
        where = "Dockerfile"
        entry = self.exec_form("ENTRYPOINT")
        yield Ref(f"{where} ENTRYPOINT", "script", entry[0])
        yield Ref(f"{where} CMD", "command", [*entry[1:], *self.exec_form("CMD")])
        for name, value in self.env().items():
            yield Ref(f"{where} ENV", "env", (name, value))
        for arguments in self.args("EXPOSE"):
            for port in arguments.split():
                yield Ref(f"{where} EXPOSE", "port", int(port))
        for arguments in self.args("COPY"):
            if arguments.startswith("--from"):
                continue
            for source in arguments.split()[:-1]:
                yield Ref(f"{where} COPY", "path", source)


# -- compose.yaml -----------------------------------------------------------------------
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((REPO / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def ovencast_services(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: service for name, service in document["services"].items()
            if str(service.get("image", "")).split(":")[0] == IMAGE}


def compose_service_refs(name: str, service: dict[str, Any]) -> Iterator[Ref]:
    where = f"compose.yaml services.{name}"
    command = [str(c) for c in service["command"]]
    process = command[0]
    yield Ref(f"{where}.command", "command", command)
    for variable, value in (service.get("environment") or {}).items():
        yield Ref(f"{where}.environment", "env", (variable, str(value)), process=process)
    server = "worker" if process == "worker" else "api"
    test = " ".join(map(str, (service.get("healthcheck") or {}).get("test", [])))
    for match in URL.finditer(test):
        yield Ref(f"{where}.healthcheck", "http", match["path"], server=server)
        yield Ref(f"{where}.healthcheck", "port", int(match["port"]), server=server,
                  process=process)
    for mapping in service.get("ports", []):
        yield Ref(f"{where}.ports", "port", int(str(mapping).split(":")[-1]),
                  server=server, process=process)
    for port in service.get("expose", []):
        yield Ref(f"{where}.expose", "port", int(port), server=server, process=process)


def prometheus_refs(document: dict[str, Any]) -> Iterator[Ref]:
    scrape = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    for job in scrape["scrape_configs"]:
        for target in job["static_configs"][0]["targets"]:
            host, port = target.split(":")
            process = str(document["services"][host]["command"][0])
            server = "worker" if process == "worker" else "api"
            where = f"deploy/prometheus/prometheus.yml {job['job_name']} {host}"
            yield Ref(where, "http", job.get("metrics_path", "/metrics"), server=server)
            yield Ref(where, "port", int(port), server=server, process=process)


def compose_refs() -> Iterator[Ref]:
    document = compose()
    for name, service in ovencast_services(document).items():
        yield from compose_service_refs(name, service)
    for name, service in document["services"].items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith("./"):
                yield Ref(f"compose.yaml services.{name}.volumes", "path", source[2:])
    yield from prometheus_refs(document)


# -- deploy/kubernetes ------------------------------------------------------------------
def kubernetes_documents() -> list[tuple[str, dict[str, Any]]]:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    found = []
    for resource in kustomization["resources"]:
        for document in yaml.safe_load_all((KUBERNETES / resource).read_text()):
            if document:
                found.append((resource, document))
    return found


def of_kind(kind: str) -> list[tuple[str, dict[str, Any]]]:
    return [(f, d) for f, d in kubernetes_documents() if d["kind"] == kind]


def pod_spec(document: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = document["spec"]["template"]["spec"]
    return spec


def config_values() -> dict[str, str]:
    """Every variable of the ConfigMaps and Secrets, by name."""
    values: dict[str, str] = {}
    for _, document in kubernetes_documents():
        if document["kind"] == "ConfigMap":
            values.update({k: str(v) for k, v in document["data"].items()})
        elif document["kind"] == "Secret":
            values.update({k: str(v) for k, v in document["stringData"].items()})
    return values


def container_refs(file: str, container: dict[str, Any],
                   values: dict[str, str]) -> Iterator[Ref]:
    where = f"deploy/kubernetes/{file} {container['name']}"
    args = [str(a) for a in container["args"]]
    process = args[0]
    server = "worker" if process == "worker" else "api"
    yield Ref(f"{where} args", "command", args)
    for variable in re.findall(r"\$\((\w+)\)", " ".join(args)):
        yield Ref(f"{where} args", "defined-env",
                  (variable, [e["name"] for e in container.get("env", [])]))
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef") or source.get("secretRef")
        yield Ref(f"{where} envFrom", "config-object", ref["name"])
    for variable, value in values.items():
        yield Ref(f"{where} env (ConfigMap/Secret)", "env", (variable, value),
                  process=process)
    named_ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    for port in named_ports.values():
        yield Ref(f"{where} ports", "port", int(port), server=server, process=process)
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        if probe not in container:
            continue
        get = container[probe]["httpGet"]
        yield Ref(f"{where} {probe}", "http", get["path"], server=server)
        port = named_ports.get(get["port"], get["port"])
        yield Ref(f"{where} {probe}", "port", int(port), server=server, process=process)


def kubernetes_refs() -> Iterator[Ref]:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        yield Ref("deploy/kubernetes/kustomization.yaml resources", "path",
                  f"deploy/kubernetes/{resource}")
    values = config_values()
    for file, document in kubernetes_documents():
        if document["kind"] in ("Deployment", "Job"):
            for container in pod_spec(document)["containers"]:
                yield from container_refs(file, container, values)


def all_refs() -> list[Ref]:
    return [*Dockerfile.read().refs(), *compose_refs(), *kubernetes_refs()]
