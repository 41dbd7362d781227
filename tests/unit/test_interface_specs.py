"""Every Nipype interface of mriproc documents its inputs and outputs, and the protocol
reaches a node as its content."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nipype.interfaces.base import BaseInterface

import mriproc.interfaces.longitudinal as longitudinal
import mriproc.interfaces.visit as visit
from mriproc.config import RegistrationPreset, load_protocol, load_registration_preset
from mriproc.interfaces.visit import BiasCorrect

INTERFACES = [
    cls
    for module in (visit, longitudinal)
    for _, cls in inspect.getmembers(module, inspect.isclass)
    if issubclass(cls, BaseInterface) and cls.__module__ == module.__name__
]
_NIPYPE_TRAITS = {"trait_added", "trait_modified"}


@pytest.mark.parametrize("interface", INTERFACES, ids=lambda c: c.__name__)
def test_every_trait_has_a_description(interface: type[BaseInterface]) -> None:
    for spec in (interface.input_spec, interface.output_spec):
        undocumented = [
            name
            for name, trait in spec().traits().items()
            if name not in _NIPYPE_TRAITS and not trait.desc
        ]
        assert undocumented == [], f"{interface.__name__}: {spec.__name__}"


def test_a_node_is_keyed_by_the_protocol_content_not_its_file() -> None:
    """The same protocol from another file has the same hash; a changed preset another."""
    protocol = load_protocol("esims")
    moved = dataclasses.replace(protocol, source="/elsewhere/esims.yaml")
    preset = dataclasses.replace(protocol.registration.preset, sampling_rate=0.2)
    changed = dataclasses.replace(
        protocol, registration=dataclasses.replace(protocol.registration, preset=preset)
    )

    def key(p: object) -> str:
        interface = BiasCorrect(protocol=p)
        interface.inputs.in_files = [__file__]
        return str(interface.inputs.get_hashval()[1])

    assert key(protocol) == key(moved) != key(changed)
    rebuilt = BiasCorrect(protocol=changed).protocol  # in the node: no file read
    assert dataclasses.replace(rebuilt, source=changed.source) == changed


def test_a_node_uses_the_preset_it_is_handed(tmp_path: Path) -> None:
    """N4 in a node follows the preset inside the protocol it received (no preset by name)."""
    rng = np.random.default_rng(5)
    grid = np.indices((32, 32, 16)).astype(np.float32)
    image = (100.0 + 2.0 * grid[0] + rng.normal(0, 3, grid.shape[1:])).astype(np.float32)
    path = tmp_path / "image.nii.gz"
    nib.save(nib.Nifti1Image(image, np.eye(4)), path)
    protocol = load_protocol("esims")
    fast = load_registration_preset("fast")
    one_pass = dataclasses.replace(fast, n4_iterations=(1,), n4_shrink_factor=1)

    def corrected(preset: RegistrationPreset, name: str) -> np.ndarray:
        handed = dataclasses.replace(
            protocol, registration=dataclasses.replace(protocol.registration, preset=preset)
        )
        cwd = tmp_path / name
        cwd.mkdir()
        result = BiasCorrect(in_files=[str(path)], protocol=handed).run(cwd=str(cwd))
        return np.asarray(nib.load(result.outputs.out_file).dataobj)

    assert np.array_equal(corrected(fast, "a"), corrected(fast, "b"))
    assert not np.array_equal(corrected(fast, "c"), corrected(one_pass, "d"))
