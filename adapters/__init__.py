"""Infrastructure below web and workers: settings, event-store recorders, the inbox's group
committer, database notifications, singleton locks, email parsing and small caches.

Depends on ``domain`` only; ``projections``, ``web``, ``workers`` and the wiring in ``tocsin``
build on it.
"""
