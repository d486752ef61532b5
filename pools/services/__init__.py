"""Every change to a pool (see jobs.transitions for how a state moves).

- lifecycle:    Add, Patch, Update Properties and Delete Pool, pools made on demand, the purge of deleted pools
- nodes:        a node's life in its pool: it joins, beats its heartbeat, leaves, or is lost
- node_actions: what users ask of a node: Disable/Enable Scheduling, Reboot, leaving the pool
- sizing:       Resize, Stop Resize and Remove Nodes: what a pool's size should be
- allocation:   the allocator's side: which nodes to make or let go, and how a resize ends
"""
