# Sourced by the .ci/ checks that need a running sandbox (gateway + Entra and Graph emulators).
# start_sandbox WORKDIR [env assignments…]: starts `photo-gateway sandbox` on free ports with its
# state in WORKDIR, waits for its ready file (WORKDIR/ready.json) and stops it on exit.
# ready KEY prints a top-level string of the ready file.

start_sandbox() {
  local work=$1
  shift
  cargo build --locked --quiet
  env "$@" target/debug/photo-gateway sandbox --gateway-port 0 --state-dir "$work/state" \
    --ready-file "$work/ready.json" >"$work/sandbox.log" 2>&1 &
  SANDBOX_PID=$!
  SANDBOX_WORK=$work
  trap 'kill $SANDBOX_PID 2>/dev/null || true; wait $SANDBOX_PID 2>/dev/null || true; rm -rf "$SANDBOX_WORK"' EXIT
  for _ in $(seq 1 300); do
    [ -f "$work/ready.json" ] && return 0
    kill -0 "$SANDBOX_PID" 2>/dev/null || { cat "$work/sandbox.log"; return 1; }
    sleep 0.1
  done
  echo "sandbox never became ready"
  cat "$work/sandbox.log"
  return 1
}

ready() {
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$SANDBOX_WORK/ready.json" "$1"
}

# The pinned Node tools of .ci/node (redocly, msal-node, puppeteer-core), installed once.
node_tools() {
  if ! command -v npm >/dev/null 2>&1; then
    echo "npm is missing: the machine's Node.js (20) and npm are needed" >&2
    return 1
  fi
  if [ ! -f .ci/node/node_modules/.installed ] || [ .ci/node/package-lock.json -nt .ci/node/node_modules/.installed ]; then
    (cd .ci/node && npm ci --no-audit --no-fund --loglevel=error) && touch .ci/node/node_modules/.installed
  fi
}
