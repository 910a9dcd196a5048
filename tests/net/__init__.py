"""Tests across real networks: hosts are network namespaces the tests make and remove themselves."""
