"""Imaging protocol files shipped with mriproc (installed as ``mriproc.pipelines``)."""
