"""``python -m edgecv_ncnn install-pnnx`` (pnnx without torch) and ``python -m edgecv_ncnn tools``."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgecv_ncnn", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    install = commands.add_parser(
        "install-pnnx", help="pip install --no-deps pnnx: its executable converts ONNX without torch"
    )
    install.add_argument("version", nargs="?", default=None, help="pnnx version, e.g. 20261020")
    commands.add_parser("tools", help="show which converter executables export would use")
    args = parser.parse_args(argv)

    from edgecv_ncnn import tools

    if args.command == "install-pnnx":
        requirement = f"pnnx=={args.version}" if args.version else "pnnx"
        # --no-deps: the pnnx distribution requires torch, which only its Python tracing API uses.
        command = [sys.executable, "-m", "pip", "install", "--no-deps", requirement]
        print("+", " ".join(command), flush=True)
        return subprocess.call(command)
    pnnx = tools.find_pnnx()
    found_pnnx = f"{pnnx} ({tools.pnnx_version(pnnx)})" if pnnx else f"not found. {tools.PNNX_INSTALL}"
    print(f"pnnx        {found_pnnx}")
    for name in tools.INT8_TOOLS:
        found = tools.find_tool(name)
        print(f"{name:<11} {found if found else 'not found (needed for --precision int8 only)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
