#!/usr/bin/env bash
# Load a generated held-out set into a throw-away workspace and print `linkage status --json`.
#   benchmarks/heldout/check_load.sh OUT_DIR [WORKSPACE_DIR]
set -euo pipefail
OUT=${1:?usage: check_load.sh OUT_DIR [WORKSPACE_DIR]}
WS=${2:-$(mktemp -d /tmp/heldout-ws.XXXXXX)}
L=${LINKAGE:-$(dirname "$0")/../../.venv/bin/linkage}
C="$OUT/configs"
"$L" --workspace "$WS" --config-dir "$C" init
"$L" --workspace "$WS" --config-dir "$C" ingest --source immigration "$OUT"/data/immigration_entries_*.csv
"$L" --workspace "$WS" --config-dir "$C" ingest --source health "$OUT"/data/health_*.csv
"$L" --workspace "$WS" --config-dir "$C" ingest --source police "$OUT"/data/police_registrations_*.csv
"$L" --workspace "$WS" --config-dir "$C" ingest --source commerce "$OUT"/data/commerce_foreign_employees.xlsx
"$L" --workspace "$WS" --config-dir "$C" status --json
echo
echo "workspace: $WS"
