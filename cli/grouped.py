"""Option groups in ``--help`` with click's own help formatter: one section per group."""

from __future__ import annotations

from typing import Any

import click

__all__ = ["GroupedOption", "GroupedCommand"]


class GroupedOption(click.Option):
    """A click option that names the ``--help`` section it is listed in (``help_group``)."""

    def __init__(self, *args: Any, help_group: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.help_group = help_group


class GroupedCommand(click.Command):
    """A command whose ``--help`` lists options under their groups' headings.

    Sections come in the order of ``group_order`` (groups not named there follow in
    the order their first option appears); options without a group, such as
    ``--help``, close the list under "Other options".
    """

    def __init__(self, *args: Any, group_order: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.group_order = tuple(group_order)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        sections: dict[str, list[tuple[str, str]]] = {name: [] for name in self.group_order}
        other: list[tuple[str, str]] = []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None or isinstance(param, click.Argument):
                continue
            group = getattr(param, "help_group", None)
            (sections.setdefault(group, []) if group else other).append(record)
        for name, records in sections.items():
            if records:
                with formatter.section(name):
                    formatter.write_dl(records)
        if other:
            with formatter.section("Other options"):
                formatter.write_dl(other)
