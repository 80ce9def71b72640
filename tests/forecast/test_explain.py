"""Explanations an analyst can check (issue 23): the test that fired with its statistic and
threshold, the direction of the data, a class that agrees with the calendar it cites, and bands
inside the metric's domain. Each case reproduces a defect seen on real Brexit threads."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from forecast.run import classify_series
from polarwatch.events import Event

DAY = 86400.0


def daily(n: int) -> pd.DatetimeIndex:
    return pd.date_range("2016-01-01", periods=n, freq="D", tz="UTC")


def alarms(out: dict) -> dict[int, str]:
    return {i: f for i, f in enumerate(out["flag"])
            if f != "none" and out["episode_event"][i] == "open"}


def falling_scores() -> np.ndarray:
    """A mean_score around 5.4 that settles ~2 sigma lower: a fall no single point shows."""
    rng = np.random.default_rng(3)
    y = 5.4 + rng.normal(0, 0.3, 220)
    y[150:] -= 0.7
    return np.clip(y, 0, 10)


def test_a_fall_is_explained_as_a_fall() -> None:
    y = falling_scores()
    out = classify_series(daily(len(y)), y, DAY, [], metric="mean_score")
    raised = alarms(out)
    assert raised, "the fall should raise a flag"
    for i in raised:
        why = out["explanation"][i]
        assert "rise" not in why and "build-up" not in why, why
        assert re.search(r"\bfell\b|\bbelow\b|\blower\b", why), why
        assert out["flag"][i] in ("dip", "reactive"), (out["flag"][i], why)
    resolved = [e for e, ev in zip(out["explanation"], out["episode_event"], strict=True)
                if ev == "resolve"]
    assert resolved and not any("classified spike" in e for e in resolved), resolved


def test_no_anticipatory_class_without_a_scheduled_event_ahead() -> None:
    rng = np.random.default_rng(4)
    y = 4.0 + rng.normal(0, 0.2, 240)
    y[160:] += np.linspace(0, 3.0, 80)  # a slow build-up, and nothing on the calendar
    later = Event("Election", "t", daily(400)[-1].to_pydatetime(), "scheduled")  # far away
    out = classify_series(daily(len(y)), y, DAY, [later], metric="mean_score")
    raised = alarms(out)
    assert raised
    for i in raised:
        assert out["flag"][i] != "anticipatory", out["explanation"][i]
    resolved = [e for e, ev in zip(out["explanation"], out["episode_event"], strict=True)
                if ev == "resolve"]
    assert not any("classified anticipatory" in (e or "") for e in resolved), resolved
    # the same rise 2 days before a scheduled vote is anticipatory and names the vote
    vote = Event("Vote", "t", daily(len(y))[min(raised) + 2].to_pydatetime(), "scheduled")
    out = classify_series(daily(len(y)), y, DAY, [vote], metric="mean_score")
    ant = [i for i, f in alarms(out).items() if f == "anticipatory"]
    assert ant and all("before the scheduled event 'Vote'" in out["explanation"][i]
                       for i in ant)


def test_explanation_names_test_statistic_threshold_and_bands_stay_in_domain() -> None:
    # a thread whose first weeks are one constant value, then ordinary noise: the detector's
    # scale starts at its floor (the 1e+304 band seen on real Brexit threads)
    rng = np.random.default_rng(0)
    y = np.r_[np.full(40, 4.0), np.clip(5 + rng.normal(0, 1, 300), 0, 10)]
    out = classify_series(daily(len(y)), y, DAY, [], metric="mean_score")
    texts = [e for e in out["explanation"] if e]
    assert texts
    for why in texts:
        assert "e+" not in why, why
        for lo, hi in re.findall(r"\[(-?[\d.]+), (-?[\d.]+)\]", why):
            assert 0.0 <= float(lo) <= float(hi) <= 10.0, why
    first = texts[0]
    assert re.search(r"threshold|alarm at|limit", first), first
    assert any(name in first for name in
               ("the alarm band", "CUSUM", "rise test", "change test", "level shift",
                "forecast crosses")), first


def test_a_constant_start_is_one_change_not_a_string_of_level_jumps() -> None:
    # the scale learnt on a constant warm-up is at its floor: the first change re-estimates it
    rng = np.random.default_rng(0)
    y = np.r_[np.full(40, 4.0), np.clip(5 + rng.normal(0, 1, 300), 0, 10)]
    out = classify_series(daily(len(y)), y, DAY, [], metric="mean_score")
    assert len(alarms(out)) <= 2, [out["explanation"][i] for i in alarms(out)]
