"""The emulator's HTTP routes, one module per resource.

- :mod:`.workspaces`: ``/api/workspaces`` and the ``/api/projects`` alias;
- :mod:`.computers`: ``/api/computers``: CRUD, lifecycle, clone and move,
  resize, auto-stop, ``vnc-password``;
- :mod:`.health`: the desktop proxy's health probe and its unknown endpoints;
- :mod:`.desktop`: the desktop actions (screenshot, click, ..., bash, exec) on
  the platform route and through the proxy, and the service behind them;
- :mod:`.files`: ``/api/files`` and the file store behind them;
- :mod:`.extras`: streams, screens, resume/ensure-running/fork, the events
  catalog and compute limits;
- :mod:`.templates` and :mod:`.template_runs`: ``/api/templates`` and test runs;
- :mod:`.chat`: the hosted agent (``/api/v1/chat/completions``) and its threads;
- :mod:`.admin`: the emulator's own ``/_emulator/`` routes.

Each module maps its own paths with ``add_routes(router)`` (:mod:`.templates`
maps :mod:`.template_runs`' too); :func:`orgo_async.emulator.app.create_app`
calls them in order. What every route shares (its emulator, the JSON body and
its fields) is in :mod:`._base`.
"""
