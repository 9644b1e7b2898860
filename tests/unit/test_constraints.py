"""constraints.txt, the pins ``make install`` installs from (scripts/lock.sh makes it).

A dependency added to pyproject.toml without re-locking would be installed at whatever
version is newest that day, and CI would test a set no one chose: these tests fail
first. They also fail when the environment running them is not the pinned one.
"""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]


def _pins() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, version = line.partition("==")
        assert sep, f"constraints.txt: {line!r} is not a pin (name==version)"
        pins[canonicalize_name(name)] = Version(version)
    return pins


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        lines.extend(extra)
    return [Requirement(line) for line in lines]


PINS = _pins()


@pytest.mark.parametrize("requirement", _declared(), ids=str)
def test_every_declared_dependency_is_pinned_within_its_range(requirement: Requirement) -> None:
    pinned = PINS.get(canonicalize_name(requirement.name))

    assert pinned is not None, f"{requirement.name} is not in constraints.txt: run scripts/lock.sh"
    assert requirement.specifier.contains(pinned, prereleases=True), (
        f"constraints.txt pins {requirement.name}=={pinned}, outside {requirement}"
    )


def _installed_closure(extras: frozenset[str]) -> set[str]:
    """Every distribution that ``accounts[extras]`` requires here, transitively."""
    visited: set[tuple[str, frozenset[str]]] = set()
    wanted = [("accounts", extras)]
    while wanted:
        name, name_extras = wanted.pop()
        environments = [{"extra": extra} for extra in ("", *name_extras)]
        for requirement in map(Requirement, metadata.distribution(name).requires or []):
            marker = requirement.marker
            if marker is not None and not any(marker.evaluate(env) for env in environments):
                continue
            node = (canonicalize_name(requirement.name), frozenset(requirement.extras))
            if node not in visited:
                visited.add(node)
                wanted.append(node)
    return {name for name, _ in visited}


def _bench_installed() -> bool:
    try:
        metadata.distribution("matplotlib")
    except metadata.PackageNotFoundError:
        return False
    return True


def test_everything_installed_for_the_service_and_its_tools_is_pinned() -> None:
    extras = frozenset({"dev", "bench"} if _bench_installed() else {"dev"})

    unpinned = sorted(_installed_closure(extras) - PINS.keys())

    assert not unpinned, f"installed without a pin: {unpinned}; run scripts/lock.sh"


def test_the_installed_packages_are_the_pinned_versions() -> None:
    installed = {
        canonicalize_name(dist.metadata["Name"]): Version(dist.version)
        for dist in metadata.distributions()
    }
    # Bench-only packages may be absent; whatever is installed must be the pin.
    wrong = {
        name: f"{installed[name]} installed, {pin} pinned"
        for name, pin in PINS.items()
        if name in installed and installed[name] != pin
    }

    assert not wrong, f"not the pinned environment (make install reinstalls it): {wrong}"


def test_the_service_and_the_test_tools_are_installed_from_the_pins() -> None:
    # The check above is vacuous if nothing pinned is installed.
    for name in ("fastapi", "sqlalchemy", "pytest", "hypothesis"):
        assert metadata.version(name) == str(PINS[name])
