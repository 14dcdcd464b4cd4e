"""Framework adapters: each turns its framework's request into one lifecycle begin/finish."""
