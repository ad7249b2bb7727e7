"""Bulk import: a sheet (CSV or XLSX) of sightings plus a ZIP of their photos (``docs/IMPORT.md``).

``sheet`` reads the rows and names the columns, ``archive`` opens the ZIP safely, ``rows`` validates
every row before anything is written, and ``run`` creates the import, runs it in chunks on Celery
(``submissions.tasks.import_chunk``) and reports its progress. The photos go through the upload's own
checks and duplicate rule (``submissions.services``).
"""
