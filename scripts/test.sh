#!/usr/bin/env bash
# The test command: lint, type-check, build the docs with warnings as errors, then run the test suite.
# Extra arguments go to pytest (e.g. scripts/test.sh -k codec -x).
source "$(dirname "$0")/_venv.sh"
echo "== ruff"; ruff check . && ruff format --check .
echo "== mypy"; mypy
echo "== generated code is fresh"; python scripts/gen_proto.py --check
echo "== sphinx"; python -m sphinx -W --keep-going -q -b html docs docs/_build/html
echo "== pytest"; python -m pytest "$@"
