import sys
from pathlib import Path

# The shared harness lives in tests/gate (these test folders are not packages, so that
# tests/langgraph never shadows the real ``langgraph``).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "gate"))

from hitl_harness import env  # noqa: F401  (the fixture)
