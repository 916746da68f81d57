#!/usr/bin/env bash
# Start the local services, run the whole suite, stop the services; exit non-zero on any failure.
# A service that fails to start fails the run: no test is skipped for a missing server.
set -uo pipefail
BIN=${1:-.venv/bin}
# 1 s scrapes and rule evaluation: the alert matrix runs compressed fault timelines in real time
export HPCMIND_PROMETHEUS__SCRAPE_INTERVAL=${HPCMIND_PROMETHEUS__SCRAPE_INTERVAL:-1s}
"$BIN/hpcmind" services up || { echo "run-tests: services failed to start" >&2; "$BIN/hpcmind" services down; exit 1; }
trap '"$BIN/hpcmind" services down >/dev/null' EXIT
"$BIN/python" -m pytest -q --durations=15 tests
rc=$?
[ "$rc" = 5 ] && { echo "run-tests: no tests collected" >&2; exit 1; }
exit "$rc"
