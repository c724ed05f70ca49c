#!/usr/bin/env bash
# Grades every sample submission whose score the variant draw could change on all 6
# variants (tests/test_variant_fairness.py with AUTOGRADER_FAIRNESS=all; the project's own
# test run grades a representative 12 of the 21, see tests/samples.py). About 16 minutes
# on 2 cores. Run it after changing how a hidden test draws its inputs.
set -euo pipefail
cd "$(dirname "$0")/.."
AUTOGRADER_FAIRNESS=all exec scripts/test.sh tests/test_variant_fairness.py "$@"
