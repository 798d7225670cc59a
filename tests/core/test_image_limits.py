"""Large images: sizes read from the header before decoding, big JPEGs decoded reduced, a limit for the rest.

Huge images are made cheaply: a 16x16 JPEG or PNG whose header is patched to claim a large size
(libjpeg decodes the missing data as grey). Runs that would decode one in full (2.4 GB for
20000x20000) are subprocesses, measured with their VmHWM (peak resident memory).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

import edgecv
from edgecv import images
from edgecv.errors import ImageError
from edgecv.images import read_image, read_image_reduced
from edgecv.testing.cli import assert_one_line_error, run_edgecv

# Runs the CLI in-process and prints its peak resident memory (KiB) last on stderr. VmHWM, not
# getrusage's ru_maxrss: Linux carries ru_maxrss across exec, so a child of a big pytest process
# would report pytest's own size (505 MiB seen in CI for a 280 MiB run).
CLI_WITH_PEAK_MEMORY = """
import atexit, re, sys
def peak():
    with open("/proc/self/status") as status:
        return int(re.search(r"VmHWM:\\s+(\\d+) kB", status.read()).group(1))
atexit.register(lambda: print("maxrss_kib", peak(), file=sys.stderr))
from edgecv.cli import main
main()
"""


def jpeg_claiming(width: int, height: int, *, progressive: bool = False) -> bytes:
    params = [cv2.IMWRITE_JPEG_PROGRESSIVE, 1] if progressive else []
    data = bytearray(cv2.imencode(".jpg", np.full((16, 16, 3), 90, np.uint8), params)[1].tobytes())
    at = 2
    while data[at + 1] not in (0xC0, 0xC2):  # walk the segments to the start of frame
        at += 2 + struct.unpack(">H", data[at + 2 : at + 4])[0]
    data[at + 5 : at + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def png_claiming(width: int, height: int) -> bytes:
    data = bytearray(cv2.imencode(".png", np.zeros((16, 16, 3), np.uint8))[1].tobytes())
    data[16:24] = struct.pack(">II", width, height)  # IHDR (its CRC is not checked before decoding)
    return bytes(data)


def test_huge_jpeg_is_decoded_reduced_in_bounded_memory(tmp_path: Path, models: Path) -> None:
    big = tmp_path / "big.jpg"
    big.write_bytes(jpeg_claiming(20000, 20000))
    model = models / "yolov8n_fp32_dequant.onnx"
    result = run_edgecv("predict", big, "--model", model, "--json", code=CLI_WITH_PEAK_MEMORY)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert (record["width"], record["height"]) == (20000, 20000)  # boxes are in the file's pixels
    peak_mib = int(result.stderr.split()[-1]) / 1024
    assert peak_mib < 500, f"peak RSS {peak_mib:.0f} MiB (in full the image alone takes 1144 MiB)"


@pytest.mark.parametrize(
    ("name", "data", "kind"),
    [
        ("claims.jpg", jpeg_claiming(60000, 60000, progressive=True), "progressive JPEG"),
        ("claims.png", png_claiming(60000, 60000), "PNG"),
    ],
)
def test_header_over_the_limit_is_one_clear_error(
    tmp_path: Path, models: Path, name: str, data: bytes, kind: str
) -> None:
    image = tmp_path / name
    image.write_bytes(data)
    result = run_edgecv("predict", image, "--model", models / "yolov8n_fp32_dequant.onnx")
    assert_one_line_error(
        result,
        f"Image {image} is 60000x60000 pixels (3600 MP)",
        f"more than the 100 MP edgecv decodes from a {kind}",
    )


def test_read_image_in_full_refuses_what_it_would_decode_over_the_limit(tmp_path: Path) -> None:
    big = tmp_path / "big.jpg"
    big.write_bytes(jpeg_claiming(12000, 12000))
    with pytest.raises(ImageError, match=r"is 12000x12000 pixels \(144 MP\), more than the 100 MP"):
        read_image(big)


def test_reduced_keeps_the_longer_side_at_least_keep_side(tmp_path: Path) -> None:
    big = tmp_path / "big.jpg"
    big.write_bytes(jpeg_claiming(12000, 9000))
    read = read_image_reduced(big)  # 1/2: 6000 px; 1/4 would leave 3000 < 4096
    assert read.image.shape == (4500, 6000, 3) and read.source_shape == (9000, 12000) and read.reduced


def test_restore_maps_boxes_to_the_files_pixels(
    bus_path: Path, models: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = edgecv.load(models / "yolov8n_fp32_dequant.onnx")
    full = model(read_image(bus_path))
    monkeypatch.setattr(images, "KEEP_SIDE", 512)  # bus.jpg (810x1080) is then decoded at 1/2
    read = read_image_reduced(bus_path)
    assert read.image.shape == (540, 405, 3)
    restored = read.restore(model(read.image))
    assert restored.image_shape == (1080, 810)
    assert restored.labels == full.labels
    np.testing.assert_allclose(restored.boxes, full.boxes, atol=12)  # pixels, at 1/2 resolution


@pytest.mark.parametrize(
    ("suffix", "params", "channels", "kind"),
    [
        (".jpg", [], 3, "JPEG"),
        (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1], 3, "progressive JPEG"),
        (".png", [], 3, "PNG"),
        (".bmp", [], 3, "BMP"),
        (".webp", [cv2.IMWRITE_WEBP_QUALITY, 80], 3, "WebP"),  # VP8
        (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101], 3, "WebP"),  # VP8L
        (".webp", [cv2.IMWRITE_WEBP_QUALITY, 80], 4, "WebP"),  # VP8X (alpha)
        (".tif", [], 3, "TIFF"),
        (".ppm", [], 3, "image"),  # no header parser: checked once decoded
    ],
)
def test_header_sizes_of_every_format(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str, params: list[int], channels: int, kind: str
) -> None:
    file = tmp_path / f"small{suffix}"
    file.write_bytes(cv2.imencode(suffix, np.zeros((30, 40, channels), np.uint8), params)[1].tobytes())
    assert read_image(file).shape == (30, 40, 3)
    monkeypatch.setattr(images, "MAX_PIXELS", 1000)
    with pytest.raises(ImageError, match=rf"is 40x30 pixels .* decodes from a {kind}\. "):
        read_image(file)


def test_a_device_is_refused_unread() -> None:
    with pytest.raises(ImageError, match="is not a regular file"):
        read_image("/dev/zero")
