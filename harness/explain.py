"""Turn an oracle Decision into a short paragraph a student understands.

Why separate from the oracle: the oracle's reasons are data (direction, policy, rule, text) that
reports and `check` also read; how they are told to a person (order, grouping, the closing
summary) is a second idea and changes for its own reasons (labs, terminal, HTML).
"""

from __future__ import annotations

from harness.model import Protocol
from harness.oracle import Decision, Reason
from harness.results import Expectation

VERDICT_WORDS = {
    Expectation.ALLOW: "ALLOWED",
    Expectation.DENY: "BLOCKED",
    Expectation.UNDEFINED: "UNDEFINED (the spec does not say; not asserted)",
}


def _sentence(text: str) -> str:
    text = text.strip()
    first = text.split(" ", 1)[0]
    if first.isalpha() and first.islower():   # never capitalise a pod key such as x/a
        text = text[0].upper() + text[1:]
    return text if text.endswith(".") else text + "."


def _side_summary(reasons: list[Reason], direction: str) -> str | None:
    """One closing sentence for a side that denies: which pod, isolated by whom."""
    denied = [r for r in reasons if r.direction == direction and not r.allowed and r.policy]
    if not denied:
        return None
    policies = sorted({r.policy for r in denied if r.policy})
    # the isolated pod is the first word after "isolates" in the oracle's text
    pod = denied[0].text.split(" isolates ", 1)[-1].split(" ", 1)[0]
    which = "the policy" if len(policies) == 1 else f"any of the {len(policies)} policies"
    return (f"So {pod} is isolated for {direction} and no {direction} rule of {which} "
            f"selecting it ({', '.join(policies)}) matches this connection.")


def explain(decision: Decision, source: str, target: str, port: int | str,
            protocol: Protocol | str) -> str:
    """`y/b -> x/a on TCP 80: BLOCKED. <why, deciding reasons first> <summary>`."""
    proto = protocol.value if isinstance(protocol, Protocol) else str(protocol).upper()
    head = f"{source} -> {target} on {proto} {port}: {VERDICT_WORDS[decision.expectation]}."
    reasons = list(decision.reasons)
    if decision.expectation is Expectation.ALLOW:
        deciding = [r for r in reasons if r.allowed]
        rest: list[Reason] = []
    elif decision.expectation is Expectation.DENY:
        deciding = [r for r in reasons if not r.allowed]
        rest = [r for r in reasons if r.allowed]
    else:
        # the reasons that make it undefined are the unmet ones no policy rule stands behind
        deciding = [r for r in reasons if not r.allowed and r.policy is None] or reasons[:1]
        rest = [r for r in reasons if r not in deciding]
    parts = [head] + [_sentence(r.text) for r in deciding]
    if decision.expectation is Expectation.DENY:
        parts += [s for s in (_side_summary(reasons, "egress"), _side_summary(reasons, "ingress"))
                  if s]
    if rest:
        parts.append("Also: " + " ".join(_sentence(r.text) for r in rest))
    return " ".join(parts)
