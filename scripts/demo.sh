#!/usr/bin/env bash
# Quickstart 1: install edgemed into ./.venv and run the end-to-end demo
# (embedded loopback broker + fleet server + one bedside device). Needs nothing from apt.
source "$(dirname "$0")/_common.sh"
check_python
make_venv "$VENV"
say "installing edgemed[demo] (builds the C++ kernels)"
"$VENV/bin/python" -m pip install --quiet "$ROOT[demo]"
say "edgemed demo"
cd "$ROOT/.."  # run from outside the checkout: the installed package must be self-contained
exec "$VENV/bin/edgemed" demo "$@"
