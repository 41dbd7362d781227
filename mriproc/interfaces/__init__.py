"""Thin Nipype interfaces over mriproc's computational functions."""
