"""Model rollouts from the fleet (docs/rollouts.md): signed bundles uploaded and kept by hash
(``bundles.py``), rollouts in waves with a canary and success criteria (``engine.py``), their
tables (``store.py``) and API (``routes.py``), bundle downloads by hash with HTTP Range.

The device's half is ``edgemed.ota``; the messages between them are ``edgemed.delivery``'s.
"""
