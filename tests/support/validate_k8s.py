#!/usr/bin/env python3
"""Validates a Kubernetes manifest against the official API models (the `kubernetes` client).

    validate_k8s.py MANIFEST.yaml [EXPECTED.json]

Every document of MANIFEST is checked against the model class of its apiVersion/kind:

- every key must be a field of the model (the client itself ignores unknown keys, so this
  walks the document along each model's `attribute_map` and `openapi_types`);
- scalars must have the declared type (`int`, `str`, `bool`);
- required fields must be present: the document is then deserialized with
  `ApiClient().deserialize`, whose model constructors reject a missing required field (and,
  in the pydantic-based clients from v35 on, a value of the wrong type);
- a few rules the API server enforces and the models do not: every container has an image,
  DNS-label container names, unique across the pod, and a selector that matches the pod
  template's labels; `restartPolicy: Always` and probes only on native sidecars (init
  containers, Kubernetes >= 1.29).

With EXPECTED.json, the YAML must also load to exactly that JSON value, which checks the
YAML emitter's quoting.

Exit status: 0 valid, 1 invalid (the problems on stdout), 3 the kubernetes client or PyYAML
is missing.
"""

import inspect
import json
import re
import sys

try:
    import kubernetes.client as k8s
    import yaml
except ImportError as e:  # pragma: no cover - reported to the Rust test
    print(f"missing Python module: {e.name} (pip install kubernetes)")
    sys.exit(3)

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def model_name(doc):
    """`apps/v1` + `Deployment` -> `V1Deployment`."""
    version = doc.get("apiVersion", "").split("/")[-1]
    return version[:1].upper() + version[1:] + doc.get("kind", "")


def check(value, type_name, path, problems):
    """Walks `value` as an instance of `type_name`, an openapi_types string: `list[T]` and
    `dict(str, T)` in the older clients, `List[T]` and `Dict[str, T]` in the newer ones."""
    if type_name.startswith(("list[", "List[")):
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list, got {type(value).__name__}")
            return
        inner = type_name[5:-1]
        for i, item in enumerate(value):
            check(item, inner, f"{path}[{i}]", problems)
        return
    if type_name.startswith(("dict(", "Dict[")):
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a map, got {type(value).__name__}")
            return
        inner = type_name[5:-1].split(",", 1)[1].strip()
        for key, item in value.items():
            if not isinstance(key, str):
                problems.append(f"{path}: key {key!r} is not a string")
            check(item, inner, f"{path}.{key}", problems)
        return
    scalars = {"str": str, "int": int, "bool": bool, "float": (int, float)}
    if type_name in scalars:
        ok = isinstance(value, scalars[type_name])
        if type_name == "int" and isinstance(value, bool):
            ok = False
        if not ok:
            problems.append(f"{path}: expected {type_name}, got {value!r}")
        return
    if type_name in ("object", "datetime", "date"):
        return
    cls = getattr(k8s, type_name, None)
    if cls is None:
        problems.append(f"{path}: unknown model type {type_name}")
        return
    if not isinstance(value, dict):
        problems.append(f"{path}: expected a {type_name} map, got {value!r}")
        return
    by_json_key = {json_key: attr for attr, json_key in cls.attribute_map.items()}
    for key, item in value.items():
        attr = by_json_key.get(key)
        if attr is None:
            problems.append(f"{path}: unknown field `{key}` in {type_name}")
            continue
        check(item, cls.openapi_types[attr], f"{path}.{key}", problems)


class Response:
    """What the older `ApiClient.deserialize(response, type)` reads: the JSON in `data`."""

    def __init__(self, doc):
        self.data = json.dumps(doc)


def deserialize(api, doc, name):
    """`ApiClient.deserialize` of either generation of the client."""
    params = inspect.signature(api.deserialize).parameters
    if "content_type" in params:
        return api.deserialize(json.dumps(doc), name, "application/json")
    return api.deserialize(Response(doc), name)


def pod_rules(doc, problems):
    template = doc.get("spec", {}).get("template", {})
    pod = template.get("spec", {})
    containers = [c for key in ("initContainers", "containers") for c in pod.get(key) or []]
    names = [c.get("name", "") for c in containers]
    for c in containers:
        if not c.get("image"):
            problems.append(f"container `{c.get('name')}` has no image")
    for name in names:
        if not DNS_LABEL.match(name) or len(name) > 63:
            problems.append(f"container name `{name}` is not a DNS label")
    if len(names) != len(set(names)):
        problems.append(f"container names are not unique: {names}")
    if not pod.get("containers"):
        problems.append("the pod has no containers")
    # Native sidecars (Kubernetes >= 1.29): an init container may set `restartPolicy`, only to
    # `Always`; probes are allowed on such sidecars and refused on plain init containers; a
    # regular container may not set `restartPolicy` at all.
    for c in pod.get("initContainers") or []:
        policy = c.get("restartPolicy")
        if policy not in (None, "Always"):
            problems.append(f"init container `{c.get('name')}`: restartPolicy {policy!r}")
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            if probe in c and policy != "Always":
                problems.append(f"init container `{c.get('name')}` without restartPolicy "
                                f"Always has a {probe}")
    for c in pod.get("containers") or []:
        if "restartPolicy" in c:
            problems.append(f"container `{c.get('name')}` sets restartPolicy (only init "
                            "containers may, as sidecars)")
    selector = doc.get("spec", {}).get("selector", {}).get("matchLabels", {})
    labels = template.get("metadata", {}).get("labels", {})
    for key, value in selector.items():
        if labels.get(key) != value:
            problems.append(f"selector {key}={value} does not match the template's labels")


def main():
    if len(sys.argv) not in (2, 3):
        print(__doc__)
        sys.exit(2)
    with open(sys.argv[1]) as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    problems = []
    if not docs:
        problems.append("no documents")
    api = k8s.ApiClient()
    for i, doc in enumerate(docs):
        name = model_name(doc)
        if getattr(k8s, name, None) is None:
            problems.append(f"document {i}: no model for {doc.get('apiVersion')}/{doc.get('kind')}")
            continue
        check(doc, name, name, problems)
        try:
            deserialize(api, doc, name)
        except (ValueError, TypeError) as e:  # pydantic's ValidationError is a ValueError
            problems.append(f"document {i}: {name} rejects it: {e}")
        if name in ("V1Deployment", "V1StatefulSet", "V1DaemonSet", "V1ReplicaSet"):
            pod_rules(doc, problems)
    if len(sys.argv) == 3:
        with open(sys.argv[2]) as f:
            expected = json.load(f)
        if len(docs) != 1 or docs[0] != expected:
            problems.append("the YAML does not load to the expected JSON value")
            problems.append("yaml: " + json.dumps(docs, sort_keys=True))
            problems.append("json: " + json.dumps(expected, sort_keys=True))
    for problem in problems:
        print(problem)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
