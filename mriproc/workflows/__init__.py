"""Nipype workflow factories (``init_*_wf``)."""
