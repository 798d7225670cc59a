"""``runtime.RealCuda`` on the real cuda-python (``cuda.bindings``): the memory, stream and copy calls
the engine runner makes per frame.

Without an NVIDIA driver (CI) the calls must fail as one-line ``BackendError``s naming the CUDA
error; on a machine with a GPU they must move the bytes. Each test runs where its case applies.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from edgecv.backend import BackendError
from edgecv_tensorrt import runtime

pytest.importorskip(
    "cuda.bindings.runtime", reason="cuda-python (cuda-bindings) is a dependency of the plugin"
)


@pytest.fixture
def no_gpu() -> str:
    problem = runtime.cuda_problem()
    if problem is None:
        pytest.skip("an NVIDIA GPU is usable here")
    return problem


@pytest.fixture
def gpu() -> runtime.RealCuda:
    problem = runtime.cuda_problem()
    if problem is not None:
        pytest.skip(f"no usable NVIDIA GPU here: {problem}")
    return runtime.RealCuda()


def test_without_a_driver_every_call_is_one_backend_error_line(no_gpu: str) -> None:
    assert re.search(r"\(cudaError\w+: .+\)$", no_gpu), no_gpu
    with pytest.raises(BackendError) as caught:
        runtime.load_cuda()
    assert str(caught.value).startswith(no_gpu) and runtime.GPU_HINT in str(caught.value)
    cuda = runtime.RealCuda()
    for call in (lambda: cuda.device_alloc(1024), lambda: cuda.host_alloc(1024), cuda.stream_create):
        with pytest.raises(BackendError, match=r"^CUDA cuda\w+ failed: cudaError\w+: ") as failed:
            call()
        assert "\n" not in str(failed.value)


def test_pinned_buffers_and_async_copies_on_one_stream(gpu: runtime.RealCuda) -> None:
    assert gpu.device_name()
    assert re.fullmatch(r"\d+\.\d+", gpu.compute_capability())
    size = 3 * 640 * 640 * 4  # one 640x640 float32 frame
    device = gpu.device_alloc(size)
    host_in, staged = gpu.host_alloc(size)
    host_out, received = gpu.host_alloc(size)
    stream = gpu.stream_create()
    try:
        frame = np.random.default_rng(0).random(size // 4, dtype=np.float32)
        staged.view(np.float32)[:] = frame
        for _ in range(3):  # the same buffers every frame
            received[:] = 0
            gpu.copy_to_device(device, host_in, size, stream)
            gpu.copy_to_host(host_out, device, size, stream)
            gpu.synchronize(stream)
            np.testing.assert_array_equal(received.view(np.float32), frame)
    finally:
        gpu.stream_destroy(stream)
        gpu.host_free(host_out)
        gpu.host_free(host_in)
        gpu.device_free(device)
    runtime_version, driver_version = gpu.versions()
    assert runtime_version >= 12000 and driver_version >= 12000
