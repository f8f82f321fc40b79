#!/usr/bin/env bash
# Every test a document names as a guardrail's proof must exist: a renamed or
# deleted test would otherwise leave a durability claim without its test.
# A parameterised test is cited without its instantiation and parameter
# (PowerLossTest.EveryAcknowledgedWriteSurvivesAPowerCut for
# Seeds/PowerLossTest.EveryAcknowledgedWriteSurvivesAPowerCut/7).
# Usage: check-doc-test-names.sh REPO_DIR TEST_BINARY...
set -euo pipefail
repo="$1"
names="$(mktemp)"
trap 'rm -f "$names"' EXIT
shift
for binary in "$@"; do
  CAIRN_BINARY=unused "$binary" --gtest_list_tests |
    awk '/^[A-Za-z]/ { suite = $1; sub(/^.*\//, "", suite) }
         /^  / { name = $1; sub(/\/.*$/, "", name); print suite name }'
done > "$names"
missing=0
while read -r name; do
  if ! grep -qxF "$name" "$names"; then
    echo "docs name a test that does not exist: $name" >&2
    missing=1
  fi
done < <(grep -ho '`[A-Za-z0-9]*Test\.[A-Za-z0-9]*`' "$repo"/docs/*.md "$repo"/README.md | tr -d '`' | sort -u)
exit "$missing"
