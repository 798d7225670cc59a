"""Which files make an OpenVINO model (no openvino import: ``backend="auto"`` asks this for every file).

OpenVINO reads its own IR, a graph ``NAME.xml`` plus weights ``NAME.bin``, and ONNX files directly.
An IR model folder holds one such pair, and optionally the ``metadata.yaml`` that Ultralytics' and
edgecv's exports write beside it (class names, input size). The .onnx file is read as it is.
"""

from __future__ import annotations

from pathlib import Path

import attrs

from edgecv.backend import ModelError

METADATA_FILE = "metadata.yaml"
FOLDER_HINT = (
    "Pass an OpenVINO IR folder (NAME.xml + NAME.bin [+ metadata.yaml]), its .xml file or an .onnx file; "
    "`edgecv export --model M.onnx --to openvino -o DIR` writes an IR folder."
)


@attrs.frozen
class ModelFiles:
    """The graph (``.xml`` or ``.onnx``), the IR weights and the ``metadata.yaml`` found beside them."""

    graph: Path
    weights: Path | None
    """The ``.bin`` of an IR; ``None`` for an ONNX file."""
    metadata: Path | None

    @property
    def is_ir(self) -> bool:
        return self.weights is not None


def looks_like_model(path: Path) -> bool:
    """Cheap test for ``backend="auto"``: an .onnx, an .xml or .bin of an IR pair, or an IR folder."""
    try:
        if path.is_dir():
            return any(_is_ir_graph(p) for p in path.iterdir())
    except OSError:
        return False
    suffix = path.suffix.lower()
    if suffix in (".onnx", ".xml"):
        return True
    return suffix == ".bin" and path.with_suffix(".xml").is_file()


def _is_ir_graph(path: Path) -> bool:
    return path.suffix.lower() == ".xml" and path.is_file() and path.with_suffix(".bin").is_file()


def resolve(path: Path) -> ModelFiles:
    """The files of the model at ``path``: a folder, an .xml, a .bin or an .onnx file."""
    if path.is_dir():
        graphs = sorted(p for p in path.iterdir() if _is_ir_graph(p))
        if len(graphs) != 1:
            found = ", ".join(p.name for p in graphs)
            raise ModelError(
                f"{path} holds {'no' if not graphs else len(graphs)} OpenVINO IR models"
                + (f" ({found})" if graphs else " (NAME.xml with NAME.bin beside it)"),
                FOLDER_HINT if not graphs else "Pass the .xml file of the one to load.",
            )
        graph = graphs[0]
    elif not path.is_file():
        raise ModelError(f"{path} does not exist", FOLDER_HINT)
    else:
        suffix = path.suffix.lower()
        if suffix == ".onnx":
            return ModelFiles(path, None, None)
        if suffix not in (".xml", ".bin"):
            raise ModelError(f"{path.name} is not an OpenVINO IR or ONNX model", FOLDER_HINT)
        graph = path.with_suffix(".xml")
    weights = graph.with_suffix(".bin")
    for needed, role in ((graph, "graph"), (weights, "weights")):
        if not needed.is_file():
            raise ModelError(
                f"The OpenVINO IR {graph.stem} has no {role} file {needed.name}",
                "An IR is a NAME.xml (graph) + NAME.bin (weights) pair: keep both in one folder "
                "and pass the folder or the .xml.",
            )
    metadata = graph.parent / METADATA_FILE
    return ModelFiles(graph, weights, metadata if metadata.is_file() else None)
