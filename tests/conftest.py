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


# The quick subset (`pytest -m "not slow"`, under 2 minutes on a 2-core machine) compiles only a few dozen small
# programs: each fresh program costs Numba 1-4 s. Besides the tests marked `slow` where they are defined (the
# CUDA simulator, training to quoted figures, the f64 op variants, the larger models), these are left to the
# whole suite: each has a quicker sibling that stays in the subset. Matched against the start of a test's id.
SLOW_TESTS: dict[str, str] = {
    "tests/test_memory.py": "compiles a dozen programs to count what they leave behind",
    "tests/test_cache_security.py::test_damaged_cache_entry_is_evicted_and_rebuilt[t": "truncated .nbc stays quick",
    "tests/test_cache_security.py::test_damaged_cache_entry_is_evicted_and_rebuilt[p": "truncated .nbc stays quick",
    "tests/test_cache_security.py::test_damaged_cache_entry_is_evicted_and_rebuilt[e": "truncated .nbc stays quick",
    "tests/test_cache_security.py::test_cache_root_writable_by_others_is_refused[504]": "[511] stays quick",
    "tests/test_cache_security.py::test_cache_root_writable_by_others_is_refused[1023]": "[511] stays quick",
    "tests/test_cache_security.py::test_cache_root_that_is_a_file": "compiles without the cache",
    "tests/test_cache_security.py::test_cache_root_others_could_only_read": "compiles",
    "tests/test_cache_security.py::test_compile_cache_folders_are_private_under_umask_000": "compiles",
    "tests/test_cache_security.py::test_lark_tables_owned_by_another_user": "a fresh interpreter",
    "tests/test_cache_security.py::test_lark_tables_in_a_cache_folder_others_can_write": "a fresh interpreter",
    "tests/test_targets.py::test_op_on_cpu_matches_reference[matmul-batch": "batched matmul: one case stays quick",
    "tests/test_targets.py::test_mixed_models_on_cpu_match_reference[": "two cases stay quick (below)",
    "tests/test_wrong_numbers.py::test_matmul_batch_dimensions_broadcast[": "[batch-1-left-cpu] stays quick",
    "tests/test_training.py::test_early_stopping": "trains",
    "tests/test_training.py::test_spirals": "trains",
    "tests/test_training.py::test_json_lines": "trains",
    "tests/test_training.py::test_the_same_seed": "trains twice",
    "tests/test_user_data.py::test_eval_reports_accuracy_without_an_output[": "trains",
    "tests/test_training.py::test_a_run_writes_its_folder": "trains",
    "tests/test_training.py::test_resume_continues_exactly": "trains twice (test_files' resume tests stay quick)",
    "tests/test_training.py::test_tiny_regression_fits_the_curve": "trains",
    "tests/test_cache_security.py::test_cache_root_writable_by_others_is_refused[511]": "the owner check stays quick",
    "tests/test_cache_security.py::test_lark_tables_are_never_read_from_the_shared_temp": "a fresh interpreter",
    "tests/test_fuzz.py::test_random_": "300 examples each; the located-error tests of test_errors stay quick",
    "tests/test_user_data.py::test_binding_follows": "compiles and trains",
    "tests/test_user_data.py::test_predict_reads_one_csv_column": "trains",
    "tests/test_user_data.py::test_the_result_says_whose_parameters": "trains",
    "tests/test_targets.py::test_models_on_cpu_match_reference[spirals_linear]": "three models stay quick",
    "tests/test_targets.py::test_emitted_source_maps": "compiles mlp_digits",
}
QUICK_TESTS: tuple[str, ...] = (  # exceptions to the prefixes above
    "tests/test_targets.py::test_op_on_cpu_matches_reference[matmul-batched-f32]",
    "tests/test_targets.py::test_mixed_models_on_cpu_match_reference[dtype-promotion]",
    "tests/test_targets.py::test_mixed_models_on_cpu_match_reference[loss-mix]",
    "tests/test_wrong_numbers.py::test_matmul_batch_dimensions_broadcast[batch-1-left-cpu]",
)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.nodeid in QUICK_TESTS:
            continue
        if any(item.nodeid.startswith(prefix) for prefix in SLOW_TESTS):
            item.add_marker(pytest.mark.slow)
