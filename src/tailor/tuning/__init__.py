"""The fine-tune route for generative models: the pieces the fine-tuning methods share.

- :mod:`.sft` turns examples into token ids and answer-only targets, through the prompt route's own rendering;
- :mod:`.packing` lays several examples into one row without attention between them;
- :mod:`.steps` computes the loss of a micro-batch (packed causal, padded soft-prompt or seq2seq, class head);
- :mod:`.options` holds the options every fine-tuning method takes;
- :mod:`.loop` is the training recipe: steps, dev evaluation on the task metric, early stopping, checkpoints,
  resumption and several processes;
- :mod:`.checkpoints` saves and loads the loop's checkpoints, checking that one is this run's before reading it;
- :mod:`.trainer` is the training tail the methods on that loop share: the dev sample and its metric, the loop's
  settings, the checkpoint's fingerprint, and what training cost (tokens, FLOPs, dev predictions);
- :mod:`.audits` checks, before and after training, that the above did what it claims;
- :mod:`.recipe` wires them into the method contract (adapt, predict, save, load, export).
"""
