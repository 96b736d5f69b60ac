#!/usr/bin/env python3
"""Validates the deployment files statically (no Docker engine or cluster needed) and
prints a JSON summary the API test suite checks against the running server.

- k8s/*.yaml: every object against the Kubernetes OpenAPI schemas (strict: unknown
  fields are errors), with kubernetes-validate.
- docker-compose.yml: against the Compose specification schema; .github/workflows/*.yml
  against the GitHub workflow schema (both vendored by check-jsonschema).
- deploy/prometheus/*.yml, deploy/grafana/*.json: parse, and collect metric names.
- Dockerfile: multi-stage, non-root user, a HEALTHCHECK, the exposed port.

Summary: {"probes": [{"file", "path", "port"}], "ports": [...], "metrics": [...]}.
Exit status 1 (with the reasons on stderr) when anything is invalid.
"""
import importlib.resources
import json
import pathlib
import re
import sys

import jsonschema
import kubernetes_validate
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
K8S_VERSION = "1.31.0"
METRIC = re.compile(
    r"\b((?:http_|rate_limited|auth_failures|ingest_|cache_|vectors_|build_info|backend_|"
    r"circuit_breaker)[a-z0-9_]*)"
)
errors = []
probes = []
ports = []
metrics = set()


def fail(where, message):
    errors.append(f"{where}: {message}")


def vendored_schema(name):
    files = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    return json.loads((files / name).read_text())


def check_schema(path, schema):
    validator = jsonschema.validators.validator_for(schema)(schema)
    for document in yaml.safe_load_all(path.read_text()):
        for e in validator.iter_errors(document):
            fail(path.relative_to(ROOT), f"{'/'.join(map(str, e.path))}: {e.message}")


def collect_probes(path, obj):
    spec = obj.get("spec", {}).get("template", {}).get("spec", {})
    for c in spec.get("containers", []):
        named = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
        ports.extend(named.values())
        for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
            get = c.get(kind, {}).get("httpGet")
            if get:
                port = named.get(get["port"], get["port"])
                probes.append({"file": str(path.relative_to(ROOT)), "kind": kind,
                               "path": get["path"], "port": port})
        if kind_missing := [k for k in ("readinessProbe", "livenessProbe") if k not in c]:
            fail(path.relative_to(ROOT), f"container {c['name']} lacks {kind_missing}")
        if "resources" not in c:
            fail(path.relative_to(ROOT), f"container {c['name']} has no resources")


def check_k8s():
    kinds = set()
    for path in sorted((ROOT / "k8s").glob("*.yaml")):
        for obj in yaml.safe_load_all(path.read_text()):
            if not obj:
                continue
            kinds.add(obj["kind"])
            try:
                kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
            except kubernetes_validate.ValidationError as e:
                fail(path.relative_to(ROOT), f"{obj['kind']}: {e.message} at {list(e.path)}")
            if obj["kind"] in ("Deployment", "StatefulSet"):
                collect_probes(path, obj)
    wanted = {"Deployment", "Service", "ConfigMap", "Secret", "HorizontalPodAutoscaler",
              "PodDisruptionBudget", "StatefulSet"}
    if missing := wanted - kinds:
        fail("k8s", f"missing objects: {sorted(missing)}")


def check_compose():
    path = ROOT / "docker-compose.yml"
    check_schema(path, vendored_schema("compose-spec.json"))
    compose = yaml.safe_load(path.read_text())
    services = compose.get("services", {})
    for needed in ("ragbrain", "qdrant", "neo4j", "kafka", "redis", "prometheus"):
        if needed not in services:
            fail("docker-compose.yml", f"no {needed} service")
    for mapping in services.get("ragbrain", {}).get("ports", []):
        ports.append(int(str(mapping).split(":")[-1]))
    test = services.get("ragbrain", {}).get("healthcheck", {}).get("test", [])
    for url in [t for t in test if t.startswith("http")]:
        m = re.match(r"https?://[^/:]+:(\d+)(/\S*)", url)
        probes.append({"file": "docker-compose.yml", "kind": "healthcheck",
                       "path": m.group(2), "port": int(m.group(1))})


def check_workflows():
    schema = vendored_schema("github-workflows.json")
    for path in sorted((ROOT / ".github" / "workflows").glob("*.yml")):
        check_schema(path, schema)


def check_dockerfile():
    text = (ROOT / "Dockerfile").read_text()
    lines = [l.strip() for l in text.replace("\\\n", " ").splitlines()]
    instructions = [l for l in lines if l and not l.startswith("#")]
    froms = [l for l in instructions if l.upper().startswith("FROM ")]
    if len(froms) < 2:
        fail("Dockerfile", "not multi-stage")
    final = instructions[instructions.index(froms[-1]):]
    users = [l.split()[1] for l in final if l.upper().startswith("USER ")]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        fail("Dockerfile", "the runtime stage does not switch to a non-root user")
    health = [l for l in final if l.upper().startswith("HEALTHCHECK ")]
    if not health:
        fail("Dockerfile", "no HEALTHCHECK")
    for h in health:
        m = re.search(r"https?://[^/:]+:(\d+)(/[^\"\s]*)", h)
        probes.append({"file": "Dockerfile", "kind": "healthcheck", "path": m.group(2),
                       "port": int(m.group(1))})
    for l in final:
        if l.upper().startswith("EXPOSE "):
            ports.extend(int(p.split("/")[0]) for p in l.split()[1:])
        m = re.search(r"RAGBRAIN__SERVER__PORT=(\d+)", l)
        if m:
            ports.append(int(m.group(1)))


def check_monitoring():
    for path in sorted((ROOT / "deploy" / "prometheus").glob("*.yml")):
        doc = yaml.safe_load(path.read_text())
        for group in doc.get("groups", []):
            for rule in group["rules"]:
                metrics.update(METRIC.findall(rule["expr"]))
    for path in sorted((ROOT / "deploy" / "grafana").glob("*.json")):
        dashboard = json.loads(path.read_text())
        panels = dashboard.get("panels", [])
        if not panels:
            fail(path.relative_to(ROOT), "no panels")
        for panel in panels:
            for target in panel.get("targets", []):
                metrics.update(METRIC.findall(target.get("expr", "")))


def main():
    check_k8s()
    check_compose()
    check_workflows()
    check_dockerfile()
    check_monitoring()
    if errors:
        print("\n".join(errors), file=sys.stderr)
        return 1
    base = {re.sub(r"_(bucket|count|sum)$", "", m) for m in metrics}
    print(json.dumps({"probes": probes, "ports": sorted(set(ports)), "metrics": sorted(base)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
