"""ReliefHub's command line, development launcher and gateway."""
