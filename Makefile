# OBSY: the commands a developer or user needs. See README.md.
.PHONY: run demo test test-fast lint format dev bench clean

run:            ## start the whole system locally (Mosquitto, indiserver simulators, SQLite, every service)
	scripts/run-local.sh

demo:           ## the demonstration: simulators at a site where it is night now, demo targets, "make it rain"
	scripts/run-local.sh --demo

test:           ## lint, then every test in parallel (each starts its own broker, indiserver, KStars)
	scripts/test.sh

test-fast:      ## the unit and contract tests without the slow and long ones, for the edit-run loop (about 120 CPU s, 80 s on 2 cores); CI runs make test
	env -u PYTHONDONTWRITEBYTECODE .venv/bin/pytest -n auto --dist worksteal -q -m "not long and not slow" tests/unit  # keeps __pycache__: see scripts/test.sh

dev:            ## install Debian packages and the editable virtual environment
	scripts/bootstrap.sh

lint:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

format:
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .

bench:          ## run every benchmark and print its figures
	.venv/bin/python -m bench

clean:
	rm -rf var .pytest_cache .ruff_cache
