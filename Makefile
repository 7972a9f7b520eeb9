# Fresh machine: `make demo` (set up, compile and verify the built-in example) or `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.einhls-installed
JOBS   ?= 2

.PHONY: setup demo test test-all bench bench-open-flow clean fuzz bench-scheduler

setup: $(STAMP)

$(STAMP): pyproject.toml requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

demo: setup
	$(VENV)/bin/einhls demo -o demo_out

test: setup
	$(PY) -m pytest -n $(JOBS) --dist loadgroup -q -m "not slow" tests

# the slow RTL sweeps as well
test-all: setup
	$(PY) -m pytest -n $(JOBS) --dist loadgroup -q -m "slow or not slow" tests

# benchmarks write markdown tables to bench/results/ (copied into the README)
bench: setup
	$(PY) -m bench.tt_ffn
	$(PY) -m bench.butterfly

# the scheduler's measured tables, from stored data where it exists (calibration: only missing
# points are swept): cost model against Yosys and Verilator, shape choice, packing, rooflines,
# memories, compile time; about an hour on 2 cores, most of it Yosys
bench-scheduler: setup
	$(PY) -m bench.calibrate --cycles
	$(PY) -m bench.unit_roofline
	$(PY) -m bench.span_fold
	$(PY) -m bench.token_pairs
	$(PY) -m bench.int4_packing
	$(PY) -m bench.nm_pairs
	$(PY) -m bench.tokenmean_overlap
	$(PY) -m bench.input_buffer_ram
	$(PY) -m bench.fifo_yosys
	$(PY) -m bench.lutram_yosys
	$(PY) -m bench.encoder_memory --boards kv260 zcu104 --intervals 18432 --max-util 0.8 1.0
	$(PY) -m bench.compile_time
	$(PY) -m bench.lowering_time

# real ECP5 bitstreams of the example models for every ULX3S size (long: up to an hour on 2 cores)
bench-open-flow: setup
	$(PY) -m bench.open_flow

clean:
	rm -rf demo_out build .pytest_cache

# differential fuzzing: N random models through onnxruntime, the reference, C-sim and RTL sim
N       ?= 50
SEED    ?= 1
TARGETS ?= ort,csim,rtlsim
FORMS   ?=
fuzz: setup
	$(PY) -m bench.fuzz --n $(N) --seed $(SEED) --jobs $(JOBS) --targets $(TARGETS) $(if $(FORMS),--forms $(FORMS))
