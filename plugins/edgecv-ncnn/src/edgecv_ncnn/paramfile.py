"""Which files make an NCNN model, and what its text ``.param`` graph declares (no ncnn import).

An NCNN model is a text graph (``.param``: magic line ``7767517``, then ``layer_count blob_count``,
then one line per layer ``Type name n_bottoms n_tops bottoms... tops... k=v...``) plus a weights
file (``.bin``) of the same name. A model folder holds one such pair, preferably ``model.ncnn.param``
+ ``model.ncnn.bin`` (the names pnnx, Ultralytics and edgecv's export use), and optionally
``metadata.yaml``. Blob names are read from the graph instead of assumed (``in0``/``out0``): the
input is the ``Input`` layer's top blob, the outputs are the blobs no layer consumes.

Reading the graph here, before ncnn does, turns a wrong or truncated file into a ``ModelError``
that names the problem; ncnn itself only prints to stderr and returns -1.
"""

from __future__ import annotations

import re
from pathlib import Path

import attrs

from edgecv.backend import ModelError

MAGIC = "7767517"
PREFERRED_PARAM = "model.ncnn.param"
METADATA_FILE = "metadata.yaml"
FOLDER_HINT = (
    "Pass an NCNN model folder (model.ncnn.param + model.ncnn.bin [+ metadata.yaml]) or its .param "
    "file; `edgecv export --model M.onnx --to ncnn -o DIR` writes one."
)
_OUTPUT_NUMBER = re.compile(r"out([0-9]+)")


@attrs.frozen
class ModelFiles:
    """The graph, the weights and (when present) the metadata of one NCNN model."""

    param: Path
    bin: Path
    metadata: Path | None


@attrs.frozen
class ParamGraph:
    """What a ``.param`` file declares about the model's interface."""

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    layer_count: int
    blob_count: int


def looks_like_model(path: Path) -> bool:
    """Cheap test for ``backend='auto'``: a ``.param``, a ``.bin`` beside its ``.param``, or a folder."""
    try:
        if path.is_dir():
            return any(p.suffix == ".param" and p.is_file() for p in path.iterdir())
    except OSError:
        return False
    suffix = path.suffix.lower()
    if suffix == ".param":
        return True
    return suffix == ".bin" and path.with_suffix(".param").is_file()


def resolve(path: Path) -> ModelFiles:
    """The ``.param``/``.bin`` pair (and ``metadata.yaml``) for a folder or either file of the pair."""
    if path.is_dir():
        param = _param_in_folder(path)
    elif path.suffix.lower() == ".param":
        param = path
    elif path.suffix.lower() == ".bin":
        param = path.with_suffix(".param")
        if not param.is_file():
            raise ModelError(
                f"{path.name} has no graph file {param.name} next to it",
                "An NCNN model is a .param (graph) + .bin (weights) pair with the same name: "
                "put both in one folder and pass the folder or the .param.",
            )
    else:
        raise ModelError(f"{path.name} is not an NCNN model", FOLDER_HINT)
    if not param.is_file():
        raise ModelError(f"NCNN graph file {param} does not exist", FOLDER_HINT)
    weights = param.with_suffix(".bin")
    if not weights.is_file():
        raise ModelError(
            f"{param.name} has no weights file {weights.name} next to it",
            "Copy the .bin that was exported together with this .param into the same folder "
            "(same name, .bin suffix), or export the model again.",
        )
    metadata = param.parent / METADATA_FILE
    return ModelFiles(param, weights, metadata if metadata.is_file() else None)


def _param_in_folder(folder: Path) -> Path:
    preferred = folder / PREFERRED_PARAM
    if preferred.is_file():
        return preferred
    params = sorted(p for p in folder.glob("*.param") if p.is_file())
    if len(params) == 1:
        return params[0]
    if not params:
        raise ModelError(f"{folder} holds no NCNN .param file", FOLDER_HINT)
    names = ", ".join(p.name for p in params[:5])
    raise ModelError(
        f"{folder} holds several NCNN graphs ({names})", "Pass the .param file of the model you mean."
    )


def read_graph(path: Path) -> ParamGraph:
    """Parse a text ``.param``: inputs, outputs and the header counts, checking its structure."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"Cannot read {path}: {exc.strerror}", "Check the file's permissions.") from exc
    if data[:4] == int(MAGIC).to_bytes(4, "little"):
        raise ModelError(
            f"{path.name} is a binary NCNN param (.param.bin); edgecv reads the text .param",
            "Convert or export the model again to get the text .param (pnnx and ncnn tools write it).",
        )
    text = data.decode("utf-8", errors="replace")
    lines = [line.split() for line in text.splitlines()]
    lines = [tokens for tokens in lines if tokens]
    if not lines or lines[0] != [MAGIC]:
        found = " ".join(lines[0])[:40] if lines else "(empty file)"
        raise ModelError(
            f"{path.name} is not an NCNN param file: its first line must be the magic number {MAGIC}, "
            f"found {found!r}",
            FOLDER_HINT,
        )
    return _parse_layers(path, lines)


def _parse_layers(path: Path, lines: list[list[str]]) -> ParamGraph:
    def broken(detail: str) -> ModelError:
        return ModelError(
            f"{path.name} is not a valid NCNN param file ({detail})",
            "It is truncated or was edited: export the model again.",
        )

    if len(lines) < 2 or len(lines[1]) != 2 or not all(t.isdigit() for t in lines[1]):
        raise broken("line 2 must be 'layer_count blob_count'")
    layer_count, blob_count = int(lines[1][0]), int(lines[1][1])
    layers = lines[2:]
    if len(layers) != layer_count:
        raise broken(f"the header declares {layer_count} layers, the file has {len(layers)}")
    inputs: list[str] = []
    produced: list[str] = []
    consumed: set[str] = set()
    for number, tokens in enumerate(layers, start=3):
        if len(tokens) < 4 or not tokens[2].isdigit() or not tokens[3].isdigit():
            raise broken(f"line {number} is not 'Type name bottoms tops ...'")
        bottoms, tops = int(tokens[2]), int(tokens[3])
        if len(tokens) < 4 + bottoms + tops:
            raise broken(f"line {number} lists fewer blobs than it declares")
        consumed.update(tokens[4 : 4 + bottoms])
        layer_tops = tokens[4 + bottoms : 4 + bottoms + tops]
        produced.extend(layer_tops)
        if tokens[0] == "Input":
            inputs.extend(layer_tops)
    if not inputs:
        raise broken("it has no Input layer")
    outputs = [blob for blob in dict.fromkeys(produced) if blob not in consumed]
    if not outputs:
        raise broken("every blob is consumed by another layer, so there is no output")
    numbers = [_OUTPUT_NUMBER.fullmatch(name) for name in outputs]
    if all(numbers):
        # pnnx names outputs out0, out1, ... in the source graph's output order; keep that order.
        outputs.sort(key=lambda name: int(name[3:]))
    return ParamGraph(tuple(inputs), tuple(outputs), layer_count, blob_count)
