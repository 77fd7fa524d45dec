"""Tests of labkit.fota."""
