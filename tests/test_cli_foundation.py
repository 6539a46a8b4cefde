import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from topo import save_checkpoint
from topo_cli.main import main


@pytest.fixture
def ckpt(tmp_path, small_topology):
    return save_checkpoint(small_topology, tmp_path / "net.safetensors", epoch=4)


def test_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and "topo, version" in result.output


def test_inspect_table_json_csv(ckpt, small_topology):
    runner = CliRunner()
    table = runner.invoke(main, ["inspect", str(ckpt)])
    assert table.exit_code == 0, table.output
    assert "fc1" in table.output and "epoch 4" in table.output
    data = json.loads(runner.invoke(main, ["inspect", str(ckpt), "--format", "json"]).output)
    assert [l["name"] for l in data["layers"]] == ["fc1", "fc2"]
    assert data["layers"][0]["nnz"] == small_topology[0].nnz
    assert data["summary"]["nnz"] == small_topology.nnz
    rows = list(csv.DictReader(io.StringIO(runner.invoke(main, ["inspect", str(ckpt), "--format", "csv"]).output)))
    assert [int(r["nnz"]) for r in rows] == [small_topology[0].nnz, small_topology[1].nnz]


def test_user_errors_are_one_line(tmp_path, ckpt):
    runner = CliRunner()
    missing = runner.invoke(main, ["inspect", str(tmp_path / "nope.safetensors")])
    assert missing.exit_code == 1
    assert missing.output.strip().count("\n") == 0 and "nope.safetensors" in missing.output
    assert "Traceback" not in missing.output
    corrupt = tmp_path / "bad.safetensors"
    corrupt.write_bytes(ckpt.read_bytes()[:50])
    bad = runner.invoke(main, ["inspect", str(corrupt)])
    assert bad.exit_code == 1 and "bad.safetensors" in bad.output
    usage = runner.invoke(main, ["inspect", str(ckpt), "--format", "yaml"])
    assert usage.exit_code == 2


@pytest.mark.parametrize("fmt,suffix", [("graphml", ".graphml"), ("gexf", ".gexf"), ("edgelist", ".csv")])
def test_export(tmp_path, ckpt, fmt, suffix):
    out = tmp_path / f"g{suffix}"
    result = CliRunner().invoke(main, ["export", str(ckpt), "--to", fmt, "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 0


def test_export_to_unwritable_place_is_one_line(tmp_path, ckpt):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = CliRunner().invoke(main, ["export", str(ckpt), "--to", "edgelist", "-o", str(blocker / "g.csv")])
    assert result.exit_code == 1 and "Traceback" not in result.output


def test_installed_command_as_subprocess(ckpt):
    exe = shutil.which("topo") or str(Path(sys.executable).with_name("topo"))
    result = subprocess.run([exe, "inspect", str(ckpt), "--format", "json"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["epoch"] == 4
    missing = subprocess.run([exe, "inspect", "/no/such/file"], capture_output=True, text=True)
    assert missing.returncode == 1
    assert missing.stderr.strip() == "Error: /no/such/file: no such file or folder"


def test_help_and_inspect_do_not_import_torch(ckpt):
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from topo_cli.main import main\n"
        "CliRunner().invoke(main, ['--help'])\n"
        f"r = CliRunner().invoke(main, ['inspect', {str(ckpt)!r}])\n"
        "assert r.exit_code == 0, r.output\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
