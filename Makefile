# Ops portal. `make run` starts the portal; `make test` runs every test. See README.md.
SHELL := /bin/bash
PY := .venv/bin/python
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: run test venv venv-dev prepare lint lint-imports check-migrations fleet fleet-down fleet-status bench clean \
	images deploy-check

venv:
	@scripts/venv.sh requirements.txt

venv-dev:
	@scripts/venv.sh "requirements.txt requirements-dev.txt"

# Embedded defaults: SQLite under var/, Redis on 127.0.0.1:6379, secrets generated once.
prepare: venv
	@scripts/ensure-redis.sh
	@scripts/portal-env.sh
	@. scripts/load-env.sh var/portal.env; \
	  $(PY) manage.py migrate --no-input -v0 && \
	  $(PY) manage.py collectstatic --no-input -v0 && \
	  $(PY) manage.py bootstrap

run: prepare
	@scripts/run-portal.sh

# Everything the tests need (idempotent), then lint, migrations check and the whole suite.
test: venv-dev
	@scripts/test-prereqs.sh
	@mkdir -p var
	@$(PY) -m ruff check .
	@.venv/bin/lint-imports --no-cache --no-logo
	@DEBUG=true $(PY) manage.py makemigrations --check --dry-run -v0
	@$(PY) -m pytest $(PYTEST_ARGS)

lint: venv-dev
	@$(PY) -m ruff check .

# The layers of docs/ARCHITECTURE.md as import-linter contracts (pyproject.toml).
lint-imports: venv-dev
	@.venv/bin/lint-imports --no-cache --no-logo

# A demo fleet registered in the portal (make run must have prepared var/portal.env).
fleet: prepare
	@scripts/ensure-docker.sh
	@$(PY) -m fleet up $${FLEET_SIZE:-5}
	@. scripts/load-env.sh var/portal.env; $(PY) manage.py register_fleet var/fleet/current/inventory.json && \
	  $(PY) manage.py register_engine --environment staging --name fleet

fleet-down: venv
	@$(PY) -m fleet down

fleet-status: venv
	@$(PY) -m fleet status

# The deployment's images, built offline (Debian packages, the pinned requirements), tagged by
# recipe hash and rebuilt only when a recipe changes: opsportal/{postgres,redis,portal-base,portal}.
images:
	@scripts/ensure-docker.sh
	@scripts/build-portal-images.sh

# Build the images, then deploy them with docker-compose and as a Swarm stack: healthy, a job run
# through the API, data kept across down/up (tests/deploy/test_deployment.py; part of `make test`).
deploy-check: venv-dev
	@scripts/test-prereqs.sh
	@$(PY) -m pytest tests/deploy/test_deployment.py tests/deploy/test_web_replicas.py $(PYTEST_ARGS)

bench: venv-dev
	@$(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf var/staticfiles .pytest_cache .ruff_cache
