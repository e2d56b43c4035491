# Service image: ONNX Runtime, FastAPI and the package, without PyTorch.
#   python -m mushroom.export model_path=logs/.../best.ckpt output_path=models/model.onnx
#   docker build -f dockerfiles/api.dockerfile -t mushroom-api .
#   docker run --rm -p 8000:8000 -v "$PWD/models:/models:ro" mushroom-api
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MUSHROOM_ROOT=/var/lib/mushroom

WORKDIR /app
COPY requirements_api.txt ./
RUN pip install --no-cache-dir -r requirements_api.txt

COPY pyproject.toml README.md ./
COPY src ./src
# --no-deps: the package's full dependency list would pull PyTorch; the service needs none of it.
RUN pip install --no-cache-dir --no-deps . \
    && python -c "import sys; sys.modules['torch'] = None; import mushroom.serve, mushroom.drift" \
    && useradd --create-home --uid 1000 mushroom \
    && mkdir -p /var/lib/mushroom \
    && chown mushroom /var/lib/mushroom

USER 1000
WORKDIR /var/lib/mushroom
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/ready', timeout=4)"]
ENTRYPOINT ["python", "-m", "mushroom.serve", "host=0.0.0.0", "port=8000"]
CMD ["model_path=/models/model.onnx"]
