"""The report: one offline HTML page and a PNG per chart, from the report models (``rpt_*``).

``page.py`` reads the models and writes the page; ``charts.py`` has one function per chart.
Run it with ``python -m customer_segmentation.report``.
"""
