"""The AAP controller driven by scripted rounds: no training involved."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prunebench.errors import ConfigError
from prunebench.select.policies import RoundRecord, Step, Stop, ThresholdSelection, make_policy

DENSE = RoundRecord(0, 0, 0.0, 0.0, 0.0, 0)


def drive(policy, outcome):
    """Run ``policy`` to its end; ``outcome(round, step)`` -> (val_drop, params_red, flops_red)
    or (val_drop, params_red, flops_red, channels removed); 1 channel removed by default."""
    history = [DENSE]
    while not isinstance(step := policy.next_step(history), Stop):
        assert isinstance(step, Step) and isinstance(step.selection, ThresholdSelection)
        drop, p, f, *removed = outcome(len(history), step)
        history.append(RoundRecord(len(history), step.base_round, p, f, drop, removed[0] if removed else 1))
    return history, step.reason, policy.describe(history)


def test_acceptable_rounds_raise_the_threshold_by_lambda():
    policy = make_policy("aap_acc_params", {"target": 1.0, "lambda0": 0.01}, max_rounds=5)
    history, reason, info = drive(policy, lambda r, s: (0.0, 10.0 * r, 5.0 * r))
    assert [round(i["threshold"], 10) for i in info[1:]] == [0.0, 0.01, 0.02, 0.03, 0.04]
    assert [h.base_round for h in history[1:]] == [0, 1, 2, 3, 4]
    assert reason == "round budget (5) spent" and all(i["acceptable"] for i in info)
    assert policy.final_round(history) == 5


def test_rollback_halves_lambda_per_rollback_then_gives_the_round_up():
    # Loss grows with T: rounds with T <= 0.02 are acceptable (loss 50*T <= 1).
    policy = make_policy("aap_acc_params", {"target": 1.0, "lambda0": 0.01, "max_rollbacks": 3}, max_rounds=9)
    history, _, info = drive(policy, lambda r, s: (50 * s.selection.threshold, 10.0 * r, 0.0))
    t = [round(i["threshold"], 10) for i in info]
    # r1..r3: T = 0, 0.01, 0.02 acceptable; r4: T = 0.03 fails -> back to r3 with 0.01/2, /4, /8.
    assert t[1:8] == [0.0, 0.01, 0.02, 0.03, 0.025, 0.0225, 0.02125]
    # Rounds 4, 5, 6 fail and roll back to r3; round 7 fails after r3's third rollback, so r3
    # is given up and the search returns to r2.
    assert [i["rolled_back_to"] for i in info[4:8]] == [3, 3, 3, 2]
    assert [i["rollbacks"] for i in info[5:8]] == [0, 1, 2]
    assert [i["lambda"] for i in info[5:8]] == [0.005, 0.0025, 0.00125]
    assert history[8].base_round == 2 and t[8] == pytest.approx(0.01 + 0.01 / 2)
    assert t[9] == pytest.approx(0.02) and info[9]["acceptable"]  # continues from r8 with lambda 0.005
    assert policy.final_round(history) == 9  # the largest cut within the target


def test_converges_when_size_stops_changing():
    policy = make_policy("aap_acc_params", {"target": 1.0, "patience": 3}, max_rounds=50)
    # Size plateaus at 40 % from round 2 on; round 3 is the only failure.
    history, reason, info = drive(policy, lambda r, s: (2.0 if r == 3 else 0.0, min(20.0 * r, 40.0), 0.0))
    assert info[3]["acceptable"] is False and info[3]["rolled_back_to"] == 2
    assert reason.startswith("converged") and len(history) == 7  # rounds 4, 5, 6 unchanged
    assert policy.final_round(history) == 2  # the first round of the largest cut (a tie: the earliest)


def test_failed_round_one_stops_at_once_and_keeps_the_dense_model():
    # Round 1 prunes with T = 0, the least any round can: retrying T > 0 cannot do better.
    policy = make_policy("aap_acc_params", {"target": -5.0, "max_rollbacks": 3}, max_rounds=50)
    history, reason, info = drive(policy, lambda r, s: (0.5, 10.0, 5.0))
    assert len(history) == 2 and reason.startswith("round 1 (T = 0")
    assert policy.final_round(history) == 0 and not policy.meets_target(history[0])
    # For a size target, round 1 crossing it is a result, not a failure to retry.
    size = make_policy("aap_params", {"target": 5.0}, max_rounds=50)
    history, reason, _ = drive(size, lambda r, s: (0.3, 10.0, 5.0))
    assert len(history) == 2 and size.final_round(history) == 1 and size.meets_target(history[1])
    assert "already meets the target" in reason


def test_convergence_is_not_reset_by_failed_rounds():
    policy = make_policy("aap_acc_params", {"target": 1.0, "patience": 3}, max_rounds=50)
    # Acceptable rounds change the size by 0.0125 % each (of the 80 % left); rounds 3 and 5 fail.
    sizes = {1: 20.0, 2: 20.01, 4: 20.02, 6: 20.03, 7: 20.04}
    history, reason, info = drive(policy, lambda r, s: (5.0, 50.0, 0.0) if r in (3, 5) else (0.0, sizes[r], 0.0))
    assert [info[r]["acceptable"] for r in (3, 5)] == [False, False]
    assert reason.startswith("converged") and len(history) == 7  # rounds 2, 4, 6


def test_rounds_removing_nothing_count_towards_convergence_only_after_a_rollback():
    # T has not reached the scores yet: nothing removed at lambda0 is not convergence.
    waiting = make_policy("aap_acc_params", {"target": 1.0, "patience": 2}, max_rounds=6)
    _, reason, _ = drive(waiting, lambda r, s: (0.0, 0.0, 0.0, 0))
    assert reason == "round budget (6) spent"
    # After a rollback (lambda halved), rounds that remove nothing are the paper's convergence.
    slowed = make_policy("aap_acc_params", {"target": 1.0, "patience": 2}, max_rounds=50)
    outcomes = {1: (0.0, 30.0, 0.0, 5), 2: (3.0, 60.0, 0.0, 9)}
    history, reason, info = drive(slowed, lambda r, s: outcomes.get(r, (0.0, 30.0, 0.0, 0)))
    assert info[2]["rolled_back_to"] == 1 and info[3]["lambda"] < info[1]["lambda"]
    assert reason.startswith("converged") and len(history) == 5  # rounds 3 and 4 removed nothing


def test_exhausted_search_returns_the_last_round_within_the_target():
    policy = make_policy("aap_acc_params", {"target": 1.0, "max_rollbacks": 1}, max_rounds=50)
    # Rounds 1 and 2 are within the target; every later round fails.
    history, reason, info = drive(policy, lambda r, s: (0.0 if r <= 2 else 5.0, 10.0 * r, 0.0))
    assert reason.startswith("search exhausted")
    assert [i["rolled_back_to"] for i in info[3:]] == [2, 1, 0, None]  # the last failure finds none left
    assert policy.final_round(history) == 2 and policy.meets_target(history[2])


def test_params_target_closes_in_from_below_and_returns_the_best_round_meeting_it():
    policy = make_policy("aap_params", {"target": 50.0, "lambda0": 0.1}, max_rounds=20)
    # Reduction grows with T; accuracy loss grows with reduction.
    history, _, info = drive(policy, lambda r, s: (s.selection.threshold, 300 * s.selection.threshold, 0.0))
    meeting = [h for h in history if h.params_reduction >= 50]
    assert meeting and all(not info[h.round]["acceptable"] for h in meeting)
    final = history[policy.final_round(history)]
    assert final.params_reduction >= 50 and final.val_drop == min(h.val_drop for h in meeting)
    assert final.params_reduction < 60  # the rollbacks refined the overshoot of the first crossing


def test_multi_objective_policies_weight_by_both_and_check_both_cuts():
    both = make_policy("aap_min_loss", {"params_target": 80, "flops_target": 80}, max_rounds=3)
    step = both.next_step([DENSE])
    assert step.selection.weighting == ("params", "flops")
    assert both.meets_target(RoundRecord(1, 0, 85, 81, 2.0, 1))
    assert not both.meets_target(RoundRecord(1, 0, 85, 79, 0.0, 1))
    cuts = make_policy("aap_max_cuts", {"target": 1.0}, max_rounds=4)
    history, _, _ = drive(cuts, lambda r, s: ((0.5, 60, 70), (0.9, 75, 60), (0.8, 70, 70), (3.0, 95, 95))[r - 1])
    assert cuts.final_round(history) == 3  # the largest params + FLOPs cuts within 1 point


@pytest.mark.parametrize("name", ["aap_max_cuts", "aap_acc_params"])
def test_accuracy_targets_return_the_largest_cuts_not_the_last_acceptable_round(name):
    # r2 (60 / 60) is within the target; r3-r6 fail and give r2 up after 3 rollbacks; the search
    # goes back to r1 and r7 (40 / 40) is the last acceptable round, with smaller cuts than r2.
    outcomes = {1: (0.0, 30, 30), 2: (0.5, 60, 60), 7: (0.2, 40, 40)}
    policy = make_policy(name, {"target": 1.0, "max_rollbacks": 3}, max_rounds=7)
    history, _, info = drive(policy, lambda r, s: outcomes.get(r, (5.0, 80, 80)))
    assert [info[r]["rolled_back_to"] for r in range(3, 7)] == [2, 2, 2, 1] and info[7]["acceptable"]
    assert policy.final_round(history) == 2


def test_bad_policy_options_are_refused():
    with pytest.raises(ConfigError, match="lambda0 must be > 0"):
        make_policy("aap_acc_params", {"lambda0": 0}, 10)
    with pytest.raises(ConfigError, match="has no option"):
        make_policy("aap_params", {"targte": 90}, 10)
    with pytest.raises(ConfigError, match="unknown policy 'aap'"):
        make_policy("aap", {}, 10)


@settings(max_examples=150, deadline=None)
@given(
    name=st.sampled_from(
        ["aap_acc_params", "aap_acc_flops", "aap_params", "aap_flops", "aap_min_loss", "aap_max_cuts"]
    ),
    outcomes=st.lists(st.tuples(st.floats(-2, 5), st.floats(0, 99), st.floats(0, 99)), min_size=1, max_size=60),
    lambda0=st.floats(1e-4, 1.0),
    max_rollbacks=st.integers(1, 4),
    patience=st.integers(1, 4),
    budget=st.integers(1, 40),
)
def test_controller_properties(name, outcomes, lambda0, max_rollbacks, patience, budget):
    options = {"lambda0": lambda0, "max_rollbacks": max_rollbacks, "patience": patience}
    if name in ("aap_params", "aap_flops"):
        options["target"] = 50.0
    policy = make_policy(name, options, max_rounds=budget)
    history, _, info = drive(policy, lambda r, s: outcomes[(r - 1) % len(outcomes)])
    assert len(history) - 1 <= budget  # always terminates within the round budget
    for rec in history[1:]:
        d = info[rec.round]
        assert d["lambda"] > 0
        assert d["threshold"] >= info[rec.base_round]["threshold"]  # never below the base's T
    final = policy.final_round(history)
    # The returned round meets the target; only when no round does is it the dense model.
    assert policy.meets_target(history[final]) or (final == 0 and not any(map(policy.meets_target, history)))
    # And no round meeting the target serves the policy's objective better.
    better = {
        "aap_acc_params": lambda h: h.params_reduction,
        "aap_acc_flops": lambda h: h.flops_reduction,
        "aap_max_cuts": lambda h: h.params_reduction + h.flops_reduction,
    }.get(name, lambda h: -h.val_drop)
    assert all(better(h) <= better(history[final]) for h in history if policy.meets_target(h))
