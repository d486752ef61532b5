"""Every change to a pool (see jobs.transitions for how a state moves).

- lifecycle: Add, Patch, Update Properties and Delete Pool, and the purge of deleted pools
"""
