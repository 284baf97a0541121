"""Fault steps: the watch (watch.py), one fault step end to end (step.py) and the timeline
verdicts (timeline.py); docs/scenarios.md, "Fault steps"."""
