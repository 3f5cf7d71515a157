#!/usr/bin/env bash
# Sets up .venv and runs the test suite. Extra arguments go to pytest.
#
#   bash scripts/test.sh
#   bash scripts/test.sh -k rle -x
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh "${GEAR_EDGE_TEST_EXTRAS:-dev,ros}"
# The compiled extension must be the one under test (never the silent numpy fallback).
set +e
GEAR_EDGE_REQUIRE_CPP=1 .venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests (exit 5): the test selection is broken" >&2
fi
exit "$rc"
