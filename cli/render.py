"""Rendering rows as a rich table (stdout), JSON or CSV (stdout alone)."""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from typing import Any, Iterable, Mapping, Sequence

import click

FORMATS = ("table", "json", "csv")


def format_option(choices: Sequence[str] = FORMATS, default: str = "table"):
    """The shared ``--format`` option."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(list(choices)),
        default=default,
        show_default=True,
        help="table: a readable table; json/csv: machine-readable, on stdout alone.",
    )


def clean(value: Any) -> Any:
    """JSON-safe value: NaN and infinities become None, numpy scalars plain Python."""
    if hasattr(value, "item") and not isinstance(value, (list, tuple, dict)):
        try:
            value = value.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


def cell(value: Any) -> str:
    """A value as table text: floats to 4 significant digits, missing as a dash."""
    value = clean(value)
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def print_json(payload: Any) -> None:
    click.echo(json.dumps(clean(payload), indent=2))


def print_csv(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if clean(row.get(c)) is None else clean(row.get(c)) for c in columns])
    click.echo(buffer.getvalue(), nl=False)


def print_markdown(
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[str],
    *,
    headers: Mapping[str, str] | None = None,
) -> None:
    """A GitHub-flavoured markdown table; number columns right-aligned, ``|`` in cells escaped."""
    headers = headers or {}
    rows = list(rows)

    def text(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    def numeric(column: str) -> bool:
        values = [clean(row.get(column)) for row in rows]
        return all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in values)

    lines = ["| " + " | ".join(text(headers.get(c, c)) for c in columns) + " |"]
    lines.append("|" + "|".join("---:" if numeric(c) else ":---" for c in columns) + "|")
    for row in rows:
        lines.append("| " + " | ".join(text(cell(row.get(c))) for c in columns) + " |")
    click.echo("\n".join(lines))


def _numeric(rows: Sequence[Mapping[str, Any]], column: str) -> bool:
    """Whether every present value of ``column`` is a number (those are right-aligned)."""
    values = [clean(row.get(column)) for row in rows]
    present = [v for v in values if v is not None]
    return bool(present) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present)


def print_table(
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[str],
    *,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    caption: str | None = None,
) -> None:
    from rich.console import Console
    from rich.table import Table

    headers = headers or {}
    table = Table(title=title, caption=caption, title_justify="left", caption_justify="left")
    rows = list(rows)
    for column in columns:
        table.add_column(headers.get(column, column), justify="right" if _numeric(rows, column) else "left")
    for row in rows:
        table.add_row(*(cell(row.get(c)) for c in columns))
    # piped output has no terminal width; do not squeeze columns into 80 characters
    width = None if sys.stdout.isatty() else 200
    Console(file=sys.stdout, width=width, soft_wrap=False).print(table)


def emit(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    fmt: str,
    *,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    caption: str | None = None,
    json_payload: Any = None,
) -> None:
    """Print ``rows`` in ``fmt``; ``json_payload`` replaces the plain row list for JSON."""
    if fmt == "json":
        print_json(json_payload if json_payload is not None else list(rows))
    elif fmt == "csv":
        print_csv(rows, columns)
    elif fmt == "markdown":
        print_markdown(rows, columns, headers=headers)
    else:
        print_table(rows, columns, title=title, headers=headers, caption=caption)
