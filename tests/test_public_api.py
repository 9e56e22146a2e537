"""The public surface is declared, small and pinned: nothing becomes public by accident."""

import importlib
import subprocess
import sys

import pytest

import proving

ROOT = [
    "AnalysisResult",
    "ArmStats",
    "Assignment",
    "BatchWriter",
    "ComparisonResult",
    "ExperimentSpec",
    "MonitorSpec",
    "ProvingError",
    "SequentialMonitor",
    "analyze",
    "assign",
    "assign_batch",
    "compute_metrics",
    "create_app",
    "judge",
    "load_metrics_spec",
    "load_spec",
    "minimum_detectable_effect",
    "open_store",
    "sample_size",
    "simulate_experiment",
]

STAGES = ["stats", "assign", "spec", "telemetry", "metrics", "serve", "simulate", "ui"]


def test_root_exports_are_pinned() -> None:
    assert proving.__all__ == ROOT
    assert sorted(proving._EXPORTS) == ROOT  # every export has a home module


@pytest.mark.parametrize("name", ROOT)
def test_every_root_name_resolves_to_its_stage_object(name: str) -> None:
    value = getattr(proving, name)
    assert value is not None
    assert getattr(value, "__module__", "proving").startswith("proving")


@pytest.mark.parametrize("package", ["proving", "proving.stats"])
def test_lazy_packages_list_each_export_once_with_its_module(package: str) -> None:
    # The literal __all__ (for ruff and readers) and the lazy map must name the same things.
    module = importlib.import_module(package)
    assert sorted(module._EXPORTS) == sorted(module.__all__)
    for name, source in module._EXPORTS.items():
        assert hasattr(importlib.import_module(source), name), f"{source} has no {name}"


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        _ = proving.nope  # type: ignore[attr-defined]


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_declares_its_public_names(stage: str) -> None:
    module = importlib.import_module(f"proving.{stage}")
    names = module.__all__
    assert names and len(names) == len(set(names))
    for name in names:
        assert hasattr(module, name), f"proving.{stage}.__all__ lists {name!r}, not defined"
    public = {
        n
        for n, v in vars(module).items()
        if not n.startswith("_") and getattr(v, "__module__", None) not in ("typing", "__future__")
    }
    submodules = {n for n in public if type(getattr(module, n)).__name__ == "module"}
    undeclared = public - set(names) - submodules - {"annotations"}
    assert not undeclared, f"proving.{stage} exposes undeclared names {sorted(undeclared)}"


def test_importing_proving_stays_cheap() -> None:
    # The root must not import the web stack or the warehouse drivers until they are used.
    code = (
        "import sys, proving; "
        "print(sorted(m for m in ('fastapi', 'ibis', 'pyspark', 'duckdb') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_an_export_named_like_its_module_stays_the_export() -> None:
    # Importing the module proving.stats.analyze binds it on the package; the lazy package
    # keeps the function, as the eager __init__ did.
    code = (
        "import proving.stats.analyze, proving.stats as s; "
        "from proving.stats import analyze; "
        "print(callable(analyze), s.analyze is analyze, type(s.judge).__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True", "function"]


def test_an_imported_subpackage_stays_the_subpackage() -> None:
    code = "import proving.assign, proving; print(type(proving.assign).__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "module"


def test_starting_the_command_line_loads_no_heavy_stack() -> None:
    # `proving --help` must not pay for SciPy's statistics, the web stack or Ibis: each
    # command loads them when it runs.
    heavy = ("scipy.stats", "fastapi", "ibis", "pyspark")
    code = f"import sys, proving.cli.app; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
