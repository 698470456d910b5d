"""Decoded-size limits, tried as the attacker would: a kilobyte-sized Parquet file that decodes
to 20 million rows, a CSV with more rows than allowed, one text value repeated on every row. Each
is refused with a 400 (or a form error) before pandas builds a frame, with memory staying flat
and nothing stored; and a synthetic upload's values must be of each column's declared kind."""

from __future__ import annotations

import io
import resource
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from audit.models import AuditEvent
from conftest import SAFE_COLUMNS, csv_upload
from core.errors import ValidationFailed
from generation.models import SourceDataset
from generation.services.uploads import synthetic_upload_store
from generation.storage import read_encrypted_parquet
from generation.tests.conftest import stored_files

URL = "/api/v1/datasets/"
BOMB_ROWS = 20_000_000
MB = 1024 * 1024


@pytest.fixture(scope="module")
def parquet_bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 million rows of one constant column: run-length encoded, a few kilobytes on disk.
    Written in slices so building it does not itself take the memory the test measures."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.parquet"
    slice_rows = 1_000_000
    block = pa.table({"age": pa.repeat(pa.scalar(42, pa.int64()), slice_rows)})
    with pq.ParquetWriter(path, block.schema, compression="zstd") as writer:
        for _ in range(BOMB_ROWS // slice_rows):
            writer.write_table(block)
    del block
    assert pq.ParquetFile(path).metadata.num_rows == BOMB_ROWS
    assert path.stat().st_size < 50 * 1024
    return path


class PeakMemory:
    """Growth while a block runs, three ways: peak Python-traced allocations (numpy's and
    pandas' included), peak Arrow allocations (outside tracemalloc; sampled every few
    milliseconds), and growth of the process's peak resident size (a high-water mark: it can
    under-report after an earlier test peaked higher, never hide a multi-gigabyte decode)."""

    traced = 0
    arrow = 0
    resident = 0

    def below(self, limit: int) -> bool:
        return max(self.traced, self.arrow, self.resident) < limit


@pytest.fixture
def measure() -> Callable[[], Any]:
    @contextmanager
    def run(*, trace_python: bool = True) -> Iterator[PeakMemory]:
        # tracemalloc slows pure-Python loops tenfold; a CSV test that only needs the Arrow and
        # resident figures turns it off.
        peak, done = PeakMemory(), threading.Event()
        arrow_before = pa.total_allocated_bytes()

        def sample() -> None:
            while not done.wait(0.002):
                peak.arrow = max(peak.arrow, pa.total_allocated_bytes() - arrow_before)

        sampler = threading.Thread(target=sample, daemon=True)
        resident_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        if trace_python:
            tracemalloc.start()
        sampler.start()
        try:
            yield peak
        finally:
            done.set()
            sampler.join()
            if trace_python:
                peak.traced = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
            peak.resident = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - resident_before

    return run


def _file(path: Path, name: str) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, path.read_bytes(), content_type="application/octet-stream")


def _register(api: Any, sam: Any, upload: SimpleUploadedFile) -> Any:
    form = {"name": "bomb", "epsilon_cap": "1", "file": upload}
    return api(sam).post(URL, form, format="multipart")


def _nothing_registered(storage_dir: Path) -> None:
    assert SourceDataset.objects.count() == 0
    assert stored_files(storage_dir) == []


def test_a_kilobyte_parquet_file_of_20_million_rows_is_refused_from_its_footer(
    api: Any, sam: Any, parquet_bomb: Path, storage_dir: Path, measure: Any
) -> None:
    upload = _file(parquet_bomb, "bomb.parquet")
    with measure() as peak:
        response = _register(api, sam, upload)

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "too_many_rows"
    assert "20,000,000 rows" in error["message"] and "1,000,000" in error["message"]
    assert peak.below(200 * MB), vars(peak)
    _nothing_registered(storage_dir)
    refusal = AuditEvent.objects.get(action="dataset.register", outcome="denied")
    assert refusal.details == {"reason": "too_many_rows"}


def test_the_parquet_bomb_is_a_form_error_in_the_browser(
    client: Any, sam: Any, parquet_bomb: Path, storage_dir: Path, measure: Any
) -> None:
    client.force_login(sam)
    form = {"name": "bomb", "epsilon_cap": "1", "file": _file(parquet_bomb, "bomb.parquet")}
    with measure() as peak:
        response = client.post("/datasets/new/", form)

    assert response.status_code == 200
    assert b"20,000,000 rows" in response.content
    assert peak.below(200 * MB), vars(peak)
    _nothing_registered(storage_dir)


def test_a_csv_with_more_rows_than_the_limit_is_refused_while_streaming(
    api: Any, sam: Any, storage_dir: Path, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.SYNTHGATE_MAX_ROWS = 1_000

    def never(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("pandas was asked to build a frame of an over-limit file")

    monkeypatch.setattr("generation.intake.pd.read_csv", never)
    content = "age,sex\n" + "".join(f"{i % 90},{'FM'[i % 2]}\n" for i in range(5_000))

    response = _register(api, sam, csv_upload(content))

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "too_many_rows" and "more than 1,000 rows" in error["message"]
    _nothing_registered(storage_dir)


def test_three_million_two_byte_lines_are_refused_with_flat_memory(
    api: Any, sam: Any, storage_dir: Path, measure: Any
) -> None:
    upload = csv_upload(b"n\n" + b"1\n" * 3_000_000)  # 6 MB, under the byte cap
    with measure(trace_python=False) as peak:
        response = _register(api, sam, upload)

    assert response.status_code == 400 and response.json()["error"]["code"] == "too_many_rows"
    assert peak.below(200 * MB), vars(peak)
    _nothing_registered(storage_dir)


def test_cells_are_limited_as_well_as_rows(api: Any, sam: Any, storage_dir: Path, settings: Any) -> None:
    settings.SYNTHGATE_MAX_CELLS = 100
    header = ",".join(f"c{i}" for i in range(10))
    rows = "".join(",".join(str(i + j) for j in range(10)) + "\n" for i in range(20))

    response = _register(api, sam, csv_upload(f"{header}\n{rows}"))

    assert response.status_code == 400 and response.json()["error"]["code"] == "too_many_cells"
    _nothing_registered(storage_dir)


def test_line_breaks_inside_quoted_fields_do_not_count_as_rows(
    api: Any, sam: Any, settings: Any, storage_dir: Path
) -> None:
    settings.SYNTHGATE_MAX_ROWS = 50
    content = "age,note\n" + "".join(f'{40 + i % 30},"line one\nline two"\n' for i in range(45))

    response = _register(api, sam, csv_upload(content))

    assert response.status_code == 201, response.content
    assert response.json()["rows"] == 45


def test_one_long_text_value_repeated_on_every_row_is_refused(
    api: Any, sam: Any, tmp_path: Path, settings: Any, storage_dir: Path
) -> None:
    settings.SYNTHGATE_MAX_DECODED_BYTES = 20 * MB
    path = tmp_path / "long.parquet"
    # One 1 MB dictionary entry referenced by 100 rows: 100 MB once decoded, kilobytes on disk.
    long_value = pa.array(["x" * MB])
    table = pa.table(
        {
            "note": pa.DictionaryArray.from_arrays(pa.array([0] * 100, pa.int32()), long_value),
            "age": pa.array(range(100)),
        }
    )
    pq.write_table(table, path, compression="zstd")
    assert path.stat().st_size < 100 * 1024

    response = _register(api, sam, _file(path, "long.parquet"))

    assert response.status_code == 400 and response.json()["error"]["code"] == "decoded_too_large"
    _nothing_registered(storage_dir)


def test_nested_parquet_columns_are_refused(api: Any, sam: Any, tmp_path: Path, storage_dir: Path) -> None:
    path = tmp_path / "nested.parquet"
    pq.write_table(pa.table({"age": [1, 2], "codes": [[1, 2], [3]]}), path)

    response = _register(api, sam, _file(path, "nested.parquet"))

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "unsupported_parquet_type" and "`codes`" in error["message"]
    _nothing_registered(storage_dir)


# --- Bring your own: the approved rows, and each column's declared kind ------------------------


def _synthetic(dataset: Any, rows: int = 200) -> pd.DataFrame:
    return read_encrypted_parquet(dataset.storage_path)[SAFE_COLUMNS].head(rows).reset_index(drop=True)


def _as_csv(frame: pd.DataFrame) -> SimpleUploadedFile:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return csv_upload(buffer.getvalue(), "synthetic.csv")


def _store(dataset: Any, upload: SimpleUploadedFile, max_rows: int = 300) -> Any:
    return synthetic_upload_store(
        uploaded_file=upload, dataset=dataset, columns=SAFE_COLUMNS, max_rows=max_rows
    )


def test_a_synthetic_parquet_bomb_is_refused_against_the_approved_rows(
    dataset: Any, tmp_path: Path, storage_dir: Path, measure: Any
) -> None:
    path = tmp_path / "synthetic.parquet"
    frame = _synthetic(dataset, 1)
    with pq.ParquetWriter(path, pa.Table.from_pandas(frame, preserve_index=False).schema) as writer:
        block = pa.Table.from_pandas(frame.loc[frame.index.repeat(500_000)], preserve_index=False)
        for _ in range(40):
            writer.write_table(block)
    del block
    assert path.stat().st_size < 200 * 1024
    before = stored_files(storage_dir)

    with measure() as peak, pytest.raises(ValidationFailed) as refused:
        _store(dataset, _file(path, "synthetic.parquet"))

    assert refused.value.code == "too_many_rows"
    assert "20,000,000 rows" in refused.value.message and "at most 300" in refused.value.message
    assert peak.below(200 * MB), vars(peak)
    assert stored_files(storage_dir) == before


@pytest.mark.parametrize(
    ("column", "bad", "says"),
    [
        ("age", "CANARY-NOT-A-NUMBER", "numbers"),
        ("sex", "CANARY-CATEGORY", "among the declared categories"),
        ("creatinine", "inf", "numbers"),
    ],
)
def test_synthetic_values_must_be_of_the_declared_kind(
    dataset: Any, storage_dir: Path, column: str, bad: str, says: str
) -> None:
    frame = _synthetic(dataset).astype({column: object})
    frame.loc[[3, 7], column] = bad
    before = stored_files(storage_dir)

    with pytest.raises(ValidationFailed) as refused:
        _store(dataset, _as_csv(frame))

    assert refused.value.code == "invalid_values"
    assert f"Column `{column}`" in refused.value.message and "2 of its cells" in refused.value.message
    assert says in refused.value.message
    assert "CANARY" not in refused.value.message and "CANARY" not in str(refused.value.fields)
    assert stored_files(storage_dir) == before


def test_a_date_column_must_hold_dates(dataset: Any, storage_dir: Path) -> None:
    from generation.services.uploads import check_declared_kinds

    frame = pd.DataFrame({"seen": ["2024-01-02", "2024-02-30", None, "not a date"]})
    with pytest.raises(ValidationFailed) as refused:
        check_declared_kinds(frame, [{"name": "seen", "kind": "datetime"}])
    assert "Column `seen`" in refused.value.message and "2 of its cells" in refused.value.message
    check_declared_kinds(frame.iloc[[0, 2]], [{"name": "seen", "kind": "datetime"}])


def test_an_honest_synthetic_file_is_stored(dataset: Any) -> None:
    stored = _store(dataset, _as_csv(_synthetic(dataset)))
    assert stored.rows == 200


def test_a_header_of_a_hundred_million_delimiters_is_refused_without_parsing_it(
    api: Any, sam: Any, storage_dir: Path, measure: Any
) -> None:
    upload = csv_upload(b"," * 100_000_000 + b"\n1\n")  # 100 MB, under the byte cap
    with measure(trace_python=False) as peak:
        response = _register(api, sam, upload)

    assert response.status_code == 400 and response.json()["error"]["code"] == "too_many_columns"
    assert peak.below(400 * MB), vars(peak)
    _nothing_registered(storage_dir)


def test_one_data_row_of_millions_of_delimiters_is_refused_before_it_is_tokenized(
    api: Any, sam: Any, storage_dir: Path, measure: Any
) -> None:
    # A short header passes the header check; the bomb is the first data row. Tokenized, its
    # 50 million fields would cost about a gigabyte before the field count met the header's.
    upload = csv_upload(b"age,sex\n" + b"," * 50_000_000 + b"\n")
    with measure(trace_python=False) as peak:
        response = _register(api, sam, upload)

    assert response.status_code == 400 and response.json()["error"]["code"] == "line_too_long"
    assert peak.below(400 * MB), vars(peak)
    _nothing_registered(storage_dir)
