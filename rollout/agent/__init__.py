"""The agent inside a plant: takes its plant's work orders from the centre and runs them there."""
