"""Makes the repo's `ip2p_core`, the scripts and the test helpers importable without installing the pack."""
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
for path in (str(REPO), str(REPO / "scripts"), str(TESTS)):
    if path not in sys.path:
        sys.path.insert(0, path)
