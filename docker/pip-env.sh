# Sourced by the Dockerfile's pip steps (`. docker/pip-env.sh`), which mount pip's cache
# and the build secrets: pip_conf (an index, a proxy...) and ca_bundle (the CA a
# TLS-intercepting proxy signs with).  Given or not, secrets never reach a layer.
export PIP_CACHE_DIR=/var/cache/mriproc-pip
if [ -s /run/secrets/pip_conf ]; then export PIP_CONFIG_FILE=/run/secrets/pip_conf; fi
if [ -s /run/secrets/ca_bundle ]; then export PIP_CERT=/run/secrets/ca_bundle; fi
