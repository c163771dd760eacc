# Shared by the quickstart scripts: pick a Python >= 3.10 and make a virtual environment.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
VENV="${EDGEMED_VENV:-$ROOT/.venv}"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

check_python() {
    command -v "$PYTHON" >/dev/null || { echo "need Python 3.10+ as \$PYTHON (or python3)"; exit 1; }
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
        || { echo "edgemed needs Python >= 3.10; found $("$PYTHON" --version)"; exit 1; }
    command -v c++ >/dev/null || command -v g++ >/dev/null \
        || { echo "a C++17 compiler is needed to build edgemed._kernels (apt-get install g++)"; exit 1; }
}

make_venv() {  # make_venv DIR
    if [ ! -x "$1/bin/python" ]; then
        say "creating virtual environment $1"
        "$PYTHON" -m venv "$1" || { echo "python venv missing: apt-get install python3-venv"; exit 1; }
    fi
    "$1/bin/python" -m pip install --quiet --upgrade pip
}
