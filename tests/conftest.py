import os
import shutil
import tempfile
from pathlib import Path

# Tests compile into a cache of their own, never the user's (~/.cache/gradc or the user's $GRADC_CACHE_DIR):
# a private temporary folder for this session, removed at its end. Set before gradc is imported.
USER_CACHE_DIR = os.environ.get("GRADC_CACHE_DIR")
SESSION_CACHE_DIR = tempfile.mkdtemp(prefix="gradc-test-cache-")  # mode 0700
os.environ["GRADC_CACHE_DIR"] = SESSION_CACHE_DIR

# The cuda target's tests run on Numba's CUDA simulator unless GRADC_TEST_GPU=1 asks for the real GPU: set
# before anything imports Numba, whose configuration reads the variable once.
REAL_GPU = os.environ.get("GRADC_TEST_GPU") == "1"
if not REAL_GPU:
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"

import pytest  # noqa: E402

from gradc.cli import main  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODELS = sorted((ROOT / "models").glob("*.model"))

os.environ.setdefault("GRADC_DEBUG", "1")


class CliResult:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"CliResult(code={self.code}, out={self.out[-500:]!r}, err={self.err[-800:]!r})"


@pytest.fixture
def cli(capsys):
    """Run the gradc CLI in-process and capture its exit code and output."""

    def run(*args: str) -> CliResult:
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def write_model(tmp_path):
    def write(text: str, name: str = "m.model") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


def pytest_unconfigure(config):
    shutil.rmtree(SESSION_CACHE_DIR, ignore_errors=True)
