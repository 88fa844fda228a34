"""What the training loop guards against: a Ctrl-C in the middle of an update or a checkpoint write, and a
loss that is not finite (blamed on the data or on the optimisation only by what was checked)."""

from __future__ import annotations

import contextlib
import signal
import threading
from pathlib import Path

import torch


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`trainers.engine.train`, raised after the checkpoint of the last completed step was written."""

    def __init__(self, step: int, checkpoint: Path | None) -> None:
        super().__init__(step, checkpoint)
        self.step, self.checkpoint = step, checkpoint


@contextlib.contextmanager
def deferred_interrupt():
    """Hold a SIGINT that arrives inside the block until the block is done (then raise it), so that an
    optimizer update or a checkpoint write is never cut in half. Only the main thread can take signals."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) in (
        signal.SIG_IGN,
        None,
    ):  # not the main thread, or SIGINT is ignored (nohup, a background job): nothing to defer
        yield
        return
    received = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt


def all_finite(value) -> bool:
    """Whether every floating tensor in ``value`` (a tensor, a dict of them or an object holding them) is finite."""
    if isinstance(value, torch.Tensor):
        return not value.is_floating_point() or bool(torch.isfinite(value).all())
    if isinstance(value, dict):
        return all(all_finite(v) for v in value.values())
    if hasattr(value, "__dict__"):
        return all(all_finite(v) for v in vars(value).values() if isinstance(v, torch.Tensor))
    return True


def nonfinite_loss_message(loss: float, step: int, epoch: int, batch: dict, enc, model, config) -> str:
    """Say what is known when the loss is not finite: the step, and whether this step's inputs, targets and
    the parameters were finite. Only a step whose data were finite points at the optimisation settings."""
    where = f"training loss is {loss} at step {step} (epoch {epoch})"
    inputs_ok = all_finite({k: batch[k] for k in ("image", "keypoints", "visible")})
    targets_ok = all_finite(enc)
    if not inputs_ok or not targets_ok:
        bad = [name for name, ok in (("inputs", inputs_ok), ("targets", targets_ok)) if not ok]
        indices = batch.get("index")
        samples = f" (samples {torch.as_tensor(indices).tolist()})" if indices is not None else ""
        return (
            f"{where}: this step's {' and '.join(bad)} are not finite{samples}: bad data, not the optimiser"
        )
    params_ok = all(bool(torch.isfinite(p).all()) for p in model.parameters())
    state = "finite" if params_ok else "NOT finite (an earlier step already failed)"
    return (
        f"{where}: this step's inputs and targets are finite and the parameters are {state}; the loss is "
        f"checked every train.log_every={config.train.log_every} steps, so an earlier batch may be the "
        f"cause. If the data are clean, the optimisation diverged: lower optim.lr (now {config.optim.lr}) "
        "or set optim.grad_clip"
    )


def parameters_finite(model) -> bool:
    """Whether every parameter of ``model`` is finite (one reduction per tensor: a sync on a GPU)."""
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def nonfinite_parameters_message(step: int, last_finite: int, what: str, config) -> str:
    """The parameters went non-finite while the loss still was: an update overflowed (a loss only shows it
    one forward pass later). ``last_finite`` is the last step at which they were checked and finite."""
    return (
        f"the parameters are not finite at step {step} ({what}), finite at step {last_finite}: an update "
        f"between the two overflowed; lower optim.lr (now {config.optim.lr}) or set optim.grad_clip "
        f"(now {config.optim.grad_clip})"
    )
