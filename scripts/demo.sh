#!/usr/bin/env bash
# The main command: the all-in-one demo on the embedded defaults (no servers needed).
source "$(dirname "$0")/_venv.sh"
exec imsdk demo "$@"
