"""Settings package: ``base`` reads the environment; ``dev``, ``test`` and ``production`` adjust it.

``DJANGO_SETTINGS_MODULE`` picks one; ``manage.py`` defaults to ``whalesite.settings.dev``.
"""
