import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import os

# Tests never download weights: a missing cache must fail fast and clearly.
os.environ.setdefault("EXPLORER_OFFLINE", "1")
# The app's default compute budget, large: on a loaded test machine an estimate must not hold
# back the work of tests that are not about the budget (tests/test_budget_app.py sets its own).
os.environ.setdefault("EXPLORER_BUDGET_S", "3600")
