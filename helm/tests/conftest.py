"""Helpers for the photo-gateway chart tests: render the chart with helm and parse the objects."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

CHART = Path(__file__).resolve().parent.parent / "photo-gateway"
RELEASE = "pg"
NAMESPACE = "photo-gateway"
FULLNAME = f"{RELEASE}-photo-gateway"


def helm_binary() -> str:
    helm = os.environ.get("HELM") or shutil.which("helm")
    if not helm:
        pytest.exit("helm not found: set HELM or run through .ci/chart-check.sh", returncode=2)
    return helm


class Rendered:
    """The objects of one `helm template` run, looked up by kind (and name)."""

    def __init__(self, docs: list[dict]):
        self.docs = docs

    def all(self, kind: str) -> list[dict]:
        return [d for d in self.docs if d.get("kind") == kind]

    def maybe(self, kind: str) -> dict | None:
        found = self.all(kind)
        assert len(found) <= 1, f"more than one {kind}"
        return found[0] if found else None

    def one(self, kind: str) -> dict:
        found = self.all(kind)
        assert len(found) == 1, f"expected one {kind}, found {len(found)}: kinds {self.kinds()}"
        return found[0]

    def kinds(self) -> list[str]:
        return sorted(d["kind"] for d in self.docs)

    # Shortcuts into the Deployment.
    @property
    def deployment(self) -> dict:
        return self.one("Deployment")

    @property
    def pod_spec(self) -> dict:
        return self.deployment["spec"]["template"]["spec"]

    @property
    def container(self) -> dict:
        containers = self.pod_spec["containers"]
        assert len(containers) == 1
        return containers[0]

    @property
    def config(self) -> dict:
        return self.one("ConfigMap")["data"]


def run_helm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([helm_binary(), *args], capture_output=True, text=True, check=False)


def template_args(values_files=(), set_values=None, set_string=None) -> list[str]:
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    for f in values_files:
        path = Path(f)
        if not path.is_absolute():
            path = CHART / "ci" / f
        args += ["-f", str(path)]
    for key, value in (set_values or {}).items():
        args += ["--set", f"{key}={value}"]
    for key, value in (set_string or {}).items():
        args += ["--set-string", f"{key}={value}"]
    return args


_cache: dict[tuple, Rendered] = {}


def render(*values_files: str, sets: dict | None = None) -> Rendered:
    """Render with ci/ values files (by name, or absolute paths) and --set overrides."""
    sets = dict(sets or {})
    key = (values_files, tuple(sorted((k, str(v)) for k, v in sets.items())))
    if key not in _cache:
        proc = run_helm(*template_args(values_files, sets))
        assert proc.returncode == 0, f"helm template failed:\n{proc.stderr}"
        docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
        _cache[key] = Rendered(docs)
    return _cache[key]


def render_fails(*values_files: str, set_values=None, set_string=None) -> str:
    """Render expecting failure; returns stderr."""
    proc = run_helm(*template_args(values_files, set_values, set_string))
    assert proc.returncode != 0, "helm template succeeded but was expected to fail"
    return proc.stderr


@pytest.fixture(scope="session")
def default() -> Rendered:
    return render()
