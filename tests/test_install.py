"""spikeconv installed from a wheel (not editable) into a fresh virtual environment and run from an empty
directory: packaged configs and shipped checkpoints are found by name, and nothing is written where it runs
except the outputs asked for."""

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """``(bin folder, empty working folder)`` of a venv holding only the spikeconv wheel; torch and the other
    dependencies are borrowed from this environment through a path file."""
    tmp = tmp_path_factory.mktemp("install")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp / "dist"), str(ROOT)], check=True, capture_output=True, timeout=600)
    wheel = next((tmp / "dist").glob("spikeconv-*.whl"))
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True,
                   capture_output=True, timeout=300)
    work = tmp / "empty"
    work.mkdir()
    return venv / "bin", work


def _spikeconv(installed, *args, timeout=600):
    bin_dir, work = installed
    from spikeconv.data import data_root

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    try:  # outside a checkout the data root is found only through the environment (docs/data.md)
        env["SPIKECONV_DATA"] = str(data_root())
    except FileNotFoundError:
        pass
    return subprocess.run([str(bin_dir / "spikeconv"), *args], cwd=work, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.slow
def test_the_installed_package_is_the_wheel_not_the_source_tree(installed):
    bin_dir, work = installed
    where = subprocess.run([str(bin_dir / "python"), "-c", "import spikeconv; print(spikeconv.__file__)"], cwd=work,
                           capture_output=True, text=True, check=True).stdout
    assert "site-packages" in where and str(ROOT / "src") not in where
    version = _spikeconv(installed, "--version")
    assert version.returncode == 0 and version.stdout.strip() == "spikeconv 0.1.0"


@pytest.mark.slow
def test_shipped_checkpoints_and_packaged_configs_by_name_from_an_empty_directory(installed, data_available):
    bin_dir, work = installed
    evaluated = _spikeconv(installed, "evaluate", "mnist_lenet_qrelu", "--limit", "50", "--timesteps", "2",
                           "--neurons", "buffered", "--max-strengths", "1", "--json", "r.json")
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert "buffered/smax1" in evaluated.stdout
    run = _spikeconv(installed, "run", "mnist", "--limit", "50")
    assert run.returncode == 0, run.stderr[-2000:]
    assert "loaded trained model" in run.stderr and "site-packages" in run.stderr
    inspected = _spikeconv(installed, "inspect", "cifar10_vgg_qrelu")
    assert inspected.returncode == 0 and "converted" in inspected.stdout
    missing = _spikeconv(installed, "evaluate", "checkpoints/mnist_lenet_qrelu.pt")
    assert missing.returncode == 2 and "give that name" in missing.stderr
    assert sorted(p.name for p in work.iterdir()) == ["r.json"]  # no ./checkpoints, ./runs or cache here
