# SynthGate. Each target is a script in scripts/; see README.md and docs/deploy.md.
.DEFAULT_GOAL := help
.PHONY: help run test worker beat lock install

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

run: ## install if needed, migrate, seed demo data, then a Celery worker and the web server on PORT (default 8000)
	@bash scripts/run.sh

test: ## lint, migrations check, the test suite on SQLite, then integration tests on PostgreSQL + Redis
	@bash scripts/test.sh

worker: ## one Celery worker for the synthesis queue (scale-out machines)
	@bash scripts/worker.sh

beat: ## the single Celery beat of a scaled-out deployment (sends the job reconciler and the audit checkpoints)
	@bash scripts/beat.sh

lock: ## regenerate constraints.txt from .venv (pip freeze, without torch/pip/setuptools/wheel)
	@bash scripts/lock.sh

install: ## create .venv and install the pinned dependencies (run/test/worker do this themselves)
	@bash scripts/bootstrap.sh
