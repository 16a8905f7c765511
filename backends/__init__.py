"""Hardware backends: a cost-model Protocol, frozen chip specs, and the entry-point registry."""
