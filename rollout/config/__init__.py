"""Configuration and loading: rollout.yaml, plants, inventories, overlays and the code base, read
once, validated once, frozen."""
