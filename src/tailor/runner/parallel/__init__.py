"""Running trials elsewhere than the main process: local worker processes, a Ray cluster, and the ranks of a
``torchrun`` job.

- :mod:`.job`: what a worker is handed (the task, its data and a trial) and hands back;
- :mod:`.workers`: local worker processes and Ray actors, each finished trial sent back to be stored;
- :mod:`.processes`: rank and world size under torchrun, and running a step on rank 0 only.
"""
