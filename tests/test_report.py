"""The report: every chart is a valid Vega-Lite spec, PNGs are real images, the page is whole."""

from __future__ import annotations

import time
from pathlib import Path

import altair as alt
import pytest

from conftest import DbtRun, database_held_open
from customer_segmentation.report import page as report

SECTIONS = ["data", "features", "choosing_k", "quality", "segments", "movement"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def sections(bundled_build: DbtRun) -> list[report.Section]:
    return report.build_sections(report.load_marts(bundled_build.database))


def all_charts(sections: list[report.Section]) -> dict[str, alt.TopLevelMixin]:
    return {name: chart for s in sections for name, chart in s.charts.items()}


def test_every_section_and_chart_is_built(sections: list[report.Section]) -> None:
    assert [s.key for s in sections] == SECTIONS
    charts = all_charts(sections)
    assert len(charts) == 20
    for name, chart in charts.items():
        spec = chart.to_dict()  # validates against the Vega-Lite schema
        assert spec["$schema"].startswith("https://vega.github.io/schema/vega-lite/"), name


def test_segments_have_one_colour_each_in_cluster_order(
    sections: list[report.Section], bundled_build: DbtRun
) -> None:
    names = [
        r[0]
        for r in bundled_build.query(
            "select segment_name from segment_profiles order by cluster_id"
        )
    ]
    spec = all_charts(sections)["pca_scatter"].to_dict()
    color = spec["encoding"]["color"]["scale"]
    assert color["domain"] == names
    assert len(set(color["range"])) == len(names)


def test_png_export_gives_images(sections: list[report.Section], tmp_path: Path) -> None:
    for name, chart in all_charts(sections).items():
        path = tmp_path / f"{name}.png"
        chart.save(str(path))
        content = path.read_bytes()
        assert content.startswith(PNG_SIGNATURE), name
        assert len(content) > 5_000, name


def test_page_is_self_contained_and_complete(bundled_build: DbtRun, tmp_path: Path) -> None:
    written = report.write_report(bundled_build.database, tmp_path, png=False)
    page = written[0].read_text(encoding="utf-8")
    assert "<script src=" not in page  # Vega, Vega-Lite and vega-embed are inline
    assert "vegaEmbed" in page
    for key in ["summary", *SECTIONS]:
        assert f'<section id="{key}">' in page
    for name in all_charts(report.build_sections(report.load_marts(bundled_build.database))):
        assert f'id="chart-{name}"' in page
    k = bundled_build.scalar("select k from cluster_model_selection where is_selected limit 1")
    assert f"<b>{k} segments</b>" in page
    assert "Recommended action" in page


def test_missing_database_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(report.ReportError, match="no such database; run `make build` first"):
        report.load_marts(tmp_path / "nope.duckdb")
    assert report.main(["--database", str(tmp_path / "nope.duckdb"), "--out", str(tmp_path)]) == 1


def test_database_locked_by_another_process_is_a_clear_error(tmp_path: Path) -> None:
    database = tmp_path / "locked.duckdb"
    with (
        database_held_open(database),
        pytest.raises(report.ReportError, match="Another process holds the file"),
    ):
        report.load_marts(database)
    time.sleep(0.1)


def test_a_database_without_the_marts_is_a_clear_error(tmp_path: Path) -> None:
    import duckdb

    database = tmp_path / "empty.duckdb"
    duckdb.connect(str(database)).close()
    with pytest.raises(report.ReportError, match="a table the report reads is missing"):
        report.load_marts(database)


def test_scatter_says_how_many_customers_the_sample_shows() -> None:
    import pandas as pd

    from customer_segmentation.report import charts

    sample = pd.DataFrame(
        {
            "customer_id": [1, 2, 3],
            "pca_1": [0.0, 1.0, 2.0],
            "pca_2": [0.0, 1.0, 0.5],
            "distance_to_centroid": [0.1, 0.2, 0.3],
            "segment_name": ["A", "B", "A"],
            "n_customers": [10, 10, 10],
        }
    )
    spec = charts.pca_scatter(sample, charts.segment_colors(["A", "B"])).to_dict()
    assert spec["title"]["subtitle"] == "3 of 10 customers shown"


def test_per_customer_tables_are_aggregated_or_sampled_in_sql() -> None:
    # The report never pulls every customer's rows to count or sample them in pandas.
    assert "group by" in report.MART_QUERIES["rfm_cells"]
    assert "group by" in report.MART_QUERIES["history_counts"]
    assert f"limit {report.PCA_SAMPLE_SIZE}" in report.MART_QUERIES["clusters_sample"]
