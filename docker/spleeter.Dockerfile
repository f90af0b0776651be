# The Spleeter environment (reference separator B): spleeter 2.4.2 pins tensorflow 2.12 and numpy<2, so it
# lives in a venv of its own (.venv-spleeter); each demix actor starts a worker process from it on its own
# node and streams audio over its pipes. Built on top of the CPU or GPU image:
#   docker build -f docker/spleeter.Dockerfile --build-arg BASE=demix:cpu -t demix:spleeter .   (make docker-spleeter)
# Run it on the nodes that run `demix` with demix.separator_b=reference.
ARG BASE=demix:cpu
FROM ${BASE}

RUN make spleeter-env PYTHON=python3 \
 && .venv-spleeter/bin/python -c "import spleeter, tensorflow; print('spleeter', spleeter.__version__ if hasattr(spleeter, '__version__') else 'ok')"
ENV DEMIX_SPLEETER_PYTHON=/opt/demix/.venv-spleeter/bin/python
