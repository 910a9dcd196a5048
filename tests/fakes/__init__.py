"""Fakes that speak real wire protocols on 127.0.0.1 (never imported by product code)."""
