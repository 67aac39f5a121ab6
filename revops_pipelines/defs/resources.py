"""Resources: the run's settings and the DuckDB file, both from one `Settings`.

`settings` carries every field of `Settings` as Dagster config, so the launchpad shows (and
can change) what a run uses, and each run logs the values it resolved (secrets masked). A text
setting the environment sets arrives as `dg.EnvVar`, read when the run starts: the launchpad
shows the variable's name, never a secret, and the job's snapshot stays the same whatever the
URLs or the as-of date (a demo run and `revops dev` then share it). Assets and sensors take
their settings and their clients from it; nothing under `defs/` reads the environment but
`SETTINGS` here.

`dg.load_defs` takes a module's single `dg.Definitions` object as that module's
contribution, so the resources are bound here under the keys `settings` and `duckdb`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pydantic

from revops_pipelines import duckdb_file
from revops_pipelines.clients import client_from_settings
from revops_pipelines.connectors.base import BaseClient
from revops_pipelines.settings import Settings, env_name, secret_fields


def _as_config(settings: Settings) -> dict[str, Any]:
    return pydantic.TypeAdapter(Settings).dump_python(settings, mode="json")


_TEXT = (str, str | None)


def _config_type(annotation: Any) -> Any:
    """A settings field's type as Dagster config holds it: paths as text."""
    if annotation is Path:
        return str
    if annotation == Path | None:
        return str | None
    return annotation


class _SettingsResource(dg.ConfigurableResource):
    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        secrets = set(secret_fields())
        shown = {
            name: "***" if name in secrets and value else value
            for name, value in _as_config(self.get()).items()
        }
        context.log.info(f"settings of this run: {shown}")

    def get(self) -> Settings:
        """The plain settings object the layers below take."""
        return Settings(**{f.name: getattr(self, f.name) for f in dataclasses.fields(Settings)})

    def client(self, system: str) -> BaseClient:
        """A reading client for `system` (`crm`, `billing`, `erp`), built from these settings."""
        return client_from_settings(self.get(), system)

    @classmethod
    def of(cls, settings: Settings) -> RevopsSettings:
        return cls(**_as_config(settings))

    @classmethod
    def from_env(cls) -> RevopsSettings:
        """`Settings.from_env()` (which checks every value now), with each text setting the
        environment sets as a `dg.EnvVar`."""
        values = _as_config(Settings.from_env())
        for f in dataclasses.fields(Settings):
            text = _config_type(Settings.__pydantic_fields__[f.name].annotation) in _TEXT
            if text and env_name(f.name) in os.environ:
                values[f.name] = dg.EnvVar(env_name(f.name))
        return cls(**values)


RevopsSettings = pydantic.create_model(
    "RevopsSettings",
    __base__=_SettingsResource,
    __module__=__name__,
    __doc__="The run's settings: one field per field of `Settings`, named and defaulted there.",
    **{
        name: (_config_type(Settings.__pydantic_fields__[name].annotation), default)
        for name, default in _as_config(Settings()).items()
    },
)


class DuckDBFile:
    """The analytical DuckDB file. Runs execute their steps in one process (`executor.py`);
    a file held by another process is waited for up to `lock_timeout_s`."""

    def __init__(self, path: Path | str, *, lock_timeout_s: float) -> None:
        self.path = str(path)
        self.lock_timeout_s = lock_timeout_s

    @contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        if not read_only:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        with duckdb_file.connect(
            self.path, read_only=read_only, lock_timeout_s=self.lock_timeout_s
        ) as con:
            yield con


# A function resource, because it reads the run's `settings` resource as configured for the
# run: a path changed in the launchpad is the file the run writes.
@dg.resource(
    required_resource_keys={"settings"},
    description="The DuckDB file the run's settings name (`duckdb_path`).",
)
def duckdb_resource(context: dg.InitResourceContext) -> DuckDBFile:
    settings = context.resources.settings.get()
    return DuckDBFile(settings.duckdb_path, lock_timeout_s=settings.duckdb_lock_timeout_s)


def build_resources(settings: RevopsSettings) -> dict[str, Any]:
    """`settings`, and the DuckDB file they name."""
    return {"settings": settings, "duckdb": duckdb_resource}


SETTINGS = RevopsSettings.from_env()
defs = dg.Definitions(resources=build_resources(SETTINGS))
