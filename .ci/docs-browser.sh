#!/usr/bin/env bash
# /docs in a real headless browser: Debian's chromium (installed here when missing) driven by
# puppeteer-core (pinned in .ci/node) against the sandbox; see .ci/node/docs-browser.mjs.
set -euo pipefail
cd "$(dirname "$0")/.."
. .ci/sandbox-lib.sh
start=$(date +%s)
if ! command -v chromium >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
node_tools
work=$(mktemp -d)
start_sandbox "$work"
shot=${DOCS_SCREENSHOT:-target/docs-browser-failure.png}
NODE_EXTRA_CA_CERTS=$(ready ca_file) node .ci/node/docs-browser.mjs "$work/ready.json" "$shot" \
  || { echo "screenshot of the page: $shot"; exit 1; }
echo "docs browser check: $(( $(date +%s) - start )) s"
