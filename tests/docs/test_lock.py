"""The lock files (requirements/*.txt) that make, CI and the images install from: every dependency that
pyproject.toml declares is pinned there to a version it allows, with the hashes of its files, and serving's lock
holds no torch. A change to pyproject.toml without `make lock` fails here, not on a clean install weeks later."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+) \\$", re.M)


def pins(lock: str) -> dict[str, Version]:
    text = (ROOT / "requirements" / lock).read_text()
    return {canonicalize_name(name): Version(version) for name, version in PIN.findall(text)}


def declared(*extras: str) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = [Requirement(r) for r in project["dependencies"]]
    for extra in extras:
        found += [Requirement(r) for r in project["optional-dependencies"][extra]]
    return [r for r in found if r.marker is None or r.marker.evaluate()]


LOCKS = [("serve.txt", ()), ("dev.txt", ("train", "dev")), ("train.txt", ("train",))]


@pytest.mark.parametrize(("lock", "extras"), LOCKS)
def test_every_declared_dependency_is_pinned_to_a_version_it_allows(lock: str, extras: tuple[str, ...]) -> None:
    pinned = pins(lock)
    for requirement in declared(*extras):
        name = canonicalize_name(requirement.name)
        if lock == "train.txt" and name == "torch":
            continue  # the trainer image installs torch's CPU build on its own (test below)
        assert name in pinned, f"{requirement.name} is declared but not in requirements/{lock}: run `make lock`"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"requirements/{lock} pins {name} {pinned[name]}, outside {requirement}: run `make lock`"
        )


@pytest.mark.parametrize("lock", [lock for lock, _ in LOCKS])
def test_every_pin_carries_the_hashes_of_its_files(lock: str) -> None:
    text = (ROOT / "requirements" / lock).read_text()
    blocks = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2])  # after the two header lines
    assert len(blocks) == len(pins(lock)) > 30
    for block in blocks:
        assert "--hash=sha256:" in block, block.splitlines()[0]


def test_serving_installs_no_torch_and_no_ray() -> None:
    assert not {"torch", "ray"} & set(pins("serve.txt"))
    assert {"torch", "ray", "onnxruntime"} <= set(pins("dev.txt"))


def test_the_trainer_image_installs_the_torch_its_lock_leaves_out_at_the_declared_version() -> None:
    assert "torch" not in pins("train.txt")
    (torch,) = [r for r in declared("train") if canonicalize_name(r.name) == "torch"]
    dockerfile = (ROOT / "Dockerfile.trainer").read_text()
    assert f"torch{torch.specifier}" in dockerfile and "--require-hashes -r train.txt" in dockerfile


def test_every_install_from_a_lock_uses_the_same_pip_past_the_extras_bug() -> None:
    """pip 23.2 refuses a locked package that a dependency asks for with extras once a newer release exists."""
    pinned = re.search(r"^PIP_VERSION = (\S+)$", (ROOT / "Makefile").read_text(), re.M)
    assert pinned is not None and Version(pinned.group(1)) >= Version("23.3")
    for dockerfile in ("Dockerfile", "Dockerfile.trainer"):
        assert f"pip install -q pip=={pinned.group(1)} " in (ROOT / dockerfile).read_text(), dockerfile
