"""Orbax checkpoint folders (PyTree checkpoints of JAX / Flax models).

The layout, as ``orbax.checkpoint`` writes it (``StandardCheckpointer``,
``PyTreeCheckpointer``, ``CheckpointManager``):

- an *item* folder holds ``_METADATA`` (JSON: ``tree_metadata`` maps every leaf's key
  path, e.g. ``"('params', 'Dense_0', 'kernel')"``, to its ``key_metadata`` and
  ``value_metadata.value_type``; ``use_ocdbt``, ``use_zarr3``), ``_CHECKPOINT_METADATA``
  and the arrays: each leaf is a zarr array named by its keys joined with dots
  (``params.Dense_0.kernel``), stored either as plain zarr folders
  (``use_ocdbt=False``) or inside an OCDBT key-value store (``manifest.ocdbt``,
  ``d/...``, ``ocdbt.process_N/``: tensorstore's B-tree format, the default);
- a ``CheckpointManager`` folder holds one folder per step (``0/``, ``100/``), each with
  one folder per item (``default/``, ``state/``): the newest complete step is read, and
  its item (the only one, or ``default``/``state``/``params``/``model``).

Arrays are read with tensorstore (the library Orbax itself reads them with; the
optional extra ``orbax``); without it the error says so. Before any array is read its
declared shape and dtype are checked against the file budget (compressed: at most
:data:`topo.formats._policy` ``expansion`` times the folder's bytes), and every file in
the folder must stay inside it (no symbolic link leads out). Which arrays are layers,
and their orientation, follow the Flax rules of :mod:`topo.formats.flax_msgpack`: the
``params`` collection, a ``kernel`` is ``[in, out]``.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from topo.errors import TopoError
from topo.formats import _policy
from topo.formats._assemble import build_topology, reading
from topo.formats.flax_msgpack import tensors_from_tree
from topo.topology import Topology

__all__ = ["sniff", "read", "find_item"]

_METADATA = "_METADATA"
_CHECKPOINT_METADATA = "_CHECKPOINT_METADATA"
_MAX_JSON_BYTES = 64 * 1024**2
_PREFERRED_ITEMS = ("default", "state", "params", "model", "train_state")
_ARRAY_TYPES = {"np.ndarray", "jax.Array", "jax.array", "ndarray"}
_STEP_RE = re.compile(r"^(?:[a-z_]*_)?(\d+)$")


def _is_item(folder: Path) -> bool:
    return (folder / _METADATA).is_file()


def _steps(folder: Path) -> list[tuple[int, Path]]:
    out = []
    for child in folder.iterdir():
        match = _STEP_RE.match(child.name)
        if match and child.is_dir() and not child.name.endswith(".orbax-checkpoint-tmp"):
            out.append((int(match.group(1)), child))
    return sorted(out)


def _items(folder: Path) -> list[Path]:
    return sorted(child for child in folder.iterdir() if child.is_dir() and _is_item(child))


def sniff(path: Path) -> bool:
    """An Orbax item folder, a step folder of items, or a CheckpointManager folder of steps.

    Parameters
    ----------
    path : path-like
        Any file or folder.

    Returns
    -------
    bool
        Decided by the ``_METADATA`` files; never raises.

    Examples
    --------
    >>> import json, pathlib, tempfile
    >>> import numpy as np
    >>> import tensorstore as ts
    >>> temporary = tempfile.TemporaryDirectory()
    >>> run = pathlib.Path(temporary.name) / "run"
    >>> item = run / "100" / "default"  # CheckpointManager: step 100, item "default"
    >>> arrays = {("params", "Dense_0", "kernel"): np.array([[1.0, 0.0], [0.0, 0.0], [0.5, 2.0]], np.float32),
    ...           ("params", "Dense_0", "bias"): np.zeros(2, np.float32)}
    >>> tree = {}
    >>> for keys, array in arrays.items():  # one zarr array per leaf, as Orbax writes with use_ocdbt=False
    ...     spec = {"driver": "zarr", "kvstore": {"driver": "file", "path": str(item / ".".join(keys))}}
    ...     store = ts.open(spec, create=True, dtype=array.dtype.name, shape=array.shape).result()
    ...     store.write(array).result()
    ...     tree[str(keys)] = {"key_metadata": [{"key": k} for k in keys], "value_metadata": {"value_type": "np.ndarray"}}
    >>> _ = (item / "_METADATA").write_text(json.dumps({"tree_metadata": tree, "use_ocdbt": False}))
    >>> sniff(item), sniff(run), sniff(item / "_METADATA")
    (True, True, False)
    >>> temporary.cleanup()
    """
    try:
        path = Path(path)
        if not path.is_dir():
            return False
        if _is_item(path):
            head = (path / _METADATA).read_bytes()[:4096]
            return b"tree_metadata" in head
        if (path / _CHECKPOINT_METADATA).is_file() and _items(path):
            return True
        steps = _steps(path)
        return bool(steps) and ((steps[-1][1] / _CHECKPOINT_METADATA).is_file() or bool(_items(steps[-1][1])))
    except Exception:
        return False


def find_item(path: Path) -> tuple[Path, dict[str, Any]]:
    """The item folder to read under ``path``, and facts (``step``, ``steps``, ``item``).

    Parameters
    ----------
    path : Path
        An item folder, a step folder of items, or a ``CheckpointManager`` folder of steps.

    Returns
    -------
    item : Path
    facts : dict
        ``step`` and ``steps`` where the folder has them, and ``item`` (the item's
        folder name) when it was chosen among a step's items.

    Raises
    ------
    TopoError
        No item, or several items none of which is an obvious model.

    Examples
    --------
    >>> import json, pathlib, tempfile
    >>> import numpy as np
    >>> import tensorstore as ts
    >>> temporary = tempfile.TemporaryDirectory()
    >>> run = pathlib.Path(temporary.name) / "run"
    >>> item = run / "100" / "default"  # CheckpointManager: step 100, item "default"
    >>> arrays = {("params", "Dense_0", "kernel"): np.array([[1.0, 0.0], [0.0, 0.0], [0.5, 2.0]], np.float32),
    ...           ("params", "Dense_0", "bias"): np.zeros(2, np.float32)}
    >>> tree = {}
    >>> for keys, array in arrays.items():  # one zarr array per leaf, as Orbax writes with use_ocdbt=False
    ...     spec = {"driver": "zarr", "kvstore": {"driver": "file", "path": str(item / ".".join(keys))}}
    ...     store = ts.open(spec, create=True, dtype=array.dtype.name, shape=array.shape).result()
    ...     store.write(array).result()
    ...     tree[str(keys)] = {"key_metadata": [{"key": k} for k in keys], "value_metadata": {"value_type": "np.ndarray"}}
    >>> _ = (item / "_METADATA").write_text(json.dumps({"tree_metadata": tree, "use_ocdbt": False}))
    >>> found, facts = find_item(run)
    >>> found == item, facts
    (True, {'steps': [100], 'step': 100, 'item': 'default'})
    >>> temporary.cleanup()
    """
    facts: dict[str, Any] = {}
    folder = path
    if not _is_item(folder) and not _items(folder):
        steps = [(s, p) for s, p in _steps(folder) if (p / _CHECKPOINT_METADATA).is_file() or _items(p) or _is_item(p)]
        if not steps:
            raise TopoError("not an Orbax checkpoint (no _METADATA, no items, no step folders)", path=path)
        facts["steps"] = [s for s, _ in steps]
        facts["step"], folder = steps[-1]
    if not _is_item(folder):
        items = _items(folder)
        if not items:
            raise TopoError("an Orbax step folder without items (no */_METADATA)", path=folder)
        if len(items) > 1:
            named = [p for name in _PREFERRED_ITEMS for p in items if p.name == name]
            if not named:
                raise TopoError(
                    "an Orbax checkpoint with several items (" + ", ".join(p.name for p in items)
                    + "); pass the item's folder",
                    path=folder,
                )
            items = named
        folder = items[0]
        facts["item"] = folder.name
    if "step" not in facts:
        # flax.training.checkpoints names its Orbax items checkpoint_<step>.
        for part in (folder.name, folder.parent.name):
            match = _STEP_RE.match(part)
            if match:
                facts["step"] = int(match.group(1))
                break
    return folder, facts


def _tensorstore(path: Path):
    try:
        import tensorstore
    except ImportError:
        raise TopoError(
            'reading Orbax checkpoints needs tensorstore (the arrays are zarr/OCDBT stores): '
            'pip install "topo-toolkit[orbax]"',
            path=path,
        ) from None
    return tensorstore


def _metadata(item: Path) -> dict[str, Any]:
    file = item / _METADATA
    size = file.stat().st_size
    if size > _MAX_JSON_BYTES:
        raise TopoError(f"refused: {_METADATA} of {size:,} bytes is too large", path=file)
    try:
        meta = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise TopoError(f"{_METADATA} is not valid JSON ({type(exc).__name__})", path=file) from None
    if not isinstance(meta, dict) or not isinstance(meta.get("tree_metadata"), dict):
        raise TopoError(f"{_METADATA} has no tree_metadata (not a PyTree checkpoint)", path=file)
    return meta


def _key_path(key: str, entry: Any) -> tuple[str, ...]:
    """A leaf's keys: from ``key_metadata`` where present, else the tuple literal of the key."""
    if isinstance(entry, dict) and isinstance(entry.get("key_metadata"), list):
        keys = [k.get("key") for k in entry["key_metadata"] if isinstance(k, dict)]
        if keys and all(isinstance(k, (str, int)) for k in keys):
            return tuple(str(k) for k in keys)
    try:
        parsed = ast.literal_eval(key)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        parsed = key
    if isinstance(parsed, tuple):
        return tuple(str(k) for k in parsed)
    return (str(parsed),)


def _folder_bytes(item: Path) -> int:
    """Bytes of every file in the item, after checking that none leads out of it."""
    total = 0
    for file in item.rglob("*"):
        if file.is_symlink():
            _policy.confine(file, item, what="file of the Orbax checkpoint")
        if file.is_file():
            total += file.stat().st_size
    return total


def read(
    path: Path,
    *,
    weights: bool = True,
    layers: str | None = None,
    **_: Any,
) -> Topology:
    """Read an Orbax PyTree checkpoint folder as a Topology.

    Parameters
    ----------
    path : Path
        An item folder (with ``_METADATA``), a step folder of items, or a
        ``CheckpointManager`` folder of steps (its newest step is read).
    weights : bool
        Keep weight values (False keeps masks and biases only).
    layers : str, optional
        Regular expression selecting layers by name.

    Returns
    -------
    Topology
        ``info``: ``format`` ``"orbax"``, ``path``, ``item``, ``step``/``steps`` where
        the folder has them, ``storage`` (``"ocdbt"`` or ``"zarr"``), ``collection``,
        ``order``, ``warnings``, ``skipped``.

    Raises
    ------
    TopoError
        Without tensorstore; not an Orbax checkpoint; links out of the folder;
        arrays over the budget; unreadable stores.

    Examples
    --------
    A ``CheckpointManager`` folder in Orbax's layout, written here with tensorstore:
    the ``params`` collection gives the layers, and a ``kernel`` ``[in, out]`` comes
    out as an ``[out, in]`` layer.

    >>> import json, pathlib, tempfile
    >>> import numpy as np
    >>> import tensorstore as ts
    >>> temporary = tempfile.TemporaryDirectory()
    >>> run = pathlib.Path(temporary.name) / "run"
    >>> item = run / "100" / "default"  # CheckpointManager: step 100, item "default"
    >>> arrays = {("params", "Dense_0", "kernel"): np.array([[1.0, 0.0], [0.0, 0.0], [0.5, 2.0]], np.float32),
    ...           ("params", "Dense_0", "bias"): np.zeros(2, np.float32)}
    >>> tree = {}
    >>> for keys, array in arrays.items():  # one zarr array per leaf, as Orbax writes with use_ocdbt=False
    ...     spec = {"driver": "zarr", "kvstore": {"driver": "file", "path": str(item / ".".join(keys))}}
    ...     store = ts.open(spec, create=True, dtype=array.dtype.name, shape=array.shape).result()
    ...     store.write(array).result()
    ...     tree[str(keys)] = {"key_metadata": [{"key": k} for k in keys], "value_metadata": {"value_type": "np.ndarray"}}
    >>> _ = (item / "_METADATA").write_text(json.dumps({"tree_metadata": tree, "use_ocdbt": False}))
    >>> net = read(run)
    >>> net.names, net["Dense_0"].shape, net.nnz, net["Dense_0"].fan_in.tolist()
    (['Dense_0'], (2, 3), 3, [2, 1])
    >>> net.info["step"], net.info["item"], net.info["storage"], net.info["collection"]
    (100, 'default', 'zarr', 'params')
    >>> temporary.cleanup()
    """
    path = Path(path)
    if not path.is_dir():
        raise TopoError("not a folder (an Orbax checkpoint is a folder)", path=path)
    warnings: list[str] = []
    with reading(path, "Orbax checkpoint"):
        item, facts = find_item(path)
        meta = _metadata(item)
        ts = _tensorstore(path)
        use_ocdbt = bool(meta.get("use_ocdbt", (item / "manifest.ocdbt").is_file()))
        driver = "zarr3" if meta.get("use_zarr3") else "zarr"
        budget = _policy.FileBudget(path, available=_folder_bytes(item), compressed=True)
        base = {"driver": "file", "path": str(item.resolve())}
        tree: dict[str, Any] = {}
        skipped: list[str] = []
        for key, entry in meta["tree_metadata"].items():
            keys = _key_path(key, entry)
            value_meta = entry.get("value_metadata") if isinstance(entry, dict) else None
            value_type = value_meta.get("value_type") if isinstance(value_meta, dict) else None
            name = ".".join(keys)
            if value_type not in _ARRAY_TYPES:
                skipped.append(name)
                continue
            if use_ocdbt:
                kvstore = {"driver": "ocdbt", "base": base, "path": f"{name}/"}
            else:
                if Path(name).name != name or name in (".", ".."):
                    raise TopoError(f"array name {name!r} is not a plain folder name; refused", path=item)
                kvstore = {"driver": "file", "path": str(item.resolve() / name) + "/"}
            store = ts.open({"driver": driver, "kvstore": kvstore, "open": True}, read=True).result()
            dtype = np.dtype(store.dtype.numpy_dtype)
            if dtype.kind not in "biuf":
                skipped.append(name)
                continue
            shape = tuple(int(s) for s in store.shape)
            budget.take(int(np.prod(shape, dtype=np.float64)) * dtype.itemsize, f"array {name!r}")
            array = np.asarray(store.read().result())
            node = tree
            for k in keys[:-1]:
                node = node.setdefault(k, {})
                if not isinstance(node, dict):
                    raise TopoError(f"{_METADATA}: key path {keys!r} passes through a leaf", path=item)
            node[keys[-1]] = array
        tensors, more_skipped, info = tensors_from_tree(tree, path, item.name, warnings)
        info.update(facts)
        info["storage"] = "ocdbt" if use_ocdbt else "zarr"
        info["order"] = "the checkpoint's tree order (Orbax sorts keys by name)"
        return build_topology(
            tensors, path=path, format="orbax", layers=layers, weights=weights, info=info,
            warnings=warnings, skipped=skipped + more_skipped,
        )
