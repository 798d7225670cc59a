"""Fixtures shared by edgecv-torch's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from edgecv.testing.reference import reference_model
from edgecv_torch.yolov8 import YOLOv8


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread: on a busy 2-core machine torch's default pool oversubscribes the cores
    (tens of times slower), and one thread makes training runs repeatable bit for bit."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def yolov8() -> YOLOv8:
    """The shipped yolov8n rebuilt as an ``nn.Module`` from its ONNX weights."""
    return YOLOv8.from_onnx(reference_model())
