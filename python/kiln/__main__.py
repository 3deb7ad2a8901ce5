"""`python -m kiln ...` (and the `kiln` console script): runs the kiln CLI shipped inside the package,
e.g. `python -m kiln build model.onnx -o model.plan`. See `python -m kiln --help`."""
import os
import subprocess
import sys
from typing import List, Optional


def _cli_env() -> dict:
    env = dict(os.environ)
    here = os.path.dirname(os.path.abspath(__file__))
    env.setdefault("KILN_PYTHON", sys.executable)  # `kiln compare` runs onnxruntime with this interpreter
    if os.path.exists(os.path.join(here, "tools", "ort_reference.py")):
        env.setdefault("KILN_SOURCE_DIR", here)
    return env


def main(argv: Optional[List[str]] = None) -> int:
    from . import cli_path

    exe = cli_path()
    args = list(sys.argv[1:] if argv is None else argv)
    if not os.path.exists(exe):
        sys.stderr.write(f"kiln: the CLI executable is missing from the package ({exe}); reinstall kiln\n")
        return 1
    if argv is None and os.name == "posix":
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(exe, [exe] + args, _cli_env())  # replaces this process: exit codes and signals pass through
    return subprocess.call([exe] + args, env=_cli_env())


if __name__ == "__main__":
    sys.exit(main())
