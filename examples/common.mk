# Shared by the recipes in examples/: each recipe's Makefile sets ROOT and OUT,
# then includes this file.

.DEFAULT_GOAL := all

# The repository's virtual environment when there is one (make demo creates it), else PATH.
PFX ?= $(firstword $(wildcard $(ROOT)/.venv/bin/pfx) pfx)
PY ?= $(firstword $(wildcard $(ROOT)/.venv/bin/python) python3)

# Model settings every recipe passes to its model commands.
MAX_LENGTH ?= 1024
DEVICE ?= auto
DTYPE ?= auto
MODEL_FLAGS = --device $(DEVICE) --dtype $(DTYPE) --max-length $(MAX_LENGTH)

# --summary and --rejects of step $(1): the file names demo/report.py reads.
books = --summary $(OUT)/$(1).summary.json
skip = --on-error skip --rejects $(OUT)/$(1).rejects.jsonl $(call books,$(1))

# anthropics/hh-rlhf, harmless-base test split: 2,312 pairs, MIT license, pinned to a commit.
HH_RLHF_URL = https://raw.githubusercontent.com/anthropics/hh-rlhf/354e5c3cb8960630860dd5774a6ac2a58313bf4d/harmless-base/test.jsonl.gz
HH_RLHF_FILE = $(OUT)/data/harmless-base-test.jsonl.gz

$(HH_RLHF_FILE):
	mkdir -p $(@D)
	curl -fL -o $@ $(HH_RLHF_URL)

# Make does not see a changed variable, so a step with settings also depends
# on $(OUT)/STEP.flags, which holds $(FLAGS_STEP) and is rewritten only when
# they change: then that step, and what follows it, reruns.
$(OUT)/%.flags: FORCE
	@mkdir -p $(OUT)
	@echo '$(FLAGS_$*)' | cmp -s - $@ || echo '$(FLAGS_$*)' > $@

.PHONY: FORCE

# A step whose command fails leaves no output behind, so a rerun retries it.
.DELETE_ON_ERROR:
