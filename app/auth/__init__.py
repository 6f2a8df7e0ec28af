"""Who a caller is and what it may do: identities, gateway tokens, permissions checks, rate
limits and what a refused caller is told."""
