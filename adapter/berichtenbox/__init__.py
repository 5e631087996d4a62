"""Berichtenbox: subscriptions (ValidateAbonnementen); BerichtVerwerk intake follows."""
