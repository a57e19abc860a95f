"""``python -m hitl_agent`` is the ``hitl-agent`` command."""

from .cli import main

main()
