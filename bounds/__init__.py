"""The paper's upper and lower bounds, covering numbers, the hard instance, and bound plots."""
