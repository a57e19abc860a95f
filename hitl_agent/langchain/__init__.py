"""LangChain integration: the ``HumanInTheLoopMiddleware`` bridge (``keeper.bridge(agent)``).

The bridge lives in ``hitl_agent.langchain._bridge`` and is reached through
:meth:`hitl_agent.gate.Gatekeeper.bridge`; it needs the ``langchain`` extra
(``pip install 'hitl-agent[langchain]'``).
"""
