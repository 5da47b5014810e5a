# make demo : create .venv if missing, run the default 12-run sweep, then its report, MBE audit and HTML page
# make test : create .venv if missing, run the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CAMPAIGN := outputs/demo

.PHONY: demo test venv

$(BIN)/pab-campaign: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

venv: $(BIN)/pab-campaign

demo: venv
	$(BIN)/python -m pab_campaign -m runtime.verbose=false
	$(BIN)/pab-campaign report $(CAMPAIGN)
	$(BIN)/pab-campaign audit $(CAMPAIGN) --metric weights/erank weights/stable_rank --baseline val/loss@3 --target test/acc
	$(BIN)/pab-campaign html $(CAMPAIGN)

test: venv
	$(BIN)/python -m pytest
