"""Packaging: the wheel carries every data file the package reads (zoo weights and data, the
model card, shipped scenarios), installs only the ``mtenv`` top-level package (the repo's
``agents/`` and ``scenarios/`` folders land inside it as ``mtenv.agents`` and
``mtenv.scenarios``), and works non-editable from another directory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]


def package_dir(package: str) -> Path:
    """The repo folder setuptools builds ``package`` from (``package-dir``, longest prefix)."""
    mapping: dict[str, str] = SETUPTOOLS.get("package-dir", {})
    parts = package.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in mapping:
            return REPO / mapping[prefix] / Path(*parts[n:])
    return REPO / mapping.get("", ".") / Path(*parts)


def packaged_data_files() -> set[Path]:
    """Every file the ``package-data`` globs select, as setuptools expands them."""
    selected: set[Path] = set()
    for package, patterns in SETUPTOOLS.get("package-data", {}).items():
        assert package in SETUPTOOLS["packages"], f"package-data for unlisted package {package}"
        root = package_dir(package)
        for pattern in patterns:
            selected |= {p.resolve() for p in root.glob(pattern) if p.is_file()}
    return selected


def data_files_in_packages() -> set[Path]:
    """Every non-Python, non-hidden file inside the folders of the listed packages."""
    found: set[Path] = set()
    for package in SETUPTOOLS["packages"]:
        root = package_dir(package)
        for path in root.iterdir():
            if (
                path.is_file()
                and path.suffix not in {".py", ".pyc"}
                and not path.name.startswith(".")
            ):
                found.add(path.resolve())
    # Data folders are not packages themselves (no __init__.py): include what they hold.
    for folder in (REPO / "mtenv" / "zoo" / "weights", REPO / "mtenv" / "zoo" / "data"):
        found |= {
            p.resolve()
            for p in folder.rglob("*")
            if p.is_file() and not p.name.startswith(".") and "__pycache__" not in p.parts
        }
    return found


def test_package_dirs_map_agents_and_scenarios_under_mtenv() -> None:
    assert package_dir("mtenv.agents") == REPO / "agents"
    assert package_dir("mtenv.scenarios") == REPO / "scenarios"
    assert package_dir("mtenv.zoo") == REPO / "mtenv" / "zoo"
    assert set(SETUPTOOLS["packages"]) >= {"mtenv", "mtenv.zoo", "mtenv.agents", "mtenv.scenarios"}
    assert not any(p.split(".")[0] != "mtenv" for p in SETUPTOOLS["packages"])


def test_every_python_package_folder_is_listed() -> None:
    """A subpackage with an ``__init__.py`` that ``packages`` forgets would be left out."""
    listed = {package_dir(p).resolve() for p in SETUPTOOLS["packages"]}
    for top in ("mtenv", "mtenv.agents", "mtenv.scenarios"):
        for init in package_dir(top).rglob("__init__.py"):
            assert init.parent.resolve() in listed, f"{init.parent} is not in packages"


def test_package_data_globs_cover_every_data_file() -> None:
    required = data_files_in_packages()
    weights = set((REPO / "mtenv" / "zoo" / "weights").glob("*.safetensors"))
    data = set((REPO / "mtenv" / "zoo" / "data").iterdir())
    scenarios = set((REPO / "scenarios").glob("*.yaml"))
    # The check is not vacuous: the files the package reads at run time are among them.
    assert weights and data and scenarios
    assert {p.resolve() for p in weights | data | scenarios} <= required
    assert (REPO / "mtenv" / "zoo" / "card.json").resolve() in required
    missing = sorted(str(p.relative_to(REPO)) for p in required - packaged_data_files())
    assert missing == [], f"pyproject.toml package-data misses {missing}"


# --- the built wheel, installed non-editable --------------------------------------------------

_IGNORE = shutil.ignore_patterns(
    ".git",
    ".venv*",
    "__pycache__",
    "*.egg-info",
    "build",
    "dist",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
    "runs",
)

_SMOKE = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path

    target = Path(sys.argv[1]).resolve()
    repo = Path(sys.argv[2]).resolve()
    assert not any("Editable" in repr(finder) for finder in sys.meta_path), sys.meta_path
    assert all(Path(p or ".").resolve() != repo for p in sys.path), sys.path

    import gymnasium as gym
    import numpy as np

    import mtenv, mtenv.agents, mtenv.scenarios
    from mtenv.io.scenario_files import load_scenario, shipped_scenarios
    from mtenv.zoo import MODEL_NAMES, load_model, weights_path

    for module in (mtenv, mtenv.agents, mtenv.scenarios):
        assert Path(module.__file__).resolve().is_relative_to(target), module.__file__

    shipped = shipped_scenarios()
    assert "quickstart" in shipped, shipped
    for name, path in shipped.items():
        assert path.resolve().is_relative_to(target), path
        load_scenario(name)

    for name in MODEL_NAMES:
        assert weights_path(name).resolve().is_relative_to(target), weights_path(name)
        load_model(name)

    env = gym.make("mtenv/Quickstart-v0", inference="memoized")
    obs, info = env.reset(seed=0)
    rng = np.random.default_rng(0)
    steps = 0
    while True:
        action = int(rng.choice(np.flatnonzero(info["action_mask"])))
        obs, reward, terminated, truncated, info = env.step(action)
        steps += 1
        if terminated or truncated:
            break
    env.close()
    print(json.dumps({"steps": steps, "metrics": sorted(info["metrics"]),
                      "shipped": sorted(shipped)}))
    """
)


def test_wheel_installs_and_runs_from_another_directory(tmp_path: Path) -> None:
    # Build from a copy, so that the build leaves nothing (build/, egg-info) in the repo.
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=_IGNORE)
    dist, target, elsewhere = tmp_path / "dist", tmp_path / "target", tmp_path / "elsewhere"
    elsewhere.mkdir()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", dist, source],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = dist.glob("*.whl")
    subprocess.run(
        [*pip, "install", "--no-deps", "--no-index", "--target", target, wheel],
        check=True,
        capture_output=True,
        timeout=300,
    )

    # Only the mtenv package and its metadata (plus the console script) are installed.
    installed = sorted(p.name for p in target.iterdir())
    (dist_info,) = [n for n in installed if n.endswith(".dist-info")]
    assert set(installed) <= {"mtenv", dist_info, "bin"}, installed
    assert (target / dist_info / "top_level.txt").read_text().split() == ["mtenv"]
    record = (target / dist_info / "RECORD").read_text().splitlines()
    tops = {line.split(",")[0].split("/")[0] for line in record}
    assert tops <= {"mtenv", dist_info, "bin", "..", ""}, tops
    assert (target / "mtenv" / "agents" / "baselines" / "mask_only.py").is_file()
    assert (target / "mtenv" / "scenarios" / "quickstart.yaml").is_file()
    assert "mtenv = mtenv.tools.cli:main" in (target / dist_info / "entry_points.txt").read_text()

    # Run the installed copy with the project venv's interpreter for the dependencies, from
    # another directory. ``-S`` skips site-packages' .pth files, so the editable install's
    # import hook (if any) cannot supply mtenv; the dependencies come in through PYTHONPATH.
    site_packages = sysconfig.get_paths()["purelib"]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(target), site_packages]),
        "PYTHONSAFEPATH": "1",
        "PYTHONNOUSERSITE": "1",
    }
    done = subprocess.run(
        [sys.executable, "-S", "-c", _SMOKE, str(target), str(REPO)],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert "quickstart" in report["shipped"]
    assert report["steps"] > 0
    assert {"effective_accuracy", "slo_attainment", "latency_p99_ms"} <= set(report["metrics"])

    # The wheel's console script works too.
    script = target / "bin" / "mtenv"
    cli = subprocess.run(
        [sys.executable, "-S", script, "run", "--episodes", "1", "--inference", "memoized"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert cli.returncode == 0, cli.stderr
    assert "effective_accuracy" in cli.stdout


def test_the_source_tree_imports_as_it_is() -> None:
    """From the checkout's root, without the installed copy's import hooks (no ``.pth`` files:
    ``-S``, site-packages only on the path), ``mtenv.agents`` and ``mtenv.scenarios`` are the
    checkout's ``agents/`` and ``scenarios/``: ``python -m pytest`` works whatever is installed."""
    purelib = sysconfig.get_paths()["purelib"]
    code = (
        "import mtenv.agents.policies, mtenv.scenarios, gymnasium as gym; "
        "env = gym.make('mtenv/Quickstart-v0', episode_tasks=3); env.reset(seed=0); "
        "print(mtenv.agents.__file__); print(mtenv.scenarios.__file__)"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), purelib])}
    done = subprocess.run(
        [sys.executable, "-S", "-c", code], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [
        str(REPO / "agents" / "__init__.py"),
        str(REPO / "scenarios" / "__init__.py"),
    ]


LAYERS = ("zoo", "core", "io", "render", "envs", "agents", "tools")
"""mtenv's layers, bottom first: a module may import its own layer and those below it."""
FORBIDDEN_IN_CORE = ("gymnasium", "pygame", "stable_baselines3", "sb3_contrib")


def _imports(path: Path) -> set[str]:
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "mtenv" and len(parts) > 1 and parts[1] in LAYERS else None


@pytest.mark.parametrize("layer", LAYERS)
def test_each_layer_imports_only_the_layers_below_it(layer: str) -> None:
    """The package's folders are its architecture: the simulation core imports nothing from
    Gymnasium, pygame or SB3, and no module reaches up to a layer above its own."""
    folder = REPO / ("agents" if layer == "agents" else f"mtenv/{layer}")
    allowed = set(LAYERS[: LAYERS.index(layer) + 1])
    for path in sorted(folder.rglob("*.py")):
        imported = _imports(path)
        above = sorted(m for m in imported if _layer(m) is not None and _layer(m) not in allowed)
        assert not above, f"{path.relative_to(REPO)} imports {above} from a layer above {layer}"
        if layer in ("zoo", "core"):
            heavy = sorted(m for m in imported if m.split(".")[0] in FORBIDDEN_IN_CORE)
            assert not heavy, f"{path.relative_to(REPO)} imports {heavy}"


def test_the_readme_architecture_names_every_module() -> None:
    """The README's Architecture section is the map of the tree: every module is on it."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Architecture", 1)[1].split("\n## ", 1)[0]
    modules = [
        p
        for folder in (REPO / "mtenv", REPO / "agents")
        for p in folder.rglob("*.py")
        if p.name != "__init__.py"
    ]
    missing = [str(p.relative_to(REPO)) for p in modules if p.stem not in section]
    assert not missing, f"README's Architecture section does not name {missing}"


MAX_MODULE_LINES = 650


def test_no_module_is_longer_than_a_reader_can_hold() -> None:
    """Each concept in a module of its own: none over about 600 lines."""
    long = {
        str(p.relative_to(REPO)): n
        for folder in (REPO / "mtenv", REPO / "agents")
        for p in folder.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"
