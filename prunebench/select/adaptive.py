"""AAP's adaptive pruning policies (Zhao et al., AISTATS 2023: Section 3.2, Algorithms 2-4,
Section 4.5), as a controller that needs no training to test.

State: a global threshold T (T[1] = 0) and an increment lambda (lambda[1] = ``lambda0``). Round
r prunes, from its base round's model, every channel whose score is <= T[r] * w_i, with w_i the
group's share of the remaining params, FLOPs or (multi-objective) the mean of both. After the
round is retrained and evaluated on the VALIDATION split:

- acceptable: the next round continues from it with T[r+1] = T[r] + lambda[r+1], lambda[r+1] =
  lambda[r]. If the model size changed by <= ``tolerance`` % (relative to the round's base, every
  size the policy watches) in ``patience`` acceptable rounds in a row, the search has converged
  and stops ("the changes of model size are within 0.1 % for several rounds"). Failed rounds
  between them do not break the streak: they are not rounds of the accepted model's size.
- unacceptable: roll back to the last acceptable round k. If k was already the target of
  ``max_rollbacks`` rollbacks it is marked unacceptable and the search goes back to the
  acceptable round before it. Otherwise, with C the rollbacks to k so far,
  lambda = lambda[k] / 2^(C+1) and T = T[k] + lambda, i.e. lambda[k]/2, /4, /8 on successive
  rollbacks to the same k, as Section 3.2's prose says. (The pseudo-code's lambda[r]/2^(C+1), with
  lambda[r] the failed round's own lambda, would compound to /2, /8, /64; we follow the prose.)
- If every acceptable round has been given up, the search is exhausted and stops.

Readings of the paper documented here (the paper is the specification; these are where it is
silent or self-contradictory):
- The dense model is round 0, T[0] = 0 and lambda[0] = lambda0; it is the first rollback target.
- Round 1 (T = 0) is the gentlest pruning there is: if it is not acceptable, no threshold is,
  and the search stops at once instead of retrying ever smaller T > 0 from the dense model.
- A round that removes nothing while lambda is still lambda0 does not count towards convergence
  (nor break the streak): T has not reached the scores yet, the search has not begun. Once a
  rollback has lowered lambda, such rounds are exactly the paper's convergence ("when lambda
  becomes sufficiently small ... no more filters are pruned and the model converges").
- Accuracy targets accept loss <= target (the paper writes <); a 0 % target then means "no loss".
- Size targets (Algorithms 3 and 4) are read literally for the search: a round is acceptable
  while its reduction is BELOW the target, and reaching the target triggers the rollback, so the
  search closes in on the target from below with ever smaller steps.
- The result is the round that best meets the user's objective among the rounds meeting the
  target: for accuracy targets the largest cut of the watched size ("the most resource-efficient
  model with the acceptable accuracy loss"; the largest params + FLOPs cuts for the
  multi-objective one), for size and multi-constraint targets the best validation accuracy.
  Ties go to the earlier round. If no round qualifies, the result is the dense model and
  ``target_met`` is false.
- T is in normalised units by default (``units: normalized``): the engine multiplies it by the
  dense model's mean score divided by the mean w_i, so T = 1 prunes, in a group of average
  weight, the channels scoring below the dense model's mean score, whatever the model and the
  score's scale. The paper's text gives lambda = 0.01 in the scores' own units, the authors'
  released scripts 1.0: neither is scale-free (on a CIFAR ResNet, raw T stayed below every
  attention score for a whole round budget). ``lambda0`` = 0.1 normalised units (T reaches the
  mean score in ten acceptable rounds) was fixed from that arithmetic, before any result was
  seen. ``units: raw`` is the paper's literal reading.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prunebench.select.policies import Policy, RoundRecord, Step, Stop, ThresholdSelection

Criterion = Callable[[RoundRecord], bool]


@dataclass(frozen=True)
class Objective:
    acceptable: Criterion  # a round the search may continue from
    feasible: Criterion  # a round that meets the user's target
    rank: Callable[[RoundRecord], float]  # the result is the feasible round ranked highest
    sizes: tuple[str, ...]  # the sizes whose convergence ends the search
    weighting: tuple[str, ...]  # what the layer-aware weights w_i measure


@dataclass
class Decision:
    """How the controller produced one round."""

    base: int
    threshold: float
    lam: float
    rollbacks: int  # C: rollbacks to ``base`` before this step


@dataclass
class AdaptiveController:
    """Algorithms 2-4 over the finished rounds; its settings (and their defaults) are the
    policies' options (``_SearchOptions``)."""

    objective: Objective
    lambda0: float
    max_rollbacks: int
    patience: int
    tolerance: float  # percent
    units: str

    decisions: dict[int, Decision] = field(default_factory=dict)
    acceptable: dict[int, bool] = field(default_factory=dict)
    rolled_back_to: dict[int, int] = field(default_factory=dict)
    _records: dict[int, RoundRecord] = field(default_factory=dict)
    _accepted: list[int] = field(default_factory=list)
    _dropped: set[int] = field(default_factory=set)
    _rollbacks: dict[int, int] = field(default_factory=dict)
    _streak: int = 0
    _next: Decision | None = None

    def start(self, dense: RoundRecord) -> Step:
        self._records[0] = dense
        self.decisions[0] = Decision(0, 0.0, self.lambda0, 0)
        self.acceptable[0] = True
        self._accepted.append(0)
        return self._step(Decision(0, 0.0, self.lambda0, 0))

    def _step(self, decision: Decision) -> Step:
        self._next = decision
        return Step(decision.base, ThresholdSelection(decision.threshold, self.objective.weighting, self.units))

    def _size_change(self, record: RoundRecord) -> float:
        base = self._records[record.base_round]
        changes = []
        for metric in self.objective.sizes:
            before, after = 100.0 - base.reduction(metric), 100.0 - record.reduction(metric)
            changes.append(100.0 * abs(before - after) / before)
        return max(changes)

    def observe(self, record: RoundRecord) -> Step | Stop:
        decision = self._next
        if decision is None or record.base_round != decision.base:
            raise ValueError(f"round {record.round} does not follow this controller's last step")
        self._next = None
        r = record.round
        self._records[r] = record
        self.decisions[r] = decision
        ok = self.objective.acceptable(record)
        self.acceptable[r] = ok
        if not ok and r == 1:
            why = "already meets the target" if self.objective.feasible(record) else "misses the target"
            return Stop(f"round 1 (T = 0, the gentlest pruning) {why}: no threshold can stay below it")
        if ok:
            self._accepted.append(r)
            if record.removed > 0 or decision.lam < self.lambda0:
                self._streak = self._streak + 1 if self._size_change(record) <= self.tolerance else 0
            if self._streak >= self.patience:
                return Stop(f"converged: size changed <= {self.tolerance}% in {self.patience} acceptable rounds")
            return self._step(Decision(r, decision.threshold + decision.lam, decision.lam, 0))
        while True:
            candidates = [k for k in self._accepted if k not in self._dropped]
            if not candidates:
                return Stop(
                    f"search exhausted: every acceptable round was given up after {self.max_rollbacks} rollbacks"
                )
            k = candidates[-1]
            c = self._rollbacks.get(k, 0)
            if c >= self.max_rollbacks:
                self._dropped.add(k)
                continue
            self._rollbacks[k] = c + 1
            self.rolled_back_to[r] = k
            lam = self.decisions[k].lam / 2.0 ** (c + 1)
            return self._step(Decision(k, self.decisions[k].threshold + lam, lam, c))

    def result(self) -> int:
        feasible = [r for r, rec in self._records.items() if self.objective.feasible(rec)]
        return max(feasible, key=lambda r: (self.objective.rank(self._records[r]), -r)) if feasible else 0


class AdaptivePolicy(Policy):
    """Base of the AAP policies: replays the controller over the history at every call."""

    def objective(self) -> Objective:
        raise NotImplementedError

    def _replay(self, history: list[RoundRecord]) -> tuple[AdaptiveController, Step | Stop]:
        o = self.options
        ctrl = AdaptiveController(self.objective(), o.lambda0, o.max_rollbacks, o.patience, o.tolerance, o.units)
        answer: Step | Stop = ctrl.start(history[0])
        for record in history[1:]:
            if isinstance(answer, Stop):
                raise ValueError(f"the history continues after the controller stopped ({answer.reason})")
            answer = ctrl.observe(record)
        return ctrl, answer

    def _next(self, history: list[RoundRecord]) -> Step | Stop:
        return self._replay(history)[1]

    def meets_target(self, record: RoundRecord) -> bool:
        return self.objective().feasible(record)

    def search_key(self) -> dict[str, Any]:
        # The controller raises T alike until a round is unacceptable, whatever the target.
        search = {f.name: getattr(self.options, f.name) for f in dataclasses.fields(_SearchOptions)}
        return {"policy": "adaptive", "weighting": self.objective().weighting, **search}

    def final_round(self, history: list[RoundRecord]) -> int:
        return self._replay(history)[0].result()

    def describe(self, history: list[RoundRecord]) -> list[dict[str, Any]]:
        ctrl, _ = self._replay(history)
        return [
            {
                "threshold": ctrl.decisions[rec.round].threshold,
                "lambda": ctrl.decisions[rec.round].lam,
                "rollbacks": ctrl.decisions[rec.round].rollbacks,
                "acceptable": ctrl.acceptable[rec.round],
                "rolled_back_to": ctrl.rolled_back_to.get(rec.round),
            }
            for rec in history
        ]


def _check_reduction(name: str, value: float) -> None:
    if not 0 < value < 100:
        raise ValueError(f"{name} must be a reduction in percent, 0 < {name} < 100, got {value}")


@dataclass
class _SearchOptions:
    lambda0: float = 0.1  # first increment of T, in `units` (see the module docstring)
    max_rollbacks: int = 3  # rollbacks to one round before it is given up ("several")
    patience: int = 3  # converged rounds before stopping ("several")
    tolerance: float = 0.1  # size change, percent, that counts as converged
    units: str = "normalized"  # normalized: T in units of the dense mean score; raw: the paper's text

    def __post_init__(self) -> None:
        if not self.lambda0 > 0:
            raise ValueError(f"lambda0 must be > 0, got {self.lambda0}")
        if self.units not in ("normalized", "raw"):
            raise ValueError(f"units must be 'normalized' or 'raw', got {self.units!r}")
        if self.max_rollbacks < 1 or self.patience < 1 or self.tolerance < 0:
            raise ValueError("max_rollbacks and patience must be >= 1 and tolerance >= 0")


@dataclass
class _AccuracyOptions(_SearchOptions):
    target: float = 1.0  # largest acceptable validation accuracy loss, in points


@dataclass
class _ReductionOptions(_SearchOptions):
    target: float = 90.0  # reduction to reach, percent vs dense

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_reduction("target", self.target)


@dataclass
class _BothCutsOptions(_SearchOptions):
    params_target: float = 80.0  # params reduction must exceed this
    flops_target: float = 80.0  # and FLOPs reduction this

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_reduction("params_target", self.params_target)
        _check_reduction("flops_target", self.flops_target)


def _within_loss(sizes: tuple[str, ...], loss: float) -> Objective:
    """Accuracy targets: continue from rounds within the loss; the result is the one with the
    largest cut (summed over ``sizes``)."""
    within = lambda rec: rec.val_drop <= loss  # noqa: E731
    return Objective(within, within, lambda rec: sum(rec.reduction(m) for m in sizes), sizes, sizes)


class _AccuracyTarget(AdaptivePolicy):
    metric = ""
    Options = _AccuracyOptions

    def objective(self) -> Objective:
        return _within_loss((self.metric,), self.options.target)


class AccuracyParams(_AccuracyTarget):
    name = "aap_acc_params"
    summary = "AAP-P: smallest params within an accuracy-loss target (Algorithm 2, weights by params)"
    metric = "params"


class AccuracyFlops(_AccuracyTarget):
    name = "aap_acc_flops"
    summary = "AAP-F: fewest FLOPs within an accuracy-loss target (Algorithm 2, weights by FLOPs)"
    metric = "flops"


class _ReductionTarget(AdaptivePolicy):
    metric = ""
    Options = _ReductionOptions

    def objective(self) -> Objective:
        m, t = self.metric, self.options.target
        return Objective(
            acceptable=lambda rec: rec.reduction(m) < t,
            feasible=lambda rec: rec.reduction(m) >= t,
            rank=lambda rec: -rec.val_drop,
            sizes=(m,),
            weighting=(m,),
        )


class ParamsTarget(_ReductionTarget):
    name = "aap_params"
    summary = "AAP memory-constrained: best accuracy at a params-reduction target (Algorithm 3)"
    metric = "params"


class FlopsTarget(_ReductionTarget):
    name = "aap_flops"
    summary = "AAP FLOPs-constrained: best accuracy at a FLOPs-reduction target (Algorithm 4)"
    metric = "flops"


class MinLossBothCuts(AdaptivePolicy):
    name = "aap_min_loss"
    summary = "AAP multi-constraint: least accuracy loss with params cut > X and FLOPs cut > Y (Table 7)"
    Options = _BothCutsOptions

    def objective(self) -> Objective:
        p, f = self.options.params_target, self.options.flops_target
        both = lambda rec: rec.params_reduction > p and rec.flops_reduction > f  # noqa: E731
        return Objective(
            acceptable=lambda rec: not both(rec),
            feasible=both,
            rank=lambda rec: -rec.val_drop,
            sizes=("params", "flops"),
            weighting=("params", "flops"),
        )


class MaxCutsWithinLoss(AdaptivePolicy):
    name = "aap_max_cuts"
    summary = "AAP multi-objective: largest params + FLOPs cuts within an accuracy-loss target (Table 7)"
    Options = _AccuracyOptions

    def objective(self) -> Objective:
        return _within_loss(("params", "flops"), self.options.target)


ADAPTIVE_POLICIES = (AccuracyParams, AccuracyFlops, ParamsTarget, FlopsTarget, MinLossBothCuts, MaxCutsWithinLoss)
