"""The wrapped tool, seen from its wrapper: what ToolNode must inject, and how it runs.

Three things make :class:`~hitl_agent.langchain.ApprovalTool` the same tool to LangChain:

* **Injected arguments.** ``ToolNode`` (and ``create_agent``) decides what to inject from the
  wrapper's input schema: a ``ToolRuntime``, ``InjectedState``, ``InjectedStore``,
  ``InjectedToolCallId``. :func:`wrapper_schema` is the wrapped tool's input schema plus the
  injected parameters its function declares outside that schema, plus a ``ToolRuntime`` of
  the wrapper's own (:data:`RUNTIME`) only when the tool takes none: ToolNode injects one
  runtime per tool, so the wrapper reads the tool's own when it has one.
* **One tool run.** After approval the wrapper calls the tool's ``_run`` / ``_arun`` inside
  its own run, exactly as ``BaseTool.run`` / ``arun`` would (same arguments, run manager and
  config), so callbacks and ``astream_events`` see one ``on_tool_start`` and one
  ``on_tool_end`` per call, and the tool's own child runs nest under it.
* **Sync support known up front.** An async-only tool (a coroutine and no function) called
  synchronously fails before any reviewer is asked (:func:`sync_unsupported`).
"""

from __future__ import annotations

import inspect
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin, get_type_hints

from langchain_core.callbacks import AsyncCallbackManagerForToolRun, CallbackManagerForToolRun
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, InjectedToolArg
from langchain_core.tools.base import _get_runnable_config_param, get_all_basemodel_annotations
from langgraph.prebuilt import ToolRuntime
from pydantic import BaseModel, ConfigDict, create_model

__all__ = [
    "RUNTIME",
    "acall_inner",
    "call_inner",
    "is_injected",
    "sync_unsupported",
    "wrapper_schema",
]

# The parameter under which ToolNode hands the wrapper a ToolRuntime when the wrapped tool
# takes none (the call's position in its model turn comes from the runtime's state).
RUNTIME = "hitl_agent_runtime"
_RUNTIME_FIELD: Any = Annotated[ToolRuntime | None, InjectedToolArg()]


def _mentions(hint: Any, kind: type) -> bool:
    """``hint`` is ``kind``, a generic of it, or names it in a Union / Annotated (metadata too)."""
    if isinstance(hint, type):
        return issubclass(hint, kind)
    origin = get_origin(hint)
    if isinstance(origin, type) and issubclass(origin, kind):
        return True
    if origin in (Union, UnionType, Annotated):
        return any(_mentions(arg, kind) for arg in get_args(hint))
    return isinstance(hint, kind)


def is_injected(hint: Any) -> bool:
    """An argument LangChain supplies at call time (never the model): a ``ToolRuntime`` or
    anything annotated ``InjectedToolArg`` (``InjectedState``, ``InjectedStore``,
    ``InjectedToolCallId``, ...)."""
    return _mentions(hint, ToolRuntime) or _mentions(hint, InjectedToolArg)


def _signature_only(inner: BaseTool, model: type[BaseModel]) -> dict[str, Any]:
    """Injected parameters of the tool's function that its schema leaves out (ToolNode reads
    the function of a bare tool; the wrapper has none, so its schema must carry them)."""
    func = getattr(inner, "func", None) or getattr(inner, "coroutine", None)
    if func is None:
        return {}
    try:
        hints = get_type_hints(func, include_extras=True)
        params = inspect.signature(func).parameters
    except (NameError, TypeError, ValueError):
        return {}
    fields: dict[str, Any] = {}
    for name, param in params.items():
        hint = hints.get(name)
        if name in model.model_fields or hint is None or not is_injected(hint):
            continue
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[name] = (hint, default)
    return fields


def _runtime_arg(hints: dict[str, Any]) -> str | None:
    """Where ToolNode injects the runtime given these fields (in order): the last one named
    ``runtime`` or typed ``ToolRuntime``, when that one is typed ``ToolRuntime`` (else None)."""
    chosen: tuple[str, Any] | None = None
    for name, hint in hints.items():
        if name == "runtime" or _mentions(hint, ToolRuntime):
            chosen = (name, hint)
    if chosen is None or not _mentions(chosen[1], ToolRuntime):
        return None
    return chosen[0]


def wrapper_schema(inner: BaseTool) -> tuple[Any, str | None]:
    """The wrapper's ``args_schema``, and the argument the ToolRuntime arrives in.

    The runtime's argument is the tool's own (passed on to it) or :data:`RUNTIME` (the
    wrapper's, never passed on). None: the schema is a JSON-schema dict or a pydantic v1
    model, which ToolNode injects nothing into.
    """
    schema = inner.args_schema if inner.args_schema is not None else inner.get_input_schema()
    if not (isinstance(schema, type) and issubclass(schema, BaseModel)):
        return schema, None
    extra = _signature_only(inner, schema)
    hints = {**get_all_basemodel_annotations(schema), **{k: v[0] for k, v in extra.items()}}
    own = _runtime_arg(hints)
    if own is None:
        extra[RUNTIME] = (_RUNTIME_FIELD, None)
    if not extra:
        return schema, own
    # The tool's schema may not allow arbitrary types (a user's plain BaseModel), which a
    # ToolRuntime or a store needs: a subclass allowing them carries the injected fields.
    base = type(
        schema.__name__,
        (schema,),
        {"__module__": schema.__module__, "model_config": ConfigDict(arbitrary_types_allowed=True)},
    )
    model: type[BaseModel] = create_model(schema.__name__, __base__=base, **extra)
    return model, own or RUNTIME


def sync_unsupported(inner: BaseTool) -> bool:
    """The tool has a coroutine and no function (``StructuredTool`` / ``Tool``)."""
    return getattr(inner, "func", False) is None and getattr(inner, "coroutine", None) is not None


def _hooks(method: Any, run_manager: Any, config: RunnableConfig) -> dict[str, Any]:
    """The run manager and config, when ``method`` takes them (as ``BaseTool.run`` decides)."""
    extra: dict[str, Any] = {}
    if "run_manager" in inspect.signature(method).parameters:
        extra["run_manager"] = run_manager
    if config_param := _get_runnable_config_param(method):
        extra[config_param] = config
    return extra


def call_inner(
    inner: BaseTool,
    tool_input: dict[str, Any],
    tool_call_id: str | None,
    config: RunnableConfig,
    run_manager: CallbackManagerForToolRun | None,
) -> Any:
    """The tool's ``_run`` on ``tool_input``, inside the caller's tool run (its raw result)."""
    args, kwargs = inner._to_args_and_kwargs(tool_input, tool_call_id)
    kwargs |= _hooks(inner._run, run_manager, config)
    return inner._run(*args, **kwargs)


async def acall_inner(
    inner: BaseTool,
    tool_input: dict[str, Any],
    tool_call_id: str | None,
    config: RunnableConfig,
    run_manager: AsyncCallbackManagerForToolRun | None,
) -> Any:
    """Async twin of :func:`call_inner` (``_arun``; BaseTool's default runs ``_run`` in a
    thread)."""
    args, kwargs = inner._to_args_and_kwargs(tool_input, tool_call_id)
    overridden = type(inner)._arun is not BaseTool._arun
    kwargs |= _hooks(inner._arun if overridden else inner._run, run_manager, config)
    return await inner._arun(*args, **kwargs)
