"""Agent loops on Orgo computers: adapters for models' computer-use tools, and trajectories.

Each vendor library is imported only by the adapter that needs it. The
trajectory recorder and reader (:mod:`.trajectory`) need nothing beyond the
core install.
"""
