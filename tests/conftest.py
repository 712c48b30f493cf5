import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import os

# Tests never download weights: a missing cache must fail fast and clearly.
os.environ.setdefault("EXPLORER_OFFLINE", "1")
