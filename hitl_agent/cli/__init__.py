"""The ``hitl-agent`` command. Each subcommand lives in its own module and loads on use."""

from __future__ import annotations

import importlib

import click

from .._extras import MissingExtraError

__all__ = ["main"]

_COMMANDS: dict[str, str] = {
    "audit": "hitl_agent.cli._audit:audit",
    "bridge": "hitl_agent.cli._bridge:bridge",
    "check": "hitl_agent.cli._check:check",
    "grants": "hitl_agent.cli._grants:grants",
    "ledger": "hitl_agent.cli._ledger:ledger",
    "loops": "hitl_agent.cli._loops:loops",
    "requests": "hitl_agent.cli._requests:requests",
    "stats": "hitl_agent.cli._stats:stats",
    "serve": "hitl_agent.cli._serve:serve",
    "review": "hitl_agent.cli._review:review",
    "worker": "hitl_agent.cli._worker:worker",
    "demo": "hitl_agent.cli._demo:demo",
}


class _LazyGroup(click.Group):
    """Imports a subcommand's module only when that subcommand runs (keeps ``--help`` fast)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except MissingExtraError as err:
            return _missing_extra(cmd_name, err)
        except ModuleNotFoundError as err:
            if err.name != module_name:
                raise
            return None
        command = getattr(module, attr)
        assert isinstance(command, click.Command)
        return command


def _missing_extra(name: str, err: MissingExtraError) -> click.Command:
    """A stand-in for a command whose optional extra is not installed: it says which."""

    def fail(**_: object) -> None:
        raise click.ClickException(str(err))

    return click.Command(
        name,
        callback=fail,
        help=f"(needs: pip install 'hitl-agent[{err.extra}]')",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )


@click.group(cls=_LazyGroup)
@click.version_option(package_name="hitl-agent")
def main() -> None:
    """hitl-agent: human approval for LLM agents, backed by HITL.sh."""
