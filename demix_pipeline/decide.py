"""Column-wise decisions: keep / drop_reason from Arrow columns and thresholds, never a Python loop over rows.

A stage's `decide_table(table)` builds boolean masks with pyarrow.compute and hands them to
`apply_checks`, which keeps rows with an error as they are (keep false, their drop_reason) and
gives every other row the code of the first check that holds, or keep.
"""
from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc


def col(table: pa.Table, name: str, type_: pa.DataType = pa.float64()):
    """A column; all nulls when the table lacks it (decide_one on a partial row)."""
    if name in table.column_names:
        return table.column(name)
    return pa.nulls(table.num_rows, type_)


def rows_table(stage: str, rows: list[dict]) -> pa.Table:
    """Rows as a table with the stage schema's types for the columns they carry."""
    from demix_pipeline.manifest import schema

    present = {key for row in rows for key in row}
    fields = [field.with_nullable(True) for field in schema(stage) if field.name in present]
    return pa.Table.from_pylist([{f.name: row.get(f.name) for f in fields} for row in rows], schema=pa.schema(fields))


def ok_rows(table: pa.Table) -> pa.ChunkedArray:
    """Rows that measured without an error."""
    return pc.is_null(col(table, "error", pa.string()))


def below(values, floor: float | None):
    """values < floor, false where the value is null or the floor is not set (null)."""
    if floor is None:
        return pa.array([False] * len(values), pa.bool_())
    return pc.fill_null(pc.less(values, floor), False)


def any_of(masks: list):
    """Element-wise OR of boolean masks, nulls as false."""
    out = pc.fill_null(masks[0], False)
    for mask in masks[1:]:
        out = pc.or_(out, pc.fill_null(mask, False))
    return out


def apply_checks(table: pa.Table, checks: list[tuple[str, pa.Array | pa.ChunkedArray]]) -> pa.Table:
    """keep and drop_reason from (drop_reason, mask) pairs, the first true mask winning."""
    reason = pa.nulls(table.num_rows, pa.string())
    for code, mask in reversed(checks):
        reason = pc.if_else(pc.fill_null(mask, False), pa.scalar(code, pa.string()), reason)
    return set_decision(table, reason)


def set_decision(table: pa.Table, reason) -> pa.Table:
    ok = ok_rows(table)
    drop = pc.if_else(ok, reason, col(table, "drop_reason", pa.string()))
    keep = pc.and_(ok, pc.is_null(reason))
    return replace(table, {"keep": keep, "drop_reason": drop})


def replace(table: pa.Table, columns: dict) -> pa.Table:
    """The table with these columns replaced (cast to the types they had) or added."""
    for name, values in columns.items():
        index = table.schema.get_field_index(name)
        if index < 0:
            table = table.append_column(name, values)
            continue
        field = table.schema.field(index)
        table = table.set_column(index, field, pc.cast(values, field.type))
    return table


def only_ok(table: pa.Table, values, name: str):
    """New values for error-free rows; rows with an error keep what they have."""
    return pc.if_else(ok_rows(table), values, col(table, name, values.type))
