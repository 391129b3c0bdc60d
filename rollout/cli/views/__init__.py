"""How results look: rich tables for people, one JSON object per line for pipelines.

``output`` writes JSON lines and problems; ``preview`` shows what a deploy would do
(validate, plan, render, diff); ``progress`` a rollout as it runs and ends; ``records``
what runs and ran where (status, rollouts under way, history)."""
