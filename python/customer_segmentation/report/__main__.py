"""``python -m customer_segmentation.report``: write the report (see ``page.main``)."""

import sys

from customer_segmentation.report.page import main

sys.exit(main())
