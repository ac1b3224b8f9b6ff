"""``orgo-async ls``, ``status`` and ``rm``: list, show and delete computers.

``ls`` prints a table (or a JSON array) of the computers of one workspace or
of all, with the workspace of each; ``status`` one computer's fields (never
its ``vnc_password``); ``rm`` deletes computers by id, or with ``--prefix``
reaps every computer named ``PREFIX-...`` (the leftovers of crashed or
``--keep`` launches), which ``--dry-run`` only lists.

With ``--emulator`` they act on an emulator started empty for the command,
so each says on stderr how to keep one running between commands.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from .._checks import check_text
from ..models import MAX_NAME_LENGTH, Computer
from ._format import cell, fields_text, table, to_json
from ._options import add_id, add_json, add_workspace
from ._output import EXIT_OK, PROG, UsageError, output
from ._runner import run_command
from ._target import NEW, Target, computer_fields, note_short_lived, target_of, with_computer

__all__ = ["add_ls", "add_rm", "add_status"]


def add_ls(parser: argparse.ArgumentParser) -> None:
    """The ``ls`` command's options and handler."""
    parser.description = """
        List the computers of one workspace, or of every workspace: id, name, workspace (its
        name, else its id), status, instance id, resolution, creation time.
    """
    add_workspace(parser, "only this workspace")
    add_json(parser, "print a JSON array")
    parser.set_defaults(handler=_run_ls)


def add_status(parser: argparse.ArgumentParser) -> None:
    """The ``status`` command's options and handler."""
    parser.description = "Show one computer's fields (never its vnc_password)."
    add_id(parser)
    add_json(parser, "print a JSON object")
    parser.set_defaults(handler=_run_status)


def add_rm(parser: argparse.ArgumentParser) -> None:
    """The ``rm`` command's options and handler."""
    parser.description = """
        Delete the computers given by id, or with --prefix P every computer named P-... (of
        --workspace, else of every workspace): the leftovers of crashed or --keep launches.
        Prints what was deleted; with --dry-run, what would be, deleting nothing.
    """
    parser.add_argument("ids", nargs="*", metavar="ID", help="computer ids")
    parser.add_argument("--prefix", default=None, help="delete every computer named PREFIX-...")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="with --prefix: list the computers it would delete, delete nothing",
    )
    add_workspace(parser, "with --prefix: only this one")
    add_json(parser, "print a JSON object")
    parser.set_defaults(handler=_run_rm)


def _created(computer: Computer) -> str:
    if computer.created_at is None:
        return "-"
    return computer.created_at.isoformat(sep=" ", timespec="seconds")


def _say_short_lived(args: argparse.Namespace) -> None:
    # Listing, showing or deleting on an emulator that starts empty is rarely what was meant.
    if args.emulator:
        note_short_lived(
            args.command, "this runs on an empty emulator that lives only for this command"
        )


def _run_ls(args: argparse.Namespace) -> int:
    _say_short_lived(args)

    async def run() -> list[Computer]:
        async with target_of(args) as target:
            if target.spawned:
                await target.workspace(args.workspace, create=True)
            return await target.computers(args.workspace)

    computers = run_command(run())
    if args.json:
        output(to_json([computer_fields(c) for c in computers]))
        return EXIT_OK
    if not computers:
        output("no computers")
        return EXIT_OK
    header = ["ID", "NAME", "WORKSPACE", "STATUS", "INSTANCE", "RESOLUTION", "CREATED"]
    rows = [
        [
            c.id,
            cell(c.name),
            cell(c.project_name or c.workspace_id),
            str(c.status),
            cell(c.instance_id),
            cell(c.resolution),
            _created(c),
        ]
        for c in computers
    ]
    output(table(header, rows))
    return EXIT_OK


def _run_status(args: argparse.Namespace) -> int:
    _say_short_lived(args)

    async def fields(target: Target, computer: Computer) -> dict[str, Any]:
        return computer_fields(computer)

    found = run_command(with_computer(args, fields))
    output(fields_text(found, as_json=args.json))
    return EXIT_OK


def _run_rm(args: argparse.Namespace) -> int:
    if bool(args.ids) == (args.prefix is not None):
        raise UsageError(f"{PROG} rm: error: give computer ids, or --prefix P (one of the two)")
    if args.workspace is not None and args.prefix is None:
        raise UsageError(f"{PROG} rm: error: --workspace goes with --prefix")
    if args.dry_run and args.prefix is None:
        raise UsageError(f"{PROG} rm: error: --dry-run goes with --prefix")
    _say_short_lived(args)
    if args.dry_run:
        return _dry_run_rm(args)

    async def run() -> list[dict[str, Any]]:
        async with target_of(args) as target:
            if args.prefix is not None:
                workspace_id = None
                if args.workspace is not None:
                    workspace_id = (await target.workspace(args.workspace, create=False)).id
                reaped = await target.orgo.reap(args.prefix, workspace_id=workspace_id)
                return [{"id": c.id, "name": c.name} for c in reaped]
            ids = [await _resolve_new(target, i) for i in args.ids]
            results = await asyncio.gather(
                *(target.orgo.computers.delete(i) for i in ids), return_exceptions=True
            )
            deleted = [
                {"id": i, "name": None}
                for i, r in zip(ids, results, strict=True)
                if not isinstance(r, BaseException)
            ]
            failed = [r for r in results if isinstance(r, BaseException)]
            if failed:
                for entry in deleted:
                    output(f"deleted {entry['id']}")
                raise failed[0]
            return deleted

    deleted = run_command(run())
    if args.json:
        output(to_json({"deleted": deleted}))
    elif not deleted:
        output("nothing to delete")
    else:
        for entry in deleted:
            output(f"deleted {entry['id']}" + (f"  {entry['name']}" if entry["name"] else ""))
    return EXIT_OK


async def _resolve_new(target: Target, computer_id: str) -> str:
    if computer_id == NEW:
        return (await target.computer(NEW)).id
    return computer_id


def _dry_run_rm(args: argparse.Namespace) -> int:
    """``rm --prefix P --dry-run``: what ``rm --prefix P`` would delete."""
    check_text("prefix", args.prefix, max_length=MAX_NAME_LENGTH)

    async def run() -> list[Computer]:
        async with target_of(args) as target:
            # The rule of Orgo.reap, which the real run uses.
            named = f"{args.prefix}-"
            return [c for c in await target.computers(args.workspace) if c.name.startswith(named)]

    doomed = run_command(run())
    if args.json:
        output(to_json({"would_delete": [{"id": c.id, "name": c.name} for c in doomed]}))
    elif not doomed:
        output("nothing to delete")
    else:
        for computer in doomed:
            output(f"would delete {computer.id}  {computer.name}")
    return EXIT_OK
