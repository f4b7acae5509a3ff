"""Assertions on rendered fields of the photo-gateway chart (helm template, no cluster)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import CHART, FULLNAME, NAMESPACE, RELEASE, render, render_fails, run_helm

SECRET_DIR = "/var/run/secrets/photo-gateway"
CI_FILES = sorted(p.name for p in (CHART / "ci").glob("*-values.yaml"))
BAD_VALUES = Path(__file__).resolve().parent / "bad-values.yaml"


def selector_labels(r):
    return r.deployment["spec"]["selector"]["matchLabels"]


def matches(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


# ------------------------------------------------------------------ inventory


def test_ci_values_files_cover_the_required_scenarios():
    for wanted in ("ingress-tls", "workload-identity", "autoscaling", "httproute", "networkpolicy-servicemonitor"):
        assert f"{wanted}-values.yaml" in CI_FILES


def test_default_objects(default):
    assert default.kinds() == sorted(
        ["ConfigMap", "Deployment", "PodDisruptionBudget", "Pod", "Service", "ServiceAccount"]
    )


@pytest.mark.parametrize("values_file", CI_FILES)
def test_every_ci_values_file_renders(values_file):
    r = render(values_file)
    assert r.deployment["metadata"]["name"] == FULLNAME
    for doc in r.docs:
        assert doc["metadata"].get("namespace") == NAMESPACE, doc["kind"]


# ------------------------------------------------------------------ probes and container


def test_probe_paths(default):
    c = default.container
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    # The startup probe allows a generous start before liveness can kill the pod.
    assert c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"] >= 30


def test_ports(default):
    ports = {p["name"]: p["containerPort"] for p in default.container["ports"]}
    assert ports == {"http": 8080, "metrics": 9090}
    assert default.config["PHOTO_GATEWAY_LISTEN_ADDR"] == "0.0.0.0:8080"
    assert default.config["PHOTO_GATEWAY_METRICS_ADDR"] == "0.0.0.0:9090"
    svc = {p["name"]: (p["port"], p["targetPort"]) for p in default.one("Service")["spec"]["ports"]}
    assert svc == {"http": (8080, "http"), "metrics": (9090, "metrics")}


def test_resources_set_by_default(default):
    res = default.container["resources"]
    assert res["requests"]["cpu"] and res["requests"]["memory"]
    assert res["limits"]["memory"]


def test_security_context(default):
    pod = default.pod_spec["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] == 65532 and pod["runAsGroup"] == 65532
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    c = default.container["securityContext"]
    assert c["runAsNonRoot"] is True
    assert c["runAsUser"] == 65532 and c["runAsGroup"] == 65532
    assert c["readOnlyRootFilesystem"] is True
    assert c["allowPrivilegeEscalation"] is False
    assert c["capabilities"]["drop"] == ["ALL"]
    assert "add" not in c["capabilities"]
    assert c["seccompProfile"] == {"type": "RuntimeDefault"}
    assert default.pod_spec["automountServiceAccountToken"] is False


def test_tmp_is_an_empty_dir(default):
    mounts = {m["name"]: m["mountPath"] for m in default.container["volumeMounts"]}
    assert mounts["tmp"] == "/tmp"
    vols = {v["name"]: v for v in default.pod_spec["volumes"]}
    assert "emptyDir" in vols["tmp"]


def test_image_defaults_to_app_version_and_accepts_a_digest(default):
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert default.container["image"] == f"photo-gateway:{chart['appVersion']}"
    r = render("httproute-values.yaml")
    assert re.fullmatch(r"myregistry\.azurecr\.io/platform/photo-gateway@sha256:[0-9a-f]{64}", r.container["image"])
    r = render(sets={"global.imageRegistry": "mirror.example.com", "image.tag": "1.2.3"})
    assert r.container["image"] == "mirror.example.com/photo-gateway:1.2.3"


def test_extra_env_and_env_from():
    r = render("networkpolicy-servicemonitor-values.yaml")
    env = {e["name"]: e["value"] for e in r.container["env"]}
    assert env == {"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod"}
    assert r.container["envFrom"][0] == {"configMapRef": {"name": FULLNAME}}
    r = render(sets={"envFrom[0].secretRef.name": "extra"})
    assert r.container["envFrom"][1] == {"secretRef": {"name": "extra"}}


def test_scheduling_fields():
    r = render(
        sets={
            "nodeSelector.kubernetes\\.io/os": "linux",
            "tolerations[0].key": "dedicated",
            "tolerations[0].operator": "Exists",
            "priorityClassName": "high",
        }
    )
    assert r.pod_spec["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert r.pod_spec["tolerations"][0]["key"] == "dedicated"
    assert r.pod_spec["priorityClassName"] == "high"


def test_default_topology_spread(default):
    tsc = default.pod_spec["topologySpreadConstraints"]
    assert {t["topologyKey"] for t in tsc} == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
    for t in tsc:
        assert t["labelSelector"]["matchLabels"] == selector_labels(default)
        assert t["whenUnsatisfiable"] == "ScheduleAnyway"


# ------------------------------------------------------------------ config, secrets, checksums


def test_config_map_holds_settings_but_no_secret():
    r = render("autoscaling-values.yaml")
    cfg = r.config
    assert cfg["PHOTO_GATEWAY_TENANT_ID"] == "00000000-0000-0000-0000-000000000001"
    assert cfg["PHOTO_GATEWAY_MAX_PHOTO_BYTES"] == "4194304"
    assert cfg["PHOTO_GATEWAY_CLIENT_CERTIFICATE_FILE"] == f"{SECRET_DIR}/tls.crt"
    assert cfg["PHOTO_GATEWAY_CLIENT_CERTIFICATE_KEY_FILE"] == f"{SECRET_DIR}/tls.key"
    assert not any("BEGIN" in v for v in cfg.values())
    assert "PHOTO_GATEWAY_CLIENT_SECRET" not in cfg
    # Nothing secret-looking passes as plain env either.
    assert not any("SECRET" in e["name"] and "value" in e for e in r.container.get("env", []))


def test_allowed_client_ids_are_comma_joined():
    cfg = render("ingress-tls-values.yaml").config
    assert cfg["PHOTO_GATEWAY_ALLOWED_CLIENT_IDS"] == (
        "00000000-0000-0000-0000-000000000003,00000000-0000-0000-0000-000000000004"
    )


def test_existing_secret_is_mounted_as_files():
    r = render("ingress-tls-values.yaml")
    assert r.maybe("Secret") is None
    vols = {v["name"]: v for v in r.pod_spec["volumes"]}
    assert vols["credentials"]["secret"]["secretName"] == "photo-gateway-credentials"
    assert vols["credentials"]["secret"]["items"] == [{"key": "client-secret", "path": "client-secret"}]
    mount = next(m for m in r.container["volumeMounts"] if m["name"] == "credentials")
    assert mount == {"name": "credentials", "mountPath": SECRET_DIR, "readOnly": True}
    assert r.config["PHOTO_GATEWAY_CLIENT_SECRET_FILE"] == f"{SECRET_DIR}/client-secret"


def test_secret_created_from_values_for_development():
    r = render(sets={"credentials.clientSecret": "s3cr3t"})
    secret = r.one("Secret")
    assert secret["metadata"]["name"] == FULLNAME
    assert secret["data"] == {"client-secret": "czNjcjN0"}
    assert "s3cr3t" not in json.dumps(r.config)
    assert r.config["PHOTO_GATEWAY_CLIENT_SECRET_FILE"] == f"{SECRET_DIR}/client-secret"


def test_no_credentials_means_no_secret_volume(default):
    assert default.maybe("Secret") is None
    assert [v["name"] for v in default.pod_spec["volumes"]] == ["tmp"]
    assert not any(k.endswith("_FILE") and "SECRET" in k for k in default.config)


def test_checksum_annotations_roll_pods_on_change(default):
    ann = default.deployment["spec"]["template"]["metadata"]["annotations"]
    assert re.fullmatch(r"[0-9a-f]{64}", ann["checksum/config"])
    assert "checksum/secret" not in ann  # no chart-managed Secret by default
    changed = render(sets={"config.logLevel": "debug"})
    assert changed.deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"] != ann["checksum/config"]

    a = render(sets={"credentials.clientSecret": "one"}).deployment["spec"]["template"]["metadata"]["annotations"]
    b = render(sets={"credentials.clientSecret": "two"}).deployment["spec"]["template"]["metadata"]["annotations"]
    assert re.fullmatch(r"[0-9a-f]{64}", a["checksum/secret"])
    assert a["checksum/secret"] != b["checksum/secret"]
    assert a["checksum/config"] == b["checksum/config"]


def test_ca_bundle_from_config_map():
    r = render("networkpolicy-servicemonitor-values.yaml")
    assert r.config["PHOTO_GATEWAY_CA_BUNDLE_FILE"] == "/etc/photo-gateway/ca/ca.crt"
    vols = {v["name"]: v for v in r.pod_spec["volumes"]}
    assert vols["ca-bundle"]["configMap"]["name"] == "corporate-ca"


# ------------------------------------------------------------------ caller policy, limits, OTLP

REPO_README = CHART.parent.parent / "README.md"
LIMIT_VARS = {
    "maxInflightUploads": "MAX_INFLIGHT_UPLOADS",
    "maxInflightBytes": "MAX_INFLIGHT_BYTES",
    "callerRatePerMin": "CALLER_RATE_PER_MIN",
    "callerBurst": "CALLER_BURST",
    "mailboxConcurrency": "MAILBOX_CONCURRENCY",
    "mailboxBytesPer30s": "MAILBOX_BYTES_PER_30S",
    "mailboxQueueSeconds": "MAILBOX_QUEUE_SECS",
}


def values_file(tmp_path: Path, name: str, values: dict) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(values))
    return str(path)


def config_checksum(r) -> str:
    return r.deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]


def test_caller_policy_absent_by_default(default):
    assert "PHOTO_GATEWAY_CALLER_POLICY" not in default.config


def test_caller_policy_is_rendered_sorted():
    cfg = render("ingress-tls-values.yaml").config
    assert cfg["PHOTO_GATEWAY_CALLER_POLICY"] == (
        "00000000-0000-0000-0000-000000000003=contacts,users;00000000-0000-0000-0000-000000000004=groups"
    )
    r = render(sets={"config.callerPolicy.*": "{groups}", "config.callerPolicy.hr-sync": "{users,contacts}"})
    assert r.config["PHOTO_GATEWAY_CALLER_POLICY"] == "*=groups;hr-sync=contacts,users"


def test_caller_policy_checksum_does_not_depend_on_order(tmp_path):
    a = {"config": {"callerPolicy": {"b-app": ["users", "groups"], "a-app": ["contacts"]}}}
    b = {"config": {"callerPolicy": {"a-app": ["contacts"], "b-app": ["groups", "users"]}}}
    ra = render(values_file(tmp_path, "a.yaml", a))
    rb = render(values_file(tmp_path, "b.yaml", b))
    assert ra.config["PHOTO_GATEWAY_CALLER_POLICY"] == "a-app=contacts;b-app=groups,users"
    assert ra.config == rb.config
    assert config_checksum(ra) == config_checksum(rb)
    assert config_checksum(ra) != config_checksum(render())


@pytest.mark.parametrize(
    "policy",
    [
        {"app": ["everything"]},  # unknown kind
        {"app": []},  # a grant of nothing
        {"app": "users"},  # a string, not a list
        {"app": ["users", "users"]},
        {"app=x": ["users"]},  # would corrupt the `id=kinds;...` syntax
        {"a;b": ["users"]},
        {"a b": ["users"]},
    ],
)
def test_schema_rejects_bad_caller_policy(tmp_path, policy):
    err = render_fails(values_file(tmp_path, "policy.yaml", {"config": {"callerPolicy": policy}}))
    assert "values don't meet the specifications of the schema" in err


def test_caller_policy_accepts_accesses_and_teams():
    """kind:read / kind:write / kind:delete and the kind teams, rendered sorted like bare kinds."""
    cfg = render("workload-identity-values.yaml").config
    assert cfg["PHOTO_GATEWAY_CALLER_POLICY"] == (
        "00000000-0000-0000-0000-000000000003=contacts,users,users:delete;"
        "00000000-0000-0000-0000-000000000004=groups,teams:read,users:read"
    )
    r = render(sets={"config.callerPolicy.app": "{teams:write,contacts:read,groups:delete,teams}"})
    assert r.config["PHOTO_GATEWAY_CALLER_POLICY"] == "app=contacts:read,groups:delete,teams,teams:write"


def test_caller_policy_of_bare_kinds_renders_as_before(tmp_path):
    """Existing values (bare kinds, write grants) keep their rendering, hence their config checksum."""
    values = {"config": {"callerPolicy": {"b-app": ["users", "groups"], "*": ["contacts"]}}}
    cfg = render(values_file(tmp_path, "old.yaml", values)).config
    assert cfg["PHOTO_GATEWAY_CALLER_POLICY"] == "*=contacts;b-app=groups,users"


@pytest.mark.parametrize(
    "grant",
    ["users:*", "*", "*:read", "me", "teams:upload", "Users:read", "users:", "users read"],
)
def test_schema_rejects_caller_grants_the_gateway_refuses(tmp_path, grant):
    # `*` kinds and accesses exist only in APP_POLICY; CALLER_POLICY refuses them at start.
    err = render_fails(values_file(tmp_path, "policy.yaml", {"config": {"callerPolicy": {"app": [grant]}}}))
    assert "values don't meet the specifications of the schema" in err


def test_app_policy_absent_by_default(default):
    """No app named: the gateway refuses every app-only token, as before daemons were supported."""
    assert "PHOTO_GATEWAY_APP_POLICY" not in default.config


def test_app_policy_is_rendered_sorted():
    cfg = render("workload-identity-values.yaml").config
    assert cfg["PHOTO_GATEWAY_APP_POLICY"] == (
        "00000000-0000-0000-0000-000000000005/Photos.ReadWrite.All=groups:write,users:write;"
        "00000000-0000-0000-0000-000000000006/Photos.Read.All=teams:read,users:read"
    )
    r = render(sets={"config.appOnly.policy.job.Photos\\.ReadWrite\\.All": "{teams:*,*:read}"})
    assert r.config["PHOTO_GATEWAY_APP_POLICY"] == "job/Photos.ReadWrite.All=*:read,teams:*"


def test_app_policy_checksum_does_not_depend_on_order(tmp_path):
    a = {"config": {"appOnly": {"policy": {
        "b-app": {"Photos.ReadWrite.All": ["users:write", "groups:delete"], "Photos.Read.All": ["*:read"]},
        "a-app": {"Photos.Read.All": ["teams:read"]},
    }}}}
    b = {"config": {"appOnly": {"policy": {
        "a-app": {"Photos.Read.All": ["teams:read"]},
        "b-app": {"Photos.Read.All": ["*:read"], "Photos.ReadWrite.All": ["groups:delete", "users:write"]},
    }}}}
    ra = render(values_file(tmp_path, "a.yaml", a))
    rb = render(values_file(tmp_path, "b.yaml", b))
    assert ra.config["PHOTO_GATEWAY_APP_POLICY"] == (
        "a-app/Photos.Read.All=teams:read;"
        "b-app/Photos.Read.All=*:read;b-app/Photos.ReadWrite.All=groups:delete,users:write"
    )
    assert ra.config == rb.config
    assert config_checksum(ra) == config_checksum(rb)
    assert config_checksum(ra) != config_checksum(render())


@pytest.mark.parametrize(
    "policy",
    [
        {"*": {"Photos.ReadWrite.All": ["users:write"]}},  # the gateway refuses a `*` app
        {"app": {"Photos.Read.All": ["users:write"]}},  # the read-only role granting a write
        {"app": {"Photos.Read.All": ["*:*"]}},
        {"app": {"Photos.Read.All": ["groups:delete"]}},
        {"app": {"Photos.ReadWrite.All": ["users"]}},  # APP_POLICY has no bare kinds
        {"app": {"Photos.ReadWrite.All": ["me:write"]}},
        {"app": {"Photos.ReadWrite.All": ["users:upload"]}},
        {"app": {"Photos.ReadWrite.All": []}},  # a grant of nothing
        {"app": {"Photos.ReadWrite.All": ["users:write", "users:write"]}},
        {"app": {"Photos.ReadWrite.All": "users:write"}},  # a string, not a list
        {"app": {}},  # an app without a role
        {"app": ["users:write"]},  # no role level
        {"a/b": {"Photos.ReadWrite.All": ["users:write"]}},  # would corrupt `app/Role=...;...`
        {"a=b": {"Photos.ReadWrite.All": ["users:write"]}},
        {"app": {"Photos ReadWrite": ["users:write"]}},
        {"app": {"Role;x": ["users:write"]}},
    ],
)
def test_schema_rejects_bad_app_policy(tmp_path, policy):
    err = render_fails(values_file(tmp_path, "policy.yaml", {"config": {"appOnly": {"policy": policy}}}))
    assert "values don't meet the specifications of the schema" in err


def test_app_only_rate_rendering():
    cfg = render("workload-identity-values.yaml").config
    assert (cfg["PHOTO_GATEWAY_APP_RATE_PER_MIN"], cfg["PHOTO_GATEWAY_APP_BURST"]) == ("1200", "120")
    off = render(sets={"config.appOnly.ratePerMin": 0, "config.appOnly.burst": 0}).config
    assert (off["PHOTO_GATEWAY_APP_RATE_PER_MIN"], off["PHOTO_GATEWAY_APP_BURST"]) == ("0", "0")


def test_read_cache_rendering():
    cfg = render("ingress-tls-values.yaml").config
    assert cfg["PHOTO_GATEWAY_READ_CACHE_MAX_BYTES"] == "33554432"
    cfg = render("redis-values.yaml").config
    assert cfg["PHOTO_GATEWAY_READ_CACHE_MAX_AGE_SECS"] == "600"
    # 0 turns the cache off and is rendered as such; 4 GiB stays a plain integer (never 4.294967296e+09).
    cfg = render(sets={"config.readCache.maxBytes": 0, "config.readCache.maxAgeSeconds": 0}).config
    assert cfg["PHOTO_GATEWAY_READ_CACHE_MAX_BYTES"] == "0"
    assert cfg["PHOTO_GATEWAY_READ_CACHE_MAX_AGE_SECS"] == "0"
    cfg = render(sets={"config.readCache.maxBytes": 4294967296}).config
    assert cfg["PHOTO_GATEWAY_READ_CACHE_MAX_BYTES"] == "4294967296"
    changed = render(sets={"config.readCache.maxAgeSeconds": 60})
    assert config_checksum(changed) != config_checksum(render())


@pytest.mark.parametrize(
    "sets, set_string",
    [
        ({"config.readCache.maxBytes": -1}, None),
        ({"config.readCache.maxBytes": 4294967297}, None),  # the gateway's ceiling is 4 GiB
        ({"config.readCache.maxAgeSeconds": 86401}, None),  # and 86400 s
        ({"config.readCache.maxAgeSeconds": -1}, None),
        ({"config.readCache.unknown": 1}, None),
        (None, {"config.readCache.maxBytes": "64Mi"}),  # bytes, not a quantity
        ({"config.appOnly.ratePerMin": -1}, None),
        ({"config.appOnly.burst": 4294967296}, None),
        ({"config.appOnly.unknown": 1}, None),
        (None, {"config.appOnly.burst": "60"}),
    ],
)
def test_schema_rejects_bad_read_cache_and_app_limits(sets, set_string):
    err = render_fails(set_values=sets, set_string=set_string)
    assert "values don't meet the specifications of the schema" in err


NEW_VARS = {
    "appOnly.ratePerMin": "APP_RATE_PER_MIN",
    "appOnly.burst": "APP_BURST",
    "readCache.maxBytes": "READ_CACHE_MAX_BYTES",
    "readCache.maxAgeSeconds": "READ_CACHE_MAX_AGE_SECS",
}


def test_app_only_and_read_cache_default_to_the_gateway_defaults(default):
    """Rendered explicitly, with the defaults the gateway's README documents (600, 60, 64 MiB, 300 s)."""
    documented = dict(re.findall(r"^\| `([A-Z0-9_]+)` \| `([^`]*)` \|", REPO_README.read_text(), flags=re.M))
    values = yaml.safe_load((CHART / "values.yaml").read_text())["config"]
    for key, var in NEW_VARS.items():
        section, name = key.split(".")
        assert default.config[f"PHOTO_GATEWAY_{var}"] == documented[var], var
        assert str(values[section][name]) == documented[var], key


def test_scopes_are_left_to_extra_env(default):
    """The chart never exposed the Graph write scopes, so it does not expose the read and delete ones
    either: the gateway's defaults apply, and extraEnv overrides one (documented in values.yaml)."""
    assert not any(k.startswith("PHOTO_GATEWAY_SCOPE_") for k in default.config)
    assert "PHOTO_GATEWAY_SCOPE_" in (CHART / "values.yaml").read_text()
    r = render(sets={"extraEnv[0].name": "PHOTO_GATEWAY_SCOPE_READ_USERS", "extraEnv[0].value": "User.Read.All"})
    assert {"name": "PHOTO_GATEWAY_SCOPE_READ_USERS", "value": "User.Read.All"} in r.container["env"]


def test_limits_default_to_the_gateway_defaults(default):
    """The chart states every limit explicitly, with the defaults the gateway's README documents."""
    documented = dict(re.findall(r"^\| `([A-Z0-9_]+)` \| `([^`]*)` \|", REPO_README.read_text(), flags=re.M))
    for key, var in LIMIT_VARS.items():
        assert default.config[f"PHOTO_GATEWAY_{var}"] == documented[var], var


CONNECTION_VARS = {
    "connections.keepAliveSeconds": "KEEP_ALIVE_SECS",
    "connections.requestHeadTimeoutSeconds": "REQUEST_HEAD_TIMEOUT_SECS",
    "limits.mailboxLookupTtlSeconds": "MAILBOX_LOOKUP_TTL_SECS",
}


def test_connections_and_mailbox_lookup_default_to_the_gateway_defaults(default):
    """Keep-alive (longer than ingress-nginx's 60 s), head timeout and lookup TTL as README documents."""
    documented = dict(re.findall(r"^\| `([A-Z0-9_]+)` \| `([^`]*)` \|", REPO_README.read_text(), flags=re.M))
    for var in CONNECTION_VARS.values():
        assert default.config[f"PHOTO_GATEWAY_{var}"] == documented[var], var
    cfg = render(sets={"config.connections.keepAliveSeconds": 620}).config
    assert cfg["PHOTO_GATEWAY_KEEP_ALIVE_SECS"] == "620"


IMAGE_VARS = {
    "mode": "IMAGE_MODE",
    "allowedModes": "IMAGE_ALLOWED_MODES",
    "crop": "IMAGE_CROP",
    "maxEdge": "IMAGE_MAX_EDGE",
    "quality": "IMAGE_QUALITY",
    "background": "IMAGE_BACKGROUND",
    "minBytes": "IMAGE_MIN_BYTES",
    "maxPixels": "IMAGE_MAX_PIXELS",
    "maxInputEdge": "IMAGE_MAX_INPUT_EDGE",
    "queueTimeoutMs": "IMAGE_QUEUE_TIMEOUT_MS",
}


def test_image_stage_defaults_to_the_gateway_defaults_with_workers_set(default):
    """Every image setting as README documents it; workers explicit (the gateway's default is the node's CPUs)."""
    documented = dict(re.findall(r"^\| `([A-Z0-9_]+)` \| `([^`]*)` \|", REPO_README.read_text(), flags=re.M))
    for var in IMAGE_VARS.values():
        assert default.config[f"PHOTO_GATEWAY_{var}"] == documented[var], var
    assert "PHOTO_GATEWAY_IMAGE_MAX_BYTES" not in default.config, "no budget by default"
    assert default.config["PHOTO_GATEWAY_IMAGE_WORKERS"] == "2"
    cfg = render(sets={"config.imageStage.maxBytes": 100000}).config
    assert cfg["PHOTO_GATEWAY_IMAGE_MAX_BYTES"] == "100000"
    cfg = render("ingress-tls-values.yaml").config
    assert cfg["PHOTO_GATEWAY_IMAGE_WORKERS"] == "1"
    assert cfg["PHOTO_GATEWAY_IMAGE_MAX_PIXELS"] == "16000000"


@pytest.mark.parametrize(
    "key, value",
    [
        ("imageStage.mode", "sideways"),
        ("imageStage.quality", 101),
        ("imageStage.workers", 0),
        ("imageStage.maxPixels", 0),
        ("imageStage.queueTimeoutMs", 60001),
        ("imageStage.minBytes", 100),
        ("limits.mailboxConcurrency", 1001),
        ("limits.mailboxQueueSeconds", 61),
        ("connections.requestHeadTimeoutSeconds", 0),
        ("connections.keepAliveSeconds", -1),
    ],
)
def test_schema_rejects_what_the_gateway_refuses_at_start(key, value):
    err = render_fails(set_values={f"config.{key}": value})
    assert "values don't meet the specifications of the schema" in err


def test_limits_rendering():
    cfg = render("ingress-tls-values.yaml").config
    assert {var: cfg[f"PHOTO_GATEWAY_{var}"] for var in LIMIT_VARS.values()} == {
        "MAX_INFLIGHT_UPLOADS": "64",
        "MAX_INFLIGHT_BYTES": "134217728",  # a plain integer, never 1.34217728e+08
        "CALLER_RATE_PER_MIN": "300",
        "CALLER_BURST": "30",
        "MAILBOX_CONCURRENCY": "4",
        "MAILBOX_BYTES_PER_30S": "15000000",
        "MAILBOX_QUEUE_SECS": "0.5",
    }
    # 0 switches a limit off and is rendered as such.
    off = render(sets={f"config.limits.{k}": 0 for k in LIMIT_VARS}).config
    assert all(off[f"PHOTO_GATEWAY_{var}"] == "0" for var in LIMIT_VARS.values())


@pytest.mark.parametrize(
    "sets, set_string",
    [
        ({"config.limits.maxInflightUploads": -1}, None),
        ({"config.limits.mailboxQueueSeconds": -1}, None),
        ({"config.limits.unknown": 1}, None),
        (None, {"config.limits.callerBurst": "60"}),  # a string for an integer
    ],
)
def test_schema_rejects_bad_limits(sets, set_string):
    err = render_fails(set_values=sets, set_string=set_string)
    assert "values don't meet the specifications of the schema" in err


def test_otel_off_by_default(default):
    assert not any(k.startswith("OTEL_") for k in default.config)
    assert "env" not in default.container


def test_otel_env():
    r = render("networkpolicy-servicemonitor-values.yaml")
    assert {k: v for k, v in r.config.items() if k.startswith("OTEL_")} == {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector.observability:4318",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_SERVICE_NAME": "photo-gateway-prod",
    }
    # The ConfigMap reaches the container through envFrom; extraEnv adds to it without duplicates.
    assert r.container["envFrom"][0] == {"configMapRef": {"name": FULLNAME}}
    assert not any(e["name"] in r.config for e in r.container["env"])
    r = render(sets={"otel.enabled": "true", "otel.endpoint": "https://otlp.example.com"})
    assert r.config["OTEL_EXPORTER_OTLP_ENDPOINT"] == "https://otlp.example.com"
    assert r.config["OTEL_SERVICE_NAME"] == "photo-gateway"
    assert config_checksum(r) != config_checksum(render())


def test_otel_needs_an_endpoint():
    err = render_fails(set_values={"otel.enabled": "true"})
    assert "otel.endpoint" in err
    err = render_fails(set_values={"otel.enabled": "true", "otel.endpoint": "otel-collector:4318"})
    assert "values don't meet the specifications of the schema" in err


# ------------------------------------------------------------------ memory budget

MIB = 1 << 20
_QUANTITY_UNITS = {
    "": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
    "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40,
}


def quantity_bytes(q) -> int:
    number, unit = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)([kMGT]i?|Ki)?", str(q)).groups()
    return int(float(number) * _QUANTITY_UNITS[unit or ""])


def test_quantity_parser():
    assert quantity_bytes("512Mi") == 512 * MIB
    assert quantity_bytes("1Gi") == 1024 * MIB
    assert quantity_bytes("500M") == 500_000_000
    assert quantity_bytes(268435456) == 256 * MIB


def image_bound(config: dict) -> int:
    """Most bytes the image workers decode into at once: workers x max pixels x 4 bytes."""
    return int(config["PHOTO_GATEWAY_IMAGE_WORKERS"]) * int(config["PHOTO_GATEWAY_IMAGE_MAX_PIXELS"]) * 4


def inflight_bound(config: dict) -> int:
    """Most photo bytes one pod holds in flight: MAX_INFLIGHT_BYTES, and at most uploads x photo size."""
    bounds = []
    if int(config["PHOTO_GATEWAY_MAX_INFLIGHT_BYTES"]) > 0:
        bounds.append(int(config["PHOTO_GATEWAY_MAX_INFLIGHT_BYTES"]))
    if int(config["PHOTO_GATEWAY_MAX_INFLIGHT_UPLOADS"]) > 0:
        bounds.append(int(config["PHOTO_GATEWAY_MAX_INFLIGHT_UPLOADS"]) * int(config["PHOTO_GATEWAY_MAX_PHOTO_BYTES"]))
    assert bounds, "no in-flight bound at all: memory is unbounded"
    return min(bounds)


def read_cache_bound(config: dict) -> int:
    """Photo bytes the read cache keeps: READ_CACHE_MAX_BYTES, held for good once a busy pod fills it."""
    return int(config["PHOTO_GATEWAY_READ_CACHE_MAX_BYTES"])


def memory_needed(config: dict) -> float:
    return 1.25 * inflight_bound(config) + 64 * MIB + image_bound(config) + read_cache_bound(config)


def test_default_memory_limit_covers_the_inflight_budget(default):
    """Benchmark goal: peak RSS <= 1.25 x in-flight bytes + 40 MB. The limit keeps 64Mi over the 1.25 x,
    plus the image workers' decodes and the read cache's bytes."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    max_inflight = values["config"]["limits"]["maxInflightBytes"]
    limit = quantity_bytes(values["resources"]["limits"]["memory"])
    image = values["config"]["imageStage"]
    decodes = image["workers"] * image["maxPixels"] * 4
    read_cache = values["config"]["readCache"]["maxBytes"]
    assert max_inflight > 0
    assert read_cache > 0
    assert limit >= 1.25 * max_inflight + 64 * MIB + decodes + read_cache, (
        limit / MIB,
        (1.25 * max_inflight + decodes + read_cache) / MIB + 64,
    )
    # The same holds for what is rendered, with the bounds the gateway really enforces.
    rendered = quantity_bytes(default.container["resources"]["limits"]["memory"])
    assert rendered >= memory_needed(default.config)


def test_default_memory_limit_keeps_its_slack_beside_the_read_cache(default):
    """The read cache got its own 64Mi: the ~80Mi of slack for the token cache, TLS buffers and the
    allocator is what it was before (768Mi for in flight + decodes), not eaten by the cache."""
    rendered = quantity_bytes(default.container["resources"]["limits"]["memory"])
    assert rendered - memory_needed(default.config) >= 75 * MIB
    # Turning the cache off gives its bytes back to the budget.
    off = render(sets={"config.readCache.maxBytes": 0}).config
    assert memory_needed(default.config) - memory_needed(off) == 64 * MIB


@pytest.mark.parametrize("values_file_name", CI_FILES)
def test_ci_values_memory_limits_cover_their_inflight_budget(values_file_name):
    r = render(values_file_name)
    limit = quantity_bytes(r.container["resources"]["limits"]["memory"])
    assert limit >= memory_needed(r.config)


# ------------------------------------------------------------------ workload identity


def test_workload_identity_label_and_annotation():
    r = render("workload-identity-values.yaml")
    labels = r.deployment["spec"]["template"]["metadata"]["labels"]
    assert labels["azure.workload.identity/use"] == "true"  # a string, as the webhook requires
    assert "azure.workload.identity/use" not in selector_labels(r)
    sa = r.one("ServiceAccount")
    assert sa["metadata"]["annotations"]["azure.workload.identity/client-id"] == "00000000-0000-0000-0000-000000000002"
    assert sa["metadata"]["annotations"]["azure.workload.identity/tenant-id"] == "00000000-0000-0000-0000-000000000001"
    assert r.pod_spec["serviceAccountName"] == sa["metadata"]["name"]
    # No secret needed: none created, none mounted, no *_FILE credential variable.
    assert r.maybe("Secret") is None
    assert "credentials" not in [v["name"] for v in r.pod_spec["volumes"]]
    assert not any(k.startswith("PHOTO_GATEWAY_CLIENT_") and k.endswith("_FILE") for k in r.config)
    assert "must-not-be-rendered" not in json.dumps(r.docs)


def test_workload_identity_off_by_default(default):
    labels = default.deployment["spec"]["template"]["metadata"]["labels"]
    assert "azure.workload.identity/use" not in labels
    assert "annotations" not in default.one("ServiceAccount")["metadata"]


def test_workload_identity_needs_a_client_id():
    err = render_fails(set_values={"workloadIdentity.enabled": "true"})
    assert "workloadIdentity.clientId" in err


# ------------------------------------------------------------------ traffic


def test_ingress_body_size_annotation_and_tls():
    ing = render("ingress-tls-values.yaml").one("Ingress")
    ann = ing["metadata"]["annotations"]
    assert ann["nginx.ingress.kubernetes.io/proxy-body-size"] == "8m"
    assert ann["cert-manager.io/cluster-issuer"] == "letsencrypt"  # user annotations merge with the default
    assert ing["spec"]["ingressClassName"] == "nginx"
    assert ing["spec"]["tls"] == [{"secretName": "photos-example-com-tls", "hosts": ["photos.example.com"]}]
    rule = ing["spec"]["rules"][0]
    assert rule["host"] == "photos.example.com"
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": FULLNAME, "port": {"name": "http"}}


def test_ingress_body_size_is_enough_for_a_4mb_photo():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    size = values["ingress"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    number, unit = re.fullmatch(r"(\d+)([kmg])", size).groups()
    limit = int(number) * {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[unit]
    assert limit > values["config"]["maxPhotoBytes"] * 1.5  # photo + multipart/base64 overhead


def test_httproute_fields():
    route = render("httproute-values.yaml").one("HTTPRoute")
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    spec = route["spec"]
    assert spec["parentRefs"] == [{"name": "public-gateway", "namespace": "gateway-system", "sectionName": "https"}]
    assert spec["hostnames"] == ["photos.example.com"]
    rule = spec["rules"][0]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]
    assert rule["backendRefs"] == [{"group": "", "kind": "Service", "name": FULLNAME, "port": 8080, "weight": 1}]
    assert rule["timeouts"] == {"request": "60s"}


def test_service_selects_gateway_pods_only(default):
    svc_selector = default.one("Service")["spec"]["selector"]
    assert svc_selector == selector_labels(default)
    assert matches(svc_selector, default.deployment["spec"]["template"]["metadata"]["labels"])
    assert not matches(svc_selector, default.one("Pod")["metadata"]["labels"])


# ------------------------------------------------------------------ availability


def test_replicas_omitted_under_hpa():
    r = render("autoscaling-values.yaml")
    assert "replicas" not in r.deployment["spec"]
    hpa = r.one("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": FULLNAME}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 12)
    targets = {m["resource"]["name"]: m["resource"]["target"]["averageUtilization"] for m in hpa["spec"]["metrics"]}
    assert targets == {"cpu": 65, "memory": 80}
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
    assert hpa["spec"]["behavior"]["scaleUp"]["policies"]


def test_replicas_present_without_hpa(default):
    assert default.deployment["spec"]["replicas"] == 2
    assert default.maybe("HorizontalPodAutoscaler") is None


@pytest.mark.parametrize(
    "sets, expected",
    [
        ({}, True),  # replicaCount 2
        ({"replicaCount": 1}, False),
        ({"replicaCount": 3, "podDisruptionBudget.enabled": "false"}, False),
        ({"autoscaling.enabled": "true", "autoscaling.minReplicas": 1, "replicaCount": 5}, False),
        ({"autoscaling.enabled": "true", "autoscaling.minReplicas": 2, "replicaCount": 1}, True),
    ],
)
def test_pdb_rules(sets, expected):
    r = render(sets=sets)
    assert (r.maybe("PodDisruptionBudget") is not None) is expected


def test_pdb_fields(default):
    pdb = default.one("PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["maxUnavailable"] == 1
    assert "minAvailable" not in pdb["spec"]
    assert pdb["spec"]["selector"]["matchLabels"] == selector_labels(default)
    pdb = render("autoscaling-values.yaml").one("PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 2 and "maxUnavailable" not in pdb["spec"]
    assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


# ------------------------------------------------------------------ network policy and metrics


def test_network_policy_off_by_default(default):
    assert default.maybe("NetworkPolicy") is None


def test_network_policy_ingress():
    r = render("networkpolicy-servicemonitor-values.yaml")
    np_ = r.one("NetworkPolicy")["spec"]
    assert np_["podSelector"]["matchLabels"] == selector_labels(r)
    assert sorted(np_["policyTypes"]) == ["Egress", "Ingress"]
    rules = np_["ingress"]
    ports = [[p["port"] for p in rule["ports"]] for rule in rules]
    # ingress controller -> http
    assert rules[0]["from"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "ingress-nginx"}
    assert ports[0] == [8080]
    # monitoring -> metrics port only
    assert rules[1]["from"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "monitoring"}
    assert ports[1] == [9090]
    # helm test pod -> http
    test_pod_labels = r.one("Pod")["metadata"]["labels"]
    assert matches(rules[2]["from"][0]["podSelector"]["matchLabels"], test_pod_labels)
    assert ports[2] == [8080]
    # extra rule from values
    assert rules[3]["from"][0]["podSelector"]["matchLabels"] == {"app": "photo-frontend"}
    assert len(rules) == 4


def test_network_policy_egress_dns_and_443_only():
    r = render(
        "networkpolicy-servicemonitor-values.yaml", sets={"networkPolicy.egress.extra": "null", "otel.enabled": "false"}
    )
    egress = r.one("NetworkPolicy")["spec"]["egress"]
    assert len(egress) == 2
    dns, https = egress
    assert sorted((p["protocol"], p["port"]) for p in dns["ports"]) == [("TCP", 53), ("UDP", 53)]
    assert dns["to"][0]["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
    assert https["ports"] == [{"protocol": "TCP", "port": 443}]
    assert [peer["ipBlock"]["cidr"] for peer in https["to"]] == ["0.0.0.0/0", "::/0"]
    all_ports = {p["port"] for rule in egress for p in rule["ports"]}
    assert all_ports == {53, 443}


def test_network_policy_extra_egress():
    egress = render("networkpolicy-servicemonitor-values.yaml").one("NetworkPolicy")["spec"]["egress"]
    assert len(egress) == 4  # DNS, 443, OTLP collector, extra
    assert egress[3]["ports"] == [{"port": 3128, "protocol": "TCP"}]
    assert egress[3]["to"] == [{"ipBlock": {"cidr": "10.20.0.0/16"}}]


def test_network_policy_otlp_egress_follows_the_endpoint():
    egress = render("networkpolicy-servicemonitor-values.yaml").one("NetworkPolicy")["spec"]["egress"]
    otlp = egress[2]
    assert otlp["ports"] == [{"protocol": "TCP", "port": 4318}]  # port 0: taken from otel.endpoint
    assert otlp["to"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "opentelemetry-collector"}},
        }
    ]
    base = {"networkPolicy.enabled": "true", "otel.enabled": "true"}

    def otlp_rule(**sets):
        return render(sets={**base, **sets}).one("NetworkPolicy")["spec"]["egress"][2]

    rule = otlp_rule(**{"otel.endpoint": "https://otlp.example.com"})
    assert rule == {"ports": [{"protocol": "TCP", "port": 443}]}  # no port: scheme default; no peers: any host
    assert otlp_rule(**{"otel.endpoint": "http://collector"})["ports"][0]["port"] == 80
    assert otlp_rule(**{"otel.endpoint": "http://[fd00::1]:4318/"})["ports"][0]["port"] == 4318
    explicit = otlp_rule(**{"otel.endpoint": "http://collector:4318", "networkPolicy.egress.otlp.port": 14318})
    assert explicit["ports"][0]["port"] == 14318
    # No OTLP rule without otel.enabled.
    egress = render(sets={"networkPolicy.enabled": "true"}).one("NetworkPolicy")["spec"]["egress"]
    assert {p["port"] for rule in egress for p in rule["ports"]} == {53, 443}


def test_service_monitor_fields():
    r = render("networkpolicy-servicemonitor-values.yaml")
    sm = r.one("ServiceMonitor")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    spec = sm["spec"]
    assert spec["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    svc = r.one("Service")
    assert matches(spec["selector"]["matchLabels"], svc["metadata"]["labels"])
    assert spec["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "scheme": "http", "interval": "15s", "scrapeTimeout": "10s"}
    ]
    assert "metrics" in [p["name"] for p in svc["spec"]["ports"]]


def test_service_monitor_needs_the_metrics_port_on_the_service():
    err = render_fails(
        set_values={"metrics.serviceMonitor.enabled": "true", "service.exposeMetrics": "false"}
    )
    assert "service.exposeMetrics" in err


# ------------------------------------------------------------------ shutdown


def test_prestop_sleep_and_grace_budget(default):
    c = default.container
    assert c["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}  # native, no exec/shell
    assert default.config["PHOTO_GATEWAY_SHUTDOWN_DRAIN_SECS"] == "5"
    assert default.config["PHOTO_GATEWAY_SHUTDOWN_TIMEOUT_SECS"] == "20"
    assert default.pod_spec["terminationGracePeriodSeconds"] == 5 + 5 + 20 + 5


def test_grace_budget_follows_values():
    r = render("autoscaling-values.yaml")  # sleep 10, drain 3, timeout 30, margin 5
    assert r.container["lifecycle"]["preStop"]["sleep"]["seconds"] == 10
    assert r.config["PHOTO_GATEWAY_SHUTDOWN_DRAIN_SECS"] == "3"
    assert r.config["PHOTO_GATEWAY_SHUTDOWN_TIMEOUT_SECS"] == "30"
    assert r.pod_spec["terminationGracePeriodSeconds"] == 48
    # The in-flight deadline always ends before the kubelet's SIGKILL.
    assert 10 + 3 + 30 < r.pod_spec["terminationGracePeriodSeconds"]


def test_explicit_grace_period():
    r = render(sets={"shutdown.terminationGracePeriodSeconds": 60})
    assert r.pod_spec["terminationGracePeriodSeconds"] == 60
    err = render_fails(set_values={"shutdown.terminationGracePeriodSeconds": 20})
    assert "below the shutdown budget" in err


def test_prestop_hook_omitted_when_sleep_is_zero():
    r = render(sets={"shutdown.preStopSleepSeconds": 0})
    assert "lifecycle" not in r.container
    assert r.pod_spec["terminationGracePeriodSeconds"] == 30


# ------------------------------------------------------------------ helm test pod


def test_helm_test_pod_runs_healthcheck_against_the_service(default):
    pod = default.one("Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never"
    c = spec["containers"][0]
    assert c["image"] == default.container["image"]
    assert c["command"] == ["/usr/local/bin/photo-gateway"]
    assert c["args"] == ["healthcheck", f"http://{FULLNAME}:8080/readyz"]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert spec["automountServiceAccountToken"] is False


# ------------------------------------------------------------------ schema and docs


def test_schema_rejects_the_bad_values_file():
    err = render_fails(str(BAD_VALUES))
    assert "values don't meet the specifications of the schema" in err
    assert "Additional property unknownTopLevelKey is not allowed" in err
    assert "replicaCount: Invalid type" in err
    assert "service.port: Invalid type" in err
    assert "config.appOnly.policy.viewer-app.Photos.Read.All.0" in err  # the read-only role granting a write
    assert "config.readCache.maxBytes" in err


@pytest.mark.parametrize(
    "sets, set_string",
    [
        ({"replicaCount": "true"}, None),  # boolean for an integer
        (None, {"autoscaling.enabled": "yes"}),  # string for a boolean
        ({"notAValue": 1}, None),  # unknown top-level key
        ({"config.typo": "x"}, None),  # unknown key inside config
        ({"credentials.type": "password"}, None),
        ({"shutdown.drainSeconds": -1}, None),
    ],
)
def test_schema_rejects_wrong_values(sets, set_string):
    err = render_fails(set_values=sets, set_string=set_string)
    assert "values don't meet the specifications of the schema" in err


def test_schema_allows_global():
    r = render(sets={"global.anything": "x", "global.imagePullSecrets[0]": "regcred"})
    assert r.pod_spec["imagePullSecrets"] == [{"name": "regcred"}]


def test_schema_and_values_list_the_same_top_level_keys():
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == set(values)
    assert "global" in schema["properties"]


def test_readme_values_table_documents_every_top_level_key():
    readme = (CHART / "README.md").read_text()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    documented = set(re.findall(r"^\| `([A-Za-z]+)[.`]", readme, flags=re.M))
    assert set(values) <= documented, sorted(set(values) - documented)


def leaf_paths(tree: dict, prefix: str = ""):
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from leaf_paths(value, f"{path}.")
        else:
            yield path


def test_readme_documents_every_value_or_its_parent():
    readme = (CHART / "README.md").read_text()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    documented = set(re.findall(r"^\| `([^`]+)` \|", readme, flags=re.M))
    missing = [
        path
        for path in leaf_paths(values)
        if not any(".".join(path.split(".")[:n]) in documented for n in range(1, path.count(".") + 2))
    ]
    assert not missing, missing
    for path in leaf_paths({"config": values["config"], "otel": values["otel"]}):
        if not path.startswith("config.caBundle"):
            assert path in documented, path  # each setting has its own row


def test_schema_declares_every_value():
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for path in leaf_paths(values):
        node = schema
        for part in path.split("."):
            if "properties" not in node:
                break  # a free-form object (resources, selectors, ...)
            assert part in node["properties"], path
            node = node["properties"][part]


def test_notes_render(tmp_path):
    """helm template skips NOTES.txt; render it through a copy of the chart wrapped in a ConfigMap."""
    chart = tmp_path / "photo-gateway"
    shutil.copytree(CHART, chart)
    notes = (chart / "templates" / "NOTES.txt").read_text()
    (chart / "templates" / "zz-notes.yaml").write_text(
        '{{- define "test.notes" }}' + notes + "{{- end }}\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\n"
        'data:\n  notes: {{ include "test.notes" . | quote }}\n'
    )
    proc = run_helm("template", RELEASE, str(chart), "--namespace", NAMESPACE,
                    "--show-only", "templates/zz-notes.yaml",
                    "-f", str(CHART / "ci" / "workload-identity-values.yaml"))
    assert proc.returncode == 0, proc.stderr
    text = yaml.safe_load(proc.stdout)["data"]["notes"]
    assert "helm test pg -n photo-gateway" in text
    assert "terminationGracePeriodSeconds = 35" in text
    assert "system:serviceaccount:photo-gateway:pg-photo-gateway" in text
    assert "WARNING" not in text

    proc = run_helm("template", RELEASE, str(chart), "--show-only", "templates/zz-notes.yaml")
    assert proc.returncode == 0, proc.stderr
    assert "no client credential is configured" in yaml.safe_load(proc.stdout)["data"]["notes"]


# ------------------------------------------------------------------ the Redis tier


def test_redis_is_off_by_default(default):
    assert not any(k.startswith("PHOTO_GATEWAY_REDIS_") for k in default.config)
    assert all(v["name"] != "redis-secrets" for v in default.pod_spec["volumes"])


def test_redis_settings_secrets_ca_and_egress():
    r = render("redis-values.yaml")
    cfg = r.config
    assert cfg["PHOTO_GATEWAY_REDIS_URL"] == "rediss://redis-master.redis.svc.cluster.local:6380/0"
    assert cfg["PHOTO_GATEWAY_REDIS_USERNAME"] == "photo-gateway"
    redis_dir = "/var/run/secrets/photo-gateway-redis"
    assert cfg["PHOTO_GATEWAY_REDIS_PASSWORD_FILE"] == f"{redis_dir}/password"
    assert cfg["PHOTO_GATEWAY_REDIS_TOKEN_KEYS_FILE"] == f"{redis_dir}/token-keys"
    assert cfg["PHOTO_GATEWAY_REDIS_HMAC_KEY_FILE"] == f"{redis_dir}/hmac-key"
    assert cfg["PHOTO_GATEWAY_REDIS_CA_BUNDLE_FILE"] == "/etc/photo-gateway/redis-ca/ca.crt"
    assert cfg["PHOTO_GATEWAY_REDIS_TIMEOUT_MS"] == "50"
    assert cfg["PHOTO_GATEWAY_REDIS_LEASE_SECS"] == "10"
    # With autoscaling, the fallback share assumes the most pods there can be.
    assert cfg["PHOTO_GATEWAY_REDIS_EXPECTED_REPLICAS"] == "6"
    # Nothing secret in the ConfigMap: the secrets are files from the existing Secret.
    vols = {v["name"]: v for v in r.pod_spec["volumes"]}
    secret = vols["redis-secrets"]["secret"]
    assert secret["secretName"] == "photo-gateway-redis"
    assert {i["path"] for i in secret["items"]} == {"password", "token-keys", "hmac-key"}
    assert vols["redis-ca"]["configMap"]["name"] == "redis-ca"
    mounts = {m["name"]: m for m in r.container["volumeMounts"]}
    assert mounts["redis-secrets"]["mountPath"] == redis_dir and mounts["redis-secrets"]["readOnly"]
    # Egress to Redis on its port, to the Redis pods only.
    egress = r.one("NetworkPolicy")["spec"]["egress"]
    rule = next(e for e in egress if any(p["port"] == 6380 for p in e.get("ports", [])))
    assert rule["to"][0]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "redis"}


def test_redis_expected_replicas_follow_replica_count_unless_set():
    sets = {"redis.enabled": "true", "redis.url": "redis://redis:6379", "redis.existingSecret": "s"}
    assert render(sets={**sets, "replicaCount": "3"}).config["PHOTO_GATEWAY_REDIS_EXPECTED_REPLICAS"] == "3"
    r = render(sets={**sets, "redis.expectedReplicas": "2", "redis.secretKeys.password": ""})
    assert r.config["PHOTO_GATEWAY_REDIS_EXPECTED_REPLICAS"] == "2"
    assert "PHOTO_GATEWAY_REDIS_PASSWORD_FILE" not in r.config, "no password key: no password"


@pytest.mark.parametrize(
    "sets",
    [
        {"redis.enabled": "true"},
        {"redis.enabled": "true", "redis.url": "redis://redis:6379"},
        {"redis.enabled": "true", "redis.url": "http://redis:6379", "redis.existingSecret": "s"},
        {"redis.enabled": "true", "redis.url": "redis://u:p@redis:6379", "redis.existingSecret": "s"},
        {"redis.timeoutMs": "0"},
        {"redis.leaseSeconds": "301"},
    ],
)
def test_redis_values_the_gateway_would_refuse_are_refused(sets):
    err = render_fails(set_values=sets)
    assert "schema" in err or "redis.enabled needs" in err, err


def test_a_redis_ca_bundle_needs_a_tls_url():
    sets = {
        "redis.enabled": "true",
        "redis.url": "redis://redis:6379",
        "redis.existingSecret": "s",
        "redis.caBundle.existingConfigMap": "redis-ca",
    }
    err = render_fails(set_values=sets)
    assert "redis.caBundle is for a rediss://" in err, err
    ok = render(sets={**sets, "redis.url": "rediss://redis:6380"})
    assert ok.config["PHOTO_GATEWAY_REDIS_CA_BUNDLE_FILE"] == "/etc/photo-gateway/redis-ca/ca.crt"


def test_redis_egress_follows_the_urls_port_and_refuses_a_different_one():
    sets = {
        "networkPolicy.enabled": "true",
        "redis.enabled": "true",
        "redis.existingSecret": "s",
    }

    def redis_ports(url, port=None):
        extra = {"redis.url": url}
        if port is not None:
            extra["redis.networkPolicy.port"] = port
        egress = render(sets={**sets, **extra}).one("NetworkPolicy")["spec"]["egress"]
        return {p["port"] for e in egress for p in e.get("ports", [])}

    assert 6390 in redis_ports("rediss://redis:6390/0")
    assert 6379 in redis_ports("redis://redis")
    assert 6381 in redis_ports("redis://redis", port="6381")
    assert 6390 in redis_ports("redis://redis:6390", port="6390")
    err = render_fails(set_values={**sets, "redis.url": "rediss://redis:6380", "redis.networkPolicy.port": "6379"})
    assert "differs from redis.url's port (6380)" in err, err


def test_a_redis_user_needs_a_password():
    sets = {
        "redis.enabled": "true",
        "redis.url": "redis://redis:6379",
        "redis.existingSecret": "s",
        "redis.username": "photo-gateway",
        "redis.secretKeys.password": "",
    }
    err = render_fails(set_values=sets)
    assert "redis.username needs redis.secretKeys.password" in err, err
    ok = render(sets={**sets, "redis.secretKeys.password": "redis-password"})
    assert ok.config["PHOTO_GATEWAY_REDIS_USERNAME"] == "photo-gateway"
