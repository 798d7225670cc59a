"""``edgecv compress``: pruning, distillation, PT2E quantization and their report, from edgecv-torch.

The subcommands live in ``edgecv_torch.commands`` (the only edgecv package that depends on
torch); this group imports it only when a subcommand is named or listed, so ``edgecv --help``
stays fast and works without it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import click

PLUGIN = "edgecv-torch"
COMMANDS_MODULE = "edgecv_torch.commands"


def _commands_module() -> ModuleType | None:
    """``edgecv_torch.commands``, or None when edgecv-torch is not installed."""
    try:
        return importlib.import_module(COMMANDS_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name not in ("edgecv_torch", COMMANDS_MODULE):
            raise  # edgecv-torch is there but broken: show what is missing
        return None


def _missing() -> Exception:
    from edgecv.errors import ConfigError
    from edgecv.install_hints import pip_hint

    return ConfigError(
        f"edgecv compress needs the {PLUGIN} package, which is not installed",
        f"Install it: {pip_hint(f'{PLUGIN}[compress]')}",
    )


class CompressGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        module = _commands_module()
        return [] if module is None else list(module.COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = _commands_module()
        if module is None:
            raise _missing()
        command: click.Command | None = module.COMMANDS.get(cmd_name)
        return command


@click.group("compress", cls=CompressGroup)
def compress_command() -> None:
    """Compress a detector and measure what it buys (needs edgecv-torch).

    prune: remove channels (L2 norm, dependency-aware); distill: recover accuracy from the
    original model on unlabelled images; ptq: INT8 for torch deployments (torchao PT2E); export:
    checkpoint to ONNX for every other backend; report: size, speed and held-out mAP of each;
    from-ultralytics: an Ultralytics YOLOv8 .pt you trust as an edgecv-torch checkpoint.
    """
