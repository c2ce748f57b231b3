"""The loss of one micro-batch, as a sum over its targets (the loop divides by the whole step's count, so
a step's gradient is the same however its examples are split into micro-batches or processes)."""

from __future__ import annotations

from typing import Any

from .packing import Batch

# Causal LMs whose forward does more to the logits than the output layer (soft-capping, scaling): their loss
# goes through the model's own forward rather than through the decoder and output layer separately.
_LOGIT_POSTPROCESSING = ("final_logit_softcapping", "logit_scale", "logits_scaling")


def unwrap(model: Any) -> Any:
    """The transformers model inside a PEFT wrapper (adapter layers are injected into it in place)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def splits_head(model: Any) -> bool:
    """Whether the loss may run the decoder and then the output layer on the answer positions only."""
    base = unwrap(model)
    config = base.config
    if any(getattr(config, name, None) not in (None, 1.0) for name in _LOGIT_POSTPROCESSING):
        return False
    return callable(getattr(base, "get_decoder", None)) and base.get_output_embeddings() is not None


def packed_logits(model: Any, batch: Batch) -> Any:
    """Logits at the positions of packed causal rows that predict answer tokens (``batch.predict_at``)."""
    base = unwrap(model)
    device = base.device
    ids = batch.input_ids.to(device)
    pos = batch.position_ids.to(device) if batch.position_ids is not None else None
    if splits_head(model):
        hidden = base.get_decoder()(input_ids=ids, position_ids=pos, use_cache=False).last_hidden_state
        picked = hidden.reshape(-1, hidden.shape[-1])[batch.predict_at.to(device)]
        return base.get_output_embeddings()(picked)
    out = base(input_ids=ids, position_ids=pos, use_cache=False)
    return out.logits.reshape(-1, out.logits.shape[-1])[batch.predict_at.to(device)]


def packed_loss(model: Any, batch: Batch) -> tuple[Any, int]:
    """Summed cross-entropy of the answer tokens of packed causal rows."""
    import torch.nn.functional as F

    logits = packed_logits(model, batch)
    loss = F.cross_entropy(logits.float(), batch.targets.to(logits.device), reduction="sum")
    return loss, int(batch.targets.numel())


def padded_loss(model: Any, batch: Batch) -> tuple[Any, int]:
    """Summed cross-entropy of the answer tokens of padded causal rows, through the model's (PEFT's) own forward,
    which is what puts a soft prompt's virtual tokens in front of each row."""
    import torch.nn.functional as F

    device = unwrap(model).device
    ids, mask, labels = batch.input_ids.to(device), batch.attention_mask.to(device), batch.targets.to(device)
    logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
    logits = logits[:, -ids.shape[1] :]  # prompt tuning returns logits for its virtual tokens first
    shifted = labels[:, 1:]
    loss = F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]).float(), shifted.reshape(-1), ignore_index=-100, reduction="sum"
    )
    return loss, int((shifted != -100).sum())


def seq2seq_loss(model: Any, batch: Batch) -> tuple[Any, int]:
    """Summed cross-entropy of the decoder's labels (the model shifts them right into its own inputs)."""
    import torch.nn.functional as F

    device = unwrap(model).device
    labels = batch.targets.to(device)
    out = model(input_ids=batch.input_ids.to(device), attention_mask=batch.attention_mask.to(device), labels=labels)
    loss = F.cross_entropy(
        out.logits.reshape(-1, out.logits.shape[-1]).float(), labels.reshape(-1), ignore_index=-100, reduction="sum"
    )
    return loss, int((labels != -100).sum())


def class_loss(model: Any, batch: Batch) -> tuple[Any, int]:
    """Summed cross-entropy of a sequence-classification head over the batch's examples."""
    import torch.nn.functional as F

    device = unwrap(model).device
    logits = model(input_ids=batch.input_ids.to(device), attention_mask=batch.attention_mask.to(device)).logits
    return F.cross_entropy(logits.float(), batch.targets.to(device), reduction="sum"), int(batch.targets.numel())
