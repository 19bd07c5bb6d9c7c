# Two entry points for users: `make build` and `make test`. Both create .venv and install the
# pinned dependencies first; a second run skips the install unless requirements.txt changed.

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
SPARK_STAMP := $(VENV)/.spark-installed
DBT := $(BIN)/dbt
export DBT_PROFILES_DIR := $(CURDIR)

.PHONY: build test test-fast test-spark lint docs report audiences bench clean setup

setup: $(STAMP)

$(STAMP): requirements.txt
	$(PYTHON) -c 'import sys; sys.exit("python3 >= 3.11 is required, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $(STAMP)

## build: dbt build on the data (default: data/online_retail.parquet) into customer_segmentation.duckdb,
## then the report (reports/index.html, reports/figures/*.png)
build: $(STAMP)
	PYTHONPATH=python $(BIN)/python -m customer_segmentation.lock
	$(DBT) build
	$(MAKE) --no-print-directory report

## report: redraw the report from the existing database, without rebuilding
report: $(STAMP)
	PYTHONPATH=python $(BIN)/python -m customer_segmentation.report --out reports

## audiences: the audience files of the existing database: one CSV per segment and one Parquet
## with every customer, under exports/audiences/ (segment id and name, action, P(alive), CLV,
## suppression flags and reason)
audiences: $(STAMP)
	PYTHONPATH=python $(BIN)/python -m customer_segmentation.report.audiences --out exports/audiences

## test: lint, then pytest (package unit tests and end-to-end dbt builds in temporary directories;
## the builds no test writes to run in the background, beside the others: two cores are used;
## the report's browser test needs Chromium on the PATH, and is skipped with a message without it)
test: $(STAMP) lint
	$(BIN)/pytest

## test-fast: the inner loop: ruff and the tests that run no dbt (`-m "not dbt"`; about 35 s, a third of it the lifetime-value integrals and simulations)
test-fast: $(STAMP)
	$(BIN)/ruff check python tests bench
	$(BIN)/ruff format --check python tests bench
	$(BIN)/pytest -m "not dbt and not spark"

## test-spark: install dbt-spark and pyspark (not part of build/test), then build the SQL models
## on a local Spark session and test the Spark MLlib backend against the DuckDB build
test-spark: $(SPARK_STAMP)
	$(BIN)/pytest -m spark tests/spark

$(SPARK_STAMP): $(STAMP) requirements-spark.txt
	@java -version >/dev/null 2>&1 || { echo "make test-spark needs Java 17+ on the PATH"; exit 1; }
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-spark.txt
	touch $(SPARK_STAMP)

## lint: sqlfluff (dbt templater, duckdb dialect) over models/ and analyses/, ruff over python/ and
## tests/. sqlfluff compiles the project, which loads the source: point it at an in-memory database;
## it lints the files in two processes (one per core).
lint: $(STAMP)
	$(BIN)/ruff check python tests bench
	$(BIN)/ruff format --check python tests bench
	DBT_DUCKDB_PATH=:memory: $(BIN)/sqlfluff lint --processes 2 models analyses

## docs: write the static dbt docs site to target/ (open target/static_index.html)
docs: $(STAMP)
	$(DBT) docs generate --static

## bench: the pipeline against hand-written baselines on synthetic data (not part of make test);
## SIZES="20000 200000" to choose, ROUNDS=3 to alternate the runs three times and keep medians;
## results in bench/results/
SIZES ?= 20000 200000 2000000
ROUNDS ?= 1
bench: $(STAMP)
	PYTHONPATH=python:. $(BIN)/python -m bench.run --sizes $(SIZES) --rounds $(ROUNDS)

clean:
	rm -rf target logs $(VENV)
