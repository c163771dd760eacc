"""Build the private native extension ``edgemed._kernels`` and bundle ``models/`` into the package.

Everything else lives in pyproject.toml. No ``-march=native``: wheels must run on any x86_64 and on
aarch64 (Jetson), so the kernels rely on the compiler's portable auto-vectorisation only.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension, build_ext
from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).parent.resolve()


class build_py_with_models(build_py):
    """Copy the bundled model folders (not the recipes) into ``edgemed/models`` of the build."""

    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "edgemed" / "models"
        shutil.rmtree(target, ignore_errors=True)  # no stale files from an earlier build
        for model_dir in sorted((ROOT / "models").iterdir()):
            if not (model_dir / "manifest.json").is_file():
                continue  # recipes/ and anything that is not a model
            # Exactly the manifest and the artifacts it lists (whatever their names): the
            # installed model then passes the same sha256 check as the source tree.
            manifest = json.loads((model_dir / "manifest.json").read_text(encoding="utf-8"))
            files = ["manifest.json", *(a["path"] for a in manifest["artifacts"].values())]
            for name in files:
                dst = target / model_dir.name / name
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(model_dir / name, dst)


ext_modules = [
    Pybind11Extension(
        "edgemed._kernels",
        sorted(
            str(p.relative_to(ROOT))
            for p in (ROOT / "csrc").glob("*/*.cpp")
            if p.parent.name in {"src", "bindings"}
        ),
        include_dirs=["csrc/include"],
        cxx_std=17,
        # Same floating-point results on x86_64 and aarch64 (GCC fuses a*b+c into FMA on ARM).
        extra_compile_args=["-O3", "-ffp-contract=off"],
    )
]

# Compile the kernel sources in parallel (all cores; EDGEMED_BUILD_JOBS=N to choose).
ParallelCompile("EDGEMED_BUILD_JOBS").install()

setup(ext_modules=ext_modules, cmdclass={"build_ext": build_ext, "build_py": build_py_with_models})
