"""Tests for topo.training.data and `topo data`: every real file format, written small."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from topo.errors import TopoError
from topo.training import data
from topo.training import download as dl
from topo.training.data import Dataset, load_dataset, read_idx, stratified_split
from topo_cli.main import main


# -- writing the real formats, small ---------------------------------------------------
def idx_bytes(array: np.ndarray) -> bytes:
    codes = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09, np.dtype("i2"): 0x0B,
             np.dtype("i4"): 0x0C, np.dtype("f4"): 0x0D, np.dtype("f8"): 0x0E}
    code = codes[array.dtype.newbyteorder("=")]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray, *, compress: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = idx_bytes(array)
    path.write_bytes(gzip.compress(payload) if compress else payload)
    return path


def make_images(n: int, side: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, side, side), dtype=np.uint8)


def balanced_labels(n: int, classes, seed: int) -> np.ndarray:
    labels = np.resize(np.asarray(classes), n)
    return np.random.default_rng(seed).permutation(labels).astype(np.uint8)


def write_mnist_like(folder: Path, *, prefix: str = "", n_train=60, n_test=20, side=4,
                     classes=range(5), compress_train=True, compress_test=False, transpose=False):
    """Write the four IDX files; returns the upright images and labels as stored."""
    train_images, test_images = make_images(n_train, side, 1), make_images(n_test, side, 2)
    train_labels = balanced_labels(n_train, list(classes), 3)
    test_labels = balanced_labels(n_test, list(classes), 4)
    test_name = "test" if prefix else "t10k"
    stored = (lambda a: a.transpose(0, 2, 1).copy()) if transpose else (lambda a: a)
    for stem, array, compress in (
        ("train-images-idx3-ubyte", stored(train_images), compress_train),
        ("train-labels-idx1-ubyte", train_labels, compress_train),
        (f"{test_name}-images-idx3-ubyte", stored(test_images), compress_test),
        (f"{test_name}-labels-idx1-ubyte", test_labels, compress_test),
    ):
        write_idx(folder / f"{prefix}{stem}{'.gz' if compress else ''}", array, compress=compress)
    return train_images, train_labels, test_images, test_labels


def covtype_table(n: int, seed: int = 0) -> np.ndarray:
    """Rows like covtype.data: 10 quantitative columns, 44 binary ones, then the label 1..7.

    Column 0 is the row number, so tests can tell which row ended up where.
    """
    rng = np.random.default_rng(seed)
    quantitative = rng.integers(0, 3000, size=(n, 10))
    quantitative[:, 0] = np.arange(n)
    binary = rng.integers(0, 2, size=(n, 44))
    binary[:, 5] = 0  # a constant column: its std is 0
    labels = np.resize(np.arange(1, 8), n)
    return np.column_stack([quantitative, binary, labels]).astype(np.int64)


COVTYPE_HEADER = (
    ["Elevation", "Aspect", "Slope", "Horizontal_Distance_To_Hydrology", "Vertical_Distance_To_Hydrology",
     "Horizontal_Distance_To_Roadways", "Hillshade_9am", "Hillshade_Noon", "Hillshade_3pm",
     "Horizontal_Distance_To_Fire_Points"]
    + [f"Wilderness_Area{i}" for i in range(1, 5)]
    + [f"Soil_Type{i}" for i in range(1, 41)]
    + ["Cover_Type"]
)


def table_text(table: np.ndarray, header=None) -> str:
    lines = [",".join(header)] if header else []
    lines += [",".join(str(v) for v in row) for row in table.tolist()]
    return "\n".join(lines) + "\n"


@pytest.fixture(autouse=True)
def no_ambient_data(request, monkeypatch, tmp_path):
    """Tests see no TOPO_DATA_DIR / mirror from the environment, and an empty cache
    (except the tests of the real data, which find it through TOPO_DATA_DIR)."""
    if "shared_data" in request.fixturenames:
        return
    monkeypatch.delenv("TOPO_DATA_DIR", raising=False)
    monkeypatch.delenv("TOPO_DATA_MIRROR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


def check_dataset(ds: Dataset, n_features: int, n_classes: int) -> None:
    for X, y in ((ds.X_train, ds.y_train), (ds.X_val, ds.y_val), (ds.X_test, ds.y_test)):
        assert X.dtype == np.float32 and X.ndim == 2 and X.shape[1] == n_features
        assert y.dtype == np.int64 and y.ndim == 1 and len(y) == len(X)
        if len(y):
            assert y.min() >= 0 and y.max() < n_classes
    assert ds.n_features == n_features and ds.n_classes == n_classes


def rows_of(X: np.ndarray) -> set:
    return {row.tobytes() for row in X}


# -- IDX ---------------------------------------------------------------------------------
@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_round_trip_and_byte_order(tmp_path, compress):
    images = make_images(3, 5, 0)
    assert np.array_equal(read_idx(write_idx(tmp_path / "a", images, compress=compress), ndim=3), images)
    shorts = np.array([[1, -2, 300], [40000 - 65536, 7, 0]], dtype=np.int16)
    back = read_idx(write_idx(tmp_path / "b", shorts, compress=compress))
    assert back.dtype == np.int16 and back.dtype.isnative and np.array_equal(back, shorts)


def test_read_idx_rejects_truncated_corrupt_and_wrong_files(tmp_path):
    payload = idx_bytes(make_images(4, 6, 0))
    cut = tmp_path / "train-images-idx3-ubyte"
    cut.write_bytes(payload[:-10])
    with pytest.raises(TopoError, match="truncated IDX file") as err:
        read_idx(cut)
    assert str(cut) in str(err.value)

    cut_gz = tmp_path / "train-images-idx3-ubyte.gz"
    cut_gz.write_bytes(gzip.compress(payload)[:-30])
    with pytest.raises(TopoError, match="gzip") as err:
        read_idx(cut_gz)
    assert str(cut_gz) in str(err.value)

    longer = tmp_path / "longer"
    longer.write_bytes(payload + b"\0\0")
    with pytest.raises(TopoError, match="2 bytes after"):
        read_idx(longer)
    bad_magic = tmp_path / "bad"
    bad_magic.write_bytes(b"\x01\x02" + payload[2:])
    with pytest.raises(TopoError, match="not an IDX file"):
        read_idx(bad_magic)
    with pytest.raises(TopoError, match="expected 1-dimensional"):
        read_idx(write_idx(tmp_path / "ok", make_images(2, 2, 0), compress=False), ndim=1)


def test_truncated_mnist_file_is_a_topo_error_naming_it(tmp_path):
    write_mnist_like(tmp_path / "mnist")
    victim = tmp_path / "mnist" / "t10k-images-idx3-ubyte"
    victim.write_bytes(victim.read_bytes()[:100])
    with pytest.raises(TopoError, match="truncated") as err:
        load_dataset("mnist", data_dir=tmp_path)
    assert str(victim) in str(err.value)


def test_mnist_gzip_and_plain_files_scaled_flattened_split(tmp_path):
    train_images, train_labels, test_images, test_labels = write_mnist_like(tmp_path / "mnist")
    ds = load_dataset("mnist", data_dir=tmp_path, val_fraction=0.1, seed=0)
    check_dataset(ds, 16, 5)
    assert ds.source == str(tmp_path / "mnist")
    # test part: the stored order, scaled to [0, 1], flattened row by row
    assert np.allclose(ds.X_test, test_images.reshape(20, 16) / 255.0, atol=1e-7)
    assert np.array_equal(ds.y_test, test_labels)
    assert ds.X_train.min() >= 0 and ds.X_train.max() <= 1
    # validation: 10% of the training set, stratified (60 rows, 5 classes -> 6 rows, 1+ per class)
    assert len(ds.y_val) == 6 and len(ds.y_train) == 54
    assert sorted(np.bincount(ds.y_val, minlength=5)) == [1, 1, 1, 1, 2]  # 1.2 per class, largest remainder
    stored_rows = train_images.reshape(60, 16).astype(np.float32) / 255.0
    assert rows_of(np.vstack([ds.X_train, ds.X_val])) == rows_of(stored_rows)
    assert not rows_of(ds.X_train) & rows_of(ds.X_val)


def test_fashion_mnist_found_in_the_data_folder_itself(tmp_path):
    write_mnist_like(tmp_path, compress_train=False, compress_test=True)
    ds = load_dataset("fashion-mnist", data_dir=tmp_path, val_fraction=0)
    assert ds.source == str(tmp_path) and len(ds.y_train) == 60 and len(ds.y_test) == 20
    assert ds.X_val.shape == (0, 16) and ds.y_val.shape == (0,)
    assert ds.X_val.dtype == np.float32 and ds.y_val.dtype == np.int64


def test_emnist_images_transposed_back_and_labels_remapped(tmp_path):
    # letters: labels 1..26 in the real files; here 1..4, stored transposed
    train_images, train_labels, test_images, test_labels = write_mnist_like(
        tmp_path / "emnist", prefix="emnist-letters-", classes=[1, 2, 3, 4], side=5,
        transpose=True, compress_test=True,
    )
    ds = load_dataset("emnist-letters", data_dir=tmp_path, val_fraction=0.25)
    check_dataset(ds, 25, 4)
    assert np.allclose(ds.X_test, test_images.reshape(20, 25) / 255.0, atol=1e-7)
    assert np.array_equal(ds.y_test, test_labels.astype(np.int64) - 1)
    assert len(ds.y_val) == 15 and sorted(np.bincount(ds.y_val)) == [3, 4, 4, 4]  # 3.75 per class
    assert sorted(np.unique(ds.y_train)) == [0, 1, 2, 3]


def test_emnist_found_in_the_gzip_folder_of_the_official_zip(tmp_path):
    write_mnist_like(tmp_path / "emnist" / "gzip", prefix="emnist-digits-", classes=range(10), n_train=40, n_test=10,
                     compress_test=True)
    ds = load_dataset("emnist-digits", data_dir=tmp_path, val_fraction=0)
    assert ds.source == str(tmp_path / "emnist" / "gzip") and ds.n_classes == 10


# -- tabular -----------------------------------------------------------------------------
def recover_row_numbers(ds: Dataset, n: int):
    """Column 0 holds the row number: undo the (one, shared) affine scaling to read it back."""
    scaled = np.concatenate([ds.X_train[:, 0], ds.X_val[:, 0], ds.X_test[:, 0]]).astype(np.float64)
    order = np.argsort(scaled)
    slope, intercept = np.polyfit(scaled[order], np.arange(n), 1)
    rows = np.rint(scaled * slope + intercept).astype(np.int64)
    assert np.array_equal(np.sort(rows), np.arange(n))  # one affine map for every part
    return rows, intercept, slope


def test_covtype_data_gz_without_header_standardised_on_training_part(tmp_path):
    table = covtype_table(300)
    (tmp_path / "covtype").mkdir()
    (tmp_path / "covtype" / "covtype.data.gz").write_bytes(gzip.compress(table_text(table).encode()))
    ds = load_dataset("covtype", data_dir=tmp_path, val_fraction=0.1, seed=3)
    check_dataset(ds, 54, 7)
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (216, 24, 60)
    # every class keeps its share in every part (300 rows, 7 classes cycling)
    for y in (ds.y_train, ds.y_val, ds.y_test):
        shares = np.bincount(y, minlength=7) / len(y)
        assert np.abs(shares - np.bincount(table[:, -1] - 1) / 300).max() < 0.05
    # standardised with the training part's statistics: mean 0 / std 1 there alone
    varying = np.ones(54, dtype=bool)
    varying[10 + 5] = False
    assert np.abs(ds.X_train[:, varying].mean(axis=0)).max() < 1e-5
    assert np.abs(ds.X_train[:, varying].std(axis=0) - 1).max() < 1e-4
    assert np.all(ds.X_train[:, ~varying] == 0) and np.all(ds.X_test[:, ~varying] == 0)  # std 0 -> 1
    rows, mean, std = recover_row_numbers(ds, 300)
    train_rows = rows[: len(ds.y_train)]
    assert mean == pytest.approx(train_rows.mean(), abs=1e-3)
    assert std == pytest.approx(train_rows.std(), rel=1e-4)
    # (statistics of all 300 rows would differ: the check above tells them apart)
    assert abs(train_rows.mean() - np.arange(300).mean()) > 1e-3
    # labels follow their rows, remapped 1..7 -> 0..6
    test_rows = rows[len(ds.y_train) + len(ds.y_val):]
    assert np.array_equal(ds.y_test, table[test_rows, -1] - 1)
    # features follow their rows: column 1, scaled with the training rows' statistics
    col = table[:, 1].astype(np.float64)
    expected = (col[test_rows] - col[train_rows].mean()) / col[train_rows].std()
    assert np.allclose(ds.X_test[:, 1], expected, atol=1e-5)


def test_covtype_plain_data_file_and_csv_with_cover_type(tmp_path):
    table = covtype_table(140, seed=5)
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "covtype.data").write_text(table_text(table))
    plain = load_dataset("covtype", data_dir=tmp_path / "plain", seed=1)
    check_dataset(plain, 54, 7)

    folder = tmp_path / "kaggle" / "covtype"
    folder.mkdir(parents=True)
    with_id = np.column_stack([np.arange(1, 141), table])
    (folder / "covtype-sample-15k.csv").write_text(table_text(with_id, ["Id"] + COVTYPE_HEADER))
    csv = load_dataset("covtype", data_dir=tmp_path / "kaggle", seed=1)
    check_dataset(csv, 54, 7)  # the Id column is not a feature
    assert csv.source.endswith("covtype-sample-15k.csv")
    # same rows, same seed: the same split and scaling as the headerless file
    assert np.allclose(csv.X_test, plain.X_test) and np.array_equal(csv.y_test, plain.y_test)


def test_csv_path_with_label_column(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(5.0, 3.0, size=(90, 3))
    y = np.resize(np.array([10, 20, 30]), 90)
    path = tmp_path / "table.csv"
    path.write_text("a,b,target,c\n" + "".join(f"{r[0]},{r[1]},{t},{r[2]}\n" for r, t in zip(X, y)))
    ds = load_dataset(str(path), val_fraction=0.2, seed=0)
    check_dataset(ds, 3, 3)
    assert ds.source == str(path) and len(ds.y_test) == 18 and len(ds.y_val) == 14
    assert np.abs(ds.X_train.mean(axis=0)).max() < 1e-5

    named = tmp_path / "iris.csv"
    species = ["setosa", "virginica", "versicolor"] * 20
    named.write_text("x1,species,x2\n" + "".join(f"{i},{s},{i * 2}\n" for i, s in enumerate(species)))
    ds = load_dataset(str(named), label_column="species", val_fraction=0)
    check_dataset(ds, 2, 3)
    with pytest.raises(TopoError, match="no label column") as err:
        load_dataset(str(named))
    assert str(named) in str(err.value)
    bad = tmp_path / "bad.csv"
    bad.write_text("x,label\n1,0\nfoo,1\n")
    with pytest.raises(TopoError, match=r"row 3, column 'x'"):
        load_dataset(str(bad))


def test_npz_path(tmp_path):
    images = make_images(40, 3, 7)
    path = tmp_path / "set.npz"
    np.savez(path, X_train=images, y_train=np.resize([3, 5, 7, 9], 40), X_test=images[:8], y_test=np.resize([9, 7], 8))
    ds = load_dataset(str(path), val_fraction=0.25, seed=2)
    check_dataset(ds, 9, 4)
    assert np.allclose(ds.X_test, images[:8].reshape(8, 9) / 255.0)
    assert np.array_equal(ds.y_test, np.resize([3, 2], 8))  # 3,5,7,9 -> 0..3
    assert len(ds.y_val) == 10

    floats = tmp_path / "floats.npz"
    Xf = np.arange(24, dtype=np.float64).reshape(6, 4) * 10
    np.savez(floats, X_train=Xf, y_train=np.array([0, 1] * 3), X_test=Xf[:2], y_test=np.array([0, 1]),
             X_val=Xf[2:4], y_val=np.array([1, 0]))
    ds = load_dataset(str(floats), val_fraction=0.5)
    assert np.array_equal(ds.X_train, Xf.astype(np.float32)) and np.array_equal(ds.y_val, [1, 0])  # as stored

    broken = tmp_path / "broken.npz"
    np.savez(broken, X_train=Xf, y_train=np.zeros(6))
    with pytest.raises(TopoError, match="missing arrays X_test, y_test"):
        load_dataset(str(broken))


def test_digits_is_the_default_scaled_with_a_stratified_test_split():
    ds = load_dataset()
    check_dataset(ds, 64, 10)
    assert ds.name == "digits"
    assert len(ds.y_train) + len(ds.y_val) + len(ds.y_test) == 1797
    assert len(ds.y_test) == round(0.2 * 1797)
    assert ds.X_train.min() == 0 and ds.X_train.max() == 1
    assert np.bincount(ds.y_test).min() >= 35


# -- splits ------------------------------------------------------------------------------
def test_splits_reproducible_with_a_seed_and_different_without():
    a = load_dataset("digits", seed=4)
    b = load_dataset("digits", seed=4)
    c = load_dataset("digits", seed=5)
    for name in ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.y_val, c.y_val) or not np.array_equal(a.X_val, c.X_val)


def test_stratified_split_sizes_and_shares():
    labels = np.repeat([0, 1, 2], [50, 30, 20])
    keep, split = stratified_split(labels, 0.1, seed=0)
    assert len(split) == 10 and np.array_equal(np.bincount(labels[split]), [5, 3, 2])
    assert np.array_equal(np.sort(np.concatenate([keep, split])), np.arange(100))
    keep2, split2 = stratified_split(labels, 0.1, seed=0)
    assert np.array_equal(split, split2)
    _, split3 = stratified_split(labels, 0.15, seed=0)  # 15 rows: 7.5 / 4.5 / 3 -> largest remainders
    assert len(split3) == 15 and np.bincount(labels[split3]).tolist() in ([8, 4, 3], [7, 5, 3])
    assert len(stratified_split(labels, 0.0)[1]) == 0
    with pytest.raises(TopoError):
        stratified_split(labels, 1.0)


# -- where files are ---------------------------------------------------------------------
def test_data_home_precedence(tmp_path, monkeypatch):
    assert data.data_home() == tmp_path / "xdg-cache" / "topo"
    monkeypatch.setenv("TOPO_DATA_DIR", str(tmp_path / "env"))
    assert data.data_home() == tmp_path / "env"
    assert data.data_home(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("TOPO_DATA_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data.data_home() == tmp_path / "home" / ".cache" / "topo"


def test_missing_files_one_message_naming_files_folders_and_download(tmp_path):
    with pytest.raises(TopoError) as err:
        load_dataset("mnist")
    message = str(err.value)
    cache = tmp_path / "xdg-cache" / "topo"
    for expected in ("train-images-idx3-ubyte(.gz)", "t10k-labels-idx1-ubyte(.gz)", str(cache / "mnist"), str(cache),
                     "topo data download mnist"):
        assert expected in message
    assert "\n" not in message
    # only the missing ones are named when some are present
    write_mnist_like(tmp_path / "d" / "covtype")  # wrong folder for covtype's files
    with pytest.raises(TopoError, match=r"covtype\.data\(\.gz\).*topo data download covtype"):
        load_dataset("covtype", data_dir=tmp_path / "d")
    with pytest.raises(TopoError, match="gzip.zip"):
        load_dataset("emnist-byclass", data_dir=tmp_path)
    with pytest.raises(TopoError, match="unknown data set 'cifar'"):
        load_dataset("cifar")


# -- downloads ---------------------------------------------------------------------------
class Server:
    """A small HTTP server with Range support, serving bytes from a dict."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.log: list[tuple[str, str | None]] = []
        self.ignore_range = False
        self.cut_once: dict[str, int] = {}  # path -> bytes to send before dropping the connection
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def do_GET(self):
                server.log.append((self.path, self.headers.get("Range")))
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if match and not server.ignore_range:
                    start = int(match.group(1))
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                cut = server.cut_once.pop(self.path, None)
                self.wfile.write(body[start:] if cut is None else body[start:start + cut])
                self.wfile.flush()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = Server()
    yield srv
    srv.close()


def md5(payload: bytes) -> str:
    return hashlib.md5(payload).hexdigest()


def serve_mnist_like(server: Server, tmp_path: Path, prefix: str, monkeypatch,
                     dataset: str = "mnist") -> dict[str, bytes]:
    """Small gzip IDX files under their real names, with the table pointed at their md5s."""
    source = tmp_path / "source"
    write_mnist_like(source, n_train=200, n_test=50, side=8, compress_test=True)
    payloads = {p.name: p.read_bytes() for p in source.iterdir()}
    for name, payload in payloads.items():
        server.files[f"{prefix}/{name}"] = payload
    monkeypatch.setitem(dl.DOWNLOAD_FILES, dataset, {name: (md5(p), None) for name, p in payloads.items()})
    return payloads


def test_download_verifies_and_loads(server, tmp_path, monkeypatch):
    payloads = serve_mnist_like(server, tmp_path, "/files", monkeypatch)
    calls = []
    folder = dl.download("mnist", data_dir=tmp_path / "data", base_url=server.url + "/files",
                           progress=lambda done, total: calls.append((done, total)))
    assert folder == tmp_path / "data" / "mnist"
    for name, payload in payloads.items():
        assert (folder / name).read_bytes() == payload
    assert not list(folder.glob("*.part"))
    assert calls[-1] == (sum(map(len, payloads.values())),) * 2
    assert all(d2 >= d1 for (d1, _), (d2, _) in zip(calls, calls[1:]))
    ds = load_dataset("mnist", data_dir=tmp_path / "data")
    assert len(ds.y_train) + len(ds.y_val) == 200 and ds.n_features == 64
    # a second call finds the files complete and fetches nothing
    server.log.clear()
    dl.download("mnist", data_dir=tmp_path / "data", base_url=server.url + "/files")
    assert server.log == []


def test_download_checksum_mismatch_leaves_no_file(server, tmp_path, monkeypatch):
    serve_mnist_like(server, tmp_path, "", monkeypatch)
    with pytest.raises(TopoError, match="checksum mismatch") as err:
        dl.download("mnist", data_dir=tmp_path / "data", base_url=server.url,
                      checksums={"train-images-idx3-ubyte.gz": "0" * 32})
    assert "train-images-idx3-ubyte.gz" in str(err.value)
    assert not (tmp_path / "data" / "mnist" / "train-images-idx3-ubyte.gz").exists()
    assert not list((tmp_path / "data" / "mnist").glob("*.part"))


def test_download_resumes_a_partial_file_with_a_range_request(server, tmp_path, monkeypatch):
    payloads = serve_mnist_like(server, tmp_path, "", monkeypatch)
    name = "train-images-idx3-ubyte.gz"
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    half = len(payloads[name]) // 2
    (folder / f"{name}.part").write_bytes(payloads[name][:half])
    dl.download("mnist", data_dir=tmp_path / "data", base_url=server.url)
    assert (f"/{name}", f"bytes={half}-") in server.log
    assert (folder / name).read_bytes() == payloads[name]


def test_download_restarts_when_the_server_ignores_range(server, tmp_path, monkeypatch):
    payloads = serve_mnist_like(server, tmp_path, "", monkeypatch)
    server.ignore_range = True
    name = "t10k-images-idx3-ubyte.gz"
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    (folder / f"{name}.part").write_bytes(payloads[name][:100])
    dl.download("mnist", data_dir=tmp_path / "data", base_url=server.url)
    assert (folder / name).read_bytes() == payloads[name]


def test_download_interrupted_keeps_part_and_next_call_resumes(server, tmp_path, monkeypatch):
    payloads = serve_mnist_like(server, tmp_path, "", monkeypatch)
    name = "train-images-idx3-ubyte.gz"
    server.cut_once[f"/{name}"] = 1000
    with pytest.raises(TopoError, match="could not download train-images-idx3-ubyte.gz.*kept"):
        dl.download("mnist", data_dir=tmp_path / "data", base_url=server.url, timeout=5)
    part = tmp_path / "data" / "mnist" / f"{name}.part"
    assert part.stat().st_size == 1000
    dl.download("mnist", data_dir=tmp_path / "data", base_url=server.url)
    assert (f"/{name}", "bytes=1000-") in server.log
    assert (tmp_path / "data" / "mnist" / name).read_bytes() == payloads[name]


def test_download_from_mirror_env_and_unreachable_urls(server, tmp_path, monkeypatch):
    serve_mnist_like(server, tmp_path, "/mirror/fashion-mnist", monkeypatch, dataset="fashion-mnist")
    monkeypatch.setenv("TOPO_DATA_MIRROR", server.url + "/mirror/")
    folder = dl.download("fashion-mnist", data_dir=tmp_path / "data")
    assert len(list(folder.glob("*.gz"))) == 4
    with pytest.raises(TopoError, match="HTTP 404"):
        dl.download("mnist", data_dir=tmp_path / "data", base_url=server.url + "/nothing-here")


def test_download_covtype_checked_by_content(server, tmp_path, monkeypatch):
    table = covtype_table(70)
    server.files["/covtype.data.gz"] = gzip.compress(table_text(table).encode())
    monkeypatch.setattr(dl, "COVTYPE_ROWS", 70)
    folder = dl.download("covtype", data_dir=tmp_path / "data", base_url=server.url)
    assert (folder / "covtype.data.gz").exists()
    assert load_dataset("covtype", data_dir=tmp_path / "data").n_features == 54
    monkeypatch.setattr(dl, "COVTYPE_ROWS", 581_012)
    with pytest.raises(TopoError, match="70 rows, expected 581,012"):
        dl.download("covtype", data_dir=tmp_path / "other", base_url=server.url)
    assert not list((tmp_path / "other" / "covtype").iterdir())


def test_download_emnist_says_where_to_get_it(tmp_path):
    with pytest.raises(TopoError, match=r"nist\.gov.*emnist-letters-train-images-idx3-ubyte\.gz") as err:
        dl.download("emnist-letters", data_dir=tmp_path)
    assert str(tmp_path / "emnist") in str(err.value)


# -- the command line --------------------------------------------------------------------
def test_cli_data_download_and_list(server, tmp_path, monkeypatch):
    serve_mnist_like(server, tmp_path, "/fm", monkeypatch, dataset="fashion-mnist")
    runner = CliRunner()
    result = runner.invoke(main, ["data", "download", "fashion-mnist", "--data-dir", str(tmp_path / "d"),
                                  "--base-url", server.url + "/fm"])
    assert result.exit_code == 0, result.output
    assert str(tmp_path / "d" / "fashion-mnist") in result.output
    result = runner.invoke(main, ["data", "list", "--data-dir", str(tmp_path / "d"), "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)["datasets"]}
    assert rows["fashion-mnist"]["found"] and rows["fashion-mnist"]["where"] == str(tmp_path / "d" / "fashion-mnist")
    assert not rows["mnist"]["found"] and rows["digits"]["found"]
    assert set(rows) == set(data.DATASETS)
    result = runner.invoke(main, ["data", "list", "--data-dir", str(tmp_path / "d")])
    assert result.exit_code == 0 and "topo data download mnist" in result.output


def test_cli_data_download_errors_are_one_line(tmp_path):
    result = CliRunner().invoke(main, ["data", "download", "emnist-balanced", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1


# -- the real data sets ------------------------------------------------------------------
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_real_idx_data_sets(shared_data, name):
    if not (shared_data / name).is_dir():
        pytest.skip(f"{name} not in {shared_data}")
    ds = load_dataset(name, data_dir=shared_data, val_fraction=0.1)
    check_dataset(ds, 784, 10)
    assert len(ds.y_train) + len(ds.y_val) == 60_000 and len(ds.y_val) == 6_000
    assert len(ds.y_test) == 10_000
    assert ds.X_train.min() == 0.0 and ds.X_train.max() == 1.0


def test_real_covtype_sample(shared_data):
    if not (shared_data / "covtype").is_dir():
        pytest.skip(f"covtype not in {shared_data}")
    ds = load_dataset("covtype", data_dir=shared_data)
    check_dataset(ds, 54, 7)
    assert len(ds.y_train) + len(ds.y_val) + len(ds.y_test) == 15_000
    assert np.abs(ds.X_train.mean(axis=0)).max() < 1e-4
