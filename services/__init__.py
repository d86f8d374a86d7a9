"""ReliefHub's services, one package each."""
