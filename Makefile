# The two commands: `make demo` (set up + run the main job) and `make test` (set up + run every check).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ASSETS ?= $(if $(EDGECV_ASSETS),$(EDGECV_ASSETS),../shared/assets)
PIP := $(BIN)/python -m pip --disable-pip-version-check -q

# Every package of the repository: `make dist` builds each into dist/.
PACKAGES := core plugins/edgecv-onnx plugins/edgecv-ncnn plugins/edgecv-tflite plugins/edgecv-tensorrt plugins/edgecv-hailo plugins/edgecv-torch plugins/edgecv-openvino examples/edgecv-opencv-dnn

.PHONY: demo test install install-dev lint typecheck pytest dist clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# Runtime install: core + ONNX Runtime backend (no torch, no tensorflow).
install: $(BIN)/python
	$(PIP) install ./core ./plugins/edgecv-onnx

# No --model: the default (YOLOX-Nano) ships inside edgecv-core; only the image comes from the assets.
demo: install
	$(BIN)/edgecv backends
	$(BIN)/edgecv predict $(ASSETS)/images/bus.jpg --save runs/demo
	@echo "annotated image: runs/demo/bus.jpg"

# Test install: editable packages, the example third-party backend, dev tools.
install-dev: $(BIN)/python
	# torch for edgecv-torch's tests only: 2.13.0 is the CPU wheel on this machine's disk (~0.9 GB
	# installed, ~25 s); an unpinned torch would pull PyPI's multi-GB CUDA build.
	$(PIP) install torch==2.13.0
	$(PIP) install -e "./core[mqtt]" -e ./plugins/edgecv-onnx -e ./plugins/edgecv-ncnn -e "./plugins/edgecv-tflite[export]" \
		-e "./plugins/edgecv-tensorrt[export]" -e "./plugins/edgecv-hailo[export]" -e "./plugins/edgecv-torch[compress]" \
		-e "./plugins/edgecv-openvino[export]" -e ./examples/edgecv-opencv-dnn \
		-r requirements-dev.txt
	# pnnx (NCNN export) declares torch but its converter executable does not need it.
	$(PIP) install --no-deps pnnx
	# TensorRT's API for mypy (plugins/edgecv-tensorrt/typings is made from it); it declares the
	# tensorrt wheel itself, which the tests do not need (they run on a fake TensorRT).
	$(PIP) install --no-deps tensorrt-stubs==10.13.0.35.1

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install-dev
	$(BIN)/mypy

pytest: install-dev
	EDGECV_ASSETS=$(abspath $(ASSETS)) $(BIN)/pytest

# Wheel + sdist of every package into dist/ (a device installs from it: pip install --find-links dist
# edgecv-core edgecv-onnx), each built in an isolated environment from its own pyproject.toml; then
# twine checks the metadata and that each README renders as an index page would show it.
dist: $(BIN)/python
	$(PIP) install "build>=1.2" "twine>=7"  # as in requirements-dev.txt, without the rest of it
	rm -rf dist
	for package in $(PACKAGES); do $(BIN)/python -m build --sdist --wheel --outdir dist $$package -q || exit 1; done
	$(BIN)/twine check --strict dist/*

test: lint typecheck pytest dist

clean:
	rm -rf $(VENV) runs build dist .mypy_cache .ruff_cache .pytest_cache
