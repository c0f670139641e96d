"""Column access with errors naming the dataset, row and column."""

from __future__ import annotations

from ...config.errors import ConfigError
from ..registry import DatasetAttr


def check_column(attr: DatasetAttr, row: dict, index: int, role: str, kinds: tuple[type, ...],
                 required: bool) -> object:
    """Fetch the column mapped to ``role``; fail naming the row and column when missing or mistyped."""
    column = attr.column(role)
    if column is None:
        if required:
            raise ConfigError(f"dataset `{attr.name}`: no column is mapped to `{role}` in dataset_info.json")
        return None
    if column not in row or row[column] is None:
        if required and column in row:
            raise ConfigError(f"dataset `{attr.name}` row {index}: column `{column}` (the `{role}` column) is null; "
                              "give it a value in this row, or remove the row")
        if required:
            present = ", ".join(sorted(row)) or "none"
            raise ConfigError(f"dataset `{attr.name}` row {index}: missing column `{column}` (the `{role}` column); "
                              f"the row has: {present}. Map the right column in dataset_info.json `columns`.")
        return None
    value = row[column]
    if not isinstance(value, kinds):
        want = " or ".join(k.__name__ for k in kinds)
        raise ConfigError(f"dataset `{attr.name}` row {index}: column `{column}` (the `{role}` column) must be "
                          f"{want}, got {type(value).__name__}")
    return value


def looks_ranking(attr: DatasetAttr, row: dict) -> bool:
    """The row holds a chosen and a rejected reply (the mapped columns, or ones named so)."""
    return all((attr.column(role) or role) in row for role in ("chosen", "rejected"))


def ranking_error(attr: DatasetAttr, index: int | None, shape: str, fix: str) -> ConfigError:
    """A ranking dataset read as conversations with one reply each: ``shape`` says what marks it as ranking data,
    ``fix`` how to make it conversations instead."""
    flag = "" if attr.ranking else " and `ranking: true` in its dataset_info.json entry"
    row = "" if index is None else f" row {index}"
    return ConfigError(f"dataset `{attr.name}`{row}: this is a ranking dataset ({shape}): train it with a "
                       f"preference stage (rm, dpo){flag}, or {fix}")
