# One command sets up, one runs the demo, one runs the tests (see README).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test bench clean

install: $(BIN)/medcolor

$(BIN)/medcolor: pyproject.toml
	@echo "medcolor: creating $(VENV) and installing torch (a 5.5 GB CUDA build that also runs on CPU), about 1.5 min here"
	$(PY) -m venv $(VENV)
	# torch/torchvision come from this machine's local builds; a plain `pip install torch` downloads GBs.
	$(BIN)/pip install --progress-bar on torch==2.14.1 torchvision==0.29.1
	@echo "medcolor: installing medcolor and its dev extras (fastai, timm, onnxruntime, pydicom, ...)"
	$(BIN)/pip install --progress-bar on -e '.[dev]'
	@touch $@

demo: install
	$(BIN)/medcolor run sweep demo --runs-dir runs
	$(BIN)/medcolor report runs/demo runs/demo-mode2 --plot ""

test: install
	$(BIN)/python -m pytest --durations=5

bench: install
	$(BIN)/python benchmarks/bench.py

clean:
	rm -rf $(VENV) build *.egg-info app/*.egg-info
