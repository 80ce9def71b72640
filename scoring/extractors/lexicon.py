"""The `lexicon` backend: VADER sentiment, hostility/agreement cue lists and topic stance terms.

The fastest fallback (no model weights). Stance comes from each topic's ``pro_terms`` /
``anti_terms`` in ``topics.toml``; affect from a hostility lexicon aimed at people; agreement from
agreement/disagreement cue phrases; emotion and intensity from VADER's compound score.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from polarwatch.config import Topic
from polarwatch.records import Labels
from polarwatch.terms import whole_words
from scoring.extractors.base import Extractor, PostPair, with_blank_posts
from scoring.extractors.sentiment import Vader

# Hostility toward people (the paper's "affect"): insults and out-group slurs, not mere negativity.
HOSTILE_TERMS = (
    "idiot", "idiots", "moron", "morons", "stupid", "clown", "clowns", "traitor", "traitors",
    "liar", "liars", "scum", "pathetic", "brainwashed", "sheep", "nutjob", "nutjobs", "lunatic",
    "lunatics", "fascist", "fascists", "commie", "commies", "libtard", "libtards", "snowflake",
    "snowflakes", "deniers", "denier", "shut up", "you people", "disgusting", "evil", "hate you",
    "get lost", "go to hell", "braindead", "brain dead", "grifter", "grifters", "hypocrite",
    "hypocrites", "extremist", "extremists", "cultist", "cult", "losers", "loser", "garbage people",
)
AGREE_TERMS = (
    "agree", "agreed", "exactly", "well said", "so true", "absolutely", "couldn't agree more",
    "this is right", "you're right", "you are right", "100%", "spot on", "+1", "same here",
    "indeed", "good point", "yes!", "true that", "amen",
)
DISAGREE_TERMS = (
    "disagree", "wrong", "nonsense", "not true", "that's false", "thats false", "you're wrong",
    "ridiculous", "no way", "absurd", "bs", "misinformation", "lies", "doesn't make sense",
    "not at all", "nope", "no.", "no,", "false", "debunked", "that's a myth",
)

# VADER compound thresholds: ±0.05 is VADER's own neutral band (Hutto & Gilbert 2014, README);
# ±0.5 marks "strong" sentiment in the same documentation.
VADER_NEUTRAL = 0.05
VADER_STRONG = 0.5


def _phrase_regex(phrases: Iterable[str]) -> re.Pattern[str] | None:
    """One case-insensitive alternation matching whole words/phrases (hashtags allowed)."""
    parts = sorted({p.lower() for p in phrases if p.strip()}, key=len, reverse=True)
    if not parts:
        return None
    return re.compile(whole_words(parts, not_after="#"), re.IGNORECASE)


def _count(rx: re.Pattern[str] | None, text: str) -> int:
    return len(rx.findall(text)) if rx is not None else 0


class LexiconExtractor(Extractor):
    name = "lexicon"

    def __init__(self, topics: Sequence[Topic]) -> None:
        super().__init__(topics)
        self._vader = Vader()
        self._hostile = _phrase_regex(HOSTILE_TERMS)
        self._agree = _phrase_regex(AGREE_TERMS)
        self._disagree = _phrase_regex(DISAGREE_TERMS)
        self._stance = {t.id: (_phrase_regex(t.pro_terms), _phrase_regex(t.anti_terms))
                        for t in topics}

    def _stance_of(self, text: str, topic: str) -> tuple[str, float]:
        pro_rx, anti_rx = self._stance.get(topic, (None, None))
        pro, anti = _count(pro_rx, text), _count(anti_rx, text)
        if pro == anti:
            return "unclear", 0.5
        conf = 0.5 + 0.5 * abs(pro - anti) / (pro + anti)
        return ("pro" if pro > anti else "anti"), round(min(conf, 0.95), 3)

    def extract(self, batch: Sequence[PostPair]) -> list[Labels]:
        return with_blank_posts(self.name, batch, self._label)

    def _label(self, batch: Sequence[PostPair]) -> list[Labels]:
        out = []
        for pair in batch:
            text = pair.text
            compound = self._vader.compound(text)
            stance, stance_conf = self._stance_of(text, pair.topic)
            hostile = _count(self._hostile, text)
            if hostile:
                affect, affect_conf = "yes", min(0.6 + 0.15 * hostile, 0.95)
            elif compound > -VADER_STRONG:
                affect, affect_conf = "no", 0.7
            else:
                affect, affect_conf = "unclear", 0.5
            agreement: str | None = None
            agreement_conf: float | None = None
            if pair.parent_text is not None:
                agree, disagree = _count(self._agree, text), _count(self._disagree, text)
                if agree > disagree:
                    agreement, agreement_conf = "agree", 0.7
                elif disagree > agree:
                    agreement, agreement_conf = "disagree", 0.7
                else:
                    agreement, agreement_conf = "unclear", 0.5
            if compound >= VADER_STRONG:
                emotion = "joy"
            elif compound >= VADER_NEUTRAL:
                emotion = "optimism"
            elif compound <= -VADER_NEUTRAL:
                emotion = "anger" if hostile else "sadness"
            else:
                emotion = "neutral"
            out.append(Labels(
                post_id=pair.post_id, stance=stance, affect=affect,  # type: ignore[arg-type]
                agreement=agreement,  # type: ignore[arg-type]
                emotion=emotion,  # type: ignore[arg-type]
                intensity=round(abs(compound), 4), stance_conf=stance_conf,
                affect_conf=round(affect_conf, 3), agreement_conf=agreement_conf,
                emotion_conf=round(0.5 + abs(compound) / 2, 3), backend=self.name,
            ))
        return out
