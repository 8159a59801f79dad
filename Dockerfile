# One image for every aitasks process: the API, the workers, migrations and Flower.
# It installs the project the way `make run` does (pip into a virtual environment), so
# the container runs what the tests ran.
FROM python:3.12-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/aitasks \
    PATH=/opt/aitasks/bin:$PATH

RUN python -m venv $VIRTUAL_ENV \
    && useradd --create-home --uid 10001 aitasks

WORKDIR /app
COPY pyproject.toml README.md ./
COPY graphql_app ./graphql_app
COPY schema ./schema
COPY tasks ./tasks
COPY persistence ./persistence
RUN python -m pip install --upgrade pip \
    && python -m pip install .

USER aitasks
EXPOSE 8000
CMD ["aitasks", "api"]
