"""Load a script of benchmarks/gpu/ as a module, so CPU tests can check its arithmetic (the scripts are not a
package: they run on the GPU machine as `python3 benchmarks/gpu/NAME.py`)."""

import importlib.util
from pathlib import Path
from types import ModuleType

GPU_SCRIPTS = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu"


def load_gpu_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, GPU_SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
