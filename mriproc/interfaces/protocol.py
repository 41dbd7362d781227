"""How a protocol reaches a node: one typed input, read once per node.

A workflow factory hands its nodes the :class:`~mriproc.config.Protocol` object
itself.  The input stores it as plain data (:meth:`Protocol.to_mapping`, the
registration preset written out), so that Nipype's cache key is the protocol's
content, not the name of the file it came from, and a node's hash file shows which
parameter changed; :attr:`ProtocolInterface.protocol` rebuilds the object without
reading any file.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any

from nipype.interfaces.base import BaseInterfaceInputSpec, SimpleInterface, traits

from mriproc.config import Protocol, protocol_from_mapping

__all__ = ["ProtocolInputSpec", "ProtocolInterface", "ProtocolTrait"]


class ProtocolTrait(traits.TraitType):
    """A :class:`Protocol` (or its :meth:`~Protocol.to_mapping`), kept as that mapping."""

    info_text = "an mriproc Protocol"

    def validate(self, obj: Any, name: str, value: Any) -> Any:
        if isinstance(value, Protocol):
            return value.to_mapping()
        if isinstance(value, Mapping):
            return dict(value)
        self.error(obj, name, value)


class ProtocolInputSpec(BaseInterfaceInputSpec):
    protocol = ProtocolTrait(mandatory=True, desc="the protocol (from the workflow factory)")


class ProtocolInterface(SimpleInterface):
    """A SimpleInterface whose inputs include ``protocol`` (:class:`ProtocolInputSpec`)."""

    @cached_property
    def protocol(self) -> Protocol:
        """The node's protocol, rebuilt (and checked) once from its input."""
        data = self.inputs.protocol
        return protocol_from_mapping(data, source=f"protocol {data.get('name', '?')!r}")
