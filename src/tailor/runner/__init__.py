"""Running a task: the plan of trials, adapting and evaluating each, storing every result, resuming a stopped run.

- :mod:`.run`: the whole flow, top to bottom (load → split → plan → adapt and evaluate each trial → store → report);
- :mod:`.plan`: the trials a task file asks for (methods × variants × curve sizes × seeds) and their checks;
- :mod:`.evaluate`: predicting a split and scoring it; :mod:`.predict`: ``tailor predict`` on a saved folder;
- :mod:`.store`: the SQLite run store; :mod:`.folders`: run folders, ``--resume`` and the run lock;
- :mod:`.record`: what a run records about itself (versions, git revision, sizes);
- :mod:`.parallel`: trials in worker processes, on Ray, or fine-tuning across torchrun processes.

May import everything below the command line (config, data, methods, backends, stats, costs, report).
"""
