"""Every change to a job (see jobs.transitions for how a state moves).

- lifecycle: Add, Update, Terminate, Disable, Enable, Delete Job, and what a job's task counts
  then allow (`settle_job`)
"""
