# gsnn-edges: one image for the API (`gsnn-edges api`) and the workers (`gsnn-edges worker`).
#
#   docker build -t gsnn-edges .                                  # CPU torch (default)
#   docker build -t gsnn-edges:cuda \
#     --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 .   # CUDA torch
#
# TORCH_SPEC pins the torch version; TORCH_INDEX_URL picks the wheel flavour (CPU, or the
# CUDA index that matches your driver). torch is installed first so that `pip install .`
# finds it satisfied and never pulls a second, multi-GB build.
FROM python:3.11-slim

ARG TORCH_SPEC=torch==2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN pip install --index-url "${TORCH_INDEX_URL}" "${TORCH_SPEC}"

WORKDIR /src
COPY pyproject.toml README.md ./
COPY gsnn_edges ./gsnn_edges
COPY api ./api
COPY worker ./worker
RUN pip install . && rm -rf /src

# Unprivileged user; /data is where api and worker share artifacts (mount a volume there).
RUN useradd --create-home --uid 10001 --user-group gsnn \
    && mkdir -p /data && chown gsnn:gsnn /data
USER gsnn
WORKDIR /home/gsnn
ENV GSNN_EDGES_DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 8000

ENTRYPOINT ["gsnn-edges"]
CMD ["api", "--host", "0.0.0.0", "--port", "8000"]
