"""Every change of a task's state, one module per concern (see jobs.transitions for how a state moves).

- adding:     Add Task and Add Task Collection
- runs:       claiming tasks for a node and recording how their runs ended
- actions:    what users ask of a task: terminate, reactivate, delete, update
- node_task_runs: the runs of a job's preparation and release tasks on a node
- sweeps:     the housekeeping every worker does
(A node's own life in its pool is `pools.services.nodes`.)
"""
