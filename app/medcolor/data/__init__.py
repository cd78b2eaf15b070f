"""Data specs -> tables -> fastai DataLoaders (docs/design.md, "Data specs")."""
from .readers import Table, read_table
from .specs import list_specs, load_data_config, resolve_data
from .summary import summarize

__all__ = ["Table", "read_table", "list_specs", "load_data_config", "resolve_data", "summarize"]
