# Training image: the pinned runtime (PyTorch included) and the package.
#   docker build -f dockerfiles/train.dockerfile -t mushroom-train .
#   docker run --rm -v "$PWD/data:/work/data" -v "$PWD/logs:/work/logs" mushroom-train experiment=real_photos_cpu
# For CUDA, run on a host with the NVIDIA container toolkit and add --gpus all trainer=gpu.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MUSHROOM_ROOT=/work

WORKDIR /app
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt

COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir --no-deps . \
    && useradd --create-home --uid 1000 mushroom \
    && mkdir -p /work \
    && chown mushroom /work

USER 1000
WORKDIR /work
ENTRYPOINT ["python", "-m", "mushroom.train"]
