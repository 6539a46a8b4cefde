"""``topo data``: the data sets training reads: where they are, and downloading them."""

from __future__ import annotations

import click

from topo_cli.command import TopoSubgroup
from topo_cli.options import data_dir_option
from topo_cli.render import emit, format_option

LIST_COLUMNS = ["name", "found", "path", "get"]
LIST_HEADERS = {"path": "where", "get": "how to get it"}

_DATA_DIR_HELP = "Data folder (default: $XDG_CACHE_HOME/topo, i.e. ~/.cache/topo)."


@click.group("data", cls=TopoSubgroup)
def data_group() -> None:
    """Data sets for training: what is found locally, and downloading them.

    Files are looked for in the data folder (--data-dir, else $TOPO_DATA_DIR, else
    $XDG_CACHE_HOME/topo, i.e. ~/.cache/topo), in the subfolder named like the data set
    (mnist/, fashion-mnist/, emnist/, covtype/) and in the folder itself.
    """


@data_group.command("list")
@data_dir_option(help=_DATA_DIR_HELP)
@format_option()
def list_command(data_dir: str | None, fmt: str) -> None:
    """The data sets topo knows, whether each is found locally, and where."""
    from topo.training.data import DATASETS, data_home, dataset_status

    home = data_home(data_dir)
    statuses = [dataset_status(name, data_dir=data_dir) for name in DATASETS]
    rows = [{"name": s["name"], "found": s["found"], "path": s["where"], "get": s["get"]} for s in statuses]
    emit(
        rows,
        LIST_COLUMNS,
        fmt,
        title=f"data sets (data folder {home})",
        headers=LIST_HEADERS,
        json_payload={"data_dir": str(home), "datasets": statuses},
    )


class DatasetName(click.ParamType):
    """A data set name topo knows (``topo data list``): an unknown one is a usage error."""

    name = "name"

    def convert(self, value, param, ctx):
        from topo.errors import TopoError
        from topo.training.data import DATASETS, dataset_status

        try:
            dataset_status(value)  # accepts the names and their aliases, refuses the rest
        except TopoError:
            self.fail(f"unknown data set {value!r}; known: {', '.join(DATASETS)}", param, ctx)
        return value

    def shell_complete(self, ctx, param, incomplete):
        from click.shell_completion import CompletionItem

        from topo.training.data import DATASETS

        return [CompletionItem(name) for name in DATASETS if name.startswith(incomplete)]


@data_group.command("download")
@click.argument("name", type=DatasetName())
@data_dir_option(help=_DATA_DIR_HELP)
@click.option(
    "--base-url",
    default=None,
    metavar="URL",
    help="Fetch the files from this folder URL instead of the official site (a mirror); "
    "also $TOPO_DATA_MIRROR (a root URL with one subfolder per data set).",
)
def download_command(name: str, data_dir: str | None, base_url: str | None) -> None:
    """Download data set NAME (mnist, fashion-mnist, covtype) into the data folder.

    Files are checked against their checksums (covtype by its content) and an
    interrupted download resumes where it stopped. EMNIST is not downloaded: the
    error message says where to get it and where to put its files.
    """
    from topo.training.download import download

    from topo_cli.progress import progress_bar

    with progress_bar(f"downloading {name}") as progress:
        folder = download(name, data_dir=data_dir, base_url=base_url, progress=progress)
    if name.strip().lower() == "digits":
        click.echo(f"digits is bundled with scikit-learn ({folder}); nothing to download")
    else:
        click.echo(f"{name}: files in {folder}")
