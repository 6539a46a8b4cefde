"""Read ``torch.save`` files with numpy alone: an unpickler that imports nothing and runs nothing.

A pickle is a small program: it names globals (classes, functions) and asks the
loader to call them (``REDUCE``), instantiate them (``NEWOBJ``, ``INST``, ``OBJ``)
and set their state (``BUILD``). This module runs that program with every one of
those steps made inert:

- a global is never imported: it becomes an :class:`InertGlobal` (its module and
  name as strings);
- calling or instantiating a global records an :class:`InertObject` holding the
  arguments; ``BUILD`` records the state on it; nothing the file names is ever
  called, so no ``__reduce__``, ``__setstate__``, ``__init__`` or ``__call__`` of
  any class runs;
- a short allow-list of globals gets topo's own implementation instead: the ones
  ``torch.save`` uses to rebuild tensors (``torch._utils._rebuild_tensor_v2`` and
  relatives, sparse and quantized tensors, parameters), ``OrderedDict`` and
  ``defaultdict`` (plain dicts), ``set``, ``torch.Size``, ``_codecs.encode``, and
  numpy arrays and scalars of numeric dtypes (rebuilt from their bytes; object
  arrays are not read).

Tensors are rebuilt from the archive's storages with numpy: the zip archive's
``<prefix>/data/<key>`` members (memory-mapped where stored uncompressed), or the
raw storages that follow the pickles in a legacy (pre-1.6) file. Every declared
size is checked before anything is allocated: a storage larger than the bytes the
file holds for it, a view outside its storage, a view that repeats its storage
many times over (stride 0, overlapping strides) or a sparse tensor whose index
arrays would outgrow the budget is refused with one :class:`~topo.errors.TopoError`.

A whole pickled module (``torch.save(model)``) comes back as an ``InertObject``
whose state holds ``_parameters``, ``_buffers`` and ``_modules``;
:func:`plain` turns such records into ordinary nested dicts in state-dict order.
"""

from __future__ import annotations

import io
import math
import pickle
import re
import struct
import zipfile
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np
import scipy.sparse as sp

from topo.errors import TopoError
from topo.formats import _policy
from topo.formats._policy import check_declared_size

__all__ = [
    "InertGlobal",
    "InertObject",
    "StoredTensor",
    "LEGACY_MAGIC_NUMBER",
    "MAX_PICKLE_BYTES",
    "load_zip",
    "load_legacy",
    "is_module_record",
    "plain",
]

#: The number a legacy ``torch.save`` file pickles first.
LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001
#: Largest pickle (``data.pkl``) read into memory; storages are separate and memory-mapped.
MAX_PICKLE_BYTES = 256 * 1024**2
#: Most entries :func:`plain` visits (shared references can make a small pickle a huge tree).
MAX_ENTRIES = 1_000_000


class InertGlobal:
    """A class or function the pickle names; never imported, never called.

    Attributes
    ----------
    module, name : str
        As written in the pickle (``torch.nn.modules.linear``, ``Linear``).

    Examples
    --------
    >>> linear = InertGlobal("torch.nn.modules.linear", "Linear")
    >>> linear.qualname
    'torch.nn.modules.linear.Linear'
    >>> linear
    <global torch.nn.modules.linear.Linear>
    """

    __slots__ = ("module", "name")

    def __init__(self, module: str, name: str) -> None:
        self.module = str(module)
        self.name = str(name)

    @property
    def qualname(self) -> str:
        """``module.name``."""
        return f"{self.module}.{self.name}"

    def __repr__(self) -> str:
        return f"<global {self.qualname}>"


class InertObject:
    """What the pickle would have built from ``cls``, recorded instead of built.

    Attributes
    ----------
    cls : InertGlobal or object
        The global the pickle called or instantiated.
    args : tuple
        Positional arguments of that call.
    kwargs : dict
        Keyword arguments (``NEWOBJ_EX``).
    state : object
        What ``BUILD`` would have passed to ``__setstate__`` (often the ``__dict__``).
    items : list
        What ``APPEND(S)`` / ``ADDITEMS`` added.
    entries : dict
        What ``SETITEM(S)`` set.

    Examples
    --------
    A checkpoint whose pickle asks the loader to call a function gets a record of
    the call instead; nothing is called (the doctest would show the print).

    >>> import pathlib, tempfile, zipfile
    >>> import torch
    >>> class Exploit:
    ...     def __reduce__(self):  # what unpickling would call: print (os.system would do the same)
    ...         return (print, ("this never runs",))
    >>> temporary = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(temporary.name) / "model.pt"
    >>> torch.save({"fc.weight": torch.eye(2), "payload": Exploit()}, path)
    >>> with zipfile.ZipFile(path) as archive:
    ...     obj = load_zip(path, archive, "model/data.pkl")
    >>> record = obj["payload"]
    >>> record, record.cls, record.args
    (<inert __builtin__.print>, <global __builtin__.print>, ('this never runs',))
    >>> temporary.cleanup()
    """

    __slots__ = ("cls", "args", "kwargs", "state", "items", "entries")

    def __init__(self, cls: Any, args: tuple = (), kwargs: dict | None = None) -> None:
        self.cls = cls
        self.args = tuple(args)
        self.kwargs = dict(kwargs or {})
        self.state: Any = None
        self.items: list = []
        self.entries: dict = {}

    # The unpickler's container opcodes look these up on whatever object is on the stack.
    def append(self, value: Any) -> None:
        self.items.append(value)

    def extend(self, values: Any) -> None:
        self.items.extend(values)

    def add(self, value: Any) -> None:
        self.items.append(value)

    def __setitem__(self, key: Any, value: Any) -> None:
        self.entries[key] = value

    @property
    def type_name(self) -> str:
        return self.cls.qualname if isinstance(self.cls, InertGlobal) else type(self.cls).__name__

    def __repr__(self) -> str:
        return f"<inert {self.type_name}>"


# -- dtypes ----------------------------------------------------------------------------
# torch dtype name -> numpy dtype of the stored bytes (before byte order is applied).
_STORED = {
    "float64": "f8", "float32": "f4", "float16": "f2", "bfloat16": "u2",
    "int64": "i8", "int32": "i4", "int16": "i2", "int8": "i1", "uint8": "u1",
    "uint16": "u2", "uint32": "u4", "uint64": "u8", "bool": "?",
    "complex64": "c8", "complex128": "c16",
    "float8_e4m3fn": "u1", "float8_e5m2": "u1",
    "qint8": "i1", "quint8": "u1", "qint32": "i4",
}
_ALIASES = {
    "float": "float32", "double": "float64", "half": "float16", "long": "int64", "int": "int32",
    "short": "int16", "cfloat": "complex64", "cdouble": "complex128",
}
_STORAGE_CLASSES = {
    "DoubleStorage": "float64", "FloatStorage": "float32", "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
    "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool",
    "ComplexFloatStorage": "complex64", "ComplexDoubleStorage": "complex128",
    "QInt8Storage": "qint8", "QUInt8Storage": "quint8", "QInt32Storage": "qint32",
    "UntypedStorage": "uint8",
}


def _dtype_name(value: Any) -> str:
    """A torch dtype named by the pickle (``torch.float32`` global, or a storage class)."""
    if isinstance(value, InertGlobal):
        name = value.name
        if name in _STORAGE_CLASSES:
            return _STORAGE_CLASSES[name]
        name = _ALIASES.get(name, name)
        if value.module == "torch" and name in _STORED:
            return name
        raise TopoError(f"tensor dtype {value.qualname} is not one topo reads")
    raise TopoError(f"tensor dtype {value!r} is not one topo reads")


def _e4m3fn_table() -> np.ndarray:
    bits = np.arange(256, dtype=np.uint16)
    sign = np.where(bits & 0x80, -1.0, 1.0)
    exponent = (bits >> 3) & 0xF
    mantissa = (bits & 0x7).astype(np.float64)
    normal = sign * (1 + mantissa / 8) * 2.0 ** (exponent.astype(np.float64) - 7)
    subnormal = sign * (mantissa / 8) * 2.0**-6
    table = np.where(exponent == 0, subnormal, normal)
    table[(exponent == 0xF) & ((bits & 0x7) == 0x7)] = np.nan  # the "fn" variant: no infinities
    return table.astype(np.float32)


def _to_float(array: np.ndarray, dtype_name: str) -> np.ndarray:
    """bfloat16 and float8 bits (stored as unsigned ints) as float32 values."""
    if dtype_name == "bfloat16":
        return (array.astype(np.uint32) << 16).view(np.float32)
    if dtype_name == "float8_e5m2":  # the top byte of a float16
        return (array.astype(np.uint16) << 8).view(np.float16).astype(np.float32)
    if dtype_name == "float8_e4m3fn":
        return _e4m3fn_table()[array]
    return array


# -- storages and tensors ---------------------------------------------------------------
class _Storage:
    """One storage of the file: raw bytes, available once the file's storages are read."""

    __slots__ = ("key", "dtype_name", "nbytes", "raw")

    def __init__(self, key: str, dtype_name: str, nbytes: int) -> None:
        self.key = key
        self.dtype_name = dtype_name
        self.nbytes = int(nbytes)
        self.raw: np.ndarray | None = None  # uint8, length nbytes


def _int_tuple(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise TopoError(f"{what} is not a tuple of integers")
    return tuple(int(v) for v in value)


class StoredTensor:
    """A tensor of the file, described by its storage and view; read with numpy on demand.

    Attributes
    ----------
    shape : tuple of int
    dtype_name : str
        The torch dtype's name (``float32``, ``bfloat16``, ...).
    layout : str
        ``"strided"``, ``"sparse_coo"`` or ``"sparse_csr"`` (and ``"sparse_csc"``).

    Examples
    --------
    The loaders make them; the values are read only when :meth:`array` is called.

    >>> import numpy as np
    >>> tensor = StoredTensor((2, 3), "float32", "strided", lambda: np.ones((2, 3), np.float32))
    >>> tensor, tensor.ndim
    (<tensor float32[2, 3] strided>, 2)
    >>> float(tensor.array().sum())
    6.0
    """

    __slots__ = ("shape", "dtype_name", "layout", "_read", "_array", "is_parameter")

    def __init__(self, shape: tuple[int, ...], dtype_name: str, layout: str, read: Callable[[], Any]) -> None:
        self.shape = tuple(shape)
        self.dtype_name = dtype_name
        self.layout = layout
        self._read = read
        self._array: Any = None
        self.is_parameter = False

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def array(self) -> Any:
        """The values: a numpy array (dense) or a scipy CSR matrix (sparse).

        bfloat16 and float8 come back as float32; quantized tensors dequantized.
        """
        if self._array is None:
            self._array = self._read()
        return self._array

    def __repr__(self) -> str:
        return f"<tensor {self.dtype_name}{list(self.shape)} {self.layout}>"


class _NumpyDtype:
    """A numpy dtype the pickle names (``numpy.dtype('f4', False, True)``); numeric kinds only."""

    __slots__ = ("code", "order", "numeric")

    def __init__(self, code: Any) -> None:
        # Anything else (objects, strings, records) stays unread: its arrays become None.
        self.numeric = isinstance(code, str) and re.fullmatch(r"[biufc]\d{1,2}", code) is not None
        self.code = code if self.numeric else "u1"
        self.order = "<"

    def build(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) > 1 and state[1] in ("<", ">", "|", "="):
            self.order = "<" if state[1] == "=" else state[1]

    def dtype(self) -> np.dtype:
        dtype = np.dtype(self.code)
        return dtype.newbyteorder("<" if self.order == "<" else ">") if self.order in "<>" else dtype


class _NumpyArray:
    """A numpy array in the pickle (``_reconstruct`` then ``BUILD``), rebuilt from its raw bytes."""

    __slots__ = ("tensor",)

    def __init__(self) -> None:
        self.tensor: StoredTensor | None = None

    def build(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise TopoError("numpy array state is not what numpy pickles")
        shape, dtype, fortran, raw = state[-4:]
        self.fill(raw, dtype, shape, "F" if fortran else "C")

    def fill(self, raw: Any, dtype: Any, shape: Any, order: str) -> None:
        if not isinstance(dtype, _NumpyDtype) or not dtype.numeric or not isinstance(raw, (bytes, bytearray)):
            return  # not a numeric array (an object array holds a list, not bytes): left unread
        shape = _int_tuple(shape, "numpy array shape")
        numpy_dtype = dtype.dtype()
        if len(raw) != math.prod(shape) * numpy_dtype.itemsize or any(d < 0 for d in shape):
            raise TopoError(f"numpy array of shape {shape} holds {len(raw):,} bytes (corrupt)")
        array = np.frombuffer(bytes(raw), dtype=numpy_dtype).reshape(shape, order="F" if order == "F" else "C")
        array = array.astype(numpy_dtype.newbyteorder("="), copy=False)
        self.tensor = StoredTensor(shape, array.dtype.name, "strided", lambda: array)


def _strided(storage: _Storage, dtype_name: str, offset: Any, size: Any, stride: Any,
             path: Path, byteorder: str) -> StoredTensor:
    """A dense view of a storage, checked against it and the budget before any read."""
    shape = _int_tuple(size, "tensor size")
    strides = _int_tuple(stride, "tensor stride")
    if not isinstance(offset, int) or offset < 0:
        raise TopoError("tensor storage offset is not a non-negative integer")
    if len(shape) != len(strides) or any(d < 0 for d in shape) or any(s < 0 for s in strides):
        raise TopoError(f"tensor size {shape} and stride {strides} do not describe a view")
    stored = np.dtype(_STORED[dtype_name]).newbyteorder(">" if byteorder == ">" else "<")
    itemsize = stored.itemsize
    numel = math.prod(shape)
    if numel == 0:
        return StoredTensor(shape, dtype_name, "strided", lambda: np.zeros(shape, dtype=_value_dtype(dtype_name)))
    last = offset + sum((d - 1) * s for d, s in zip(shape, strides))
    if (last + 1) * itemsize > storage.nbytes:
        raise TopoError(
            f"tensor of size {shape} at offset {offset} reaches past its storage "
            f"({storage.nbytes:,} bytes; truncated or corrupt)"
        )
    span = last - offset + 1  # distinct elements the view can touch
    nbytes = numel * max(itemsize, np.dtype(_value_dtype(dtype_name)).itemsize)
    what = f"a tensor of size {shape}"
    if numel > span:
        # Stride 0 or overlapping strides: reading it would repeat the storage's bytes.
        what = f"a tensor of size {shape} viewing {span * itemsize:,} bytes (stride {strides})"
        check_declared_size(nbytes, path=path, what=what, available=span * itemsize, compressed=True)
    check_declared_size(nbytes, path=path, what=what)

    def read() -> np.ndarray:
        if storage.raw is None:
            raise TopoError(f"storage {storage.key!r} was never written in the file (truncated or corrupt)")
        typed = storage.raw[offset * itemsize:(last + 1) * itemsize].view(stored)
        view = np.lib.stride_tricks.as_strided(
            typed, shape=shape, strides=tuple(s * itemsize for s in strides), writeable=False
        )
        return _to_float(view, dtype_name)

    return StoredTensor(shape, dtype_name, "strided", read)


def _value_dtype(dtype_name: str) -> str:
    return "f4" if dtype_name in ("bfloat16", "float8_e4m3fn", "float8_e5m2") else _STORED[dtype_name]


def _sparse(layout: str, data: Any, path: Path) -> StoredTensor:
    """A sparse COO or compressed (CSR/CSC) tensor from its component tensors."""
    if not isinstance(data, tuple) or not data:
        raise TopoError("sparse tensor without its components")
    if layout == "sparse_coo":
        indices, values, size = data[0], data[1], data[2]
        parts: tuple[Any, ...] = (indices, values)
    elif layout in ("sparse_csr", "sparse_csc"):
        compressed, plain_indices, values, size = data[0], data[1], data[2], data[3]
        parts = (compressed, plain_indices, values)
    else:
        raise TopoError(f"sparse layout {layout} is not one topo reads (COO, CSR and CSC are)")
    if not all(isinstance(p, StoredTensor) for p in parts):
        raise TopoError("sparse tensor components are not tensors")
    shape = _int_tuple(size, "sparse tensor size")
    if len(shape) != 2:
        raise TopoError(f"a {len(shape)}-D sparse tensor; topo reads 2-D sparse weights only")
    rows, cols = shape
    if rows < 0 or cols < 0:
        raise TopoError(f"sparse tensor size {shape} is negative")
    if values.ndim != 1:
        raise TopoError("hybrid sparse tensor (values with dense dimensions); topo reads 2-D sparse weights only")
    nnz = values.shape[0]
    what = f"a sparse tensor of size {shape}"
    _policy.check_layer_shape(rows, cols, path=path, what=what, dense=False)
    # What the CSR matrix will take: index pointers for every row, indices and values.
    check_declared_size((rows + 1) * 8 + nnz * 16, path=path, what=what)
    dtype_name = values.dtype_name

    def read() -> sp.csr_matrix:
        # Copies: scipy sorts and sums indices in place, and the storages are read-only maps.
        vals = np.array(values.array()).reshape(-1)
        if layout == "sparse_coo":
            idx = np.array(indices.array())
            if idx.ndim != 2 or idx.shape[0] != 2 or idx.shape[1] != vals.shape[0]:
                raise TopoError("sparse COO indices do not match its values")
            matrix = sp.coo_matrix((vals, (idx[0], idx[1])), shape=shape)
            matrix.sum_duplicates()
            return matrix.tocsr()
        ptr = np.array(compressed.array()).reshape(-1)
        ind = np.array(plain_indices.array()).reshape(-1)
        cls = sp.csr_matrix if layout == "sparse_csr" else sp.csc_matrix
        matrix = cls((vals, ind, ptr), shape=shape)
        matrix.check_format(full_check=True)
        return sp.csr_matrix(matrix)

    return StoredTensor(shape, dtype_name, layout, read)


# -- the unpickler -----------------------------------------------------------------------
class _BoundedFile:
    """A file whose reads never ask for more than what is left (no allocation from a declared length)."""

    def __init__(self, handle: Any, end: int) -> None:
        self.handle = handle
        self.end = end

    def _left(self) -> int:
        return max(self.end - self.handle.tell(), 0)

    def read(self, n: int = -1) -> bytes:
        left = self._left()
        return self.handle.read(left if n is None or n < 0 else min(n, left))

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readline(self) -> bytes:
        return self.handle.readline(min(self._left(), 1 << 20))


class _InertUnpickler(pickle._Unpickler):  # the pure-Python loader: every opcode is ours to replace
    """Runs a pickle with every import, call, instantiation and ``__setstate__`` made inert."""

    # The pure-Python loader's internals, which typeshed does not declare (annotations only).
    stack: list[Any]
    append: Callable[[Any], None]
    read: Callable[[int], bytes]
    readline: Callable[[], bytes]
    pop_mark: Callable[[], list[Any]]
    _unframer: Any

    dispatch: ClassVar[dict[int, Callable[[Any], None]]] = dict(pickle._Unpickler.dispatch)

    def __init__(self, file: Any, *, rebuild: Callable[[InertGlobal, tuple], Any],
                 persistent: Callable[[Any], Any], left: Callable[[], int]) -> None:
        super().__init__(file, encoding="latin1")
        self._rebuild = rebuild
        self._persistent = persistent
        self._left = left

    # Globals are names, nothing more.
    def find_class(self, module: str, name: str) -> InertGlobal:
        return InertGlobal(module, name)

    def persistent_load(self, pid: Any) -> Any:
        return self._persistent(pid)

    def _call(self, func: Any, args: Any, kwargs: dict | None = None) -> Any:
        if not isinstance(args, tuple):
            raise pickle.UnpicklingError("call arguments are not a tuple")
        if isinstance(func, InertGlobal) and not kwargs:
            return self._rebuild(func, args)
        return InertObject(func, args, kwargs)

    def load_reduce(self) -> None:
        args = self.stack.pop()
        self.stack[-1] = self._call(self.stack[-1], args)

    dispatch[pickle.REDUCE[0]] = load_reduce

    def load_newobj(self) -> None:
        args = self.stack.pop()
        cls = self.stack.pop()
        self.append(self._call(cls, args) if _NEW_AS_CALL.get(_qualname(cls)) else InertObject(cls, args))

    dispatch[pickle.NEWOBJ[0]] = load_newobj

    def load_newobj_ex(self) -> None:
        kwargs = self.stack.pop()
        args = self.stack.pop()
        cls = self.stack.pop()
        self.append(InertObject(cls, args, kwargs if isinstance(kwargs, dict) else {}))

    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex

    def load_inst(self) -> None:
        module = self.readline()[:-1].decode("ascii")
        name = self.readline()[:-1].decode("ascii")
        args = tuple(self.pop_mark())
        self.append(InertObject(InertGlobal(module, name), args))

    dispatch[pickle.INST[0]] = load_inst

    def load_obj(self) -> None:
        args = self.pop_mark()
        cls = args.pop(0)
        self.append(InertObject(cls, tuple(args)))

    dispatch[pickle.OBJ[0]] = load_obj

    def load_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if isinstance(inst, InertObject):
            inst.state = state
        elif isinstance(inst, (_NumpyDtype, _NumpyArray)):
            inst.build(state)  # topo's own rebuild of a numeric numpy value
        # Anything else (a dict standing in for an OrderedDict, a tensor record): state is
        # metadata such as ``_metadata``; it is dropped, never applied.

    dispatch[pickle.BUILD[0]] = load_build

    def _refuse_extension(self) -> None:
        raise pickle.UnpicklingError("pickle uses the copyreg extension registry; not read")

    dispatch[pickle.EXT1[0]] = _refuse_extension
    dispatch[pickle.EXT2[0]] = _refuse_extension
    dispatch[pickle.EXT4[0]] = _refuse_extension

    def load_bytearray8(self) -> None:
        (size,) = struct.unpack("<Q", self.read(8))
        frame = self._unframer.current_frame  # protocol 5 frames are read ahead into memory
        in_frame = len(frame.getbuffer()) - frame.tell() if frame is not None else 0
        if size > in_frame + self._left():
            raise pickle.UnpicklingError("BYTEARRAY8 declares more bytes than the pickle holds")
        self.append(bytearray(self.read(size)))

    dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8


def _qualname(value: Any) -> str:
    return value.qualname if isinstance(value, InertGlobal) else ""


# NEWOBJ of these classes builds the same plain value as calling them.
_NEW_AS_CALL = {"collections.OrderedDict": True, "collections.defaultdict": True, "builtins.set": True,
                "__builtin__.set": True, "builtins.frozenset": True, "__builtin__.frozenset": True}


class _Loader:
    """One file's storages, budget and the allow-listed rebuild functions."""

    def __init__(self, path: Path, byteorder: str) -> None:
        self.path = path
        self.byteorder = byteorder
        # The storages are the file's arrays: together no larger than the file.
        self.budget = _policy.FileBudget(path, available=path.stat().st_size)
        self.storages: dict[str, _Storage] = {}
        self.read_storage: Callable[[_Storage], None] | None = None
        self._mapped: np.ndarray | None = None
        self.file_size = path.stat().st_size
        self.view_bytes = 0

    def file_bytes(self) -> np.ndarray:
        """The whole file, memory-mapped once (read-only); storages are slices of it."""
        if self._mapped is None:
            size = self.path.stat().st_size
            self._mapped = np.memmap(self.path, dtype=np.uint8, mode="r") if size else np.zeros(0, np.uint8)
        return self._mapped

    # -- persistent ids: storages
    def storage(self, key: Any, storage_type: Any, numel: Any) -> _Storage:
        key = str(key)
        dtype_name = _dtype_name(storage_type)
        if not isinstance(numel, int) or isinstance(numel, bool) or numel < 0:
            raise TopoError(f"storage {key!r} declares no valid size")
        nbytes = numel * np.dtype(_STORED[dtype_name]).itemsize
        found = self.storages.get(key)
        if found is not None:
            return found
        self.budget.take(nbytes, f"storage {key!r}")
        storage = _Storage(key, dtype_name, nbytes)
        self.storages[key] = storage
        if self.read_storage is not None:
            self.read_storage(storage)
        return storage

    # -- REDUCE of a global
    def rebuild(self, func: InertGlobal, args: tuple) -> Any:
        handler = _REBUILDERS.get(func.qualname)
        if handler is None:
            return InertObject(func, args)
        return handler(self, *args)

    def tensor(self, storage: Any, offset: Any, size: Any, stride: Any, dtype_name: str | None = None) -> StoredTensor:
        if not isinstance(storage, _Storage):
            raise TopoError("tensor without a storage of the file")
        name = dtype_name or storage.dtype_name
        tensor = _strided(storage, name, offset, size, stride, self.path, self.byteorder)
        self.charge_view(tensor)
        return tensor

    def charge_view(self, tensor: StoredTensor) -> None:
        """Count what reading ``tensor`` will take: views of the file's storages, together, may
        repeat them only as far as a compressed archive may expand (many views of one storage)."""
        self.view_bytes += math.prod(tensor.shape) * np.dtype(_value_dtype(tensor.dtype_name)).itemsize
        check_declared_size(self.view_bytes, path=self.path, what="the tensors of this file together",
                            available=self.file_size, compressed=True, limit=_policy.limits().file_bytes)


def _rebuild_tensor(loader: _Loader, storage, offset, size, stride, *_rest):
    return loader.tensor(storage, offset, size, stride)


def _rebuild_tensor_v3(loader: _Loader, storage, offset, size, stride, requires_grad, hooks, dtype, *_rest):
    return loader.tensor(storage, offset, size, stride, _dtype_name(dtype))


def _rebuild_parameter(loader: _Loader, data, *_rest):
    if isinstance(data, StoredTensor):
        data.is_parameter = True
    return data


def _rebuild_from_type(loader: _Loader, func, new_type, args, *_rest):
    # A tensor subclass: rebuild the tensor itself (if ``func`` is allow-listed); the subclass is dropped.
    if isinstance(func, InertGlobal) and isinstance(args, tuple):
        return loader.rebuild(func, args)
    return InertObject(func, (new_type, args))


def _rebuild_sparse(loader: _Loader, layout, data, *_rest):
    if not isinstance(layout, str):
        layout = getattr(layout, "name", "") if isinstance(layout, InertGlobal) else ""
    return _sparse(layout.rpartition(".")[2], data, loader.path)


def _get_layout(loader: _Loader, name, *_rest):
    return str(name)


def _rebuild_qtensor(loader: _Loader, storage, offset, size, stride, qparams, *_rest):
    """A quantized tensor, dequantized: ``(q - zero_point) * scale`` (per tensor or per channel)."""
    q = loader.tensor(storage, offset, size, stride)
    if not isinstance(qparams, tuple) or not qparams or not isinstance(qparams[0], InertGlobal):
        raise TopoError("quantized tensor without its quantization parameters")
    scheme = qparams[0].name
    if scheme in ("per_tensor_affine", "per_tensor_symmetric") and len(qparams) >= 3:
        scale, zero = float(qparams[1]), float(qparams[2])
        if not (math.isfinite(scale) and math.isfinite(zero)):
            raise TopoError("quantized tensor with a non-finite scale or zero point")

        def read() -> np.ndarray:
            with np.errstate(over="ignore", invalid="ignore"):  # huge scales give inf, as torch does
                return ((q.array().astype(np.float32) - zero) * scale).astype(np.float32)
    elif scheme in ("per_channel_affine", "per_channel_symmetric", "per_channel_affine_float_qparams") \
            and len(qparams) >= 4 and isinstance(qparams[1], StoredTensor) and isinstance(qparams[2], StoredTensor):
        scales, zeros, axis = qparams[1], qparams[2], int(qparams[3])
        if not 0 <= axis < len(q.shape):
            raise TopoError(f"quantized tensor axis {axis} is outside its {len(q.shape)} dimensions")

        def read() -> np.ndarray:
            shape = [1] * len(q.shape)
            shape[axis] = -1
            s = np.asarray(scales.array(), dtype=np.float32).reshape(shape)
            z = np.asarray(zeros.array(), dtype=np.float32).reshape(shape)
            with np.errstate(over="ignore", invalid="ignore"):
                return ((q.array().astype(np.float32) - z) * s).astype(np.float32)
    else:
        raise TopoError(f"quantization scheme {scheme} is not one topo reads")
    return StoredTensor(q.shape, "float32", "strided", read)


def _plain_dict(loader: _Loader, *args):
    # OrderedDict() / OrderedDict(pairs) / defaultdict(factory): the items follow as SETITEMS.
    if args and isinstance(args[0], (list, tuple)):
        return dict(args[0])
    return {}


def _plain_set(loader: _Loader, items=(), *_rest):
    return set(items) if isinstance(items, (list, tuple, set, frozenset)) else set()


def _size(loader: _Loader, dims=(), *_rest):
    return _int_tuple(dims, "torch.Size")


def _encode(loader: _Loader, text="", encoding="latin1", *_rest):
    # Protocol 2 pickles bytes as _codecs.encode(str, "latin1").
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise TopoError("bytes encoded in an unexpected way")
    return text.encode("latin1")


def _device(loader: _Loader, *args):
    return ":".join(str(a) for a in args)


def _numpy_frombuffer(loader: _Loader, raw=None, dtype=None, shape=(), order="C", *_rest):
    array = _NumpyArray()
    array.fill(raw, dtype, shape, "F" if order == "F" else "C")
    return array


def _numpy_scalar(loader: _Loader, dtype=None, raw=b"", *_rest):
    if not isinstance(dtype, _NumpyDtype) or not dtype.numeric or not isinstance(raw, (bytes, bytearray)) \
            or len(raw) != dtype.dtype().itemsize:
        return None  # not a numeric scalar: left unread
    return np.frombuffer(bytes(raw), dtype=dtype.dtype())[0].item()


_REBUILDERS: dict[str, Callable[..., Any]] = {
    "torch._utils._rebuild_tensor": _rebuild_tensor,
    "torch._utils._rebuild_tensor_v2": _rebuild_tensor,
    "torch._utils._rebuild_tensor_v3": _rebuild_tensor_v3,
    "torch._utils._rebuild_parameter": _rebuild_parameter,
    "torch._utils._rebuild_parameter_with_state": _rebuild_parameter,
    "torch._utils._rebuild_sparse_tensor": _rebuild_sparse,
    "torch._utils._rebuild_qtensor": _rebuild_qtensor,
    "torch._utils._rebuild_from_type": _rebuild_from_type,
    "torch._utils._rebuild_from_type_v2": _rebuild_from_type,
    "torch._tensor._rebuild_from_type": _rebuild_from_type,
    "torch._tensor._rebuild_from_type_v2": _rebuild_from_type,
    "torch.serialization._get_layout": _get_layout,
    "torch.Size": _size,
    "torch.device": _device,
    "collections.OrderedDict": _plain_dict,
    "collections.defaultdict": _plain_dict,
    "builtins.set": _plain_set,
    "__builtin__.set": _plain_set,
    "builtins.frozenset": lambda loader, items=(), *_: frozenset(_plain_set(loader, items)),
    "__builtin__.frozenset": lambda loader, items=(), *_: frozenset(_plain_set(loader, items)),
    "_codecs.encode": _encode,
    # numpy arrays and scalars of numeric dtypes, rebuilt from their bytes by topo
    "numpy.dtype": lambda loader, code=None, *_: _NumpyDtype(code),
    "numpy.core.multiarray._reconstruct": lambda loader, *_: _NumpyArray(),
    "numpy._core.multiarray._reconstruct": lambda loader, *_: _NumpyArray(),
    "numpy.core.numeric._frombuffer": _numpy_frombuffer,
    "numpy._core.numeric._frombuffer": _numpy_frombuffer,
    "numpy.core.multiarray.scalar": _numpy_scalar,
    "numpy._core.multiarray.scalar": _numpy_scalar,
}


def _unpickle(handle: Any, end: int, loader: _Loader, persistent: Callable[[Any], Any]) -> Any:
    bounded = _BoundedFile(handle, end)
    unpickler = _InertUnpickler(bounded, rebuild=loader.rebuild, persistent=persistent, left=bounded._left)
    try:
        return unpickler.load()
    except TopoError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, KeyError, IndexError, TypeError,
            AttributeError, struct.error, UnicodeDecodeError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TopoError(f"not a readable torch file: truncated or corrupt pickle ({message[:200]})") from None


# -- zip archives -------------------------------------------------------------------------
def _member_data_offset(handle: Any, info: zipfile.ZipInfo) -> int:
    handle.seek(info.header_offset)
    header = handle.read(30)
    if len(header) != 30 or header[:4] != b"PK\x03\x04":
        raise TopoError(f"zip member {info.filename!r} has no valid local header (corrupt)")
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    return info.header_offset + 30 + name_len + extra_len


def load_zip(path: Path, archive: zipfile.ZipFile, pickle_name: str) -> Any:
    """Unpickle a zip-format ``torch.save`` file inertly; storages memory-mapped.

    Parameters
    ----------
    path : Path
        The file (for messages and memory maps).
    archive : zipfile.ZipFile
        The open archive.
    pickle_name : str
        Its ``<prefix>/data.pkl`` member.

    Returns
    -------
    object
        The unpickled object: dicts, lists, :class:`StoredTensor`,
        :class:`InertObject` records.

    Raises
    ------
    TopoError
        Corrupt, truncated, or over a size limit.

    Examples
    --------
    >>> import pathlib, tempfile, zipfile
    >>> import torch
    >>> class Exploit:
    ...     def __reduce__(self):  # what unpickling would call: print (os.system would do the same)
    ...         return (print, ("this never runs",))
    >>> temporary = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(temporary.name) / "model.pt"
    >>> torch.save({"fc.weight": torch.eye(2), "payload": Exploit()}, path)
    >>> with zipfile.ZipFile(path) as archive:
    ...     [name for name in archive.namelist() if name.endswith(".pkl")]
    ...     obj = load_zip(path, archive, "model/data.pkl")
    ['model/data.pkl']
    >>> obj["fc.weight"], obj["fc.weight"].array().tolist()
    (<tensor float32[2, 2] strided>, [[1.0, 0.0], [0.0, 1.0]])
    >>> obj["payload"]  # torch.save pickles at protocol 2, which names builtins the Python 2 way
    <inert __builtin__.print>
    >>> temporary.cleanup()
    """
    path = Path(path)
    prefix = pickle_name[: -len("data.pkl")]
    members = {info.filename: info for info in archive.infolist()}
    byteorder = "<"
    if f"{prefix}byteorder" in members:
        order = archive.read(f"{prefix}byteorder").strip()
        if order not in (b"little", b"big"):
            raise TopoError(f"unknown byte order {order[:20]!r}", path=path)
        byteorder = "<" if order == b"little" else ">"
    loader = _Loader(path, byteorder)
    file_size = path.stat().st_size

    def read_storage(storage: _Storage) -> None:
        info = members.get(f"{prefix}data/{storage.key}")
        if info is None:
            raise TopoError(f"storage {storage.key!r} is missing from the archive (truncated or corrupt)")
        if info.compress_type == zipfile.ZIP_STORED:
            check_declared_size(storage.nbytes, path=path, what=f"storage {storage.key!r}", available=info.file_size)
            with open(path, "rb") as handle:
                start = _member_data_offset(handle, info)
            if start + storage.nbytes > file_size:
                raise TopoError(f"storage {storage.key!r} runs past the end of the file (truncated)")
            storage.raw = loader.file_bytes()[start:start + storage.nbytes]
        else:
            check_declared_size(storage.nbytes, path=path, what=f"storage {storage.key!r}",
                                available=info.compress_size, compressed=True)
            if info.file_size < storage.nbytes:
                raise TopoError(f"storage {storage.key!r} is shorter than declared (truncated or corrupt)")
            with archive.open(info) as member:
                storage.raw = np.frombuffer(member.read(storage.nbytes), dtype=np.uint8)

    loader.read_storage = read_storage

    def persistent(pid: Any) -> Any:
        if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage":
            raise TopoError(f"unknown persistent id in the pickle ({str(pid)[:80]})")
        _, storage_type, key, _location, numel = pid[:5]
        return loader.storage(key, storage_type, numel)

    info = members[pickle_name]
    check_declared_size(info.file_size, path=path, what="data.pkl", limit=MAX_PICKLE_BYTES)
    data = archive.read(info)
    return _unpickle(io.BytesIO(data), len(data), loader, persistent)


# -- legacy files ---------------------------------------------------------------------------
def load_legacy(path: Path) -> Any:
    """Unpickle a legacy (non-zip) ``torch.save`` file inertly.

    The file is four pickles (magic number, protocol version, system info, the
    object) and the list of storage keys, followed by each storage as an int64
    element count and its raw bytes.

    Parameters
    ----------
    path : Path
        The file.

    Returns
    -------
    object
        As :func:`load_zip`.

    Raises
    ------
    TopoError
        Not a legacy torch file, corrupt, truncated, or over a size limit.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import torch
    >>> temporary = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(temporary.name) / "old.pt"
    >>> torch.save({"fc.weight": torch.tensor([[0.0, 2.0]])}, path, _use_new_zipfile_serialization=False)
    >>> obj = load_legacy(path)
    >>> obj["fc.weight"], obj["fc.weight"].array().tolist()
    (<tensor float32[1, 2] strided>, [[0.0, 2.0]])
    >>> _ = path.write_bytes(path.read_bytes()[:-4])  # cut short inside the storage
    >>> load_legacy(path)  # the readers add the file's name (see topo.formats.pytorch.read)
    Traceback (most recent call last):
    ...
    topo.errors.TopoError: storage '...' runs past the end of the file (truncated)
    >>> temporary.cleanup()
    """
    path = Path(path)
    size = path.stat().st_size
    loader = _Loader(path, "<")
    views: list[tuple[_Storage, _Storage, int]] = []  # (view, root, element offset)

    def persistent(pid: Any) -> Any:
        if not isinstance(pid, tuple) or not pid:
            raise TopoError("unknown persistent id in the pickle")
        if pid[0] == "module":  # the class's source code, saved for a warning: never used
            return InertObject(pid[1] if len(pid) > 1 else None)
        if pid[0] != "storage" or len(pid) < 5:
            raise TopoError(f"unknown persistent id in the pickle ({str(pid)[:80]})")
        storage_type, root_key, _location, numel = pid[1:5]
        view = pid[5] if len(pid) > 5 else None
        root = loader.storage(root_key, storage_type, numel)
        if view is None:
            return root
        view_key, view_offset, view_size = view
        itemsize = np.dtype(_STORED[root.dtype_name]).itemsize
        if not all(isinstance(v, int) and v >= 0 for v in (view_offset, view_size)) or \
                (view_offset + view_size) * itemsize > root.nbytes:
            raise TopoError("storage view reaches past its storage (corrupt)")
        sub = _Storage(str(view_key), root.dtype_name, view_size * itemsize)
        views.append((sub, root, view_offset * itemsize))
        return sub

    with open(path, "rb") as handle:
        def header() -> Any:
            return _unpickle(handle, size, loader, lambda pid: (_ for _ in ()).throw(
                TopoError("unexpected persistent id in the file header")))

        if header() != LEGACY_MAGIC_NUMBER:
            raise TopoError("not a torch file (wrong magic number)")
        if header() != _LEGACY_PROTOCOL:
            raise TopoError("legacy torch file of an unknown protocol version")
        info = header()
        if isinstance(info, dict) and info.get("little_endian") is False:
            loader.byteorder = ">"
        result = _unpickle(handle, size, loader, persistent)
        keys = header()
        if not isinstance(keys, list):
            raise TopoError("legacy torch file without its storage list (corrupt)")
        for key in keys:
            storage = loader.storages.get(str(key))
            if storage is None:
                raise TopoError(f"storage {key!r} listed but never used (corrupt)")
            count = handle.read(8)
            if len(count) != 8:
                raise TopoError("legacy torch file ends before its storages (truncated)")
            (numel,) = struct.unpack("<q", count)
            itemsize = np.dtype(_STORED[storage.dtype_name]).itemsize
            if numel * itemsize != storage.nbytes:
                raise TopoError(f"storage {key!r} holds {numel} elements, not the {storage.nbytes // itemsize} declared")
            start = handle.tell()
            if start + storage.nbytes > size:
                raise TopoError(f"storage {key!r} runs past the end of the file (truncated)")
            storage.raw = loader.file_bytes()[start:start + storage.nbytes]
            handle.seek(start + storage.nbytes)
    for sub, root, start in views:
        if root.raw is not None:
            sub.raw = root.raw[start:start + sub.nbytes]
    return result


# -- records as state dicts ------------------------------------------------------------------
def _state_dict_of(record: InertObject) -> dict | None:
    state = record.state
    if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], dict):
        state = state[0]  # (__dict__, slots)
    return state if isinstance(state, dict) else None


def is_module_record(value: Any) -> bool:
    """Whether ``value`` is the record of a pickled ``torch.nn.Module`` (or a look-alike).

    Parameters
    ----------
    value : object
        Anything an inert load returned.

    Returns
    -------
    bool
        True for an :class:`InertObject` whose state has ``_parameters`` and ``_modules`` dicts.

    Examples
    --------
    >>> record = InertObject(InertGlobal("torch.nn.modules.linear", "Linear"))
    >>> is_module_record(record)
    False
    >>> record.state = {"_parameters": {}, "_buffers": {}, "_modules": {}}
    >>> is_module_record(record), is_module_record({"_parameters": {}})
    (True, False)
    """
    if not isinstance(value, InertObject):
        return False
    state = _state_dict_of(value)
    return state is not None and isinstance(state.get("_parameters"), dict) and isinstance(state.get("_modules"), dict)


def plain(obj: Any) -> Any:
    """Replace records by plain values: a module by its state dict, others by their state.

    A pickled module becomes a dict of its parameters, then its buffers (non-persistent
    ones included: they hold masks such as ``FakeSparsity.mask``), then its submodules'
    entries, keyed like ``state_dict()``. Another record becomes its state where that
    is a dict (with what ``SETITEMS`` stored), else what it held, else None.
    Dicts, lists and tuples are rebuilt; tensors and numbers are kept.

    Parameters
    ----------
    obj : object
        What :func:`load_zip` or :func:`load_legacy` returned.

    Returns
    -------
    object
        Dicts, lists, numbers, strings and :class:`StoredTensor` only.

    Raises
    ------
    TopoError
        More than :data:`MAX_ENTRIES` entries (shared references can make a small
        pickle a huge tree).

    Examples
    --------
    A whole pickled model becomes nested dicts keyed like its ``state_dict()``:

    >>> import pathlib, tempfile, zipfile
    >>> import torch
    >>> temporary = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(temporary.name) / "model.pt"
    >>> torch.save(torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU()), path)
    >>> with zipfile.ZipFile(path) as archive:
    ...     record = load_zip(path, archive, "model/data.pkl")
    >>> record, is_module_record(record)
    (<inert torch.nn.modules.container.Sequential>, True)
    >>> tree = plain(record)
    >>> sorted(tree), sorted(tree["0"]), tree["0"]["weight"].shape, tree["1"]
    (['0', '1'], ['bias', 'weight'], (2, 3), {})
    >>> temporary.cleanup()
    """
    visits = [0]
    done: dict[int, tuple[Any, Any]] = {}

    def walk(value: Any) -> Any:
        visits[0] += 1
        if visits[0] > MAX_ENTRIES:
            raise TopoError(f"refused: the pickle unfolds into more than {MAX_ENTRIES:,} entries")
        if isinstance(value, (StoredTensor, str, bytes, int, float, bool, type(None))):
            return value
        if isinstance(value, _NumpyArray):
            return value.tensor
        key = id(value)
        if key in done:
            return done[key][1]
        done[key] = (value, None)  # the value is kept alive so that its id is not reused; a cycle sees None
        if isinstance(value, InertObject):
            out = walk(_module_entries(value) if is_module_record(value) else _record_content(value))
        elif isinstance(value, dict):
            out = {k: walk(v) for k, v in value.items()}
        elif isinstance(value, (list, tuple)):
            out = [walk(v) for v in value]
        else:
            out = None
        done[key] = (value, out)
        return out

    return walk(obj)


def _record_content(record: InertObject) -> Any:
    state = _state_dict_of(record)
    if state is not None or record.entries:
        merged = dict(state or {})
        merged.update(record.entries)
        return merged
    if record.items:
        return list(record.items)
    return None


def _module_entries(record: InertObject) -> dict:
    """A module record's tensors keyed like ``state_dict()``, submodules nested by name."""
    state = _state_dict_of(record) or {}
    out: dict[str, Any] = {}
    for group in ("_parameters", "_buffers"):
        holder = state.get(group)
        if isinstance(holder, dict):
            for name, value in holder.items():
                if isinstance(value, StoredTensor):
                    out[str(name)] = value
    groups = state.get("groups")
    if isinstance(groups, int) and not isinstance(groups, bool) and groups > 1:
        out["__groups__"] = groups  # a convolution's groups: the channel matrix is block diagonal
    modules = state.get("_modules")
    if isinstance(modules, dict):
        for name, child in modules.items():
            if child is not None:
                out[str(name)] = child  # walked (and flattened) by the caller
    return out
