#!/usr/bin/env bash
# The test command: lint, type-check, build the docs with warnings as errors, then run the test suite.
# Extra arguments go to pytest (e.g. scripts/test.sh -k codec -x).
source "$(dirname "$0")/_venv.sh"
if ! command -v dot >/dev/null; then  # the docs draw their diagrams with Graphviz
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends graphviz) >/dev/null
  else
    echo "error: the docs need Graphviz's 'dot' (Debian: apt-get install graphviz)" >&2; exit 2
  fi
fi
echo "== ruff"; ruff check . && ruff format --check .
echo "== mypy"; mypy
echo "== generated code is fresh"; python scripts/gen_proto.py --check
echo "== sphinx"; python -m sphinx -W --keep-going -q -b html docs docs/_build/html
echo "== pytest"; python -m pytest "$@"
