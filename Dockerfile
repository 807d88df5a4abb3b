# One image for the API and the workers (see docker-compose.yml).
#
#   CPU image (default):  docker build -t armscope:cpu .
#   GPU image:            docker build -t armscope:gpu --build-arg TORCH_INDEX=https://pypi.org/simple .
#
# A GPU image needs an index that carries a CUDA build of the pinned torch version (PyPI's Linux
# build is one; download.pytorch.org/whl/cuXYZ offers others) and a host driver at least as new
# as that CUDA; the CUDA runtime itself comes inside the torch wheels.
# TORCH_SPEC must satisfy pyproject's torch pin, or `pip install .` replaces it from PyPI.
FROM python:3.11-slim

ARG TORCH_SPEC="torch==2.13.0"
ARG TORCH_INDEX="https://download.pytorch.org/whl/cpu"

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A C/C++ compiler: Triton builds its kernel launchers with one when ARM's step is compiled on
# a GPU, and Inductor's CPU backend needs one too; without it, compile: auto runs eagerly.
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ \
    && rm -rf /var/lib/apt/lists/*

# torch first and on its own layer: it is most of the image and changes far less often than
# our code. A local build such as 2.13.0+cpu satisfies the ==2.13.0 pin, so the next step keeps it.
RUN pip install --index-url "${TORCH_INDEX}" "${TORCH_SPEC}"

COPY . /src
RUN pip install /src && rm -rf /src

# Owning /data/armscope here makes a fresh named volume mounted there writable by this user.
RUN useradd --create-home --uid 1000 armscope \
    && mkdir -p /data/armscope \
    && chown armscope:armscope /data/armscope
USER armscope
ENV ARMSCOPE_HOME=/data/armscope
WORKDIR /data/armscope

EXPOSE 8000
CMD ["armscope", "serve", "--host", "0.0.0.0", "--port", "8000"]
