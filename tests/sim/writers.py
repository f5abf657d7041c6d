"""Writers churning pods in the model while the controller runs: creates (names are
reused after a delete, with a new uid), updates, and deletes as the apiserver does them
(MODIFIED with deletionTimestamp, then DELETED at once or some seconds later, as with a
finalizer), sometimes several writes in the same instant."""

from __future__ import annotations

import random

import trio

from .model import NAMESPACE, Model


class Writers:
    def __init__(self, model: Model, rng: random.Random, names: int, mean_gap: float) -> None:
        self.model = model
        self.rng = rng
        self.names = [f"pod-{i}" for i in range(names)]
        self.mean_gap = mean_gap
        self.finishing: dict[str, float] = {}  # key being deleted -> when DELETED comes
        self.writes = 0

    def seed_objects(self, n: int) -> None:
        for name in self.names[:n]:
            self.model.create(name)

    async def run(self, until: float) -> None:
        rng = self.rng
        while True:
            gap = 0.0 if rng.random() < 0.2 else rng.expovariate(1.0 / self.mean_gap)
            if trio.current_time() + gap >= until:
                return
            await trio.sleep(gap)
            self._finish_due(trio.current_time())
            self.step()

    def _finish_due(self, now: float) -> None:
        for key, at in list(self.finishing.items()):
            if at <= now:
                del self.finishing[key]
                self.model.finish_delete(key)
                self.writes += 1

    def finish(self) -> None:
        """Complete every delete under way (before the convergence phase)."""
        self._finish_due(float("inf"))

    def step(self) -> None:
        model, rng = self.model, self.rng
        name = rng.choice(self.names)
        key = f"{NAMESPACE}/{name}"
        if key not in model.objects:
            model.create(name)
        elif key in self.finishing:
            return
        elif rng.random() < 0.6:
            model.update(key)
        else:
            model.mark_deleted(key)
            delay = rng.choice((0.0, 0.0, 0.0, 0.5, 5.0))
            if delay == 0.0:
                model.finish_delete(key)
                self.writes += 1
            else:
                self.finishing[key] = trio.current_time() + delay
        self.writes += 1
