"""Research exports of the confirmed catalogue: a Darwin Core Archive for GBIF and OBIS
(``darwin_core``), capture histories for Program MARK / RMark (``capture_history``) and a sightings
CSV with every field (``sightings_csv``). ``common`` holds what they share: which photos count as
confirmed, people's names (never e-mail addresses), coordinate precision and the streaming sink.

Each export is a generator of ``bytes``: the views stream it and ``manage.py export_research``
writes it to a file, so no export is ever held in memory whole.
"""
