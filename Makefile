# The two commands: `make demo` (set up + run the main job) and `make test` (set up + run every check).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ASSETS ?= $(if $(EDGECV_ASSETS),$(EDGECV_ASSETS),../shared/assets)
PIP := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: demo test install install-dev lint typecheck pytest clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# Runtime install: core + ONNX Runtime backend (no torch, no tensorflow).
install: $(BIN)/python
	$(PIP) install ./core ./plugins/edgecv-onnx

demo: install
	$(BIN)/edgecv backends
	$(BIN)/edgecv predict $(ASSETS)/images/bus.jpg --model yolov8n --save runs/demo
	@echo "annotated image: runs/demo/bus.jpg"

# Test install: editable packages, the example third-party backend, dev tools.
install-dev: $(BIN)/python
	$(PIP) install -e "./core[mqtt]" -e ./plugins/edgecv-onnx -e ./plugins/edgecv-ncnn -e "./plugins/edgecv-tflite[export]" \
		-e ./examples/edgecv-opencv-dnn \
		-r requirements-dev.txt
	# pnnx (NCNN export) declares torch but its converter executable does not need it.
	$(PIP) install --no-deps pnnx

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install-dev
	$(BIN)/mypy

pytest: install-dev
	EDGECV_ASSETS=$(abspath $(ASSETS)) $(BIN)/pytest

test: lint typecheck pytest

clean:
	rm -rf $(VENV) runs build dist .mypy_cache .ruff_cache .pytest_cache
