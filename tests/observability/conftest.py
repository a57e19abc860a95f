import sys
from pathlib import Path

# The shared harness lives in tests/gate (test folders are not packages).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "gate"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from hitl_harness import env  # noqa: F401  (the fixture)
