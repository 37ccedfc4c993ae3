"""Toy family members, each in one file, added to the families' dicts by tests (monkeypatch)."""
