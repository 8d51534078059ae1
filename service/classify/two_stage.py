"""The two-stage scorer: the static stage decides, the MiniLM encoder only when it is unsure.

Why two stages: the static classifier (``static_embed.py``, same heads, same training) costs
well under a millisecond and, on the out-of-distribution set, is as accurate and as calibrated
as the int8 encoder; where it is on the fence, a second opinion from the transformer is worth
its 7 ms. "On the fence" is the margin between its two most probable profiles; the threshold is
a setting (``TIERWISE_FAST_MARGIN``), as is the prompt length above which the encoder always
runs (``TIERWISE_FAST_LONG_PROMPT_TOKENS``, 0 = never). The scores say which stage decided.
"""

from __future__ import annotations

from collections.abc import Sequence

from tierwise.service.classify.model import ProfileClassifier, Scores
from tierwise.service.classify.task import Task


def top_margin(scores: Scores) -> float:
    """Probability of the top profile minus that of the runner-up."""
    top = sorted(scores.profile_scores.values(), reverse=True)
    return top[0] - top[1] if len(top) > 1 else top[0]


class TwoStageScorer:
    def __init__(self, fast: ProfileClassifier, encoder: ProfileClassifier, *, margin: float,
                 long_prompt_tokens: int = 0) -> None:
        if tuple(fast.profiles) != tuple(encoder.profiles):
            raise ValueError("the two stages' classifiers name different profiles")
        self.fast = fast
        self.encoder = encoder
        self.margin = margin
        self.long_prompt_tokens = long_prompt_tokens
        self.profiles: tuple[str, ...] = fast.profiles
        self.embedder = fast.embedder  # the stage that decides nearly every task

    def needs_encoder(self, first: Scores) -> bool:
        if self.long_prompt_tokens and first.prompt_tokens >= self.long_prompt_tokens:
            return True
        return top_margin(first) < self.margin

    def score(self, task: Task) -> Scores:
        first = self.fast.score(task)
        return self.encoder.score(task) if self.needs_encoder(first) else first

    def score_many(self, tasks: Sequence[Task]) -> list[Scores]:
        out = self.fast.score_many(tasks)
        unsure = [i for i, s in enumerate(out) if self.needs_encoder(s)]
        for i, s in zip(unsure, self.encoder.score_many([tasks[i] for i in unsure]), strict=True):
            out[i] = s
        return out

    def warm(self) -> None:
        self.fast.warm()
        self.encoder.warm()
