"""Helpers around the media core, not the core itself: a scripted participant for tests, bench."""
