"""Reading a Parquet upload without letting a small file expand into gigabytes.

Parquet compresses repetitive data enormously (a 25 KB file can hold 3 million rows, a 10 KB one a 300 MB cell),
so the upload size says nothing about what reading it costs. The file's metadata states its rows and the
uncompressed size of every row group and column chunk: those are checked against the upload limits before a row
is decoded. Metadata can lie, so rows are then decoded one row group at a time and counted again as they come.
"""

from __future__ import annotations

from typing import Any

from medcot_ui.units import human_size


class ParquetTooLarge(ValueError):
    """The file would expand beyond a limit; the message names the row group or column and the setting."""


def read_parquet(raw: bytes, name: str, max_rows: int | None = None,
                 max_bytes: int | None = None) -> list[dict[str, Any]]:
    """Records of a Parquet file; with limits, refuses (ParquetTooLarge) what would expand beyond them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(pa.BufferReader(raw))
    check_metadata(parquet.metadata, name, max_rows, max_bytes)
    records: list[dict[str, Any]] = []
    decoded = 0
    for group in range(parquet.num_row_groups):
        table = parquet.read_row_group(group)
        decoded += table.nbytes
        if max_rows is not None and len(records) + table.num_rows > max_rows:
            raise ParquetTooLarge(_rows_message(name, len(records) + table.num_rows, max_rows, "at least "))
        if max_bytes is not None and decoded > max_bytes:
            raise ParquetTooLarge(f"{name}: row group {group} expands to over {human_size(max_bytes)} "
                                  "(MEDCOT_UPLOAD_MAX_MB); upload a smaller slice")
        records.extend(table.to_pylist())
    return records


def check_metadata(metadata: Any, name: str, max_rows: int | None, max_bytes: int | None) -> None:
    """Refuse from the footer alone: too many rows, or more uncompressed data than the upload limit."""
    if max_rows is not None and metadata.num_rows > max_rows:
        raise ParquetTooLarge(_rows_message(name, metadata.num_rows, max_rows))
    if max_bytes is None:
        return
    total = 0
    for group in range(metadata.num_row_groups):
        row_group = metadata.row_group(group)
        in_group = 0
        for index in range(row_group.num_columns):
            column = row_group.column(index)
            size = max(column.total_uncompressed_size, 0)
            if size > max_bytes:
                raise ParquetTooLarge(
                    f"{name}: column '{column.path_in_schema}' of row group {group} holds {human_size(size)} "
                    f"uncompressed, over the upload limit of {human_size(max_bytes)} (MEDCOT_UPLOAD_MAX_MB)")
            in_group += size
        total += max(in_group, row_group.total_byte_size)
    if total > max_bytes:
        raise ParquetTooLarge(f"{name}: {human_size(total)} uncompressed is over the upload limit of "
                              f"{human_size(max_bytes)} (MEDCOT_UPLOAD_MAX_MB)")


def _rows_message(name: str, rows: int, max_rows: int, qualifier: str = "") -> str:
    return (f"{name}: {qualifier}{rows:,} rows is over the limit of {max_rows:,} rows (MEDCOT_UPLOAD_MAX_ROWS); "
            "upload a smaller slice")
