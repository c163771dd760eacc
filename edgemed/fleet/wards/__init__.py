"""Wards and beds: which bedside devices serve which bed, and the ward page built on them.

- ``registry.py`` the tables (schema 10) and ``WardRegistry``: wards, beds, the devices of each
  bed, and the hospital's time zone;
- ``view.py`` one ward as its page shows it: per bed the latest vitals, NEWS2 and its colour
  band, the trend of the last hours, each result kind's latest, the open alerts;
- ``routes.py`` the REST routes (``ward_routes``), mounted by ``fleet/app.py``.

Kept import-free here: the store imports ``registry.WARD_DDL`` while it is being imported.
"""
