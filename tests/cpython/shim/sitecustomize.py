"""Run at the start of each interpreter CPython's tests start (they import
``ProcessPoolExecutor`` by name in a fresh ``python -c``)."""

import goforkpy_as_ppe

goforkpy_as_ppe.install()
