#!/usr/bin/env bash
# A real MSAL client (msal-node, pinned in .ci/node) against the sandbox's Entra emulator: On-Behalf-Of
# for three users, three times each, must cost exactly 3 token requests (see .ci/node/msal-obo.mjs).
set -euo pipefail
cd "$(dirname "$0")/.."
. .ci/sandbox-lib.sh
start=$(date +%s)
node_tools
work=$(mktemp -d)
start_sandbox "$work"
NODE_EXTRA_CA_CERTS=$(ready ca_file) node .ci/node/msal-obo.mjs "$work/ready.json"
echo "msal check: $(( $(date +%s) - start )) s"
