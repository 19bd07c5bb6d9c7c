"""The audience files (`make audiences`) from the bundled build."""

from __future__ import annotations

import csv
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from conftest import DbtRun
from customer_segmentation.report.audiences import file_stem, main, write_audiences
from test_rules_build import frame

pytestmark = pytest.mark.dbt

HEADER = ["customer_id", "segment_id", "segment_name", "recommended_action", "p_alive",
          "predicted_clv", "is_returned_everything", "is_high_return_rate", "is_outlier",
          "is_lapsed", "suppression_reason", "is_suppressed"]  # fmt: skip


def test_one_csv_per_segment_and_a_parquet_of_everyone(
    bundled_build: DbtRun, tmp_path: Path
) -> None:
    written = write_audiences(bundled_build.database, tmp_path / "audiences")
    segments = frame(bundled_build, "select * from customer_segments")
    names = dict(bundled_build.query("select segment_id, segment_name from segment_names"))
    assert sorted(p.name for p in written[:-1]) == sorted(
        f"{file_stem(i, n)}.csv" for i, n in names.items()
    )
    total = 0
    for path in written[:-1]:
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(handle))
        assert rows[0] == HEADER
        segment_ids = {int(row[1]) for row in rows[1:]}
        assert len(segment_ids) == 1
        segment_id = segment_ids.pop()
        members = segments[segments["segment_id"] == segment_id]
        assert [int(row[0]) for row in rows[1:]] == sorted(members["customer_id"])
        total += len(rows) - 1
    assert total == len(segments)
    everyone = pd.read_parquet(written[-1])
    assert len(everyone) == len(segments) and list(everyone.columns) == HEADER
    # The reasons, counted directly from customer_segments: its own reason first, then lapsed.
    lapsed = segments["recency_days"] >= 180
    expected = segments["suppression_reason"].where(
        segments["suppression_reason"].notna(), lapsed.map({True: "lapsed", False: None})
    )
    direct = segments[["customer_id", "recency_days", "net_monetary"]].assign(expected=expected)
    merged = everyone.merge(direct, on="customer_id")
    assert (merged["suppression_reason"].fillna("-") == merged["expected"].fillna("-")).all()
    assert (merged["is_lapsed"] == (merged["recency_days"] >= 180)).all()
    assert (merged["is_returned_everything"] == (merged["net_monetary"] <= 0)).all()
    high = merged["is_high_return_rate"] & ~merged["is_returned_everything"]
    assert (merged.loc[high, "suppression_reason"] == "high_return_rate").all() and high.any()
    assert merged["is_suppressed"].sum() == merged["expected"].notna().sum() > 0
    assert set(merged["suppression_reason"].dropna()) >= {"lapsed", "outlier"}


def test_the_command_names_what_it_wrote_and_refuses_a_database_without_a_build(
    bundled_build: DbtRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    (out).mkdir()
    (out / "segment-99-gone.csv").write_text("stale\n", encoding="utf-8")
    assert main(["--database", str(bundled_build.database), "--out", str(out)]) == 0
    assert "segment CSV file(s)" in capsys.readouterr().out
    assert not (out / "segment-99-gone.csv").exists()
    missing = tmp_path / "missing.duckdb"
    assert main(["--database", str(missing), "--out", str(tmp_path / "x")]) == 1
    assert "no such database; run `make build` first" in capsys.readouterr().err
    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    assert main(["--database", str(empty), "--out", str(tmp_path / "x")]) == 1
    assert "has no build_log" in capsys.readouterr().err
