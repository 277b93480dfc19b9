#!/usr/bin/env bash
# Stage "Set-up": the project venv, the checkov tools venv, and the LocalStack venv (Python 3.13;
# skipped with the reason when 3.13 is missing). All three are stamp-cached by the Makefile.
source "$(dirname "$0")/lib.sh"
run make venv
run make tools
run make localstack-venv
